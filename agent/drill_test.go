package agent

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestIntegrationDrill: emberctl drill asks an agent to run a scenario on
// a device; the alerts it causes are marked drill: true end to end, and
// the device's real detector and readings are untouched.
func TestIntegrationDrill(t *testing.T) {
	s := newSite(t, twoRacksAndUPS)
	var mu sync.Mutex
	var alerts []wire.Alert
	s.nc.Subscribe("ember.test-site.alert.>", func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil {
			mu.Lock()
			alerts = append(alerts, a)
			mu.Unlock()
		}
	})
	s.startAgent(t, s.agentYAML(t, "500ms", "rack-a1"))
	ask := func(req wire.DrillRequest) wire.DrillResponse {
		data, _ := json.Marshal(req)
		var m *nats.Msg
		testenv.WaitFor(t, 5*time.Second, func() (err error) {
			m, err = s.nc.Request(wire.DrillSubject("test-site", "gw-1"), data, 5*time.Second)
			return err // no responders until the agent has subscribed
		})
		var resp wire.DrillResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := ask(wire.DrillRequest{ID: "d0", Device: "rack-a1", Scenario: "no-such"}); r.OK || len(r.Scenarios) == 0 {
		t.Fatalf("unknown scenario: %+v", r)
	}
	if r := ask(wire.DrillRequest{ID: "d0", Device: "no-such", Scenario: "internal_short"}); r.OK {
		t.Fatalf("unknown device accepted: %+v", r)
	}
	r := ask(wire.DrillRequest{ID: "d1", Device: "rack-a1", Scenario: "internal_short", Speed: 600, By: "test"})
	if !r.OK || r.Started.IsZero() {
		t.Fatalf("drill refused: %+v", r)
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range alerts {
			if a.Device == "rack-a1" && a.Stage >= wire.StageCritical {
				if !a.Drill {
					return fmt.Errorf("drill alert not marked drill: %+v", a)
				}
				return nil
			}
		}
		return fmt.Errorf("no critical drill alert yet (%d alerts)", len(alerts))
	})
	mu.Lock()
	defer mu.Unlock()
	for _, a := range alerts {
		if a.Device == "rack-a1" && a.Category != wire.CategorySensorFault && a.Category != wire.CategoryComms && !a.Drill {
			t.Errorf("a real alert during a drill: %+v", a)
		}
	}
}
