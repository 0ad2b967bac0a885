package scenario_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

var periods = []time.Duration{500 * time.Millisecond, time.Second, 5 * time.Second, 10 * time.Second}

// TestLibrary runs every scenario at 0.5, 1, 5 and 10 s and three noise
// seeds: every real event must warn and reach critical before its
// deadlines (and not before the anomaly exists); no benign scenario may go
// above watch in the thermal, gas or electrical categories. -short uses a
// 16-cell rack (2 modules of 8); the full run uses the default 128-cell rack.
func TestLibrary(t *testing.T) {
	rack := scenario.DefaultRack()
	if testing.Short() {
		rack = scenario.Rack{Strings: 1, Modules: 2, Cells: 8}
	}
	for _, s := range scenario.All() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			for _, p := range periods {
				for seed := uint64(1); seed <= 3; seed++ {
					res := scenario.Evaluate(s, scenario.Options{Period: p, Seed: seed, Rack: rack}, detect.DefaultConfig(s.Chemistry), nil)
					if !res.Pass {
						t.Errorf("period %s seed %d: %s (warning %s, critical %s)", p, seed, res.Why, res.Warning, res.Critical)
					}
					if s.Truth.Real && res.LeadCritical() < 5*time.Minute {
						t.Errorf("period %s seed %d: critical lead %s, want >= 5 min", p, seed, res.LeadCritical())
					}
				}
			}
		})
	}
}

// TestEvaluateCatchesMisses proves the harness fails a detector that is
// blind: with every threshold out of reach a real event must fail.
func TestEvaluateCatchesMisses(t *testing.T) {
	s, _ := scenario.Get("internal_short")
	cfg := detect.DefaultConfig("nmc")
	cfg.Thermal.DeltaWatch, cfg.Thermal.DeltaWarn, cfg.Thermal.DeltaCrit = 500, 600, 700
	cfg.Thermal.TempWatch, cfg.Thermal.TempWarn, cfg.Thermal.TempCrit, cfg.Thermal.TempEmergency = 900, 910, 920, 930
	cfg.Thermal.RateWarn, cfg.Thermal.RateCrit = 1000, 2000
	cfg.Electrical.DevWarn, cfg.Electrical.DevCrit, cfg.Electrical.DipDrop = 10, 20, 10
	cfg.Gas.WatchAbove, cfg.Gas.WarnAbove, cfg.Gas.CritAbove = 1e5, 2e5, 3e5
	res := scenario.Evaluate(s, scenario.Options{Period: 5 * time.Second, Seed: 1, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 16}}, cfg, nil)
	if res.Pass || !strings.Contains(res.Why, "critical") {
		t.Fatalf("blind detector passed: %+v", res)
	}
	// And a benign scenario with a hair-trigger fails as a false alarm.
	b, _ := scenario.Get("heavy_discharge")
	cfg = detect.DefaultConfig("nmc")
	cfg.Thermal.TempWatch, cfg.Thermal.TempWarn, cfg.Thermal.TempCrit = 20, 21, 22
	cfg.Thermal.DeltaCrit = 6
	res = scenario.Evaluate(b, scenario.Options{Period: 5 * time.Second, Seed: 1, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 16}}, cfg, nil)
	if res.Pass {
		t.Fatalf("hair-trigger detector passed a benign scenario: %+v", res)
	}
}

func TestConventionalAlarmIsLate(t *testing.T) {
	s, _ := scenario.Get("internal_short")
	res := scenario.Evaluate(s, scenario.Options{Period: time.Second, Seed: 2, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 16}}, detect.DefaultConfig("nmc"), nil)
	if res.Conventional == scenario.Never || res.LeadConventional() > 2*time.Minute {
		t.Fatalf("conventional 60 degC alarm lead %s: the scenario should defeat it (Kakao: ~0 lead)", res.LeadConventional())
	}
	if res.LeadCritical() < 15*time.Minute {
		t.Fatalf("detector critical lead %s, want >= 15 min", res.LeadCritical())
	}
}

func TestDeterministic(t *testing.T) {
	s, _ := scenario.Get("propagation")
	run := func() []byte {
		var b bytes.Buffer
		scenario.Evaluate(s, scenario.Options{Period: 2 * time.Second, Seed: 7, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 8}}, detect.DefaultConfig("nmc"), func(a wire.Alert) {
			a.ID = detect.AlertID(&a)
			j, _ := json.Marshal(a)
			b.Write(j)
			b.WriteByte('\n')
		})
		return b.Bytes()
	}
	a, b := run(), run()
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two runs differ or are empty (%d vs %d bytes)", len(a), len(b))
	}
}

func TestPeriodIndependentShape(t *testing.T) {
	// The true physics must not depend on the sampling period: the
	// suspect cell's temperature at the same instant agrees within noise.
	s, _ := scenario.Get("external_heating")
	at := 40 * time.Minute
	var got []float64
	for _, p := range periods {
		run := s.Start(scenario.Options{Period: p, Seed: 1, Rack: scenario.Rack{Strings: 1, Modules: 3, Cells: 4}})
		max := 0.0
		for run.Next(func(dev string, ts time.Time, rs []drivers.Reading, err error) {
			if ts.Sub(run.Options.Start) != at {
				return
			}
			for _, r := range rs {
				if r.Point.Field == "temperature.celsius" && strings.Contains(r.Point.Component, "/cell/") && r.Value > max {
					max = r.Value
				}
			}
		}) {
		}
		got = append(got, max)
	}
	for _, v := range got {
		if v < 60 || v-got[0] > 1 || got[0]-v > 1 {
			t.Fatalf("hottest cell at %s by period %v: %v", at, periods, got)
		}
	}
}

func TestLineProtocolExport(t *testing.T) {
	s, _ := scenario.Get("sentinels")
	s.Duration = 30 * time.Second
	run := s.Start(scenario.Options{Period: 10 * time.Second, Rack: scenario.Rack{Strings: 1, Modules: 1, Cells: 4}})
	var b bytes.Buffer
	if err := run.WriteLineProtocol(&b, "site-a", "gw-1"); err != nil {
		t.Fatal(err)
	}
	lines, err := wire.ParseLines(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// 4 rounds x (string + module + 4 cells + device-level) components.
	if len(lines) != 4*7 {
		t.Fatalf("%d lines, want 28:\n%s", len(lines), b.String())
	}
	l := lines[2]
	if l.Tags["device"] != "rack-a" || l.Tags["component"] != "string/1/module/1/cell/1" || l.Tags["site"] != "site-a" {
		t.Fatalf("tags %v", l.Tags)
	}
	if _, ok := l.Fields["temperature.celsius"]; !ok {
		t.Fatalf("fields %v", l.Fields)
	}
}

func TestCSVExport(t *testing.T) {
	s, _ := scenario.Get("comms_loss")
	s.Duration = 20 * time.Second
	var b bytes.Buffer
	if err := s.Start(scenario.Options{Period: 10 * time.Second, Rack: scenario.Rack{Strings: 1, Modules: 1, Cells: 2}}).WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(b.String()), "\n")
	if rows[0] != "time,device,point,value,fault" {
		t.Fatalf("header %q", rows[0])
	}
	if want := 1 + 3*(3+2*3+6); len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	if !strings.Contains(rows[1], "2026-01-01T00:00:00Z,rack-a,string[1].current.amps,") {
		t.Fatalf("row %q", rows[1])
	}
}

func ExampleEvaluate() {
	s, _ := scenario.Get("heavy_discharge")
	res := scenario.Evaluate(s, scenario.Options{Period: 10 * time.Second, Seed: 1, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 8}}, detect.DefaultConfig(s.Chemistry), nil)
	fmt.Println(res.Scenario, res.Pass, res.BenignMax)
	// Output: heavy_discharge true normal
}
