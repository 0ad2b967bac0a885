package evacuate

import (
	"encoding/json"
	"net/http"
	"time"
)

// EvacList is the body of GET /api/v1/evacuations.
type EvacList struct {
	Collector   string `json:"collector"`
	Leader      bool   `json:"leader"`
	Evacuations []Evac `json:"evacuations"`
}

// ActionBody is the body of POST /api/v1/evacuations/{id}/{action}.
type ActionBody struct {
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// Handler serves the evacuation part of the collector's HTTP API, to be
// mounted at "/api/v1/evacuations" and "/api/v1/evacuations/" by the
// collector (which adds authentication in front of it):
//
//	GET  /api/v1/evacuations               EvacList
//	GET  /api/v1/evacuations/{id}          Evac
//	POST /api/v1/evacuations/{id}/approve  {"by": "...", "note": "..."} -> Evac
//	POST /api/v1/evacuations/{id}/abort
//	POST /api/v1/evacuations/{id}/complete
//
// Actions on a follower are forwarded to the leader over NATS.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/evacuations", func(w http.ResponseWriter, r *http.Request) {
		evs, err := e.List(r.Context())
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, EvacList{Collector: e.cfg.ID, Leader: e.IsLeader(), Evacuations: evs})
	})
	mux.HandleFunc("GET /api/v1/evacuations/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev, ok, err := e.Get(r.Context(), r.PathValue("id"))
		switch {
		case err != nil:
			httpError(w, http.StatusServiceUnavailable, err.Error())
		case !ok:
			httpError(w, http.StatusNotFound, "evacuation "+r.PathValue("id")+" not found")
		default:
			writeJSON(w, http.StatusOK, ev)
		}
	})
	mux.HandleFunc("POST /api/v1/evacuations/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		act := r.PathValue("action")
		if act != "approve" && act != "abort" && act != "complete" {
			httpError(w, http.StatusNotFound, "unknown action "+act+" (want approve, abort or complete)")
			return
		}
		var body ActionBody
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			httpError(w, http.StatusBadRequest, "body: want {\"by\": \"operator\", \"note\": \"...\"}: "+err.Error())
			return
		}
		if body.By == "" {
			httpError(w, http.StatusBadRequest, "by: the operator's name is required")
			return
		}
		rep := e.Act(r.Context(), CtlRequest{Op: act, ID: r.PathValue("id"), By: body.By, Note: body.Note})
		if !rep.OK {
			code := rep.Code
			if code == 0 {
				code = http.StatusInternalServerError
			}
			httpError(w, code, rep.Error)
			return
		}
		writeJSON(w, http.StatusOK, rep.Evac)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": msg, "time": time.Now().UTC()})
}
