package collector

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// NOC fan-out: alerts already go to every NATS subscriber; these sinks
// push them to HTTP consumers. Each sink has its own worker and bounded
// queue so that a dead endpoint delays only itself. Enqueuing blocks when
// the queue is full, which stalls the alert consumer (JetStream keeps the
// backlog) instead of dropping alerts.

// Sign returns the Ember-Signature header value for body at time t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an Ember-Signature header against body, refusing
// signatures older than maxAge (replay protection for receivers).
func VerifySignature(secret []byte, header string, body []byte, now time.Time, maxAge time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("ember signature: malformed header %q", header)
	}
	t := time.Unix(sec, 0)
	if d := now.Sub(t); d > maxAge || d < -maxAge {
		return fmt.Errorf("ember signature: timestamp %s outside ±%v", t.UTC().Format(time.RFC3339), maxAge)
	}
	want := Sign(secret, t, body)
	if !hmac.Equal([]byte(want[strings.Index(want, "v1=")+3:]), []byte(sig)) {
		return fmt.Errorf("ember signature: mismatch")
	}
	return nil
}

type sink interface {
	name() string
	send(ctx context.Context, a wire.Alert) error
}

type webhookSink struct {
	url    string
	secret []byte
	hc     *http.Client
	now    func() time.Time
}

func (w *webhookSink) name() string { return "webhook " + w.url }

func (w *webhookSink) send(ctx context.Context, a wire.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ember-Signature", Sign(w.secret, w.now(), body))
	return doPost(w.hc, req)
}

func doPost(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// alertmanagerSink posts to Prometheus Alertmanager's /api/v2/alerts.
type alertmanagerSink struct {
	base string
	hc   *http.Client
	now  func() time.Time
}

func (s *alertmanagerSink) name() string { return "alertmanager " + s.base }

// AMAlert is one alert in Alertmanager's v2 API.
type AMAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertmanagerAlert maps an ember alert to Alertmanager's model: the labels
// identify the condition, so that a later "normal" (EndsAt set) resolves it.
func AlertmanagerAlert(a wire.Alert, now time.Time) AMAlert {
	sev := a.Stage.String()
	labels := map[string]string{
		"alertname": "ember_" + a.Category,
		"site":      a.Site, "agent": a.Agent, "device": a.Device,
		"category": a.Category, "severity": sev,
	}
	if a.Component != "" {
		labels["component"] = a.Component
	}
	if a.Drill {
		labels["drill"] = "true"
	}
	var sigs []string
	for _, s := range a.Signatures {
		sigs = append(sigs, fmt.Sprintf("%s=%g%s (threshold %g)", s.Kind, s.Value, s.Unit, s.Threshold))
	}
	ann := map[string]string{"alert_id": a.ID, "signatures": strings.Join(sigs, "; ")}
	if a.Summary != "" {
		ann["summary"] = a.Summary
	}
	start := a.SampleTime
	if start.IsZero() {
		start = a.Time
	}
	am := AMAlert{Labels: labels, Annotations: ann, StartsAt: start}
	if a.Stage == wire.StageNormal {
		// Resolved: severity label must match the firing alert, which we
		// do not know here; Alertmanager keys on all labels, so drop it.
		delete(labels, "severity")
		end := now
		am.EndsAt = &end
	}
	return am
}

func (s *alertmanagerSink) send(ctx context.Context, a wire.Alert) error {
	body, err := json.Marshal([]AMAlert{AlertmanagerAlert(a, s.now())})
	if err != nil {
		return err
	}
	return s.post(ctx, body)
}

func (s *alertmanagerSink) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.base, "/")+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doPost(s.hc, req)
}

// fanout runs one worker per sink.
type fanout struct {
	log      *slog.Logger
	now      func() time.Time
	minStage wire.Stage
	site, id string // the summary's site and "agent" (this collector)

	// Flood mode (ISA-18.2): at most floodLimit watch-level notifications
	// per floodWindow; the rest are counted and summarised once per window.
	floodLimit  int
	floodWindow time.Duration
	floodMu     sync.Mutex
	windowStart time.Time
	sentLow     int
	suppressed  map[string]int // by category

	sinks    []sink
	queues   []chan wire.Alert
	am       *alertmanagerSink // nil without Alertmanager
	watchdog time.Duration     // 0: no EmberWatchdog alert
	started  time.Time
	attempts int
	backoff  time.Duration
	wg       sync.WaitGroup
}

func newFanout(cfg NOCConfig, log *slog.Logger, now func() time.Time) *fanout {
	hc := &http.Client{Timeout: 10 * time.Second}
	f := &fanout{log: log, now: now, minStage: cfg.minStage, attempts: 6, backoff: 500 * time.Millisecond,
		floodLimit: cfg.FloodLimit, floodWindow: cfg.FloodWindow, suppressed: map[string]int{}}
	for _, w := range cfg.Webhooks {
		f.sinks = append(f.sinks, &webhookSink{url: w.URL, secret: []byte(w.Secret), hc: hc, now: now})
	}
	if cfg.AlertmanagerURL != "" {
		f.am = &alertmanagerSink{base: cfg.AlertmanagerURL, hc: hc, now: now}
		f.sinks = append(f.sinks, f.am)
		f.watchdog = cfg.Watchdog
	}
	return f
}

// WatchdogAlertName is the always-firing alert a collector posts to
// Alertmanager while its NOC path works.
const WatchdogAlertName = "EmberWatchdog"

// WatchdogAlert is the always-firing dead-man's-switch alert. It ends
// three intervals after it was posted, so Alertmanager resolves it by
// itself when the collector (or the path to it) is gone; a dead-man's-
// switch receiver pages when its repeats stop (deploy/alertmanager).
func WatchdogAlert(site, collector string, started, now time.Time, interval time.Duration) AMAlert {
	end := now.Add(3 * interval)
	return AMAlert{
		Labels: map[string]string{"alertname": WatchdogAlertName, "site": site, "collector": collector, "severity": "none"},
		Annotations: map[string]string{"summary": "Always firing while emberwatch's collector " + collector +
			" can reach Alertmanager. If it stops, the battery alert path to the NOC is broken."},
		StartsAt: started, EndsAt: &end,
	}
}

// runWatchdog posts the watchdog alert at once and every interval, outside
// flood mode and the alert queues: it proves the path, not an alert.
func (f *fanout) runWatchdog(ctx context.Context) {
	t := time.NewTicker(f.watchdog)
	defer t.Stop()
	failing := false
	for {
		body, err := json.Marshal([]AMAlert{WatchdogAlert(f.site, f.id, f.started, f.now(), f.watchdog)})
		if err == nil {
			err = f.am.post(ctx, body)
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			f.log.Warn("watchdog alert not delivered: the NOC will see the dead-man's switch fire", "sink", f.am.name(), "err", err)
			failing = true
		case err == nil && failing:
			f.log.Info("watchdog alert delivered again", "sink", f.am.name())
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *fanout) start(ctx context.Context) {
	f.started = f.now().UTC()
	if f.am != nil && f.watchdog > 0 {
		f.wg.Go(func() { f.runWatchdog(ctx) })
	}
	for _, s := range f.sinks {
		q := make(chan wire.Alert, 256)
		f.queues = append(f.queues, q)
		f.wg.Go(func() { f.work(ctx, s, q) })
	}
	if len(f.sinks) > 0 && f.floodLimit >= 0 && f.floodWindow > 0 {
		f.wg.Go(func() { f.flushFloods(ctx) })
	}
}

// flushFloods sends a window's summary when the flood has stopped (no new
// alert arrives to trigger it).
func (f *fanout) flushFloods(ctx context.Context) {
	t := time.NewTicker(f.floodWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.floodMu.Lock()
		var summary *wire.Alert
		if now := f.now(); now.Sub(f.windowStart) >= f.floodWindow {
			summary = f.summaryLocked(now)
			f.windowStart, f.sentLow = now, 0
		}
		f.floodMu.Unlock()
		if summary != nil {
			f.push(ctx, *summary)
		}
	}
}

// wanted says whether an alert goes to the sinks: stage changes at or above
// the minimum, and clears (normal) of anything.
func (f *fanout) wanted(a wire.Alert) bool {
	if a.Ack != nil {
		return true
	}
	if a.Stage == wire.StageNormal {
		return a.PreviousStage >= f.minStage
	}
	return a.Stage >= f.minStage
}

// lowPriority: changes below critical and their clears. Critical and
// emergency (runaway likely or confirmed) are never held back.
func lowPriority(a wire.Alert) bool {
	return a.Stage < wire.StageCritical && a.PreviousStage < wire.StageCritical
}

// admit applies flood mode: it reports whether a is sent now, and returns
// the summary of the window that just ended, if one is due.
func (f *fanout) admit(a wire.Alert) (send bool, summary *wire.Alert) {
	if f.floodLimit < 0 || f.floodWindow <= 0 {
		return true, nil
	}
	f.floodMu.Lock()
	defer f.floodMu.Unlock()
	now := f.now()
	if now.Sub(f.windowStart) >= f.floodWindow {
		summary = f.summaryLocked(now)
		f.windowStart, f.sentLow = now, 0
	}
	if !lowPriority(a) {
		return true, summary // the highest priorities always go through
	}
	if f.sentLow < f.floodLimit {
		f.sentLow++
		return true, summary
	}
	f.suppressed[a.Category]++
	return false, summary
}

// summaryLocked turns the window's suppressed counts into one alert.
func (f *fanout) summaryLocked(now time.Time) *wire.Alert {
	total := 0
	var parts []string
	var top string
	for cat, n := range f.suppressed {
		total += n
		parts = append(parts, fmt.Sprintf("%d %s", n, cat))
		if top == "" || n > f.suppressed[top] {
			top = cat
		}
	}
	if total == 0 {
		return nil
	}
	sort.Strings(parts)
	f.suppressed = map[string]int{}
	return &wire.Alert{ID: fmt.Sprintf("flood-%s-%d", f.id, now.UnixNano()), Site: f.site, Agent: f.id, Device: f.id,
		Component: "flood", Category: top, Stage: wire.StageWatch, PreviousStage: wire.StageWatch,
		Signatures: []wire.Signature{{Kind: "notifications_suppressed", Value: float64(total), Unit: "count", Threshold: float64(f.floodLimit)}},
		SampleTime: now.UTC(), Time: now.UTC(),
		Summary: fmt.Sprintf("flood mode: %d notifications below critical suppressed in %v (%s); every alert is on NATS and the status page", total, f.floodWindow, strings.Join(parts, ", "))}
}

// enqueue hands an alert to every sink; it blocks while a queue is full.
func (f *fanout) enqueue(ctx context.Context, a wire.Alert) error {
	if !f.wanted(a) {
		return nil
	}
	send, summary := f.admit(a)
	if summary != nil {
		if err := f.push(ctx, *summary); err != nil {
			return err
		}
	}
	if !send {
		return nil
	}
	return f.push(ctx, a)
}

func (f *fanout) push(ctx context.Context, a wire.Alert) error {
	for _, q := range f.queues {
		select {
		case q <- a:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fanout) work(ctx context.Context, s sink, q chan wire.Alert) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-q:
			delay := f.backoff
			for attempt := 1; ; attempt++ {
				err := s.send(ctx, a)
				if err == nil {
					break
				}
				if attempt >= f.attempts || ctx.Err() != nil {
					f.log.Error("noc delivery failed; giving up on this alert", "sink", s.name(), "alert", a.ID, "attempts", attempt, "err", err)
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(delay):
				}
				delay *= 2
			}
		}
	}
}
