package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

const site = "s1"

func nolog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// hookLog is an exec hook that appends "<evac id> <phase> <dry run>" to a
// file: the count of lines is the count of real process runs.
type hookLog struct{ path, script string }

func newHookLog(t *testing.T) *hookLog {
	dir := t.TempDir()
	h := &hookLog{path: filepath.Join(dir, "runs"), script: filepath.Join(dir, "hook.sh")}
	os.WriteFile(h.script, []byte("#!/bin/sh\necho \"$EMBER_EVAC_ID $EMBER_PHASE $EMBER_DRY_RUN\" >> \""+h.path+"\"\n"), 0o755)
	return h
}

func (h *hookLog) spec(name string) hooks.Spec {
	return hooks.Spec{Name: name, Type: hooks.TypeExec, Command: []string{h.script}, Timeout: 5 * time.Second}
}

func (h *hookLog) lines() []string {
	b, _ := os.ReadFile(h.path)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *hookLog) count(phase string) int {
	b, _ := os.ReadFile(h.path)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[1] == phase {
			n++
		}
	}
	return n
}

type auditLog struct {
	mu  sync.Mutex
	rec []AuditRecord
}

func (a *auditLog) add(r AuditRecord) { a.mu.Lock(); a.rec = append(a.rec, r); a.mu.Unlock() }

func (a *auditLog) find(f func(AuditRecord) bool) []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditRecord
	for _, r := range a.rec {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

type testEngine struct {
	*Engine
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
	audit  *auditLog
}

// kill simulates a crash: the connection drops first, so the lease is not
// released and must expire.
func (te *testEngine) kill() {
	te.nc.Close()
	te.cancel()
	<-te.done
}

type engineOpts struct {
	urls     string
	id       string
	kp       nkeys.KeyPair
	trusted  []string
	policy   func(*PolicyConfig)
	hooks    []hooks.Spec
	replicas int
	onAudit  func(AuditRecord)
}

func startEngine(t testing.TB, o engineOpts) *testEngine {
	t.Helper()
	nc, err := nats.Connect(o.urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name(o.id))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := hooks.NewSigner(o.kp)
	if err != nil {
		t.Fatal(err)
	}
	pol := DefaultPolicy()
	pol.Hold = 0
	if o.policy != nil {
		o.policy(&pol)
	}
	al := &auditLog{}
	e, err := New(Config{Site: site, ID: o.id, Topology: testTopo(), Policy: pol, Hooks: o.hooks, Signer: signer,
		TrustedIssuers: o.trusted, LeaseTTL: time.Second, Replicas: o.replicas, Tick: 20 * time.Millisecond,
		OnAudit: func(r AuditRecord) {
			al.add(r)
			if o.onAudit != nil {
				o.onAudit(r)
			}
		}}, nc, nolog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEngine{Engine: e, nc: nc, cancel: cancel, done: make(chan struct{}), audit: al}
	go func() { te.err = e.Run(ctx); close(te.done) }()
	select {
	case <-e.Started():
	case <-te.done:
		t.Fatalf("engine %s: %v", o.id, te.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("engine %s did not start", o.id)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-te.done:
		case <-time.After(10 * time.Second):
			t.Errorf("engine %s did not stop", o.id)
		}
		nc.Close()
	})
	return te
}

func mustKP(t testing.TB) nkeys.KeyPair {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pub(kp nkeys.KeyPair) string { p, _ := kp.PublicKey(); return p }

func publishAlert(t testing.TB, nc *nats.Conn, a wire.Alert) {
	t.Helper()
	b, _ := json.Marshal(&a)
	if err := nc.Publish(wire.AlertSubject(a.Site, a.Agent, a.Device), b); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
}

func waitLeader(t testing.TB, es ...*testEngine) *testEngine {
	t.Helper()
	var l *testEngine
	testenv.WaitFor(t, 10*time.Second, func() error {
		n := 0
		for _, e := range es {
			if e.IsLeader() {
				l = e
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d leaders", n)
		}
		return nil
	})
	return l
}

func connect(t testing.TB, url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// evacWatcher collects verified evacuation messages and security alerts.
type evacWatcher struct {
	mu       sync.Mutex
	valid    []wire.Evacuation
	refused  []error
	security []wire.Alert
	notices  []wire.Alert
	acks     []hooks.CollectorAck
}

func watchSite(t testing.TB, nc *nats.Conn, trusted ...string) *evacWatcher {
	w := &evacWatcher{}
	v := hooks.NewVerifier(trusted, 0, nil)
	s1, _ := nc.Subscribe(wire.Wildcard(site, wire.KindEvac), func(m *nats.Msg) {
		ev, err := v.Verify(m.Data)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.refused = append(w.refused, err)
			return
		}
		w.valid = append(w.valid, ev)
	})
	s2, _ := nc.Subscribe(wire.Wildcard(site, wire.KindAlert), func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		switch a.Category {
		case wire.CategorySecurity:
			w.security = append(w.security, a)
		case CategoryEvacuation:
			w.notices = append(w.notices, a)
		}
	})
	s3, _ := nc.Subscribe("ember."+site+".evacack.>", func(m *nats.Msg) {
		var a hooks.CollectorAck
		if json.Unmarshal(m.Data, &a) == nil {
			w.mu.Lock()
			w.acks = append(w.acks, a)
			w.mu.Unlock()
		}
	})
	nc.Flush()
	t.Cleanup(func() { s1.Unsubscribe(); s2.Unsubscribe(); s3.Unsubscribe() })
	return w
}

func (w *evacWatcher) phases() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, ev := range w.valid {
		out = append(out, ev.Phase)
	}
	return out
}

func TestEngineRealSequenceOncePerHook(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kpA, kpB := mustKP(t), mustKP(t)
	trusted := []string{pub(kpA), pub(kpB)}
	specs := []hooks.Spec{hl.spec("drain"), hl.spec("notify")}
	pol := func(c *PolicyConfig) { c.Hold = 300 * time.Millisecond }
	a := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kpA, trusted: trusted, policy: pol, hooks: specs})
	b := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-b", kp: kpB, trusted: trusted, policy: pol, hooks: specs})
	leader := waitLeader(t, a, b)
	agent := connect(t, s.ClientURL())
	w := watchSite(t, agent, trusted...)

	// The real-event order: off-gas warning, then a cell temperature
	// rate-of-rise critical from the BMS of the same domain.
	now := time.Now()
	publishAlert(t, agent, alert("al-1", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, now))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("prestage") != 2 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	publishAlert(t, agent, alert("al-2", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now()))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("evacuate") != 2 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // room for a wrong extra run to show
	if hl.count("prestage") != 2 || hl.count("evacuate") != 2 {
		t.Fatalf("hook runs %v: want prestage and evacuate once per hook (2 hooks)", hl.lines())
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		if got := strings.Join(w.phases(), ","); got != "prestage,evacuate" {
			return fmt.Errorf("verified messages %q, want prestage,evacuate", got)
		}
		return nil
	})
	w.mu.Lock()
	ev := w.valid[1]
	nrefused, nacks := len(w.refused), len(w.acks)
	w.mu.Unlock()
	if ev.Domain != "ups-1" || strings.Join(ev.Targets, ",") != "host-a,host-b" || ev.Issuer != leader.cfg.Signer.PublicKey() || ev.Fence == 0 {
		t.Fatalf("evacuate message %+v", ev)
	}
	if nrefused != 0 || nacks != 1 {
		t.Fatalf("refused=%d acks=%d, want 0 and 1 (the critical alert)", nrefused, nacks)
	}
	// People were told: the countdown, then the evacuation.
	testenv.WaitFor(t, 2*time.Second, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		var got []string
		for _, n := range w.notices {
			got = append(got, n.Signatures[0].Kind)
		}
		if strings.Join(got, ",") != "evacuation_hold,evacuation_evacuate" {
			return fmt.Errorf("notices %v", got)
		}
		if !strings.Contains(w.notices[0].Summary, "unless aborted (emberctl evac abort "+ev.ID) {
			return fmt.Errorf("hold notice %q", w.notices[0].Summary)
		}
		return nil
	})
	// The audit trail: in the stream and through the callback, with the
	// hold reason.
	holds := leader.audit.find(func(r AuditRecord) bool { return r.Kind == ActHold })
	if len(holds) != 1 || !strings.Contains(strings.Join(holds[0].Reasons, ";"), "families agree") {
		t.Fatalf("hold audit %+v", holds)
	}
	js, _ := jetstream.New(agent)
	testenv.WaitFor(t, 3*time.Second, func() error {
		st, err := js.Stream(t.Context(), AuditStream)
		if err != nil {
			return err
		}
		info, err := st.Info(t.Context())
		if err != nil || info.State.Msgs < 8 {
			return fmt.Errorf("audit stream: %v %v", info, err)
		}
		return nil
	})
	// Both collectors list the evacuation with the same id and state.
	testenv.WaitFor(t, 3*time.Second, func() error {
		for _, e := range []*testEngine{a, b} {
			l, _ := e.List(t.Context())
			if len(l) != 1 || l[0].ID != ev.ID || l[0].State != StateEvacuating {
				return fmt.Errorf("%s lists %+v", e.cfg.ID, l)
			}
		}
		return nil
	})
}

func TestEngineLeaderDiesDuringHold(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kpA, kpB := mustKP(t), mustKP(t)
	trusted := []string{pub(kpA), pub(kpB)}
	specs := []hooks.Spec{hl.spec("drain")}
	pol := func(c *PolicyConfig) { c.Hold = 2 * time.Second }
	a := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kpA, trusted: trusted, policy: pol, hooks: specs})
	waitLeader(t, a)
	b := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-b", kp: kpB, trusted: trusted, policy: pol, hooks: specs})
	agent := connect(t, s.ClientURL())
	publishAlert(t, agent, alert("al-1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now(), families("thermal", "gas")))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("prestage") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	killed := time.Now()
	a.kill() // the leader dies during the hold window
	testenv.WaitFor(t, 5*time.Second, func() error {
		if !b.IsLeader() {
			return errors.New("b not leader")
		}
		return nil
	})
	takeover := time.Since(killed)
	testenv.WaitFor(t, 6*time.Second, func() error {
		if hl.count("evacuate") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if hl.count("prestage") != 1 || hl.count("evacuate") != 1 {
		t.Fatalf("runs %v: want one prestage (by a) and one evacuate (by b)", hl.lines())
	}
	// b saw the prestage as already done, never re-ran it.
	testenv.WaitFor(t, 3*time.Second, func() error {
		done := b.audit.find(func(r AuditRecord) bool { return r.Kind == hooks.EventAlreadyDone && r.Phase == wire.PhasePrestage })
		ran := b.audit.find(func(r AuditRecord) bool { return r.Kind == hooks.EventDone && r.Phase == wire.PhaseEvacuate })
		if len(done) != 1 || len(ran) != 1 {
			return fmt.Errorf("b audit: already_done prestage %d, evacuate done %d", len(done), len(ran))
		}
		return nil
	})
	t.Logf("takeover after leader death: %v", takeover.Round(time.Millisecond))
}

func TestEngineLeaderDiesBetweenPhases(t *testing.T) {
	// Prestage by a; a dies; the critical alert arrives with only b alive.
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kpA, kpB := mustKP(t), mustKP(t)
	trusted := []string{pub(kpA), pub(kpB)}
	specs := []hooks.Spec{hl.spec("drain")}
	a := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kpA, trusted: trusted, hooks: specs})
	waitLeader(t, a)
	b := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-b", kp: kpB, trusted: trusted, hooks: specs})
	agent := connect(t, s.ClientURL())
	publishAlert(t, agent, alert("al-1", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, time.Now()))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("prestage") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	a.kill()
	waitLeader(t, b)
	publishAlert(t, agent, alert("al-2", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now()))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("evacuate") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if l := hl.lines(); hl.count("prestage") != 1 || len(l) != 2 || strings.Fields(l[0])[0] != strings.Fields(l[1])[0] {
		t.Fatalf("runs %v: want one prestage and one evacuate of the same evacuation id", l)
	}
}

func TestEngineClusterNodeKilled(t *testing.T) {
	servers := testenv.NATSCluster(t, 3)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	all := strings.Join(urls, ",")
	hl := newHookLog(t)
	kpA, kpB := mustKP(t), mustKP(t)
	trusted := []string{pub(kpA), pub(kpB)}
	specs := []hooks.Spec{hl.spec("drain")}
	pol := func(c *PolicyConfig) { c.Hold = 500 * time.Millisecond }
	// Each collector prefers a different node.
	a := startEngine(t, engineOpts{urls: urls[0] + "," + all, id: "col-a", kp: kpA, trusted: trusted, policy: pol, hooks: specs, replicas: 3})
	b := startEngine(t, engineOpts{urls: urls[1] + "," + all, id: "col-b", kp: kpB, trusted: trusted, policy: pol, hooks: specs, replicas: 3})
	waitLeader(t, a, b)
	agent, err := nats.Connect(urls[2]+","+all, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	publishAlert(t, agent, alert("al-1", "gw-02", "rack-a1-gas", wire.CategoryGas, wire.StageWarning, time.Now()))
	testenv.WaitFor(t, 10*time.Second, func() error {
		if hl.count("prestage") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	// Kill node 0, the first choice of collector a.
	var victim *server.Server = servers[0]
	victim.Shutdown()
	victim.WaitForShutdown()
	time.Sleep(500 * time.Millisecond)
	publishAlert(t, agent, alert("al-2", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now()))
	testenv.WaitFor(t, 15*time.Second, func() error {
		if hl.count("evacuate") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if hl.count("prestage") != 1 || hl.count("evacuate") != 1 {
		t.Fatalf("runs %v after a node was killed", hl.lines())
	}
	waitLeader(t, a, b)
}

func TestEngineBenignAlertsNoEvacuation(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kp := mustKP(t)
	e := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kp, hooks: []hooks.Spec{hl.spec("drain")}})
	waitLeader(t, e)
	agent := connect(t, s.ClientURL())
	w := watchSite(t, agent, pub(kp))
	now := time.Now()
	for _, a := range []wire.Alert{
		alert("b1", "gw-01", "rack-a1", wire.CategorySensorFault, wire.StageWatch, now),
		alert("b2", "gw-01", "rack-a1", wire.CategoryComms, wire.StageWatch, now),
		alert("b3", "gw-01", "rack-a1", wire.CategorySensorFault, wire.StageCritical, now, families("thermal", "gas")),
		alert("b4", "gw-03", "rack-b1", wire.CategoryEnvironment, wire.StageWatch, now),
		alert("b5", "gw-03", "rack-b1", wire.CategoryThermal, wire.StageNormal, now),
		alert("b6", "gw-99", "nowhere", wire.CategoryThermal, wire.StageEmergency, now),
	} {
		publishAlert(t, agent, a)
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		if n := len(e.audit.find(func(r AuditRecord) bool { return r.Kind == ActIgnore })); n != 6 {
			return fmt.Errorf("%d ignore decisions", n)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	l, _ := e.List(t.Context())
	if len(l) != 0 || len(hl.lines()) != 0 || len(w.phases()) != 0 {
		t.Fatalf("benign alerts caused evacuations %v, hook runs %v, messages %v", l, hl.lines(), w.phases())
	}
}

func TestEngineRefusesForgedAndReplayed(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kp := mustKP(t)
	e := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kp, hooks: []hooks.Spec{hl.spec("drain")}})
	waitLeader(t, e)
	attacker := connect(t, s.ClientURL())
	// Capture a genuine message first.
	var genuine []byte
	got := make(chan struct{}, 1)
	sub, _ := attacker.Subscribe(wire.EvacSubject(site, "ups-1"), func(m *nats.Msg) {
		if genuine == nil {
			genuine = m.Data
			got <- struct{}{}
		}
	})
	attacker.Flush()
	publishAlert(t, attacker, alert("al-1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageWarning, time.Now()))
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no genuine prestage message")
	}
	sub.Unsubscribe()
	testenv.WaitFor(t, 3*time.Second, func() error {
		if len(hl.lines()) != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	w := watchSite(t, attacker)
	base := wire.Evacuation{ID: "ev-evil", Site: site, Domain: "ups-2", Phase: wire.PhaseEvacuate, Urgency: wire.UrgencyEmergency,
		Targets: []string{"host-c"}, Time: time.Now().UTC()}
	send := func(ev wire.Evacuation) {
		b, _ := json.Marshal(&ev)
		attacker.Publish(wire.EvacSubject(site, ev.Domain), b)
	}
	send(base) // unsigned
	evilKP := mustKP(t)
	evil, _ := hooks.NewSigner(evilKP)
	forged := base
	evil.Sign(&forged)
	send(forged) // signed by an unknown key
	var tampered wire.Evacuation
	json.Unmarshal(genuine, &tampered)
	tampered.Targets = []string{"host-a", "host-b", "host-c", "host-d"}
	send(tampered)                                             // genuine signature, altered targets
	attacker.Publish(wire.EvacSubject(site, "ups-1"), genuine) // replay
	attacker.Flush()
	testenv.WaitFor(t, 3*time.Second, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.security) != 4 {
			return fmt.Errorf("%d security alerts", len(w.security))
		}
		return nil
	})
	w.mu.Lock()
	var reasons []string
	for _, a := range w.security {
		reasons = append(reasons, a.Summary)
	}
	w.mu.Unlock()
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"not signed", "allow-list", "does not verify", "already seen"} {
		if !strings.Contains(all, want) {
			t.Errorf("no security alert saying %q in:\n%s", want, all)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if l := hl.lines(); len(l) != 1 {
		t.Fatalf("forged messages ran hooks: %v", l)
	}
	if l, _ := e.List(t.Context()); len(l) != 1 {
		t.Fatalf("forged messages changed evacuations: %+v", l)
	}
}

func TestEngineEmergencySkipsHoldAndDrillIsDryRun(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kp := mustKP(t)
	e := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kp, hooks: []hooks.Spec{hl.spec("drain")},
		policy: func(c *PolicyConfig) { c.Hold = time.Minute }})
	waitLeader(t, e)
	agent := connect(t, s.ClientURL())
	w := watchSite(t, agent, pub(kp))
	start := time.Now()
	publishAlert(t, agent, alert("em-1", "gw-03", "rack-b1", wire.CategoryThermal, wire.StageEmergency, time.Now()))
	d := alert("dr-1", "gw-01", "rack-a1", wire.CategoryGas, wire.StageCritical, time.Now(), families("gas", "thermal"), drill)
	publishAlert(t, agent, d)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("evacuate") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("emergency took %v", took)
	}
	// The message is published in parallel with the hooks: wait for it.
	testenv.WaitFor(t, 5*time.Second, func() error {
		var em wire.Evacuation
		w.mu.Lock()
		for _, ev := range w.valid {
			if ev.Phase == wire.PhaseEvacuate {
				em = ev
			}
		}
		w.mu.Unlock()
		if em.Urgency != wire.UrgencyEmergency || em.Domain != "ups-2" || em.DryRun {
			return fmt.Errorf("emergency evacuation %+v", em)
		}
		return nil
	})
	// The drill is held like a real one (hold 1 min) and marked dry run.
	testenv.WaitFor(t, 5*time.Second, func() error {
		l, _ := e.List(t.Context())
		var dr Evac
		for _, ev := range l {
			if ev.Drill {
				dr = ev
			}
		}
		if dr.State != StateHolding || !dr.DryRun || !strings.Contains(strings.Join(hl.lines(), "|"), dr.ID+" prestage 1") {
			return fmt.Errorf("drill %+v, runs %v", dr, hl.lines())
		}
		return nil
	})
}
