package demo

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestDemoThermalEvent runs the demo site and checks the scripted event
// goes all the way: the hot cell is read over Modbus, the agent's detector
// raises a critical alert for that cell on NATS, the collector's status
// page serves, and the healthy rack stays quiet.
func TestDemoThermalEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo's scripted event, about a minute")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{HTTP: "127.0.0.1:0", EventAt: 2 * time.Second, Out: io.Discard,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.StatusURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status page: %s", resp.Status)
	}
	testenv.WaitFor(t, 150*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.Alerts {
			if a.Device == "rack-a1" && a.Stage >= wire.StageCritical && a.Component == "string/1/module/3/cell/7" {
				return nil
			}
		}
		return errNoCritical
	})
	// The corroborated event (electrical and thermal on one rack) leads to
	// exactly one prestage and one evacuate of ups-2, in dry run, each
	// calling the hook once; the UPS's domain is left alone.
	testenv.WaitFor(t, 90*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range s.HookCalls {
			if ev.Phase == wire.PhaseEvacuate {
				return nil
			}
		}
		return errorString("no evacuate hook call yet")
	})
	time.Sleep(2 * time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	phases := map[string]int{}
	for _, ev := range s.HookCalls {
		phases[ev.Phase]++
		if ev.Domain != "ups-2" || !ev.DryRun || len(ev.Targets) != 3 {
			t.Errorf("hook call %+v: want a dry run of ups-2's three hosts", ev)
		}
	}
	if phases[wire.PhasePrestage] != 1 || phases[wire.PhaseEvacuate] != 1 {
		t.Errorf("hook calls per phase %v, want one prestage and one evacuate", phases)
	}
	for _, a := range s.Alerts {
		if a.Device == "rack-a2" && a.Stage > wire.StageWatch {
			t.Errorf("healthy rack raised %s %s: %+v", a.Stage, a.Category, a)
		}
	}
}

var errNoCritical = errorString("no critical alert for the hot cell yet")

type errorString string

func (e errorString) Error() string { return string(e) }
