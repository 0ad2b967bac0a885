package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/jsretry"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// EvacBucket is the KV bucket of evacuation records (key = evacuation id).
const EvacBucket = "EMBER_EVAC"

// publishHook is the ledger "hook" name that records a phase's publish; it
// cannot clash with hook names ([a-z0-9_-]+).
const publishHook = "=publish"

// CtlSubject is ember.<site>.evacctl: operator actions forwarded from any
// collector to the leader.
func CtlSubject(site string) string { return "ember." + site + ".evacctl" }

// Config configures an Engine.
type Config struct {
	Site     string       // required
	ID       string       // this collector's id, required
	Topology *Topology    // required, validated
	Policy   PolicyConfig // start from DefaultPolicy()
	Hooks    []hooks.Spec
	// Signer signs evacuation messages (required): hooks.LoadSigner.
	Signer *hooks.Signer
	// TrustedIssuers are the public keys of the site's other collectors
	// (and of agents allowed to publish fallback evacuations); our own key
	// is always trusted.
	TrustedIssuers []string
	// LeaseTTL defaults to 3s; a dead leader is replaced within about
	// 4/3 of it.
	LeaseTTL time.Duration
	// Replicas of the KV buckets and the audit stream (3 on a cluster).
	// Defaults to 1.
	Replicas int
	// HookRatePerMinute bounds hook attempts across all evacuations
	// (token bucket, burst of the same size); 0 means no limit.
	HookRatePerMinute int
	// Tick is how often holds are checked. Defaults to 100ms.
	Tick time.Duration
	// AlertsFromCaller: the collector feeds alerts with OnAlert instead of
	// the engine subscribing to ember.<site>.alert.> itself.
	AlertsFromCaller bool
	// OnAudit receives every audit record (the collector writes them to
	// InfluxDB). It must not block for long.
	OnAudit func(AuditRecord)
	// Now defaults to time.Now.
	Now func() time.Time
}

// Engine runs the evacuation policy on one collector: it follows alerts,
// holds or contends for the leader lease, and, while leader, publishes
// signed evacuation messages and runs hooks.
type Engine struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	now    func() time.Time
	policy *Policy // owned by the loop goroutine

	lease    *Lease
	evkv     jetstream.KeyValue
	ledger   hooks.Ledger
	set      *hooks.Set
	verifier *hooks.Verifier

	in     chan func()
	leader atomic.Bool
	runCtx context.Context // Run's context, for phase executions

	mu       sync.Mutex
	executed map[string]bool // "id/phase" run by this process during its tenure
	inflight map[string]bool
	phases   sync.WaitGroup
	started  chan struct{}
}

// New checks cfg and builds an engine; Run starts it.
func New(cfg Config, nc *nats.Conn, log *slog.Logger) (*Engine, error) {
	if !wire.ValidID(cfg.Site) || !wire.ValidID(cfg.ID) {
		return nil, fmt.Errorf("evacuate: site %q and collector id %q must match [a-z0-9-]+", cfg.Site, cfg.ID)
	}
	if cfg.Topology == nil {
		return nil, errors.New("evacuate: no topology")
	}
	if cfg.Signer == nil {
		return nil, errors.New("evacuate: no signing key: evacuation messages must be signed")
	}
	if log == nil {
		return nil, errors.New("evacuate: nil logger")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 3 * time.Second
	}
	if cfg.LeaseTTL < 300*time.Millisecond {
		return nil, fmt.Errorf("evacuate: lease ttl %v too short", cfg.LeaseTTL)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pol, err := NewPolicy(cfg.Site, cfg.Topology, cfg.Policy)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("evacuate: jetstream: %w", err)
	}
	trusted := append([]string{cfg.Signer.PublicKey()}, cfg.TrustedIssuers...)
	return &Engine{cfg: cfg, nc: nc, js: js, log: log.With("component", "evacuate", "collector", cfg.ID),
		now: cfg.Now, policy: pol, verifier: hooks.NewVerifier(trusted, 0, cfg.Now),
		in: make(chan func(), 4096), executed: map[string]bool{}, inflight: map[string]bool{},
		started: make(chan struct{})}, nil
}

// Started is closed once Run has opened its buckets and subscriptions.
func (e *Engine) Started() <-chan struct{} { return e.started }

// IsLeader reports whether this engine currently leads evacuation.
func (e *Engine) IsLeader() bool { return e.leader.Load() && e.lease != nil && e.lease.Valid() == nil }

// Run opens the KV buckets, the audit stream and subscriptions, and runs
// until ctx ends. On return it releases the lease.
func (e *Engine) Run(ctx context.Context) error {
	e.runCtx = ctx
	var err error
	r := e.cfg.Replicas
	// The buckets are replicated: on a cluster that is still electing its
	// meta leader, or has a node restarting, creating them times out.
	// Wait for the cluster rather than exit.
	const attempt = 10 * time.Second
	if err = jsretry.Do(ctx, e.log, "open lease bucket", attempt, func(ctx context.Context) (err error) {
		e.lease, err = NewLease(ctx, e.js, "", e.cfg.Site, e.cfg.ID, e.cfg.LeaseTTL, r)
		return err
	}); err != nil {
		return err
	}
	if err = jsretry.Do(ctx, e.log, "open evacuation bucket", attempt, func(ctx context.Context) (err error) {
		e.evkv, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: EvacBucket, Description: "emberwatch evacuation records", History: 5,
			TTL: 30 * 24 * time.Hour, Replicas: max(r, 1), Storage: jetstream.FileStorage,
		})
		return err
	}); err != nil {
		return err
	}
	if err = jsretry.Do(ctx, e.log, "open hook ledger", attempt, func(ctx context.Context) (err error) {
		e.ledger, err = hooks.NewKVLedger(ctx, e.js, "", r, 30*24*time.Hour)
		return err
	}); err != nil {
		return err
	}
	if e.set, err = hooks.NewSet(e.cfg.Hooks, e.nc, e.ledger, e.log); err != nil {
		return err
	}
	e.set.Limit = hooks.PerMinute(e.cfg.HookRatePerMinute)
	if err = jsretry.Do(ctx, e.log, "open audit stream", attempt, func(ctx context.Context) error {
		_, err := EnsureAuditStream(ctx, e.js, r)
		return err
	}); err != nil {
		return err
	}
	w, err := e.evkv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch evacuation bucket: %w", err)
	}
	defer w.Stop()
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	sub := func(subject string, h nats.MsgHandler) error {
		s, err := e.nc.Subscribe(subject, h)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
		return nil
	}
	if !e.cfg.AlertsFromCaller {
		if err := sub(wire.Wildcard(e.cfg.Site, wire.KindAlert), e.onAlertMsg); err != nil {
			return err
		}
	}
	if err := sub(wire.Wildcard(e.cfg.Site, wire.KindEvac), e.onEvacMsg); err != nil {
		return err
	}
	if err := sub(CtlSubject(e.cfg.Site), e.onCtlMsg); err != nil {
		return err
	}
	if err := e.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}

	go e.watchRecords(ctx, w)
	go e.leaseLoop(ctx)
	close(e.started)
	e.log.Info("evacuation engine started", "site", e.cfg.Site, "hooks", len(e.cfg.Hooks), "issuer", e.cfg.Signer.PublicKey())

	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.leader.Store(false)
			e.phases.Wait()
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			e.lease.Release(rctx)
			cancel()
			return nil
		case f := <-e.in:
			f()
		case <-t.C:
			e.apply(e.policy.Tick(e.now()), nil)
			if e.leader.Load() {
				e.reconcile(ctx)
			}
		}
	}
}

// do runs f on the loop goroutine and waits for it.
func (e *Engine) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case e.in <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) leaseLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		leader, changed, err := e.lease.Step(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("lease", "err", err)
		}
		if changed {
			fence := e.lease.Fence()
			select {
			case e.in <- func() { e.onLeadership(ctx, leader, fence) }:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) onLeadership(ctx context.Context, leader bool, fence uint64) {
	e.leader.Store(leader)
	e.audit(AuditRecord{Kind: map[bool]string{true: "leader_acquired", false: "leader_lost"}[leader], Fence: fence,
		Reasons: []string{fmt.Sprintf("lease %s", map[bool]string{true: "acquired", false: "lost or not renewed"}[leader])}}, true)
	e.log.Info("leadership", "leader", leader, "fence", fence)
	if !leader {
		return
	}
	e.mu.Lock()
	e.executed = map[string]bool{}
	e.mu.Unlock()
	// Continue what the previous leader did: its records win.
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if keys, err := e.evkv.ListKeys(lctx); err == nil {
		for k := range keys.Keys() {
			if ent, err := e.evkv.Get(lctx, k); err == nil {
				var ev Evac
				if json.Unmarshal(ent.Value(), &ev) == nil {
					e.policy.Restore(ev, true)
				}
			}
		}
	} else {
		e.log.Warn("read evacuation records on takeover", "err", err)
	}
	// Persist what we decided as a follower and the previous leader never
	// wrote (it died first).
	for _, ev := range e.policy.List() {
		if !ev.terminal() {
			if _, err := e.evkv.Get(lctx, ev.ID); errors.Is(err, jetstream.ErrKeyNotFound) {
				e.persist(&ev)
			}
		}
	}
	e.reconcile(ctx)
}

func (e *Engine) watchRecords(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ent, ok := <-w.Updates():
			if !ok {
				return
			}
			if ent == nil || ent.Operation() != jetstream.KeyValuePut {
				continue
			}
			var ev Evac
			if err := json.Unmarshal(ent.Value(), &ev); err != nil {
				e.log.Warn("bad evacuation record", "key", ent.Key(), "err", err)
				continue
			}
			select {
			case e.in <- func() { e.policy.Restore(ev, !e.leader.Load()) }:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (e *Engine) onAlertMsg(m *nats.Msg) {
	var a wire.Alert
	if err := json.Unmarshal(m.Data, &a); err != nil {
		e.log.Warn("malformed alert", "subject", m.Subject, "err", err)
		return
	}
	select {
	case e.in <- func() { e.handleAlert(a) }:
	case <-e.runCtx.Done(): // stopping: do not block the NATS callback
	}
}

// OnAlert feeds an alert (when Config.AlertsFromCaller is set; harmless
// otherwise, as duplicates are ignored by id).
func (e *Engine) OnAlert(ctx context.Context, a wire.Alert) error {
	select {
	case e.in <- func() { e.handleAlert(a) }:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) handleAlert(a wire.Alert) {
	ds := e.policy.Alert(e.now(), a)
	e.apply(ds, &a)
	if !e.leader.Load() || a.Stage < wire.StageCritical || len(ds) == 0 || ds[len(ds)-1].Action == ActIgnore {
		return
	}
	last := ds[len(ds)-1]
	ack := hooks.CollectorAck{AlertID: a.ID, Agent: a.Agent, Device: a.Device, Domain: last.Domain, EvacID: last.EvacID,
		Decision: last.Action, Collector: e.cfg.ID, Time: e.now()}
	b, _ := json.Marshal(ack)
	if err := e.nc.Publish(hooks.AckSubject(e.cfg.Site, a.Agent), b); err != nil {
		e.log.Warn("ack alert", "alert", a.ID, "err", err)
	}
}

// CategoryEvacuation (extension) marks the leader's notices to people: a
// countdown started, a guardrail waits for approval, an evacuation
// started or was aborted. They are alerts on
// ember.<site>.alert.<collector>.evac so that the NOC fan-out pages
// someone; the policy never acts on them (no battery device).
const CategoryEvacuation = "evacuation"

// notify publishes the notice of a decision that people must see.
func (e *Engine) notify(d Decision) {
	var st wire.Stage
	var what string
	switch d.Action {
	case ActHold:
		st, what = wire.StageCritical, fmt.Sprintf("evacuation of %s at %s unless aborted (emberctl evac abort %s -by NAME)",
			d.Domain, d.Evac.HoldUntil.Format(time.RFC3339), d.EvacID)
	case ActBlock:
		st, what = wire.StageCritical, fmt.Sprintf("evacuation of %s waits for approval (emberctl evac approve %s -by NAME): %s",
			d.Domain, d.EvacID, d.Evac.Blocked)
	case ActEvacuate:
		st, what = wire.StageCritical, fmt.Sprintf("evacuating %s (%d targets, urgency %s)", d.Domain, len(d.Evac.Targets), d.Evac.Urgency)
	case ActAbort:
		st, what = wire.StageWarning, fmt.Sprintf("evacuation of %s aborted by %s", d.Domain, d.Actor)
	case ActRefuse:
		if d.EvacID == "" && d.Domain == "" {
			return
		}
		st, what = wire.StageWarning, "evacuation refused: "+strings.Join(d.Reasons, "; ")
	default:
		return
	}
	if d.Drill {
		what = "drill: " + what
	}
	a := wire.Alert{ID: "evac-" + d.EvacID + "-" + d.Action, Site: e.cfg.Site, Agent: e.cfg.ID, Device: "evac",
		Component: d.Domain, Category: CategoryEvacuation, Stage: st, SampleTime: d.Time, Time: e.now(), Drill: d.Drill,
		Signatures: []wire.Signature{{Kind: "evacuation_" + d.Action, Value: 1}}, Summary: what}
	b, _ := json.Marshal(&a)
	m := nats.NewMsg(wire.AlertSubject(e.cfg.Site, e.cfg.ID, "evac"))
	m.Data = b
	m.Header.Set(wire.MsgIDHeader, a.ID)
	if err := e.nc.PublishMsg(m); err != nil {
		e.log.Warn("publish evacuation notice", "evac", d.EvacID, "err", err)
	}
}

// apply audits decisions and, as leader, persists and executes them.
func (e *Engine) apply(ds []Decision, a *wire.Alert) {
	lead := e.leader.Load()
	for _, d := range ds {
		rec := AuditRecord{Time: d.Time, Kind: d.Action, EvacID: d.EvacID, Domain: d.Domain, Phase: d.Phase,
			AlertID: d.AlertID, Actor: d.Actor, Reasons: d.Reasons, Drill: d.Drill}
		if d.Evac != nil {
			rec.State, rec.DryRun, rec.Targets, rec.SampleTime = d.Evac.State, d.Evac.DryRun, d.Evac.Targets, d.Evac.FirstSample
		}
		// Followers shadow the policy to keep evidence, but only the leader's
		// decisions are the record (operator actions reach the leader).
		e.audit(rec, lead)
		if !lead || d.Evac == nil {
			continue
		}
		if d.Action != ActIgnore && d.Action != ActNote || d.Phase != "" {
			e.persist(d.Evac)
		}
		e.notify(d)
	}
	if lead {
		e.reconcile(e.runCtx)
	}
}

func (e *Engine) persist(ev *Evac) {
	if err := e.lease.Valid(); err != nil {
		return
	}
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := e.evkv.Put(ctx, ev.ID, b); err != nil {
		e.log.Error("persist evacuation", "evac", ev.ID, "err", err)
	}
}

// reconcile starts every issued phase this leader has not run yet. Hooks
// completed by an earlier leader are skipped by the ledger.
func (e *Engine) reconcile(ctx context.Context) {
	now := e.now()
	for _, ev := range e.policy.List() {
		if ev.terminal() && now.Sub(ev.Updated) > time.Hour {
			continue
		}
		for _, ph := range ev.Phases {
			k := ev.ID + "/" + ph
			e.mu.Lock()
			skip := e.executed[k] || e.inflight[k]
			if !skip {
				e.inflight[k] = true
			}
			e.mu.Unlock()
			if skip {
				continue
			}
			e.phases.Add(1)
			go e.execute(ctx, ev, ph)
		}
	}
}

// execute publishes one phase (once, via the ledger) and runs its hooks.
func (e *Engine) execute(ctx context.Context, ev Evac, phase string) {
	defer e.phases.Done()
	k := ev.ID + "/" + phase
	ok := false
	defer func() {
		e.mu.Lock()
		delete(e.inflight, k)
		if ok {
			e.executed[k] = true
		}
		e.mu.Unlock()
	}()
	if err := e.lease.Valid(); err != nil {
		return
	}
	fence := e.lease.Fence()
	msg := wire.Evacuation{ID: ev.ID, Site: ev.Site, Domain: ev.Domain, Phase: phase, Urgency: ev.Urgency,
		Reason: wire.EvacReason{AlertIDs: ev.AlertIDs, Summary: ev.Summary}, Targets: ev.Targets,
		Time: e.now().UTC(), Drill: ev.Drill, DryRun: ev.DryRun, Fence: fence}
	if err := e.cfg.Signer.Sign(&msg); err != nil {
		e.log.Error("sign evacuation", "err", err)
		return
	}
	base := AuditRecord{EvacID: ev.ID, Domain: ev.Domain, Phase: phase, Drill: ev.Drill, DryRun: ev.DryRun, Fence: fence}
	// Publish (once, via the ledger) while the hooks start: neither waits
	// for the other, which keeps alert → first hook short.
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		e.publishOnce(ctx, ev, phase, &msg, base)
	}()
	defer func() { <-pubDone }()
	e.set.RunPhase(ctx, &msg, hooks.PhaseOptions{Owner: e.cfg.ID, Fence: fence, Guard: e.lease.Valid,
		OnEvent: func(h hooks.Event) {
			r := base
			r.Time, r.Kind, r.Hook, r.Attempt, r.Error = h.Time, h.Kind, h.Hook, h.Attempt, h.Error
			e.audit(r, true)
		}})
	ok = e.lease.Valid() == nil
}

// publishOnce publishes a phase's message unless an earlier leader did.
func (e *Engine) publishOnce(ctx context.Context, ev Evac, phase string, msg *wire.Evacuation, base AuditRecord) {
	fence := msg.Fence
	pkey := hooks.LedgerKey(ev.ID, phase, publishHook)
	granted, rev, _, err := e.ledger.Claim(ctx, pkey, hooks.Entry{State: hooks.StateStarted, Owner: e.cfg.ID, Fence: fence, Time: e.now()}, true)
	switch {
	case err != nil:
		r := base
		r.Kind, r.Error = "publish_failed", err.Error()
		e.audit(r, true)
		return
	case granted:
		body, _ := json.Marshal(msg)
		m := nats.NewMsg(wire.EvacSubject(ev.Site, ev.Domain))
		m.Data = body
		m.Header.Set(wire.MsgIDHeader, ev.ID+"."+phase)
		r := base
		r.Kind, r.Targets = "published", ev.Targets
		if err := e.nc.PublishMsg(m); err != nil {
			r.Kind, r.Error = "publish_failed", err.Error()
		}
		e.audit(r, true)
		_ = e.ledger.Finish(context.WithoutCancel(ctx), pkey, rev, hooks.Entry{State: hooks.StateDone, Owner: e.cfg.ID, Fence: fence, Time: e.now()})
	default:
		r := base
		r.Kind = "already_published"
		e.audit(r, true)
	}
}

// onEvacMsg verifies every evacuation message on the site: a forged,
// unsigned or replayed one is refused and raised as a security alert.
func (e *Engine) onEvacMsg(m *nats.Msg) {
	ev, err := e.verifier.Verify(m.Data)
	if err == nil {
		return
	}
	e.log.Warn("refused evacuation message", "subject", m.Subject, "err", err)
	rec := AuditRecord{Kind: "message_refused", EvacID: ev.ID, Domain: ev.Domain, Phase: ev.Phase, Error: err.Error(),
		Reasons: []string{"subject " + m.Subject}}
	e.audit(rec, true)
	if !e.leader.Load() {
		return // one security alert per refused message, from the leader
	}
	a := hooks.SecurityAlert(e.cfg.Site, e.cfg.ID, err, m.Subject, e.now())
	b, _ := json.Marshal(&a)
	if err := e.nc.Publish(wire.AlertSubject(e.cfg.Site, e.cfg.ID, "evac"), b); err != nil {
		e.log.Warn("publish security alert", "err", err)
	}
}

func (e *Engine) audit(r AuditRecord, publish bool) {
	if r.Time.IsZero() {
		r.Time = e.now()
	}
	r.Site, r.Collector, r.Leader = e.cfg.Site, e.cfg.ID, e.leader.Load()
	if !publish {
		return
	}
	if r.Fence == 0 && e.lease != nil {
		r.Fence = e.lease.Fence()
	}
	if e.cfg.OnAudit != nil {
		e.cfg.OnAudit(r)
	}
	b, _ := json.Marshal(&r)
	if _, err := e.js.PublishAsync(AuditSubject(e.cfg.Site), b); err != nil {
		e.log.Warn("audit publish", "kind", r.Kind, "err", err)
	}
}

// CtlRequest is an operator action forwarded to the leader.
type CtlRequest struct {
	Op   string `json:"op"` // approve, abort, complete
	ID   string `json:"id"`
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// CtlReply answers a CtlRequest.
type CtlReply struct {
	OK    bool   `json:"ok"`
	Evac  *Evac  `json:"evac,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"` // HTTP status for the error
}

func (e *Engine) onCtlMsg(m *nats.Msg) {
	if !e.leader.Load() {
		return // only the leader answers
	}
	var req CtlRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		b, _ := json.Marshal(CtlReply{Error: "malformed request: " + err.Error(), Code: 400})
		m.Respond(b)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep := e.localAction(ctx, req)
	b, _ := json.Marshal(rep)
	m.Respond(b)
}

func (e *Engine) localAction(ctx context.Context, req CtlRequest) CtlReply {
	var rep CtlReply
	err := e.do(ctx, func() {
		var ds []Decision
		var err error
		now := e.now()
		switch req.Op {
		case "approve":
			ds, err = e.policy.Approve(now, req.ID, req.By, req.Note)
		case "abort":
			ds, err = e.policy.Abort(now, req.ID, req.By, req.Note)
		case "complete":
			ds, err = e.policy.Complete(now, req.ID, req.By, req.Note)
		default:
			err = fmt.Errorf("unknown operation %q", req.Op)
		}
		if err != nil {
			rep = CtlReply{Error: err.Error(), Code: errCode(err)}
			e.audit(AuditRecord{Kind: ActRefuse, EvacID: req.ID, Actor: req.By, Error: err.Error(), Reasons: []string{"operator " + req.Op + " refused"}}, true)
			return
		}
		e.apply(ds, nil)
		if ev, ok := e.policy.Get(req.ID); ok {
			rep = CtlReply{OK: true, Evac: &ev}
		}
	})
	if err != nil {
		return CtlReply{Error: err.Error(), Code: 503}
	}
	return rep
}

func errCode(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrState):
		return 409
	}
	return 400
}

// ErrNoLeader is returned when no collector holds the lease.
var ErrNoLeader = errors.New("no evacuation leader answered")

// Act performs an operator action (approve, abort, complete), on this
// engine if it leads, otherwise through the leader.
func (e *Engine) Act(ctx context.Context, req CtlRequest) CtlReply {
	if e.leader.Load() {
		return e.localAction(ctx, req)
	}
	b, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	m, err := e.nc.RequestWithContext(rctx, CtlSubject(e.cfg.Site), b)
	if err != nil {
		return CtlReply{Error: fmt.Sprintf("%v: %v", ErrNoLeader, err), Code: 503}
	}
	var rep CtlReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return CtlReply{Error: "malformed reply from leader: " + err.Error(), Code: 502}
	}
	return rep
}

// List returns the evacuations this engine knows, newest first.
func (e *Engine) List(ctx context.Context) ([]Evac, error) {
	var out []Evac
	err := e.do(ctx, func() { out = e.policy.List() })
	return out, err
}

// Get returns one evacuation.
func (e *Engine) Get(ctx context.Context, id string) (Evac, bool, error) {
	var ev Evac
	var ok bool
	err := e.do(ctx, func() { ev, ok = e.policy.Get(id) })
	return ev, ok, err
}
