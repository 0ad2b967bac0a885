package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// store writes line protocol batches to InfluxDB. write blocks until the
// batch is accepted (retrying with capped exponential backoff while
// InfluxDB is down, slow or refusing), because the caller acks JetStream
// only afterwards: JetStream, not the collector's memory, is the buffer.
type store struct {
	cfg    InfluxConfig
	log    *slog.Logger
	client influxdb2.Client
	api    api.WriteAPIBlocking // telemetry: db/retention_policy
	events api.WriteAPIBlocking // alerts, evacuations: db/events_retention_policy
	hc     *http.Client

	written atomic.Uint64 // points accepted
	dropped atomic.Uint64 // points InfluxDB refused for good (400 partial write)
	retries atomic.Uint64
	down    atomic.Bool
}

func newStore(cfg InfluxConfig, log *slog.Logger) *store {
	var rt http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if *cfg.GZip {
		rt = &gzipTransport{base: rt}
	}
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Nanosecond).
		SetUseGZip(false). // gzipTransport does it, cheaper
		SetHTTPClient(&http.Client{Timeout: cfg.timeout, Transport: rt})
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	bucket := func(rp string) string {
		if rp == "" {
			return cfg.Database
		}
		return cfg.Database + "/" + rp
	}
	evRP := cfg.EventsRetentionPolicy
	if evRP == "" {
		evRP = cfg.RetentionPolicy
	}
	return &store{
		cfg: cfg, log: log, client: c,
		api:    c.WriteAPIBlocking("", bucket(cfg.RetentionPolicy)),
		events: c.WriteAPIBlocking("", bucket(evRP)),
		hc:     &http.Client{Timeout: cfg.timeout},
	}
}

func (s *store) close() { s.client.Close() }

// errPermanent marks a batch InfluxDB will never accept as sent.
var errPermanent = errors.New("influx: batch refused")

// write sends one batch of lines (n points) and returns once InfluxDB has
// accepted it, or ctx ends. keepAlive is called between attempts so that the
// caller can tell JetStream it is still working on the messages.
func (s *store) write(ctx context.Context, body string, n int, keepAlive func()) error {
	return s.writeTo(ctx, s.api, body, n, keepAlive)
}

// writeEvent writes alert and evacuation points (annotations).
func (s *store) writeEvent(ctx context.Context, line string, keepAlive func()) error {
	return s.writeTo(ctx, s.events, line, 1, keepAlive)
}

func (s *store) writeTo(ctx context.Context, w api.WriteAPIBlocking, body string, n int, keepAlive func()) error {
	delay := 100 * time.Millisecond
	downSince, lastLog := time.Now(), time.Now() // of this call: the outage as this batch sees it
	for attempt := 1; ; attempt++ {
		err := w.WriteRecord(ctx, body)
		if err == nil {
			s.written.Add(uint64(n))
			if s.down.Swap(false) {
				s.log.Info("influxdb accepts writes again", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *influxhttp.Error
		status := 0
		if errors.As(err, &he) {
			status = he.StatusCode
		}
		switch {
		case status == http.StatusBadRequest:
			// 1.x writes the good points of a batch and answers 400
			// "partial write" for the rest (field type conflicts, bad
			// lines): resending cannot help.
			s.dropped.Add(1)
			s.log.Error("influxdb refused part of a batch", "points", n, "err", err)
			return fmt.Errorf("%w: %v", errPermanent, err)
		case status == http.StatusRequestEntityTooLarge && n > 1:
			return s.split(ctx, w, body, keepAlive)
		case status == http.StatusNotFound && s.cfg.CreateDatabase:
			if cerr := s.setup(ctx); cerr != nil {
				s.log.Warn("create influx database", "err", cerr)
			}
		}
		s.retries.Add(1)
		if !s.down.Swap(true) {
			s.log.Warn("influxdb write failed; holding the batch and pausing ingestion", "status", status, "err", err)
		} else if time.Since(lastLog) >= time.Minute {
			lastLog = time.Now()
			s.log.Warn("influxdb still failing; telemetry waits in JetStream", "for", time.Since(downSince).Round(time.Second),
				"status", status, "err", err)
		}
		if keepAlive != nil {
			keepAlive()
		}
		wait := delay
		if he != nil && he.RetryAfter > 0 {
			wait = time.Duration(he.RetryAfter) * time.Second
		}
		wait = wait/2 + rand.N(wait/2+1) // jitter: collectors do not retry in lockstep
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(delay*2, s.cfg.maxBackoff)
	}
}

// split writes a too-large batch in two halves.
func (s *store) split(ctx context.Context, w api.WriteAPIBlocking, body string, keepAlive func()) error {
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	h := len(lines) / 2
	if err := s.writeTo(ctx, w, strings.Join(lines[:h], "\n"), h, keepAlive); err != nil {
		return err
	}
	return s.writeTo(ctx, w, strings.Join(lines[h:], "\n"), len(lines)-h, keepAlive)
}

// setup creates the database and, when configured, its retention policy
// (InfluxQL over /query; 1.x has no bucket API).
func (s *store) setup(ctx context.Context) error {
	qs := []string{fmt.Sprintf(`CREATE DATABASE "%s"`, s.cfg.Database)}
	if s.cfg.RetentionPolicy != "" && s.cfg.Retention != "" {
		qs = append(qs, fmt.Sprintf(`CREATE RETENTION POLICY "%s" ON "%s" DURATION %s REPLICATION 1`,
			s.cfg.RetentionPolicy, s.cfg.Database, s.cfg.Retention))
	}
	for _, q := range qs {
		if err := s.query(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// query runs one InfluxQL statement and fails on an HTTP or statement error.
func (s *store) query(ctx context.Context, q string) error {
	form := url.Values{"q": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+"/query",
		strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if u, p, ok := strings.Cut(s.cfg.Token, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("influx query %q: %w", q, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"error"`) {
		return fmt.Errorf("influx query %q: %s: %s", q, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
