package fallback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Bucket is the KV bucket agents coordinate their fallbacks in.
const Bucket = "EMBER_FALLBACK"

// Config is the agent's fallback configuration (the `fallback:` section
// next to `hooks:` in agent.yaml).
type Config struct {
	Site  string `yaml:"-"`
	Agent string `yaml:"-"`
	// Domain is the power domain this agent's batteries feed; Devices
	// overrides it per device id.
	Domain  string            `yaml:"domain"`
	Devices map[string]string `yaml:"devices,omitempty"`
	// Targets are what the local hooks act on (hosts fed by the domain).
	Targets []string `yaml:"targets"`
	// Deadline is how long to wait for a collector. Defaults to 15s.
	Deadline time.Duration `yaml:"deadline"`
	// Quiet: after firing for a domain, no second fallback for it (from
	// any agent) for this long. Defaults to 10m.
	Quiet time.Duration `yaml:"quiet"`
	// TrustedIssuers are the collectors' public keys: their signed
	// evacuations for the domain count as an acknowledgement.
	TrustedIssuers []string `yaml:"trusted_issuers"`
	// SigningKey is an nkey seed file; when set (or Signer is), the
	// fallback evacuation message is signed so collectors accept it.
	SigningKey string       `yaml:"signing_key"`
	Hooks      []hooks.Spec `yaml:"-"`
	// Signer signs the fallback evacuation message (optional; loaded from
	// SigningKey when nil).
	Signer *hooks.Signer `yaml:"-"`
}

func (c *Config) domainOf(device string) string {
	if d, ok := c.Devices[device]; ok {
		return d
	}
	return c.Domain
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if !wire.ValidID(c.Site) || !wire.ValidID(c.Agent) {
		errs = append(errs, fmt.Errorf("site %q / agent %q: must match [a-z0-9-]+", c.Site, c.Agent))
	}
	if !wire.ValidID(c.Domain) {
		errs = append(errs, fmt.Errorf("domain: must match [a-z0-9-]+, got %q", c.Domain))
	}
	for dev, d := range c.Devices {
		if !wire.ValidID(d) {
			errs = append(errs, fmt.Errorf("devices.%s: domain must match [a-z0-9-]+, got %q", dev, d))
		}
	}
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("targets: list what the local hooks act on; an empty list must never mean everything"))
	}
	for i, t := range c.Targets {
		if t == "" || t == "*" || t == "all" {
			errs = append(errs, fmt.Errorf("targets[%d]: %q is not a target", i, t))
		}
	}
	if len(c.Hooks) == 0 {
		errs = append(errs, errors.New("hooks: no local fallback hook configured"))
	}
	for _, p := range hooks.Validate(c.Hooks) {
		errs = append(errs, p)
	}
	if c.Deadline < 0 || c.Quiet < 0 {
		errs = append(errs, errors.New("deadline, quiet: must not be negative"))
	}
	return errors.Join(errs...)
}

// F is one agent's fallback. Safe for concurrent use.
type F struct {
	cfg      Config
	nc       *nats.Conn
	log      *slog.Logger
	set      *hooks.Set
	verifier *hooks.Verifier

	mu      sync.Mutex
	ctx     context.Context
	pending map[string]*pending  // by domain+drill
	fired   map[string]time.Time // by domain+drill, local memory of firing
	subs    []*nats.Subscription
	wg      sync.WaitGroup
	closed  bool
	results []Result
}

type pending struct {
	alert wire.Alert // the highest-stage alert seen
	ids   []string
	timer *time.Timer
}

// Outcome of a deadline, for logs and tests.
const (
	OutcomeFired      = "fired"
	OutcomeFiredAlone = "fired_isolated"
	OutcomeStoodDown  = "stood_down" // another agent fired for the domain
)

// New builds the fallback. nc may be nil (no NATS at all: always
// isolated).
func New(cfg Config, nc *nats.Conn, log *slog.Logger) (*F, error) {
	if log == nil {
		return nil, errors.New("fallback: nil logger")
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = 15 * time.Second
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 10 * time.Minute
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fallback config: %w", err)
	}
	if cfg.Signer == nil && cfg.SigningKey != "" {
		s, err := hooks.LoadSigner(cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("fallback config: signing_key: %w", err)
		}
		cfg.Signer = s
	}
	// Local hooks are at most once per agent (memory); across agents the
	// KV lock decides who fires.
	set, err := hooks.NewSet(cfg.Hooks, nc, hooks.NewMemLedger(), log)
	if err != nil {
		return nil, fmt.Errorf("fallback: %w", err)
	}
	return &F{cfg: cfg, nc: nc, log: log.With("component", "fallback"), set: set,
		verifier: hooks.NewVerifier(cfg.TrustedIssuers, 0, nil), ctx: context.Background(),
		pending: map[string]*pending{}, fired: map[string]time.Time{}}, nil
}

// Start subscribes to collector acknowledgements and evacuation messages.
// ctx bounds fallback runs started later.
func (f *F) Start(ctx context.Context) error {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	if f.nc == nil {
		return nil
	}
	s1, err := f.nc.Subscribe(hooks.AckSubject(f.cfg.Site, f.cfg.Agent), func(m *nats.Msg) {
		var a hooks.CollectorAck
		if err := json.Unmarshal(m.Data, &a); err != nil {
			f.log.Warn("malformed collector ack", "err", err)
			return
		}
		f.OnCollectorAck(a)
	})
	if err != nil {
		return fmt.Errorf("fallback: subscribe acks: %w", err)
	}
	s2, err := f.nc.Subscribe(wire.Wildcard(f.cfg.Site, wire.KindEvac), f.onEvacMsg)
	if err != nil {
		s1.Unsubscribe()
		return fmt.Errorf("fallback: subscribe evacuations: %w", err)
	}
	f.mu.Lock()
	f.subs = append(f.subs, s1, s2)
	f.mu.Unlock()
	if err := f.nc.FlushTimeout(2 * time.Second); err != nil {
		f.log.Warn("fallback: flush subscriptions", "err", err) // isolated: the fallback works anyway
	}
	return nil
}

// Close stops pending deadlines and waits for running fallbacks.
func (f *F) Close() {
	f.mu.Lock()
	f.closed = true
	for k, p := range f.pending {
		p.timer.Stop()
		delete(f.pending, k)
	}
	for _, s := range f.subs {
		s.Unsubscribe()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func key(domain string, drill bool) string {
	if drill {
		return domain + "-drill"
	}
	return domain
}

// OnAlert is called by the agent for every alert it publishes.
func (f *F) OnAlert(_ context.Context, a wire.Alert) {
	switch a.Category {
	case wire.CategorySensorFault, wire.CategoryComms, wire.CategorySecurity:
		return
	}
	if a.Stage < wire.StageCritical || a.Ack != nil {
		return
	}
	dom := f.cfg.domainOf(a.Device)
	k := key(dom, a.Drill)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if t, ok := f.fired[k]; ok && time.Since(t) < f.cfg.Quiet {
		return
	}
	if p, ok := f.pending[k]; ok {
		p.ids = append(p.ids, a.ID)
		if a.Stage > p.alert.Stage {
			p.alert = a
		}
		return
	}
	p := &pending{alert: a, ids: []string{a.ID}}
	p.timer = time.AfterFunc(f.cfg.Deadline, func() { f.deadline(k, dom) })
	f.pending[k] = p
	f.log.Info("waiting for a collector", "alert", a.ID, "domain", dom, "deadline", f.cfg.Deadline)
}

// OnCollectorAck stands down the fallback for the acknowledged alert's
// domain: a collector has taken charge.
func (f *F) OnCollectorAck(a hooks.CollectorAck) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, p := range f.pending {
		for _, id := range p.ids {
			if id == a.AlertID || (a.Domain != "" && a.Domain == f.cfg.domainOf(p.alert.Device)) {
				p.timer.Stop()
				delete(f.pending, k)
				f.log.Info("collector took charge", "alert", a.AlertID, "collector", a.Collector, "decision", a.Decision)
				break
			}
		}
	}
}

func (f *F) onEvacMsg(m *nats.Msg) {
	ev, err := f.verifier.Verify(m.Data)
	if err != nil {
		if ev.Issuer != "" && f.cfg.Signer != nil && ev.Issuer == f.cfg.Signer.PublicKey() {
			return // our own fallback message
		}
		f.log.Warn("refused evacuation message", "subject", m.Subject, "err", err)
		a := hooks.SecurityAlert(f.cfg.Site, f.cfg.Agent, err, m.Subject, time.Now())
		if b, merr := json.Marshal(&a); merr == nil {
			_ = f.nc.Publish(wire.AlertSubject(f.cfg.Site, f.cfg.Agent, "evac"), b)
		}
		return
	}
	if ev.Phase != wire.PhasePrestage && ev.Phase != wire.PhaseEvacuate {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pending[key(ev.Domain, ev.Drill)]; ok {
		p.timer.Stop()
		delete(f.pending, key(ev.Domain, ev.Drill))
		f.log.Info("collector evacuation seen; standing down", "evac", ev.ID, "phase", ev.Phase)
	}
}

// Result reports a fired deadline (Config has no callback: tests and the
// agent read Results).
type Result struct {
	Outcome string
	Evac    wire.Evacuation
	Failed  int
	Events  []hooks.Event
}

func (f *F) deadline(k, dom string) {
	f.mu.Lock()
	p, ok := f.pending[k]
	if !ok || f.closed {
		f.mu.Unlock()
		return
	}
	delete(f.pending, k)
	f.fired[k] = time.Now()
	ctx := f.ctx
	f.wg.Add(1)
	f.mu.Unlock()
	defer f.wg.Done()
	r := f.fire(ctx, dom, p)
	f.mu.Lock()
	f.results = append(f.results, r)
	f.mu.Unlock()
}

// Results returns what each fired deadline did.
func (f *F) Results() []Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Result(nil), f.results...)
}

func (f *F) fire(ctx context.Context, dom string, p *pending) Result {
	a := p.alert
	h := sha256.Sum256([]byte(f.cfg.Site + "\x00" + dom + "\x00" + a.ID))
	ev := wire.Evacuation{ID: "fb-" + dom + "-" + hex.EncodeToString(h[:6]), Site: f.cfg.Site, Domain: dom,
		Phase: wire.PhaseEvacuate, Urgency: wire.UrgencyNormal, Targets: append([]string(nil), f.cfg.Targets...),
		Time: time.Now().UTC(), Drill: a.Drill, DryRun: a.Drill,
		Reason: wire.EvacReason{AlertIDs: p.ids, Summary: fmt.Sprintf("agent %s fallback: no collector answered %s %s alert within %v",
			f.cfg.Agent, a.Stage, a.Category, f.cfg.Deadline)}}
	if a.Stage >= wire.StageEmergency {
		ev.Urgency = wire.UrgencyEmergency
	}
	outcome := f.claim(ctx, dom, a.Drill, ev.ID)
	res := Result{Outcome: outcome, Evac: ev}
	if outcome == OutcomeStoodDown {
		f.log.Info("another agent fired the fallback for this domain", "domain", dom)
		return res
	}
	f.log.Warn("no collector answered: running local fallback hooks", "domain", dom, "evac", ev.ID, "isolated", outcome == OutcomeFiredAlone)
	if f.cfg.Signer != nil {
		if err := f.cfg.Signer.Sign(&ev); err == nil && f.nc != nil {
			if b, err := json.Marshal(&ev); err == nil {
				_ = f.nc.Publish(wire.EvacSubject(f.cfg.Site, dom), b) // best effort: we may be isolated
			}
		}
	}
	var mu sync.Mutex
	res.Failed = f.set.RunPhase(ctx, &ev, hooks.PhaseOptions{Owner: f.cfg.Agent, OnEvent: func(e hooks.Event) {
		mu.Lock()
		res.Events = append(res.Events, e)
		mu.Unlock()
	}})
	res.Evac = ev
	return res
}

// claim decides whether this agent fires: put-if-absent in the shared
// bucket, or alone when JetStream is unreachable.
func (f *F) claim(ctx context.Context, dom string, drill bool, evID string) string {
	if f.nc == nil || !f.nc.IsConnected() {
		return OutcomeFiredAlone
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	js, err := jetstream.New(f.nc)
	if err != nil {
		return OutcomeFiredAlone
	}
	kv, err := js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: Bucket,
		Description: "emberwatch agent fallback coordination", TTL: f.cfg.Quiet, History: 1})
	if err != nil {
		// Try to open a bucket made by someone else with another TTL.
		if kv, err = js.KeyValue(cctx, Bucket); err != nil {
			f.log.Warn("fallback coordination unavailable; firing alone", "err", err)
			return OutcomeFiredAlone
		}
	}
	val, _ := json.Marshal(map[string]any{"agent": f.cfg.Agent, "evac_id": evID, "time": time.Now().UTC()})
	_, err = kv.Create(cctx, f.cfg.Site+"."+key(dom, drill), val)
	switch {
	case err == nil:
		return OutcomeFired
	case errors.Is(err, jetstream.ErrKeyExists):
		return OutcomeStoodDown
	}
	f.log.Warn("fallback coordination failed; firing alone", "err", err)
	return OutcomeFiredAlone
}
