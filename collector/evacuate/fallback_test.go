package evacuate

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/hooks/fallback"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// The agent's fallback stands down while a collector leads, and fires once
// when the collectors are gone.
func TestFallbackWithAndWithoutCollector(t *testing.T) {
	s := testenv.NATS(t)
	colHooks, agentHooks := newHookLog(t), newHookLog(t)
	kp := mustKP(t)
	e := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kp, hooks: []hooks.Spec{colHooks.spec("drain")},
		policy: func(c *PolicyConfig) { c.Hold = time.Minute }})
	waitLeader(t, e)
	agentNC, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer agentNC.Close()
	fb, err := fallback.New(fallback.Config{Site: site, Agent: "gw-01", Domain: "ups-1", Targets: []string{"host-a"},
		Deadline: 700 * time.Millisecond, TrustedIssuers: []string{pub(kp)},
		Hooks: []hooks.Spec{agentHooks.spec("local-shutdown")}}, agentNC, nolog())
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	// The agent publishes its critical alert and tells its fallback.
	a := alert("c-1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now())
	publishAlert(t, agentNC, a)
	fb.OnAlert(t.Context(), a)
	time.Sleep(1200 * time.Millisecond)
	if l := agentHooks.lines(); len(l) != 0 || len(fb.Results()) != 0 {
		t.Fatalf("fallback fired while a collector leads: %v", l)
	}
	// The collector dies; the next critical alert finds nobody.
	e.kill()
	b := alert("c-2", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageEmergency, time.Now())
	publishAlert(t, agentNC, b)
	fb.OnAlert(t.Context(), b)
	testenv.WaitFor(t, 5*time.Second, func() error {
		// The hook's line is written before the fallback records its
		// result, so wait for both.
		if len(agentHooks.lines()) != 1 || len(fb.Results()) != 1 {
			return fmt.Errorf("fallback runs %v, results %d", agentHooks.lines(), len(fb.Results()))
		}
		return nil
	})
	if r := fb.Results(); len(r) != 1 || r[0].Outcome != fallback.OutcomeFired || r[0].Evac.Urgency != wire.UrgencyEmergency {
		t.Fatalf("results %+v", r)
	}
}
