package fallback

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func nolog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type runLog struct{ path, script string }

func newRunLog(t *testing.T) *runLog {
	dir := t.TempDir()
	r := &runLog{path: filepath.Join(dir, "runs"), script: filepath.Join(dir, "hook.sh")}
	os.WriteFile(r.script, []byte("#!/bin/sh\necho \"$1 $EMBER_EVAC_ID $EMBER_PHASE $EMBER_DRY_RUN\" >> \""+r.path+"\"\n"), 0o755)
	return r
}

func (r *runLog) lines() []string {
	b, _ := os.ReadFile(r.path)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func cfg(agent string, rl *runLog) Config {
	return Config{Site: "s1", Agent: agent, Domain: "ups-1", Targets: []string{"host-a"}, Deadline: 300 * time.Millisecond,
		Hooks: []hooks.Spec{{Name: "local", Type: hooks.TypeExec, Command: []string{rl.script, agent}, Timeout: 5 * time.Second}}}
}

func crit(id, agent string, st wire.Stage) wire.Alert {
	return wire.Alert{ID: id, Site: "s1", Agent: agent, Device: "rack-a1", Category: wire.CategoryThermal, Stage: st, Time: time.Now()}
}

func start(t *testing.T, c Config, url string) (*F, *nats.Conn) {
	t.Helper()
	var nc *nats.Conn
	if url != "" {
		var err error
		nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
	}
	f, err := New(c, nc, nolog())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, nc
}

func TestFallbackFiresOnceAcrossAgents(t *testing.T) {
	s := testenv.NATS(t)
	rl := newRunLog(t)
	// Two agents watch batteries of the same domain; no collector runs.
	f1, _ := start(t, cfg("gw-01", rl), s.ClientURL())
	f2, _ := start(t, cfg("gw-02", rl), s.ClientURL())
	f1.OnAlert(t.Context(), crit("a1", "gw-01", wire.StageCritical))
	f2.OnAlert(t.Context(), crit("a2", "gw-02", wire.StageCritical))
	// A repeat alert for the same domain does not make a second deadline.
	f1.OnAlert(t.Context(), crit("a3", "gw-01", wire.StageEmergency))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if n := len(f1.Results()) + len(f2.Results()); n != 2 {
			return fmt.Errorf("%d results", n)
		}
		return nil
	})
	var outcomes []string
	for _, r := range append(f1.Results(), f2.Results()...) {
		outcomes = append(outcomes, r.Outcome)
	}
	if l := rl.lines(); len(l) != 1 || !strings.Contains(l[0], " evacuate 0") {
		t.Fatalf("local hook runs %v (outcomes %v), want exactly one", l, outcomes)
	}
	if !strings.Contains(strings.Join(outcomes, ","), OutcomeStoodDown) {
		t.Fatalf("outcomes %v, want one stood down", outcomes)
	}
	// Emergency raised the urgency of the pending fallback of gw-01.
	if r := f1.Results()[0]; r.Outcome == OutcomeFired && r.Evac.Urgency != wire.UrgencyEmergency {
		t.Fatalf("urgency %s", r.Evac.Urgency)
	}
}

func TestFallbackIsolatedFiresLocally(t *testing.T) {
	rl := newRunLog(t)
	s := testenv.NATS(t)
	f, _ := start(t, cfg("gw-01", rl), s.ClientURL())
	s.Shutdown() // the agent is cut off from everything
	s.WaitForShutdown()
	a := crit("a1", "gw-01", wire.StageCritical)
	a.Drill = true
	f.OnAlert(t.Context(), a)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if len(f.Results()) != 1 {
			return fmt.Errorf("%d results", len(f.Results()))
		}
		return nil
	})
	if r := f.Results()[0]; r.Outcome != OutcomeFiredAlone || !r.Evac.DryRun || r.Failed != 0 {
		t.Fatalf("result %+v", r)
	}
	if l := rl.lines(); len(l) != 1 || !strings.HasSuffix(l[0], "evacuate 1") {
		t.Fatalf("runs %v, want one dry run", l)
	}
	// Without any NATS connection at all, the same.
	f2, _ := start(t, cfg("gw-02", rl), "")
	f2.OnAlert(t.Context(), crit("b1", "gw-02", wire.StageCritical))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if len(rl.lines()) != 2 {
			return fmt.Errorf("runs %v", rl.lines())
		}
		return nil
	})
}

func TestFallbackStandsDownOnCollectorAck(t *testing.T) {
	s := testenv.NATS(t)
	rl := newRunLog(t)
	c := cfg("gw-01", rl)
	c.Deadline = 500 * time.Millisecond
	f, _ := start(t, c, s.ClientURL())
	col, _ := nats.Connect(s.ClientURL())
	defer col.Close()
	f.OnAlert(t.Context(), crit("a1", "gw-01", wire.StageCritical))
	b, _ := json.Marshal(hooks.CollectorAck{AlertID: "a1", Agent: "gw-01", Domain: "ups-1", Decision: "hold", Collector: "col-a", Time: time.Now()})
	col.Publish(hooks.AckSubject("s1", "gw-01"), b)
	col.Flush()
	time.Sleep(800 * time.Millisecond)
	if len(rl.lines()) != 0 || len(f.Results()) != 0 {
		t.Fatalf("fallback fired despite the ack: %v", rl.lines())
	}
}

func TestFallbackSignedEvacuationIsAckUnsignedIsNot(t *testing.T) {
	s := testenv.NATS(t)
	rl := newRunLog(t)
	colKP, _ := nkeys.CreateUser()
	colSigner, _ := hooks.NewSigner(colKP)
	c := cfg("gw-01", rl)
	c.Deadline = 600 * time.Millisecond
	c.TrustedIssuers = []string{colSigner.PublicKey()}
	f, nc := start(t, c, s.ClientURL())
	var secMu sync.Mutex
	var security []wire.Alert
	sub, _ := nc.Subscribe(wire.Wildcard("s1", wire.KindAlert), func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil && a.Category == wire.CategorySecurity {
			secMu.Lock()
			security = append(security, a)
			secMu.Unlock()
		}
	})
	defer sub.Unsubscribe()
	other, _ := nats.Connect(s.ClientURL())
	defer other.Close()
	send := func(sign bool) {
		ev := wire.Evacuation{ID: "ev-x", Site: "s1", Domain: "ups-1", Phase: wire.PhaseEvacuate, Targets: []string{"host-a"}, Time: time.Now().UTC()}
		if sign {
			colSigner.Sign(&ev)
		}
		b, _ := json.Marshal(&ev)
		other.Publish(wire.EvacSubject("s1", "ups-1"), b)
		other.Flush()
	}
	// Unsigned "evacuation" from anyone: refused, security alert, and the
	// fallback still fires at the deadline (it is not an acknowledgement).
	f.OnAlert(t.Context(), crit("a1", "gw-01", wire.StageCritical))
	send(false)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if len(rl.lines()) != 1 {
			return fmt.Errorf("runs %v", rl.lines())
		}
		return nil
	})
	secMu.Lock()
	nsec := len(security)
	secMu.Unlock()
	if nsec != 1 || !strings.Contains(security[0].Summary, "not signed") {
		t.Fatalf("security alerts %+v", security)
	}
	// A signed one from a trusted collector for a drill of the domain
	// stands the fallback down.
	d := crit("b1", "gw-01", wire.StageCritical)
	d.Drill = true
	f.OnAlert(t.Context(), d)
	ev := wire.Evacuation{ID: "ev-y", Site: "s1", Domain: "ups-1", Phase: wire.PhasePrestage, Targets: []string{"host-a"}, Time: time.Now().UTC(), Drill: true}
	colSigner.Sign(&ev)
	b, _ := json.Marshal(&ev)
	other.Publish(wire.EvacSubject("s1", "ups-1"), b)
	other.Flush()
	time.Sleep(900 * time.Millisecond)
	if l := rl.lines(); len(l) != 1 {
		t.Fatalf("fallback fired despite a collector's signed evacuation: %v", l)
	}
}

func TestFallbackIgnoresFaultAlerts(t *testing.T) {
	rl := newRunLog(t)
	f, _ := start(t, cfg("gw-01", rl), "")
	for _, a := range []wire.Alert{
		{ID: "1", Device: "rack-a1", Category: wire.CategorySensorFault, Stage: wire.StageCritical},
		{ID: "2", Device: "rack-a1", Category: wire.CategoryComms, Stage: wire.StageEmergency},
		{ID: "3", Device: "rack-a1", Category: wire.CategoryThermal, Stage: wire.StageWarning},
	} {
		f.OnAlert(context.Background(), a)
	}
	time.Sleep(500 * time.Millisecond)
	if len(rl.lines()) != 0 {
		t.Fatalf("fault alerts fired the fallback: %v", rl.lines())
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Site: "s1", Agent: "gw-01", Domain: "Bad Domain", Targets: []string{"*"}}
	err := c.Validate()
	for _, w := range []string{"domain: must match", "targets[0]", "hooks: no local fallback hook"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}
