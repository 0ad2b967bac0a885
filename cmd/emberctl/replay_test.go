package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func writeScenario(t *testing.T, name string, period time.Duration, csv bool) string {
	t.Helper()
	s, ok := scenario.Get(name)
	if !ok {
		t.Fatalf("no scenario %s", name)
	}
	run := s.Start(scenario.Options{Period: period, Seed: 3, Rack: scenario.Rack{Strings: 1, Modules: 2, Cells: 8}})
	var b bytes.Buffer
	var err error
	ext := ".lp"
	if csv {
		err, ext = run.WriteCSV(&b), ".csv"
	} else {
		err = run.WriteLineProtocol(&b, "site-a", "gw-1")
	}
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), name+ext)
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func replayOut(t *testing.T, args ...string) []wire.Alert {
	t.Helper()
	var out, errb bytes.Buffer
	if err := cmdReplay(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("replay %v: %v\n%s", args, err, errb.String())
	}
	var as []wire.Alert
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a wire.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		as = append(as, a)
	}
	return as
}

func TestReplayFindsTheEventDeterministically(t *testing.T) {
	f := writeScenario(t, "internal_short", 5*time.Second, false)
	var out1, out2 bytes.Buffer
	if err := cmdReplay(context.Background(), []string{f}, &out1, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := cmdReplay(context.Background(), []string{"-chemistry", "nmc", f}, &out2, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if out1.Len() == 0 || !bytes.Equal(out1.Bytes(), out2.Bytes()) {
		t.Fatalf("replay output empty or not deterministic (%d vs %d bytes)", out1.Len(), out2.Len())
	}
	as := replayOut(t, f)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := scenario.Get("internal_short")
	var crit *wire.Alert
	ids := map[string]bool{}
	for i, a := range as {
		if a.ID == "" || ids[a.ID] {
			t.Fatalf("alert %d: empty or duplicate id %q", i, a.ID)
		}
		ids[a.ID] = true
		if a.Site != "site-a" || a.Agent != "gw-1" || a.Device != "rack-a" || !a.Time.Equal(a.SampleTime) {
			t.Fatalf("alert %d identity: %+v", i, a)
		}
		if crit == nil && a.Stage >= wire.StageCritical && a.Category != wire.CategoryEnvironment {
			crit = &as[i]
		}
	}
	if crit == nil || crit.SampleTime.Sub(start) > s.Truth.LatestCritical {
		t.Fatalf("no critical before %s in replay: %+v", s.Truth.LatestCritical, crit)
	}
}

func TestReplayCSVMatchesLineProtocol(t *testing.T) {
	lp := replayOut(t, writeScenario(t, "overcharge", 10*time.Second, false))
	cs := replayOut(t, writeScenario(t, "overcharge", 10*time.Second, true))
	if len(lp) == 0 || len(lp) != len(cs) {
		t.Fatalf("line protocol gave %d alerts, CSV %d", len(lp), len(cs))
	}
	for i := range lp {
		if lp[i].Summary != cs[i].Summary || !lp[i].SampleTime.Equal(cs[i].SampleTime) {
			t.Fatalf("alert %d differs:\n lp  %s\n csv %s", i, lp[i].Summary, cs[i].Summary)
		}
	}
}

func TestReplayGapIsCommsLoss(t *testing.T) {
	// The comms_loss scenario's failed polls write no lines: replay must
	// see the gap as missed polls, not as nothing.
	as := replayOut(t, writeScenario(t, "comms_loss", time.Second, false))
	found := false
	for _, a := range as {
		if a.Category == wire.CategoryComms && a.Stage == wire.StageWatch {
			found = true
		}
		if a.Stage > wire.StageWatch && a.Category != wire.CategoryEnvironment {
			t.Fatalf("benign comms loss raised %s %s", a.Category, a.Stage)
		}
	}
	if !found {
		t.Fatal("no comms watch from a 3 min gap")
	}
}

func TestReplayInfluxCSV(t *testing.T) {
	var b strings.Builder
	b.WriteString("#datatype,string,long,dateTime:RFC3339,double,string,string,string,string\n")
	b.WriteString(",result,table,_time,_value,_field,device,component,site\n")
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 200 {
		ts := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		for c := 1; c <= 4; c++ {
			v := 3.9 + 0.001*float64((i*7+c*3)%5)
			if c == 2 && i >= 100 {
				v = 3.6 // a 300 mV collapse of one cell
			}
			b.WriteString(",,0," + ts + "," + strings.TrimRight(strings.TrimRight(strconvF(v), "0"), ".") + ",voltage.volts,rack-x,string/1/module/1/cell/" + string(rune('0'+c)) + ",s\n")
		}
	}
	f := filepath.Join(t.TempDir(), "export.csv")
	os.WriteFile(f, []byte(b.String()), 0o644)
	as := replayOut(t, f)
	if len(as) == 0 || as[0].Device != "rack-x" || as[0].Component != "string/1/module/1/cell/2" || as[0].Category != wire.CategoryElectrical {
		t.Fatalf("alerts %+v", as)
	}
}

func strconvF(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.lp")
	os.WriteFile(bad, []byte("ember,device=d voltage.volts=1 1\nember,device=d voltage.volts= 2\n"), 0o644)
	var errb bytes.Buffer
	err := cmdReplay(context.Background(), []string{bad}, &bytes.Buffer{}, &errb)
	if err == nil || !strings.Contains(err.Error(), "bad.lp:2:") {
		t.Fatalf("malformed line: err %v, want bad.lp:2", err)
	}
	if err := cmdReplay(context.Background(), []string{filepath.Join(dir, "missing.lp")}, &bytes.Buffer{}, &errb); err == nil {
		t.Fatal("missing file accepted")
	}
	cfg := filepath.Join(dir, "ov.yaml")
	os.WriteFile(cfg, []byte("site:\n  thermal:\n    delta_wran: 4\n"), 0o644)
	err = cmdReplay(context.Background(), []string{"-config", cfg, bad}, &bytes.Buffer{}, &errb)
	if err == nil || !strings.Contains(err.Error(), "ov.yaml:3: site.thermal.delta_wran: unknown key") {
		t.Fatalf("bad override: %v", err)
	}
}

func TestReplayInflux1CSV(t *testing.T) {
	var b strings.Builder
	b.WriteString("name,time,agent,component,device,site,temperature.celsius,temperature.celsius.fault,voltage.volts\n")
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 200 {
		ts := base + int64(i)*int64(time.Second)
		for c := 1; c <= 4; c++ {
			temp, fault := "25.1", ""
			if c == 3 && i >= 50 {
				temp, fault = "", "sentinel"
			}
			fmt.Fprintf(&b, "ember,%d,gw,string/1/module/1/cell/%d,rack-y,s,%s,%s,%.3f\n", ts, c, temp, fault, 3.9+0.001*float64((i*7+c*3)%5))
		}
	}
	f := filepath.Join(t.TempDir(), "influx1.csv")
	os.WriteFile(f, []byte(b.String()), 0o644)
	as := replayOut(t, f)
	if len(as) != 1 || as[0].Device != "rack-y" || as[0].Agent != "gw" || as[0].Component != "string/1/module/1/cell/3" || as[0].Category != wire.CategorySensorFault {
		t.Fatalf("want one sensor_fault alert for cell 3, got %+v", as)
	}
}
