package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/sim"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// fastClock runs speed times faster than real time from its start.
type fastClock struct {
	start time.Time
	speed float64
}

func (c fastClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

// TestIntegrationScenarioEndToEnd plays a real-event scenario of the
// detection library on a simulated SunSpec rack served over Modbus TCP;
// the agent polls it, its detector raises the alerts, and a critical alert
// for the right cell arrives on NATS before the scenario's deadline. The
// simulator and the agent share a clock running 100 times faster than
// real time, so the physics (rates per minute) stay true while 40 minutes
// pass in about 25 seconds.
func TestIntegrationScenarioEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a scenario, about 30 s")
	}
	sc, ok := scenario.Get("internal_short")
	if !ok {
		t.Fatal("no internal_short scenario")
	}
	rack := scenario.DefaultRack()
	run := sc.Start(scenario.Options{Period: 2 * time.Second, Seed: 1, Rack: rack})
	dev := run.Devices()[0]
	// The scenario as the simulator's replay: one column per point.
	rp := &sim.Replay{File: "internal_short"}
	cols := map[string]int{}
	for _, p := range dev.Points {
		if p.Kind == drivers.KindNumber {
			cols[p.Name] = len(rp.Names)
			rp.Names = append(rp.Names, p.Name)
			rp.Cols = append(rp.Cols, nil)
		}
	}
	var t0 time.Time
	for run.Next(func(_ string, at time.Time, rs []drivers.Reading, err error) {
		if t0.IsZero() {
			t0 = at
		}
		rp.Times = append(rp.Times, at.Sub(t0).Seconds())
		for i, r := range rs {
			if c, ok := cols[dev.Points[i].Name]; ok {
				v := r.Value
				if err != nil || !r.OK() {
					v = math.NaN()
				}
				rp.Cols[c] = append(rp.Cols[c], v)
			}
		}
	}) {
	}

	clock := fastClock{start: time.Now(), speed: 100}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	profiles, err := LoadProfiles(log, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sim.ParseConfig("sim.yaml", []byte(fmt.Sprintf(`
tick: 50ms
devices:
  - id: rack-a
    profile: sunspec
    listen: tcp://127.0.0.1:0
    unit_id: 1
    rack: {strings: %d, modules: %d, cells: %d}
`, rack.Strings, rack.Modules, rack.Cells)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(cfg, profiles, log, sim.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	played := 0
	for _, name := range rp.Names {
		if _, _, err := s.Value("rack-a", name); err != nil {
			continue // a point the simulated rack does not serve
		}
		if err := s.SetScript("rack-a", sim.Script{Point: name, Kind: "csv", Column: name, Replay: rp}); err != nil {
			t.Fatal(err)
		}
		played++
	}
	if played < 2*rack.N() {
		t.Fatalf("only %d scenario columns played", played)
	}

	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var alerts []wire.Alert
	nc.Subscribe("ember.test-site.alert.>", func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil {
			mu.Lock()
			alerts = append(alerts, a)
			mu.Unlock()
		}
	})
	acfg, err := ParseConfig("agent.yaml", []byte(fmt.Sprintf(
		"site: test-site\nagent_id: gw-1\nheartbeat: 1s\nnats: {servers: [%q]}\ndevices:\n  - {id: rack-a, profile: sunspec, period: 100ms, chemistry: nmc, modbus: {url: %q, unit_id: 1}}\n",
		ns.ClientURL(), s.Addr("rack-a"))))
	if err != nil {
		t.Fatal(err)
	}
	ds := NewDriverSet(log, nil)
	defer ds.Close()
	a, err := New(Options{Config: acfg, Profiles: profiles, Pollers: ds, Publisher: NewNATSPublisher(nc),
		NewDetector: DefaultDetector(nil), Log: log, Now: clock.Now, ClockSynced: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(actx); close(done) }()
	defer func() { stop(); <-done }()

	start := clock.Now()
	deadline := sc.Truth.LatestCritical
	var crit wire.Alert
	testenv.WaitFor(t, time.Duration(float64(deadline)/clock.speed)+20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, al := range alerts {
			if al.Device == "rack-a" && al.Stage >= wire.StageCritical && al.Category != wire.CategorySensorFault && al.Category != wire.CategoryComms {
				crit = al
				return nil
			}
		}
		return fmt.Errorf("no critical alert yet (%d alerts, scenario time %v)", len(alerts), clock.Now().Sub(start).Round(time.Second))
	})
	at := crit.SampleTime.Sub(start)
	t.Logf("critical %s %s at scenario time %v (deadline %v, runaway onset %v): %+v", crit.Category, crit.Component, at.Round(time.Second), deadline, sc.Truth.Onset, crit.Signatures)
	if at > deadline {
		t.Fatalf("critical at %v, after the scenario's deadline %v", at, deadline)
	}
	if at < sc.Truth.EarliestWarning {
		t.Fatalf("critical at %v, before the anomaly exists (%v)", at, sc.Truth.EarliestWarning)
	}
}
