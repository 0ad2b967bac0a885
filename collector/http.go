package collector

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

//go:embed web
var webFS embed.FS

func (c *Collector) routes() {
	c.mux.HandleFunc("GET /healthz", c.handleHealth)
	c.mux.HandleFunc("GET /api/v1/state", c.handleState)
	c.mux.HandleFunc("GET /api/v1/alerts", c.handleAlerts)
	c.mux.HandleFunc("GET /api/v1/evacuations", c.handleEvacuations)
	c.mux.HandleFunc("/api/v1/evacuations/", c.handleEvacuations)
	c.mux.HandleFunc("POST /api/v1/ack", c.handleAck)
	c.mux.HandleFunc("GET /api/v1/events", c.handleEvents)
	c.mux.Handle("GET /metrics", c.metricsHandler())
	static, _ := fs.Sub(webFS, "web")
	c.mux.Handle("/", http.FileServerFS(static))
}

// guard requires the bearer token on requests that change something.
func (c *Collector) guard(next http.Handler) http.Handler {
	if c.cfg.HTTP.Token == "" {
		return next
	}
	want := []byte("Bearer " + c.cfg.HTTP.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ember-collector"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"this request needs Authorization: Bearer <http.token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

// apiError is the body of every 4xx/5xx answer.
type apiError struct {
	Error string `json:"error"`
}

func (c *Collector) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := c.Stats()
	code := http.StatusOK
	status := "ok"
	if !st.NATSConnected {
		code, status = http.StatusServiceUnavailable, "nats disconnected"
	}
	writeJSON(w, code, map[string]any{"status": status, "site": c.cfg.Site, "collector": c.cfg.CollectorID, "stats": st})
}

func (c *Collector) handleState(w http.ResponseWriter, r *http.Request) {
	snap := c.state.Snapshot(r.URL.Query().Get("values") != "0")
	st := c.Stats()
	snap.Counts = map[string]int64{"lines_stored": int64(st.LinesStored), "quarantined_lines": int64(st.Quarantined)}
	writeJSON(w, http.StatusOK, snap)
}

func (c *Collector) handleAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since := c.now().Add(-24 * time.Hour)
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("since: want RFC3339 like 2026-11-22T04:00:00Z, got %q", s)})
			return
		}
		since = t
	}
	limit := 1000
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("limit: want a positive integer, got %q", s)})
			return
		}
		limit = n
	}
	out := c.state.Alerts(since, limit)
	if out == nil {
		out = []wire.Alert{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Collector) handleEvacuations(w http.ResponseWriter, r *http.Request) {
	if h := c.evacHTTP.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	if r.URL.Path != "/api/v1/evacuations" || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, apiError{"no evacuation engine in this collector"})
		return
	}
	src := c.evac.Load()
	if src == nil {
		writeJSON(w, http.StatusOK, []wire.Evacuation{})
		return
	}
	ev, err := (*src).Evacuations(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{"evacuations: " + err.Error()})
		return
	}
	if ev == nil {
		ev = []wire.Evacuation{}
	}
	writeJSON(w, http.StatusOK, ev)
}

// AckRequest is the body of POST /api/v1/ack.
type AckRequest struct {
	ID   string `json:"id"`
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

func (c *Collector) handleAck(w http.ResponseWriter, r *http.Request) {
	var req AckRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"ack: want JSON {\"id\":..., \"by\":..., \"note\":...}: " + err.Error()})
		return
	}
	req.ID, req.By = strings.TrimSpace(req.ID), strings.TrimSpace(req.By)
	switch {
	case req.ID == "":
		writeJSON(w, http.StatusBadRequest, apiError{"ack: id is required"})
		return
	case req.By == "":
		writeJSON(w, http.StatusBadRequest, apiError{"ack: by is required (who acknowledges)"})
		return
	}
	a, err := c.Ack(r.Context(), req.ID, req.By, req.Note)
	switch {
	case errors.Is(err, ErrUnknownAlert):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusOK, a)
	}
}

// handleEvents streams the site summary (racks, agents, active alerts) as
// server-sent events: one "state" event at once and after every change, at
// most every 250 ms, and a comment every 15 s to keep proxies from closing.
func (c *Collector) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, apiError{"streaming unsupported"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	ctx := r.Context()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	var last uint64 = ^uint64(0)
	for {
		ch, ver := c.state.Changed()
		if ver != last {
			last = ver
			b, err := json.Marshal(c.state.Snapshot(false))
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
			select { // throttle
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
