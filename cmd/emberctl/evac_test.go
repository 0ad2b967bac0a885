package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

type evacRig struct {
	natsURL string
	httpURL string
	engine  *evacuate.Engine
	runs    string
}

// newEvacRig runs a real evacuation engine (in-process NATS, an exec hook
// that logs its runs) behind an HTTP server, as a collector would.
func newEvacRig(t *testing.T, hold time.Duration) *evacRig {
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$EMBER_PHASE $EMBER_DRILL $EMBER_DRY_RUN\" >> \""+runs+"\"\n"), 0o755)
	kp, _ := nkeys.CreateUser()
	signer, _ := hooks.NewSigner(kp)
	topo := &evacuate.Topology{Domains: []evacuate.Domain{
		{ID: "ups-1", Batteries: []evacuate.Battery{{Agent: "gw-01", Device: "rack-a1"}}, Hosts: []string{"host-a", "host-b"}},
		{ID: "ups-2", Batteries: []evacuate.Battery{{Agent: "gw-02", Device: "rack-b1"}}, Hosts: []string{"host-c", "host-d"}},
	}}
	pol := evacuate.DefaultPolicy()
	pol.Hold = hold
	e, err := evacuate.New(evacuate.Config{Site: "s1", ID: "col-a", Topology: topo, Policy: pol, Signer: signer,
		LeaseTTL: time.Second, Tick: 20 * time.Millisecond,
		Hooks: []hooks.Spec{{Name: "drain", Command: []string{script}, Timeout: 5 * time.Second}}},
		nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-e.Started()
	testenv.WaitFor(t, 5*time.Second, func() error {
		if !e.IsLeader() {
			return fmt.Errorf("not leader")
		}
		return nil
	})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return &evacRig{natsURL: s.ClientURL(), httpURL: srv.URL, engine: e, runs: runs}
}

func (r *evacRig) hookRuns() string { b, _ := os.ReadFile(r.runs); return string(b) }

func TestDrillInjectEndToEnd(t *testing.T) {
	rig := newEvacRig(t, 300*time.Millisecond)
	reports := t.TempDir()
	var out, errb bytes.Buffer
	err := cmdDrill(t.Context(), []string{"-nats", rig.natsURL, "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-collector", rig.httpURL, "-gap", "100ms", "-quiet", "500ms", "-timeout", "20s", "-by", "tester", "-reports", reports}, &out, &errb)
	if err != nil {
		t.Fatalf("drill: %v\n%s\n%s", err, out.String(), errb.String())
	}
	o := out.String()
	t.Log("\n" + o)
	for _, want := range []string{": OK", "alert", "decision", "hold", "published", "hook_start", "hook_done",
		"evacuate drain", "would have evacuated (2): host-a, host-b", "first evacuate hook", "evacuate decision"} {
		if !strings.Contains(o, want) {
			t.Errorf("report lacks %q:\n%s", want, o)
		}
	}
	// Hooks ran, marked drill and dry run; the drill then completed it.
	testenv.WaitFor(t, 5*time.Second, func() error {
		if r := rig.hookRuns(); r != "prestage 1 1\nevacuate 1 1\ncomplete 1 1\n" {
			return fmt.Errorf("hook runs %q", r)
		}
		return nil
	})
	files, _ := filepath.Glob(filepath.Join(reports, "drill-*.json"))
	if len(files) != 1 {
		t.Fatalf("report files %v", files)
	}
	var rep wire.DrillReport
	b, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(b, &rep); err != nil || !rep.OK || len(rep.Evacuations) < 2 || rep.FirstSample.IsZero() {
		t.Fatalf("stored report %+v %v", rep, err)
	}
	for _, s := range rep.Steps {
		if s.AfterMS < 0 || s.AfterMS > 20000 {
			t.Errorf("step %+v out of range", s)
		}
	}
	nc, _ := nats.Connect(rig.natsURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), DrillReportStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(t.Context()); info.State.Msgs != 1 {
		t.Fatalf("report stream holds %d messages", info.State.Msgs)
	}
}

func TestDrillAgentMode(t *testing.T) {
	rig := newEvacRig(t, 0)
	nc, _ := nats.Connect(rig.natsURL)
	defer nc.Close()
	// A stand-in for the agent's drill handler: answers, then publishes the
	// drill alerts its detector would raise.
	sub, _ := nc.Subscribe(wire.DrillSubject("s1", "gw-01"), func(m *nats.Msg) {
		var req wire.DrillRequest
		json.Unmarshal(m.Data, &req)
		if req.Scenario != "offgas_first" {
			b, _ := json.Marshal(wire.DrillResponse{ID: req.ID, Agent: "gw-01", Error: "unknown scenario", Scenarios: []string{"offgas_first"}})
			m.Respond(b)
			return
		}
		started := time.Now().UTC()
		b, _ := json.Marshal(wire.DrillResponse{ID: req.ID, Agent: "gw-01", OK: true, Started: started})
		m.Respond(b)
		go func() {
			a := wire.Alert{ID: req.ID + "-a", Site: "s1", Agent: "gw-01", Device: req.Device, Category: wire.CategoryThermal,
				Stage: wire.StageCritical, Families: []string{"thermal", "gas"}, SampleTime: started.Add(50 * time.Millisecond),
				Time: time.Now().UTC(), Drill: true}
			b, _ := json.Marshal(&a)
			nc.Publish(wire.AlertSubject("s1", "gw-01", req.Device), b)
		}()
	})
	defer sub.Unsubscribe()
	nc.Flush()
	var out, errb bytes.Buffer
	err := cmdDrill(t.Context(), []string{"-nats", rig.natsURL, "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-mode", "agent", "-collector", rig.httpURL, "-quiet", "300ms", "-timeout", "20s", "-by", "tester", "-store=false"}, &out, &errb)
	if err != nil || !strings.Contains(out.String(), "agent mode") || !strings.Contains(out.String(), ": OK") {
		t.Fatalf("agent-mode drill: %v\n%s", err, out.String())
	}
	out.Reset()
	err = cmdDrill(t.Context(), []string{"-nats", rig.natsURL, "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-mode", "agent", "-scenario", "nope", "-store=false", "-by", "tester"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "scenarios: offgas_first") {
		t.Fatalf("unknown scenario: %v", err)
	}
}

func TestDrillNoCollectorIsIncomplete(t *testing.T) {
	s := testenv.NATS(t)
	var out, errb bytes.Buffer
	err := cmdDrill(t.Context(), []string{"-nats", s.ClientURL(), "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-collector", "", "-gap", "10ms", "-timeout", "1s", "-store=false", "-by", "tester"}, &out, &errb)
	if err == nil || !strings.Contains(out.String(), "INCOMPLETE") || !strings.Contains(out.String(), "no collector decision") {
		t.Fatalf("err %v\n%s", err, out.String())
	}
}

func TestEvacListApproveAbort(t *testing.T) {
	rig := newEvacRig(t, time.Minute)
	nc, _ := nats.Connect(rig.natsURL)
	defer nc.Close()
	for i, dev := range []string{"rack-a1", "rack-b1"} {
		agent := fmt.Sprintf("gw-0%d", i+1)
		a := wire.Alert{ID: "al-" + dev, Site: "s1", Agent: agent, Device: dev, Category: wire.CategoryThermal,
			Stage: wire.StageCritical, Families: []string{"thermal", "gas"}, Time: time.Now()}
		b, _ := json.Marshal(&a)
		nc.Publish(wire.AlertSubject("s1", agent, dev), b)
	}
	nc.Flush()
	var out, errb bytes.Buffer
	testenv.WaitFor(t, 5*time.Second, func() error {
		out.Reset()
		if err := cmdEvac(t.Context(), []string{"list", "-collector", rig.httpURL}, &out, &errb); err != nil {
			return err
		}
		if strings.Count(out.String(), "holding") != 2 {
			return fmt.Errorf("list:\n%s", out.String())
		}
		return nil
	})
	if !strings.Contains(out.String(), "evacuates in") {
		t.Fatalf("list lacks the countdown:\n%s", out.String())
	}
	evs, _ := rig.engine.List(t.Context())
	byDomain := map[string]string{}
	for _, ev := range evs {
		byDomain[ev.Domain] = ev.ID
	}
	if err := cmdEvac(t.Context(), []string{"approve", byDomain["ups-1"], "-collector", rig.httpURL}, &out, &errb); err == nil || !strings.Contains(err.Error(), "-by NAME") {
		t.Fatalf("approve without -by: %v", err)
	}
	out.Reset()
	if err := cmdEvac(t.Context(), []string{"approve", byDomain["ups-1"], "-by", "alice", "-collector", rig.httpURL}, &out, &errb); err != nil || !strings.Contains(out.String(), "state evacuating") {
		t.Fatalf("approve: %v %s", err, out.String())
	}
	out.Reset()
	if err := cmdEvac(t.Context(), []string{"abort", byDomain["ups-2"], "-by", "bob", "-note", "checked", "-collector", rig.httpURL}, &out, &errb); err != nil || !strings.Contains(out.String(), "state aborted") {
		t.Fatalf("abort: %v %s", err, out.String())
	}
	err := cmdEvac(t.Context(), []string{"abort", byDomain["ups-2"], "-by", "bob", "-collector", rig.httpURL}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "not in a state") {
		t.Fatalf("second abort: %v", err)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		r := rig.hookRuns()
		if strings.Count(r, "evacuate 0 0") != 1 || strings.Count(r, "abort 0 0") != 1 {
			return fmt.Errorf("runs %q", r)
		}
		return nil
	})
	out.Reset()
	if err := cmdEvac(t.Context(), []string{"show", byDomain["ups-1"], "-collector", rig.httpURL}, &out, &errb); err != nil || !strings.Contains(out.String(), `"actor": "alice"`) {
		t.Fatalf("show: %v %s", err, out.String())
	}
}

// TestDrillChaos: a drill can run a chaos command mid-way (here a harmless
// one, where an operator would kill a collector or cut an agent's link);
// the report records it and whether the chain still completed.
func TestDrillChaos(t *testing.T) {
	rig := newEvacRig(t, 300*time.Millisecond)
	mark := filepath.Join(t.TempDir(), "chaos-ran")
	var out, errb bytes.Buffer
	err := cmdDrill(t.Context(), []string{"-nats", rig.natsURL, "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-collector", rig.httpURL, "-gap", "100ms", "-quiet", "500ms", "-timeout", "20s", "-by", "tester", "-store=false",
		"-chaos", "touch " + mark, "-chaos-at", "prestage"}, &out, &errb)
	if err != nil {
		t.Fatalf("drill: %v\n%s\n%s", err, out.String(), errb.String())
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("chaos command did not run: %v", err)
	}
	if o := out.String(); !strings.Contains(o, "chaos") || !strings.Contains(o, ": OK") {
		t.Fatalf("report lacks the chaos step or the completed chain:\n%s", o)
	}
	err = cmdDrill(t.Context(), []string{"-nats", rig.natsURL, "-site", "s1", "-agent", "gw-01", "-device", "rack-a1",
		"-chaos", "true", "-chaos-at", "later", "-by", "tester"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "-chaos-at") {
		t.Fatalf("bad -chaos-at accepted: %v", err)
	}
}
