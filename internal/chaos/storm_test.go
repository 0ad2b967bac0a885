package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestChaosT25CommonModeStorm: a BMS bus fault makes 40 domains report
// corroborated critical alerts within 60 s. Automatic evacuation must stay
// within its budgets (1 domain in flight, the capacity share per window)
// and the common-mode breaker must hold the rest for a human.
func TestChaosT25CommonModeStorm(t *testing.T) {
	const zones = 40
	topo := &evacuate.Topology{}
	for i := range zones {
		topo.Domains = append(topo.Domains, evacuate.Domain{ID: fmt.Sprintf("ups-%02d", i), Capacity: 10,
			Batteries: []evacuate.Battery{{Agent: fmt.Sprintf("gw-%02d", i), Device: "bms"}},
			Hosts:     []string{fmt.Sprintf("host-%02d-a", i), fmt.Sprintf("host-%02d-b", i)}})
	}
	cfg := evacuate.DefaultPolicy()
	pol, err := evacuate.NewPolicy("chaos", topo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	// Inject: 40 domains confirmed within 60 s (1.5 s apart), each with
	// two families agreeing (the bus fault looks like a real event).
	var ds []evacuate.Decision
	for i := range zones {
		at := t0.Add(time.Duration(i) * 1500 * time.Millisecond)
		a := wire.Alert{ID: fmt.Sprintf("storm-%d", i), Site: "chaos", Agent: fmt.Sprintf("gw-%02d", i), Device: "bms",
			Category: wire.CategoryThermal, Stage: wire.StageCritical, Families: []string{"thermal", "gas"},
			SampleTime: at, Time: at, Summary: "bus fault"}
		ds = append(ds, pol.Alert(at, a)...)
		ds = append(ds, pol.Tick(at.Add(time.Millisecond))...)
	}
	// WaitPropagate: holds expire.
	for s := range 120 {
		ds = append(ds, pol.Tick(t0.Add(60*time.Second+time.Duration(s)*time.Second))...)
	}

	// Check.
	evacuated := map[string]time.Time{}
	blocked := map[string]string{}
	for _, d := range ds {
		switch d.Action {
		case evacuate.ActEvacuate:
			evacuated[d.Domain] = d.Time
		case evacuate.ActBlock:
			blocked[d.Domain] = d.Evac.Blocked
		}
	}
	capTotal := topo.Capacity()
	var inWindow float64
	for dom, at := range evacuated {
		if at.Sub(t0) < cfg.CapacityWindow || cfg.CapacityWindow == 0 {
			for _, d := range topo.Domains {
				if d.ID == dom {
					inWindow += d.Capacity
				}
			}
		}
	}
	share := 100 * inWindow / capTotal
	inFlight := 0
	for _, e := range pol.List() {
		if e.State == evacuate.StateEvacuating && !e.Drill {
			inFlight++
		}
	}
	reasons := map[string]int{}
	for _, r := range blocked {
		k := r
		if i := strings.IndexAny(k, "(:0123456789"); i > 0 {
			k = strings.TrimSpace(k[:i])
		}
		reasons[k]++
	}
	t.Logf("T25: %d domains confirmed within 60s: %d evacuated automatically (criterion: 1 in flight), %.0f%% of site capacity in the window (policy limit %.0f%%, design 20%%), %d held for approval %v",
		zones, len(evacuated), share, cfg.MaxCapacityPercent, len(blocked), reasons)
	if len(evacuated) > cfg.MaxConcurrentDomains || inFlight > cfg.MaxConcurrentDomains {
		t.Errorf("%d domains evacuated automatically (%d in flight), limit %d", len(evacuated), inFlight, cfg.MaxConcurrentDomains)
	}
	if share > cfg.MaxCapacityPercent {
		t.Errorf("%.0f%% of capacity evacuating, limit %.0f%%", share, cfg.MaxCapacityPercent)
	}
	if len(evacuated)+len(blocked) != zones {
		t.Errorf("%d evacuated + %d blocked of %d confirmed domains: some were neither acted on nor held", len(evacuated), len(blocked), zones)
	}
	cm := 0
	for _, r := range blocked {
		if strings.Contains(r, "common-mode") {
			cm++
		}
	}
	if cm == 0 {
		t.Error("the common-mode breaker never tripped")
	}
}

// TestChaosT25UnsafeTargets: plans whose target set is empty or the whole
// site are refused, whether the topology or the alert leads there.
func TestChaosT25UnsafeTargets(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	crit := wire.Alert{ID: "x", Site: "chaos", Agent: "gw-1", Device: "rack-t", Category: wire.CategoryThermal,
		Stage: wire.StageEmergency, SampleTime: at, Time: at}
	for _, tc := range []struct {
		name string
		topo *evacuate.Topology
	}{
		{"empty-targets", &evacuate.Topology{Domains: []evacuate.Domain{
			{ID: "ups-1", Batteries: []evacuate.Battery{{Agent: "gw-1", Device: "rack-t"}}},
			{ID: "ups-2", Batteries: []evacuate.Battery{{Agent: "gw-2", Device: "rack-u"}}, Hosts: []string{"host-c"}}}}},
		{"whole-site", &evacuate.Topology{Domains: []evacuate.Domain{
			{ID: "ups-1", Batteries: []evacuate.Battery{{Agent: "gw-1", Device: "rack-t"}}, Hosts: []string{"host-a", "host-b"}}}}},
		{"wildcard-host", &evacuate.Topology{Domains: []evacuate.Domain{
			{ID: "ups-1", Batteries: []evacuate.Battery{{Agent: "gw-1", Device: "rack-t"}}, Hosts: []string{"*"}},
			{ID: "ups-2", Batteries: []evacuate.Battery{{Agent: "gw-2", Device: "rack-u"}}, Hosts: []string{"host-c"}}}}},
		{"selector-everything", &evacuate.Topology{Domains: []evacuate.Domain{
			{ID: "ups-1", Batteries: []evacuate.Battery{{Agent: "gw-1", Device: "rack-t"}}, Hosts: []string{"selector:"}},
			{ID: "ups-2", Batteries: []evacuate.Battery{{Agent: "gw-2", Device: "rack-u"}}, Hosts: []string{"host-c"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol, err := evacuate.NewPolicy("chaos", tc.topo, evacuate.DefaultPolicy())
			if err != nil {
				t.Logf("T25 %s: refused at configuration: %v", tc.name, err)
				return
			}
			ds := pol.Alert(at, crit)
			ds = append(ds, pol.Tick(at.Add(time.Minute))...)
			// Prestage (stop placing work, non-destructive) may be issued;
			// the evacuate phase must be refused, or (a one-domain site,
			// whose only domain is the whole site) held for a human.
			var acts []string
			refused := false
			for _, d := range ds {
				acts = append(acts, d.Action)
				if d.Action == evacuate.ActEvacuate {
					t.Fatalf("unsafe target set evacuated: %v targets %v", d.Reasons, d.Evac.Targets)
				}
				if d.Action == evacuate.ActRefuse || (d.Action == evacuate.ActBlock && len(tc.topo.Domains) == 1) {
					refused = true
					t.Logf("T25 %s: %s by the policy: %v", tc.name, d.Action, d.Reasons)
				}
			}
			if !refused {
				t.Fatalf("decisions %v, want a refusal", acts)
			}
			t.Logf("T25 %s: decisions %v", tc.name, acts)
		})
	}
}
