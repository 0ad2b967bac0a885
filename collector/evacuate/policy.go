package evacuate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// PolicyConfig is the `evacuation.policy:` section of the collector
// configuration. Start from DefaultPolicy and decode over it, so absent
// keys keep their defaults and an explicit "0s" hold means no hold.
type PolicyConfig struct {
	// Hold is the pre-release delay between a corroborated critical alert
	// and the evacuate phase, during which an operator may abort. 0–60 s,
	// like a releasing panel. Emergency skips it. Defaults to 30s.
	Hold time.Duration `yaml:"hold" json:"hold"`
	// EvidenceWindow is how long an alert counts as a vote. Defaults to 120s.
	EvidenceWindow time.Duration `yaml:"evidence_window" json:"evidence_window"`
	// Corroboration needed before a critical alert evacuates.
	Corroboration Corroboration `yaml:"corroboration" json:"corroboration"`
	// MaxConcurrentDomains is how many domains may evacuate at once (drills
	// excluded); more wait for approval. Defaults to 1.
	MaxConcurrentDomains int `yaml:"max_concurrent_domains" json:"max_concurrent_domains"`
	// MaxCapacityPercent is the share of the site's capacity that may start
	// evacuating within CapacityWindow; more waits for approval.
	// Defaults to 50.
	MaxCapacityPercent float64       `yaml:"max_capacity_percent" json:"max_capacity_percent"`
	CapacityWindow     time.Duration `yaml:"capacity_window" json:"capacity_window"`
	// CommonMode: more than Domains domains corroborated within Window is
	// treated as a common-mode fault (a BMS bus, a bad firmware): every
	// further evacuation waits for a human. Defaults to 2 in 60s.
	CommonMode CommonMode `yaml:"common_mode" json:"common_mode"`
	// AbortQuiet is how long after an abort alerts below emergency on that
	// domain only add evidence. Defaults to 10m.
	AbortQuiet time.Duration `yaml:"abort_quiet" json:"abort_quiet"`
	// BlockedApprovals is how many different operators must approve an
	// evacuation a guardrail blocked. Defaults to 2; 1 allows one person.
	BlockedApprovals int `yaml:"blocked_approvals" json:"blocked_approvals"`
	// DryRun makes every evacuation a dry run, drill or not: decisions,
	// messages and hooks happen, with dry_run true (exec hooks see
	// EMBER_DRY_RUN=1; hooks with dry_run: skip are not called). For
	// commissioning a site and for demos. Defaults to false.
	DryRun bool `yaml:"dry_run" json:"dry_run"`
}

// Corroboration is satisfied when any enabled rule holds.
type Corroboration struct {
	// Families: distinct signature families (thermal, gas, electrical,
	// environment) among the domain's votes. 0 disables. Defaults to 2.
	Families int `yaml:"families" json:"families"`
	// Agents: distinct agents among the domain's votes. 0 disables.
	// Defaults to 2.
	Agents int `yaml:"agents" json:"agents"`
	// EmergencyAlone lets one emergency alert act by itself. Defaults to true.
	EmergencyAlone bool `yaml:"emergency_alone" json:"emergency_alone"`
}

// CommonMode configures the common-mode breaker.
type CommonMode struct {
	Domains int           `yaml:"domains" json:"domains"`
	Window  time.Duration `yaml:"window" json:"window"`
}

// DefaultPolicy is the recommended safety design (reliability-security.md (c)).
func DefaultPolicy() PolicyConfig {
	return PolicyConfig{
		Hold: 30 * time.Second, EvidenceWindow: 120 * time.Second,
		Corroboration:        Corroboration{Families: 2, Agents: 2, EmergencyAlone: true},
		MaxConcurrentDomains: 1, MaxCapacityPercent: 50, CapacityWindow: 10 * time.Minute,
		CommonMode: CommonMode{Domains: 2, Window: 60 * time.Second},
		AbortQuiet: 10 * time.Minute, BlockedApprovals: 2,
	}
}

// Validate returns every problem of the policy, keys relative to it.
func (c *PolicyConfig) Validate() error {
	var errs []error
	if c.Hold < 0 || c.Hold > 10*time.Minute {
		errs = append(errs, fmt.Errorf("hold: want 0s to 10m, got %v", c.Hold))
	}
	if c.EvidenceWindow <= 0 {
		errs = append(errs, errors.New("evidence_window: must be positive"))
	}
	if c.Corroboration.Families < 0 || c.Corroboration.Agents < 0 {
		errs = append(errs, errors.New("corroboration: counts must not be negative"))
	}
	if c.Corroboration.Families == 1 || c.Corroboration.Agents == 1 {
		errs = append(errs, errors.New("corroboration: 1 is no corroboration; use 2 or more, or 0 to disable a rule"))
	}
	if c.Corroboration.Families == 0 && c.Corroboration.Agents == 0 && !c.Corroboration.EmergencyAlone {
		errs = append(errs, errors.New("corroboration: every rule disabled: nothing could evacuate automatically"))
	}
	if c.MaxConcurrentDomains < 1 {
		errs = append(errs, errors.New("max_concurrent_domains: must be at least 1"))
	}
	if c.MaxCapacityPercent <= 0 || c.MaxCapacityPercent > 100 {
		errs = append(errs, fmt.Errorf("max_capacity_percent: want (0, 100], got %v", c.MaxCapacityPercent))
	}
	if c.CapacityWindow <= 0 {
		errs = append(errs, errors.New("capacity_window: must be positive"))
	}
	if c.CommonMode.Domains < 1 || c.CommonMode.Window <= 0 {
		errs = append(errs, errors.New("common_mode: domains must be >= 1 and window positive"))
	}
	if c.BlockedApprovals < 1 || c.BlockedApprovals > 5 {
		errs = append(errs, fmt.Errorf("blocked_approvals: want 1 to 5, got %d", c.BlockedApprovals))
	}
	if c.AbortQuiet < 0 {
		errs = append(errs, errors.New("abort_quiet: must not be negative"))
	}
	return errors.Join(errs...)
}

// Evacuation states.
const (
	StatePrestaged  = "prestaged"  // prestage issued; waiting for corroboration
	StateHolding    = "holding"    // countdown to evacuate; abortable
	StateBlocked    = "blocked"    // a guardrail stopped it; needs approval
	StateEvacuating = "evacuating" // evacuate issued
	StateAborted    = "aborted"
	StateCompleted  = "completed"
)

// Evac is one evacuation of one domain, as stored in the EMBER_EVAC KV
// bucket and listed by GET /api/v1/evacuations.
type Evac struct {
	ID        string    `json:"id"`
	Site      string    `json:"site"`
	Domain    string    `json:"domain"`
	State     string    `json:"state"`
	Urgency   string    `json:"urgency"`
	Drill     bool      `json:"drill"`
	DryRun    bool      `json:"dry_run"`
	AlertIDs  []string  `json:"alert_ids"`
	Families  []string  `json:"families,omitempty"`
	Agents    []string  `json:"agents,omitempty"`
	Targets   []string  `json:"targets"`
	Summary   string    `json:"summary"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Phases issued, in order; the leader runs each phase's hooks once.
	Phases []string `json:"phases"`
	// Blocked says which guardrail holds it for approval.
	Blocked string `json:"blocked,omitempty"`
	// Actor is the operator of the last manual action.
	Actor string `json:"actor,omitempty"`
	// Approvals of a blocked evacuation so far (see BlockedApprovals).
	Approvals []string `json:"approvals,omitempty"`
	// EvacuateStart is when the evacuate phase was issued.
	EvacuateStart time.Time `json:"evacuate_start,omitzero"`
	// FirstSample is the sample time of the first alert (drill reports).
	FirstSample time.Time `json:"first_sample,omitzero"`
}

func (e *Evac) terminal() bool { return e.State == StateAborted || e.State == StateCompleted }

func (e *Evac) clone() *Evac {
	c := *e
	c.AlertIDs = slices.Clone(e.AlertIDs)
	c.Families = slices.Clone(e.Families)
	c.Agents = slices.Clone(e.Agents)
	c.Targets = slices.Clone(e.Targets)
	c.Phases = slices.Clone(e.Phases)
	c.Approvals = slices.Clone(e.Approvals)
	return &c
}

// Decision actions.
const (
	ActIgnore   = "ignore"   // alert does not concern evacuation
	ActNote     = "note"     // evidence recorded, no state change
	ActPrestage = "prestage" // prestage phase issued
	ActHold     = "hold"     // countdown started
	ActBlock    = "block"    // guardrail: waits for approval
	ActEvacuate = "evacuate" // evacuate phase issued
	ActAbort    = "abort"    // abort phase issued
	ActComplete = "complete" // complete phase issued
	ActRefuse   = "refuse"   // refused an unsafe plan or an invalid request
	ActApprove  = "approve"  // one approval recorded; more are needed
)

// Decision is one output of the policy, with its reasons; every decision
// goes to the audit trail.
type Decision struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	EvacID  string    `json:"evac_id,omitempty"`
	Domain  string    `json:"domain,omitempty"`
	Phase   string    `json:"phase,omitempty"` // phase to issue, if any
	AlertID string    `json:"alert_id,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Reasons []string  `json:"reasons"`
	Drill   bool      `json:"drill"`
	// Evac is a snapshot after the decision (nil for ignored alerts).
	Evac *Evac `json:"evac,omitempty"`
}

type vote struct {
	alertID  string
	agent    string
	families []string
	stage    wire.Stage
	at       time.Time
}

type domainState struct {
	votes      []vote
	quietUntil time.Time // after an abort
}

// Policy turns alerts into evacuation decisions. It is a pure state
// machine: no clock (times are passed in), no I/O, not safe for concurrent
// use; the Engine owns it from one goroutine.
type Policy struct {
	cfg  PolicyConfig
	site string
	topo *Topology

	domains map[string]*domainState // domain+drill key
	active  map[string]*Evac        // domain+drill key -> non-terminal evacuation
	byID    map[string]*Evac        // every known evacuation, terminal ones included
	order   []string                // ids, oldest first, for listing and pruning
	seen    map[string]time.Time    // alert ids, for duplicate delivery
	// corroborated records when each real domain became corroborated
	// (common-mode breaker) and started evacuating (capacity budget).
	corroborated map[string]time.Time
	started      map[string]time.Time
}

// maxKept bounds the terminal evacuations a policy remembers.
const maxKept = 200

// NewPolicy builds a policy over a validated topology.
func NewPolicy(site string, topo *Topology, cfg PolicyConfig) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("evacuation policy: %w", err)
	}
	if err := topo.Validate(nil); err != nil {
		return nil, fmt.Errorf("evacuation topology: %w", err)
	}
	return &Policy{cfg: cfg, site: site, topo: topo,
		domains: map[string]*domainState{}, active: map[string]*Evac{}, byID: map[string]*Evac{},
		seen: map[string]time.Time{}, corroborated: map[string]time.Time{}, started: map[string]time.Time{}}, nil
}

func dkey(domain string, drill bool) string {
	if drill {
		return domain + "#drill"
	}
	return domain
}

// family returns the signature families of an alert.
func family(a *wire.Alert) []string {
	fam := slices.Clone(a.Families)
	switch a.Category {
	case wire.CategoryThermal, wire.CategoryGas, wire.CategoryElectrical, wire.CategoryEnvironment:
		fam = append(fam, a.Category)
	}
	slices.Sort(fam)
	return slices.Compact(fam)
}

// EvacID derives an evacuation id from what started it, so that several
// collectors seeing the same alerts name the evacuation the same way.
func EvacID(site, domain string, drill bool, firstAlert string) string {
	h := sha256.Sum256([]byte(site + "\x00" + domain + "\x00" + fmt.Sprint(drill) + "\x00" + firstAlert))
	return "ev-" + domain + "-" + hex.EncodeToString(h[:6])
}

// Alert feeds one alert at now and returns the decisions it causes (none
// for an alert id already seen).
func (p *Policy) Alert(now time.Time, a wire.Alert) []Decision {
	d := Decision{Time: now, AlertID: a.ID, Drill: a.Drill}
	ignore := func(why string, args ...any) []Decision {
		d.Action, d.Reasons = ActIgnore, []string{fmt.Sprintf(why, args...)}
		return []Decision{d}
	}
	if a.ID == "" {
		return ignore("alert without id")
	}
	if _, dup := p.seen[a.ID]; dup {
		// The same alert from the engine's subscription and from the
		// collector's stream replay, or a redelivery: already decided.
		return nil
	}
	p.seen[a.ID] = now
	if a.Site != "" && a.Site != p.site {
		return ignore("alert for site %q, this is %q", a.Site, p.site)
	}
	switch a.Category {
	case CategoryEvacuation:
		return nil // our own notices to people
	case wire.CategorySensorFault, wire.CategoryComms, wire.CategorySecurity:
		return ignore("%s alerts never cause evacuation", a.Category)
	}
	if a.Ack != nil {
		return ignore("acknowledgement, not a new condition")
	}
	if a.Stage < wire.StageWarning {
		return ignore("stage %s does not act", a.Stage)
	}
	if age := now.Sub(a.Time); age > p.cfg.EvidenceWindow {
		return ignore("stale alert: %v old, evidence window %v", age.Round(time.Second), p.cfg.EvidenceWindow)
	}
	dom, ok := p.topo.DomainOf(a.Agent, a.Device)
	if !ok {
		return ignore("device %s/%s is in no power domain", a.Agent, a.Device)
	}
	d.Domain = dom.ID
	key := dkey(dom.ID, a.Drill)
	ds := p.domains[key]
	if ds == nil {
		ds = &domainState{}
		p.domains[key] = ds
	}
	ds.votes = append(ds.votes, vote{alertID: a.ID, agent: a.Agent, families: family(&a), stage: a.Stage, at: now})
	p.pruneVotes(ds, now)

	var out []Decision
	ev := p.active[key]
	if ev == nil {
		if now.Before(ds.quietUntil) && a.Stage < wire.StageEmergency {
			d.Action = ActNote
			d.Reasons = []string{fmt.Sprintf("domain %s aborted by an operator; quiet until %s unless emergency", dom.ID, ds.quietUntil.Format(time.RFC3339))}
			return []Decision{d}
		}
		targets := dom.Targets()
		if r := p.unsafeTargets(targets); r != "" {
			d.Action, d.Reasons = ActRefuse, []string{r}
			return []Decision{d}
		}
		ev = &Evac{ID: EvacID(p.site, dom.ID, a.Drill, a.ID), Site: p.site, Domain: dom.ID, State: StatePrestaged,
			Urgency: wire.UrgencyNormal, Drill: a.Drill, DryRun: a.Drill || p.cfg.DryRun, Targets: targets, Created: now, Updated: now,
			Phases: []string{wire.PhasePrestage}, FirstSample: a.SampleTime,
			Summary: fmt.Sprintf("%s %s on %s/%s", a.Stage, a.Category, a.Agent, a.Device)}
		p.add(key, ev)
		p.absorb(ev, &a)
		d.Action, d.EvacID, d.Phase, d.Evac = ActPrestage, ev.ID, wire.PhasePrestage, ev.clone()
		d.Reasons = []string{fmt.Sprintf("%s %s alert on battery %s/%s of domain %s: stop placing work there", a.Stage, a.Category, a.Agent, a.Device, dom.ID)}
		out = append(out, d)
		d = Decision{Time: now, AlertID: a.ID, Drill: a.Drill, Domain: dom.ID}
	} else {
		p.absorb(ev, &a)
	}
	if a.Stage < wire.StageCritical {
		if len(out) == 0 {
			d.Action, d.EvacID, d.Evac = ActNote, ev.ID, ev.clone()
			d.Reasons = []string{fmt.Sprintf("%s alert adds evidence to %s (%s)", a.Stage, ev.ID, ev.State)}
			out = append(out, d)
		}
		return out
	}
	return append(out, p.escalate(now, key, ev, ds, &a, d)...)
}

// Bounds on per-evacuation evidence, so that a chattering sensor cannot
// grow memory and message size without limit.
const (
	maxAlertIDs = 64
	maxVotes    = 256
)

func (p *Policy) absorb(ev *Evac, a *wire.Alert) {
	if len(ev.AlertIDs) < maxAlertIDs && !slices.Contains(ev.AlertIDs, a.ID) {
		ev.AlertIDs = append(ev.AlertIDs, a.ID)
	}
	for _, f := range family(a) {
		if !slices.Contains(ev.Families, f) {
			ev.Families = append(ev.Families, f)
		}
	}
	if !slices.Contains(ev.Agents, a.Agent) {
		ev.Agents = append(ev.Agents, a.Agent)
	}
	sort.Strings(ev.Families)
	sort.Strings(ev.Agents)
}

// pruneVotes drops votes older than the evidence window, and keeps at
// most 2*maxVotes. Votes are in arrival order, so both are a prefix.
func (p *Policy) pruneVotes(ds *domainState, now time.Time) {
	i := 0
	for i < len(ds.votes) && now.Sub(ds.votes[i].at) > p.cfg.EvidenceWindow {
		i++
	}
	if len(ds.votes)-i > 2*maxVotes {
		i = len(ds.votes) - maxVotes // amortised: cut in halves, not per vote
	}
	// Re-slicing drops the prefix; the next append that outgrows the array
	// copies only what is kept.
	ds.votes = ds.votes[i:]
}

// corroborated reports whether the votes satisfy a rule, and which.
func (p *Policy) corroboration(ds *domainState) (bool, string) {
	fams, agents := map[string]bool{}, map[string]bool{}
	emergency := false
	for _, v := range ds.votes {
		for _, f := range v.families {
			fams[f] = true
		}
		agents[v.agent] = true
		if v.stage >= wire.StageEmergency {
			emergency = true
		}
	}
	c := p.cfg.Corroboration
	switch {
	case c.EmergencyAlone && emergency:
		return true, "emergency stage (runaway or fire confirmed)"
	case c.Families > 0 && len(fams) >= c.Families:
		return true, fmt.Sprintf("%d signature families agree (%s)", len(fams), strings.Join(sortedKeys(fams), ", "))
	case c.Agents > 0 && len(agents) >= c.Agents:
		return true, fmt.Sprintf("%d agents agree (%s)", len(agents), strings.Join(sortedKeys(agents), ", "))
	}
	return false, fmt.Sprintf("awaiting corroboration: families %v, agents %v within %v", sortedKeys(fams), sortedKeys(agents), p.cfg.EvidenceWindow)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *Policy) escalate(now time.Time, key string, ev *Evac, ds *domainState, a *wire.Alert, d Decision) []Decision {
	d.EvacID = ev.ID
	emergency := a.Stage >= wire.StageEmergency
	switch ev.State {
	case StateEvacuating:
		d.Action, d.Evac = ActNote, ev.clone()
		d.Reasons = []string{fmt.Sprintf("%s alert while evacuating", a.Stage)}
		return []Decision{d}
	case StateBlocked:
		d.Action, d.Evac = ActNote, ev.clone()
		d.Reasons = []string{fmt.Sprintf("%s alert; still waiting for approval: %s", a.Stage, ev.Blocked)}
		return []Decision{d}
	case StateHolding:
		if !emergency {
			d.Action, d.Evac = ActNote, ev.clone()
			d.Reasons = []string{fmt.Sprintf("%s alert during hold (until %s)", a.Stage, ev.HoldUntil.Format(time.RFC3339))}
			return []Decision{d}
		}
	}
	ok, why := p.corroboration(ds)
	if !ok {
		d.Action, d.Evac, d.Reasons = ActNote, ev.clone(), []string{why}
		return []Decision{d}
	}
	if !ev.Drill {
		if _, seen := p.corroborated[ev.Domain]; !seen {
			p.corroborated[ev.Domain] = now
		}
	}
	reasons := []string{why}
	// A corroborated emergency skips the hold window (contract section 6).
	if emergency || ev.Urgency == wire.UrgencyEmergency {
		ev.Urgency = wire.UrgencyEmergency
		reasons = append(reasons, "emergency: hold window skipped")
	}
	// Guardrails apply to emergencies too: a BMS bus fault can make every
	// domain report "confirmed" at once (reliability-security.md T25).
	if r := p.guardrail(now, ev); r != "" {
		return p.block(now, ev, d, append(reasons, r), r)
	}
	if ev.Urgency == wire.UrgencyEmergency {
		return p.release(now, ev, d, reasons, "")
	}
	if p.cfg.Hold == 0 {
		return p.release(now, ev, d, append(reasons, "no hold window configured"), "")
	}
	ev.State, ev.HoldUntil, ev.Updated = StateHolding, now.Add(p.cfg.Hold), now
	d.Action, d.Evac = ActHold, ev.clone()
	d.Reasons = append(reasons, fmt.Sprintf("hold %v before evacuating: abort possible until %s", p.cfg.Hold, ev.HoldUntil.Format(time.RFC3339)))
	return []Decision{d}
}

func (p *Policy) block(now time.Time, ev *Evac, d Decision, reasons []string, r string) []Decision {
	ev.State, ev.Blocked, ev.Updated = StateBlocked, r, now
	d.Action, d.Evac, d.Reasons = ActBlock, ev.clone(), append(reasons, "waiting for operator approval")
	return []Decision{d}
}

// release issues the evacuate phase. Guardrails were checked by the caller
// (or overridden by an operator, actor != "").
func (p *Policy) release(now time.Time, ev *Evac, d Decision, reasons []string, actor string) []Decision {
	if r := p.unsafeTargets(ev.Targets); r != "" {
		d.Action, d.Evac, d.Reasons = ActRefuse, ev.clone(), append(reasons, r)
		return []Decision{d}
	}
	ev.State, ev.Blocked, ev.Updated, ev.EvacuateStart = StateEvacuating, "", now, now
	ev.HoldUntil = time.Time{}
	ev.Phases = append(ev.Phases, wire.PhaseEvacuate)
	if actor != "" {
		ev.Actor = actor
	}
	if !ev.Drill {
		p.started[ev.Domain] = now
	}
	d.Action, d.Phase, d.Actor, d.Evac = ActEvacuate, wire.PhaseEvacuate, actor, ev.clone()
	d.Reasons = append(reasons, fmt.Sprintf("evacuate %d targets of domain %s (urgency %s)", len(ev.Targets), ev.Domain, ev.Urgency))
	return []Decision{d}
}

// guardrail returns why a real evacuation may not start automatically.
func (p *Policy) guardrail(now time.Time, ev *Evac) string {
	if ev.Drill {
		return ""
	}
	var busy []string
	for _, o := range p.active {
		if !o.Drill && o.Domain != ev.Domain && o.State == StateEvacuating {
			busy = append(busy, o.Domain)
		}
	}
	if len(busy) >= p.cfg.MaxConcurrentDomains {
		sort.Strings(busy)
		return fmt.Sprintf("blast radius: %d domain(s) already evacuating (%s), limit %d", len(busy), strings.Join(busy, ", "), p.cfg.MaxConcurrentDomains)
	}
	var recent []string
	for dom, t := range p.corroborated {
		if now.Sub(t) <= p.cfg.CommonMode.Window {
			recent = append(recent, dom)
		}
	}
	if len(recent) > p.cfg.CommonMode.Domains {
		sort.Strings(recent)
		return fmt.Sprintf("common-mode breaker: %d domains corroborated within %v (%s); a shared fault is more likely than %d fires",
			len(recent), p.cfg.CommonMode.Window, strings.Join(recent, ", "), len(recent))
	}
	site := p.topo.Capacity()
	dom, _ := p.topo.Domain(ev.Domain)
	used := dom.capacity()
	for d, t := range p.started {
		if d != ev.Domain && now.Sub(t) <= p.cfg.CapacityWindow {
			if o, ok := p.topo.Domain(d); ok {
				used += o.capacity()
			}
		}
	}
	if site > 0 && used/site*100 > p.cfg.MaxCapacityPercent+1e-9 {
		return fmt.Sprintf("blast radius: %.0f%% of site capacity would start evacuating within %v, limit %.0f%%",
			used/site*100, p.cfg.CapacityWindow, p.cfg.MaxCapacityPercent)
	}
	return ""
}

// unsafeTargets refuses empty or "everything" target lists.
func (p *Policy) unsafeTargets(t []string) string {
	if len(t) == 0 {
		return "refused: empty target list (an empty set must never mean everything)"
	}
	for _, h := range t {
		if h == "*" || strings.EqualFold(h, "all") || h == "" {
			return fmt.Sprintf("refused: target %q is a wildcard", h)
		}
	}
	if len(p.topo.Domains) > 1 && len(t) >= len(p.topo.AllTargets()) {
		return "refused: target list covers every host of the site"
	}
	return ""
}

// Tick advances holds that expired at now.
func (p *Policy) Tick(now time.Time) []Decision {
	var out []Decision
	for _, key := range p.activeKeys() {
		ev := p.active[key]
		if ev.State != StateHolding || now.Before(ev.HoldUntil) {
			continue
		}
		d := Decision{Time: now, EvacID: ev.ID, Domain: ev.Domain, Drill: ev.Drill}
		if r := p.guardrail(now, ev); r != "" {
			out = append(out, p.block(now, ev, d, []string{"hold expired", r}, r)...)
			continue
		}
		out = append(out, p.release(now, ev, d, []string{fmt.Sprintf("hold expired at %s without abort", ev.HoldUntil.Format(time.RFC3339))}, "")...)
	}
	for id, t := range p.seen {
		if now.Sub(t) > 2*p.cfg.EvidenceWindow {
			delete(p.seen, id)
		}
	}
	return out
}

func (p *Policy) activeKeys() []string {
	keys := make([]string, 0, len(p.active))
	for k := range p.active {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Errors of manual actions.
var (
	ErrNotFound = errors.New("evacuation not found")
	ErrState    = errors.New("evacuation is not in a state that allows this")
	ErrNoActor  = errors.New("manual actions need the operator's name")
)

func (p *Policy) manual(now time.Time, id, actor string) (*Evac, Decision, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, Decision{}, ErrNoActor
	}
	ev, ok := p.byID[id]
	if !ok {
		return nil, Decision{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return ev, Decision{Time: now, EvacID: ev.ID, Domain: ev.Domain, Actor: actor, Drill: ev.Drill}, nil
}

// Approve is a manual release: it evacuates a prestaged, holding or
// blocked evacuation now, overriding hold and guardrails (NFPA 2001 9.6:
// manual release overrides abort and delay).
func (p *Policy) Approve(now time.Time, id, actor, note string) ([]Decision, error) {
	ev, d, err := p.manual(now, id, actor)
	if err != nil {
		return nil, err
	}
	switch ev.State {
	case StatePrestaged, StateHolding, StateBlocked:
	default:
		return nil, fmt.Errorf("%w: %s is %s", ErrState, id, ev.State)
	}
	if ev.State == StateBlocked && p.cfg.BlockedApprovals > 1 {
		// Overriding a guardrail takes more than one person (T25).
		if !slices.Contains(ev.Approvals, actor) {
			ev.Approvals = append(ev.Approvals, actor)
		}
		if len(ev.Approvals) < p.cfg.BlockedApprovals {
			ev.Updated = now
			d.Action, d.Evac = ActApprove, ev.clone()
			d.Reasons = []string{fmt.Sprintf("approval %d of %d by %s; another operator must approve to override: %s",
				len(ev.Approvals), p.cfg.BlockedApprovals, actor, ev.Blocked)}
			if note != "" {
				d.Reasons = append(d.Reasons, "note: "+note)
			}
			return []Decision{d}, nil
		}
		actor = strings.Join(ev.Approvals, "+")
	}
	reasons := []string{fmt.Sprintf("manual release by %s", actor)}
	if ev.Blocked != "" {
		reasons = append(reasons, "overrides: "+ev.Blocked)
	}
	if note != "" {
		reasons = append(reasons, "note: "+note)
	}
	return p.release(now, ev, d, reasons, actor), nil
}

// Abort stops an evacuation: no evacuate phase after it; hooks already
// started are not undone (the abort phase tells them to stop what is left).
func (p *Policy) Abort(now time.Time, id, actor, note string) ([]Decision, error) {
	ev, d, err := p.manual(now, id, actor)
	if err != nil {
		return nil, err
	}
	if ev.terminal() {
		return nil, fmt.Errorf("%w: %s is %s", ErrState, id, ev.State)
	}
	prev := ev.State
	ev.State, ev.Actor, ev.Updated, ev.HoldUntil = StateAborted, actor, now, time.Time{}
	ev.Phases = append(ev.Phases, wire.PhaseAbort)
	key := dkey(ev.Domain, ev.Drill)
	delete(p.active, key)
	if ds := p.domains[key]; ds != nil {
		ds.quietUntil = now.Add(p.cfg.AbortQuiet)
		ds.votes = nil
	}
	d.Action, d.Phase, d.Evac = ActAbort, wire.PhaseAbort, ev.clone()
	d.Reasons = []string{fmt.Sprintf("aborted by %s while %s", actor, prev)}
	if prev == StateEvacuating {
		d.Reasons = append(d.Reasons, "evacuation had started: hooks already run are not undone")
	}
	if note != "" {
		d.Reasons = append(d.Reasons, "note: "+note)
	}
	return []Decision{d}, nil
}

// Complete closes an evacuation once the operator confirms it is over.
func (p *Policy) Complete(now time.Time, id, actor, note string) ([]Decision, error) {
	ev, d, err := p.manual(now, id, actor)
	if err != nil {
		return nil, err
	}
	if ev.State != StateEvacuating {
		return nil, fmt.Errorf("%w: %s is %s, want evacuating", ErrState, id, ev.State)
	}
	ev.State, ev.Actor, ev.Updated = StateCompleted, actor, now
	ev.Phases = append(ev.Phases, wire.PhaseComplete)
	delete(p.active, dkey(ev.Domain, ev.Drill))
	d.Action, d.Phase, d.Evac = ActComplete, wire.PhaseComplete, ev.clone()
	d.Reasons = []string{"completed by " + actor}
	if note != "" {
		d.Reasons = append(d.Reasons, "note: "+note)
	}
	return []Decision{d}, nil
}

func (p *Policy) add(key string, ev *Evac) {
	p.active[key] = ev
	p.byID[ev.ID] = ev
	p.order = append(p.order, ev.ID)
	p.prune()
}

// prune forgets the oldest terminal evacuations beyond maxKept; active
// ones are always kept.
func (p *Policy) prune() {
	excess := len(p.order) - maxKept
	if excess <= 0 {
		return
	}
	kept := make([]string, 0, len(p.order))
	for _, id := range p.order {
		if ev := p.byID[id]; excess > 0 && (ev == nil || ev.terminal()) {
			delete(p.byID, id)
			excess--
			continue
		}
		kept = append(kept, id)
	}
	p.order = kept
}

// rank orders states by progress, so that a stale copy never overwrites a
// newer one.
func rank(state string) int {
	switch state {
	case StatePrestaged:
		return 0
	case StateHolding, StateBlocked:
		return 1
	case StateEvacuating:
		return 2
	}
	return 3
}

// Restore installs an evacuation record from the EMBER_EVAC KV bucket.
// Authoritative records (a follower syncing from the leader, or a new
// leader reading what its predecessor did) replace whatever this policy
// holds for that domain, so every collector converges on the leader's id.
// Non-authoritative ones (a leader seeing the echo of its own writes) are
// installed only if newer than the local copy. It reports whether the
// record was installed.
func (p *Policy) Restore(ev Evac, authoritative bool) bool {
	c := ev.clone()
	key := dkey(c.Domain, c.Drill)
	if old, ok := p.byID[c.ID]; ok {
		if !authoritative && (rank(c.State) < rank(old.State) || (rank(c.State) == rank(old.State) && !c.Updated.After(old.Updated))) {
			return false
		}
		*old = *c
		c = old
	} else {
		if cur := p.active[key]; cur != nil && !c.terminal() {
			if !authoritative {
				return false
			}
			delete(p.byID, cur.ID) // our own guess at the id lost to the leader's
			p.order = slices.DeleteFunc(p.order, func(id string) bool { return id == cur.ID })
		}
		p.byID[c.ID] = c
		p.order = append(p.order, c.ID)
		p.prune()
	}
	if c.terminal() {
		if cur := p.active[key]; cur != nil && cur.ID == c.ID {
			delete(p.active, key)
		}
		if c.State == StateAborted {
			if ds := p.domains[key]; ds != nil {
				ds.quietUntil = c.Updated.Add(p.cfg.AbortQuiet)
				ds.votes = nil
			}
		}
		return true
	}
	p.active[key] = c
	if !c.Drill && c.State == StateEvacuating {
		p.started[c.Domain] = c.EvacuateStart
	}
	return true
}

// Get returns a copy of an evacuation.
func (p *Policy) Get(id string) (Evac, bool) {
	ev, ok := p.byID[id]
	if !ok {
		return Evac{}, false
	}
	return *ev.clone(), true
}

// List returns copies of every known evacuation, newest first.
func (p *Policy) List() []Evac {
	out := make([]Evac, 0, len(p.order))
	for i := len(p.order) - 1; i >= 0; i-- {
		if ev, ok := p.byID[p.order[i]]; ok {
			out = append(out, *ev.clone())
		}
	}
	return out
}
