package evacuate

import (
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

func testTopo() *Topology {
	return &Topology{Domains: []Domain{
		{ID: "ups-1", Capacity: 40, Batteries: []Battery{{"gw-01", "rack-a1"}, {"gw-02", "rack-a1-gas"}},
			Racks: []Rack{{ID: "a1", Hosts: []string{"host-a", "host-b"}}}},
		{ID: "ups-2", Capacity: 30, Batteries: []Battery{{"gw-03", "rack-b1"}}, Hosts: []string{"host-c"},
			Kubernetes: &Kubernetes{Nodes: []string{"node-1"}}},
		{ID: "ups-3", Capacity: 30, Batteries: []Battery{{"gw-04", "rack-c1"}}, Hosts: []string{"host-d"}},
	}}
}

var t0 = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

type alertOpt func(*wire.Alert)

func alert(id, agent, device, cat string, st wire.Stage, at time.Time, opts ...alertOpt) wire.Alert {
	a := wire.Alert{ID: id, Site: "s1", Agent: agent, Device: device, Category: cat, Stage: st,
		SampleTime: at.Add(-10 * time.Millisecond), Time: at}
	for _, o := range opts {
		o(&a)
	}
	return a
}

func families(f ...string) alertOpt { return func(a *wire.Alert) { a.Families = f } }
func drill(a *wire.Alert)           { a.Drill = true }

func newPolicy(t *testing.T, mod func(*PolicyConfig)) *Policy {
	t.Helper()
	cfg := DefaultPolicy()
	if mod != nil {
		mod(&cfg)
	}
	p, err := NewPolicy("s1", testTopo(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func actions(ds []Decision) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Action)
	}
	return strings.Join(s, ",")
}

func TestPolicyRealEventSequence(t *testing.T) {
	p := newPolicy(t, nil)
	// Off-gas first (warning), then a thermal critical from the BMS: two
	// families → hold 30 s → evacuate.
	ds := p.Alert(t0, alert("a1", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, t0))
	if actions(ds) != ActPrestage || ds[0].Phase != wire.PhasePrestage || ds[0].Domain != "ups-1" {
		t.Fatalf("warning: %s %+v", actions(ds), ds)
	}
	id := ds[0].EvacID
	if got := ds[0].Evac.Targets; strings.Join(got, ",") != "host-a,host-b" {
		t.Fatalf("targets %v", got)
	}
	ds = p.Alert(t0.Add(20*time.Second), alert("a2", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0.Add(20*time.Second)))
	if actions(ds) != ActHold || ds[0].EvacID != id {
		t.Fatalf("critical: %s %v", actions(ds), ds[0].Reasons)
	}
	if ds := p.Tick(t0.Add(49 * time.Second)); len(ds) != 0 {
		t.Fatalf("hold ended early: %s", actions(ds))
	}
	ds = p.Tick(t0.Add(50 * time.Second))
	if actions(ds) != ActEvacuate || ds[0].Phase != wire.PhaseEvacuate || ds[0].Evac.Urgency != wire.UrgencyNormal {
		t.Fatalf("after hold: %s", actions(ds))
	}
	ev, _ := p.Get(id)
	if strings.Join(ev.Phases, ",") != "prestage,evacuate" || ev.State != StateEvacuating {
		t.Fatalf("evac %+v", ev)
	}
	// More alerts change nothing.
	ds = p.Alert(t0.Add(55*time.Second), alert("a3", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0.Add(55*time.Second)))
	if actions(ds) != ActNote {
		t.Fatalf("alert while evacuating: %s", actions(ds))
	}
	if _, err := p.Complete(t0.Add(time.Hour), id, "", ""); err == nil {
		t.Fatal("complete without operator name accepted")
	}
	ds, err := p.Complete(t0.Add(time.Hour), id, "alice", "all moved")
	if err != nil || ds[0].Phase != wire.PhaseComplete {
		t.Fatalf("complete: %v %v", ds, err)
	}
}

func TestPolicyUncorroboratedCriticalOnlyPrestages(t *testing.T) {
	p := newPolicy(t, nil)
	ds := p.Alert(t0, alert("a1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0))
	if actions(ds) != ActPrestage+","+ActNote || !strings.Contains(ds[1].Reasons[0], "awaiting corroboration") {
		t.Fatalf("single-signal critical: %s %v", actions(ds), ds)
	}
	// A second family from another device of the same domain corroborates.
	ds = p.Alert(t0.Add(time.Second), alert("a2", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, t0.Add(time.Second)))
	if actions(ds) != ActNote {
		t.Fatalf("warning after critical: %s", actions(ds))
	}
	// Votes are only corroborating within the window: a critical after the
	// window with only one fresh family does not act.
	late := t0.Add(5 * time.Minute)
	ds = p.Alert(late, alert("a3", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, late))
	if actions(ds) != ActNote {
		t.Fatalf("stale evidence corroborated: %s %v", actions(ds), ds[0].Reasons)
	}
}

func TestPolicyCorroborationModes(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*PolicyConfig)
		as   []wire.Alert
		want string // last decision
	}{
		{"families in one alert", nil,
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0, families("thermal", "electrical"))}, ActHold},
		{"two agents", nil,
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0),
				alert("b", "gw-02", "rack-a1-gas", wire.CategoryThermal, wire.StageCritical, t0)}, ActHold},
		{"two agents disabled", func(c *PolicyConfig) { c.Corroboration.Agents = 0 },
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0),
				alert("b", "gw-02", "rack-a1-gas", wire.CategoryThermal, wire.StageCritical, t0)}, ActNote},
		{"emergency alone skips hold", nil,
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0)}, ActEvacuate},
		{"emergency alone disabled", func(c *PolicyConfig) { c.Corroboration.EmergencyAlone = false },
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0)}, ActNote},
		{"corroborated emergency skips hold without emergency_alone", func(c *PolicyConfig) { c.Corroboration.EmergencyAlone = false },
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0, families("thermal", "gas"))}, ActEvacuate},
		{"emergency during hold", nil,
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0, families("thermal", "gas")),
				alert("b", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0)}, ActEvacuate},
		{"no hold", func(c *PolicyConfig) { c.Hold = 0 },
			[]wire.Alert{alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0, families("thermal", "gas"))}, ActEvacuate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPolicy(t, c.mod)
			var ds []Decision
			for _, a := range c.as {
				ds = p.Alert(t0, a)
			}
			if got := ds[len(ds)-1].Action; got != c.want {
				t.Fatalf("got %s (%v), want %s", got, ds[len(ds)-1].Reasons, c.want)
			}
			if c.want == ActEvacuate && strings.Contains(c.name, "emergency") && ds[len(ds)-1].Evac.Urgency != wire.UrgencyEmergency {
				t.Fatal("emergency evacuation without urgency emergency")
			}
		})
	}
}

func TestPolicyNeverActsOnBenignOrFaultAlerts(t *testing.T) {
	p := newPolicy(t, func(c *PolicyConfig) { c.Hold = 0 })
	as := []wire.Alert{
		alert("f1", "gw-01", "rack-a1", wire.CategorySensorFault, wire.StageCritical, t0),
		alert("f2", "gw-01", "rack-a1", wire.CategoryComms, wire.StageEmergency, t0),
		alert("f3", "gw-01", "rack-a1", wire.CategorySecurity, wire.StageEmergency, t0),
		alert("w1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWatch, t0),
		alert("n1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageNormal, t0),
		alert("u1", "gw-99", "unknown", wire.CategoryThermal, wire.StageEmergency, t0),
		alert("s1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0.Add(-time.Hour)),
	}
	as[5].Families = []string{"thermal", "gas"}
	for _, a := range as {
		for _, d := range p.Alert(t0, a) {
			if d.Action != ActIgnore {
				t.Errorf("alert %s (%s %s) → %s, want ignore", a.ID, a.Category, a.Stage, d.Action)
			}
		}
	}
	if n := len(p.List()); n != 0 {
		t.Fatalf("%d evacuations from benign alerts", n)
	}
	// A duplicate delivery of a real alert is ignored the second time.
	a := alert("r1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0)
	p.Alert(t0, a)
	if ds := p.Alert(t0, a); len(ds) != 0 {
		t.Fatalf("duplicate → %s", actions(ds))
	}
}

func TestPolicyAbortDuringHold(t *testing.T) {
	p := newPolicy(t, nil)
	ds := p.Alert(t0, alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0, families("thermal", "gas")))
	id := ds[0].EvacID
	ds, err := p.Abort(t0.Add(10*time.Second), id, "bob", "false alarm, checked on site")
	if err != nil || actions(ds) != ActAbort || ds[0].Phase != wire.PhaseAbort {
		t.Fatalf("abort: %v %v", ds, err)
	}
	if ds := p.Tick(t0.Add(time.Minute)); len(ds) != 0 {
		t.Fatalf("evacuated after abort: %s", actions(ds))
	}
	if _, err := p.Approve(t0.Add(time.Minute), id, "bob", ""); err == nil {
		t.Fatal("approve of an aborted evacuation accepted")
	}
	// Quiet period: a new critical only notes; an emergency opens a new one.
	now := t0.Add(2 * time.Minute)
	if ds := p.Alert(now, alert("b", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, now, families("thermal", "gas"))); actions(ds) != ActNote {
		t.Fatalf("critical during quiet: %s", actions(ds))
	}
	if ds := p.Alert(now, alert("c", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, now)); actions(ds) != ActPrestage+","+ActEvacuate {
		t.Fatalf("emergency during quiet: %s", actions(ds))
	}
}

func TestPolicyManualReleaseOverridesHold(t *testing.T) {
	p := newPolicy(t, nil)
	ds := p.Alert(t0, alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, t0, families("thermal", "gas")))
	ds, err := p.Approve(t0.Add(time.Second), ds[0].EvacID, "carol", "")
	if err != nil || actions(ds) != ActEvacuate || ds[0].Actor != "carol" {
		t.Fatalf("approve: %v %v", ds, err)
	}
	if _, err := p.Approve(t0, "nope", "carol", ""); err == nil {
		t.Fatal("approve of unknown id accepted")
	}
}

func TestPolicyBlastRadius(t *testing.T) {
	p := newPolicy(t, func(c *PolicyConfig) { c.Hold = 0; c.MaxCapacityPercent = 100 })
	crit := func(id, agent, dev string, at time.Time) []Decision {
		return p.Alert(at, alert(id, agent, dev, wire.CategoryThermal, wire.StageCritical, at, families("thermal", "gas")))
	}
	if ds := crit("a", "gw-01", "rack-a1", t0); ds[len(ds)-1].Action != ActEvacuate {
		t.Fatalf("first domain: %s", actions(ds))
	}
	ds := crit("b", "gw-03", "rack-b1", t0.Add(time.Second))
	last := ds[len(ds)-1]
	if last.Action != ActBlock || !strings.Contains(last.Evac.Blocked, "already evacuating") {
		t.Fatalf("second domain: %s %v", actions(ds), last.Reasons)
	}
	// A drill is never blocked by real evacuations and does not count.
	now := t0.Add(2 * time.Second)
	ds = p.Alert(now, alert("d", "gw-04", "rack-c1", wire.CategoryThermal, wire.StageCritical, now, families("thermal", "gas"), drill))
	if ds[len(ds)-1].Action != ActEvacuate || !ds[len(ds)-1].Evac.DryRun || !ds[len(ds)-1].Evac.Drill {
		t.Fatalf("drill: %s", actions(ds))
	}
	// Two operators' approvals override the guardrail; the same one twice
	// does not.
	for _, who := range []string{"dave", "dave"} {
		ds, err := p.Approve(now, last.EvacID, who, "confirmed by camera")
		if err != nil || ds[0].Action != ActApprove || !strings.Contains(ds[0].Reasons[0], "approval 1 of 2") {
			t.Fatalf("first approval: %v %v", ds, err)
		}
	}
	ds, err := p.Approve(now, last.EvacID, "erin", "")
	if err != nil || ds[0].Action != ActEvacuate || ds[0].Actor != "dave+erin" {
		t.Fatalf("second approval: %v %v", ds, err)
	}
}

func TestPolicyCapacityAndCommonMode(t *testing.T) {
	// Capacity: ups-1 is 40% of the site; a 30% limit blocks it.
	p := newPolicy(t, func(c *PolicyConfig) { c.Hold = 0; c.MaxCapacityPercent = 30 })
	ds := p.Alert(t0, alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, t0))
	if l := ds[len(ds)-1]; l.Action != ActBlock || !strings.Contains(l.Evac.Blocked, "site capacity") {
		t.Fatalf("capacity: %s %v", actions(ds), l.Reasons)
	}
	// Common mode: 3 domains corroborated within 60 s (limit 2) → the 3rd
	// waits even with room for concurrency.
	p = newPolicy(t, func(c *PolicyConfig) { c.Hold = 0; c.MaxConcurrentDomains = 3; c.MaxCapacityPercent = 100 })
	var last Decision
	for i, b := range [][2]string{{"gw-01", "rack-a1"}, {"gw-03", "rack-b1"}, {"gw-04", "rack-c1"}} {
		at := t0.Add(time.Duration(i) * time.Second)
		ds := p.Alert(at, alert(b[1], b[0], b[1], wire.CategoryThermal, wire.StageEmergency, at))
		last = ds[len(ds)-1]
	}
	if last.Action != ActBlock || !strings.Contains(last.Evac.Blocked, "common-mode") {
		t.Fatalf("common mode: %s %v", last.Action, last.Reasons)
	}
}

func TestPolicyRefusesEverythingTargets(t *testing.T) {
	topo := &Topology{Domains: []Domain{{ID: "only", Batteries: []Battery{{"gw-01", "b"}}, Hosts: []string{"h1"}}}}
	p, err := NewPolicy("s1", topo, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if r := p.unsafeTargets(nil); !strings.Contains(r, "empty") {
		t.Fatalf("empty list: %q", r)
	}
	if r := p.unsafeTargets([]string{"h1", "*"}); !strings.Contains(r, "wildcard") {
		t.Fatalf("wildcard: %q", r)
	}
	p2 := newPolicy(t, nil)
	if r := p2.unsafeTargets(p2.topo.AllTargets()); !strings.Contains(r, "every host") {
		t.Fatalf("whole site: %q", r)
	}
}

func TestPolicyRestore(t *testing.T) {
	leader := newPolicy(t, nil)
	follower := newPolicy(t, nil)
	a := alert("a", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0)
	ds := leader.Alert(t0, a)
	// The follower missed the first alert and names the evacuation from
	// another one; the leader's record wins.
	fds := follower.Alert(t0, alert("z", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, t0))
	if fds[0].EvacID == ds[0].EvacID {
		t.Fatal("test needs different ids")
	}
	follower.Restore(*ds[0].Evac, true)
	if l := follower.List(); len(l) != 1 || l[0].ID != ds[0].EvacID {
		t.Fatalf("follower list %+v", l)
	}
	// A stale echo does not regress the leader.
	ev := *ds[0].Evac
	leader.Approve(t0.Add(time.Second), ev.ID, "x", "")
	if leader.Restore(ev, false) {
		t.Fatal("stale record installed on the leader")
	}
	if got, _ := leader.Get(ev.ID); got.State != StateEvacuating {
		t.Fatalf("leader state %s", got.State)
	}
}

func BenchmarkPolicyAlert(b *testing.B) {
	p, _ := NewPolicy("s1", testTopo(), DefaultPolicy())
	a := alert("", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		a.ID = "a" + string(rune('a'+i%26)) + time.Duration(i).String()
		p.Alert(t0, a)
		if i%1000 == 0 {
			p.Tick(t0.Add(time.Hour)) // prune seen ids
		}
	}
}

func TestPolicyKeepsBoundedHistory(t *testing.T) {
	p := newPolicy(t, func(c *PolicyConfig) { c.AbortQuiet = 0 })
	for i := range maxKept + 50 {
		now := t0.Add(time.Duration(i) * time.Second)
		ds := p.Alert(now, alert("a"+time.Duration(i).String(), "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, now))
		if _, err := p.Abort(now, ds[0].EvacID, "x", ""); err != nil {
			t.Fatal(err)
		}
	}
	// One active evacuation on another domain survives pruning.
	ds := p.Alert(t0, alert("keep", "gw-03", "rack-b1", wire.CategoryThermal, wire.StageWarning, t0))
	for i := range 30 {
		ev := Evac{ID: "old-" + time.Duration(i).String(), Domain: "ups-3", State: StateAborted, Updated: t0}
		p.Restore(ev, true)
	}
	l := p.List()
	if len(l) > maxKept {
		t.Fatalf("%d evacuations kept, max %d", len(l), maxKept)
	}
	if _, ok := p.Get(ds[0].EvacID); !ok {
		t.Fatal("active evacuation pruned")
	}
}

func TestPolicySiteDryRun(t *testing.T) {
	p := newPolicy(t, func(c *PolicyConfig) { c.DryRun = true })
	ds := p.Alert(t0, alert("a1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0))
	if actions(ds) != ActPrestage || !ds[0].Evac.DryRun || ds[0].Evac.Drill {
		t.Fatalf("site in dry-run: a real warning must prestage as a dry run, not a drill: %s %+v", actions(ds), ds[0].Evac)
	}
	p = newPolicy(t, nil)
	ds = p.Alert(t0, alert("a1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, t0))
	if ds[0].Evac.DryRun {
		t.Fatal("dry run without dry_run or a drill")
	}
}
