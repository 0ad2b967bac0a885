package chaos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func userKey(t testing.TB) (nkeys.KeyPair, *hooks.Signer) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, err := hooks.NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	return kp, s
}

// refusalReason names the verification error class of err.
func refusalReason(err error) string {
	for _, e := range []error{hooks.ErrUnsigned, hooks.ErrUntrusted, hooks.ErrForged, hooks.ErrStaleMessage,
		hooks.ErrReplayed, hooks.ErrFenced, hooks.ErrMalformedEvac} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "other: " + err.Error()
}

// evacVariants builds n attack messages against a controller whose signer
// is ctl (a stolen-but-permitted NATS credential can publish them all):
// unsigned, foreign keys, a foreign key claiming the controller's issuer,
// genuine signatures over altered content, expired and future messages,
// replays of a genuine message, genuine messages with a stale fencing
// token (an old leader), malformed JSON and garbage signatures.
func evacVariants(t testing.TB, n int, ctl *hooks.Signer, now time.Time, genuine []byte, maxFence uint64) [][]byte {
	t.Helper()
	_, evil := userKey(t)
	rng := rand.New(rand.NewPCG(15, uint64(n)))
	out := make([][]byte, 0, n)
	for i := range n {
		ev := wire.Evacuation{ID: fmt.Sprintf("ev-attack-%d", i), Site: "chaos", Domain: []string{"ups-1", "ups-2"}[i%2],
			Phase: wire.PhaseEvacuate, Urgency: wire.UrgencyEmergency, Targets: []string{"host-a", "host-b"},
			Time: now, Fence: maxFence + 1 + uint64(i)}
		var b []byte
		switch i % 10 {
		case 0: // unsigned
		case 1: // someone else's key
			evil.Sign(&ev)
		case 2: // someone else's key, claiming the controller's identity
			evil.Sign(&ev)
			ev.Issuer = ctl.PublicKey()
		case 3: // genuine signature, altered content
			ctl.Sign(&ev)
			switch rng.IntN(7) {
			case 0:
				ev.Targets = append(ev.Targets, "host-c")
			case 1:
				ev.Phase = wire.PhasePrestage
			case 2:
				ev.Domain = "ups-9"
			case 3:
				ev.DryRun = true
			case 4:
				ev.Fence++
			case 5:
				ev.Time = ev.Time.Add(time.Nanosecond)
			case 6:
				ev.ID += "x"
			}
		case 4: // expired
			ev.Time = now.Add(-31*time.Second - time.Duration(rng.IntN(3600))*time.Second)
			ctl.Sign(&ev)
		case 5: // from the future
			ev.Time = now.Add(31*time.Second + time.Duration(rng.IntN(3600))*time.Second)
			ctl.Sign(&ev)
		case 6: // replay of a genuine message already accepted
			b = genuine
		case 7: // an old leader's fencing token
			ev.Fence = uint64(1 + rng.IntN(int(maxFence-1)))
			ctl.Sign(&ev)
		case 8: // malformed
			g := genuine[:rng.IntN(len(genuine))]
			b = append([]byte(nil), g...)
		case 9: // garbage signature: one bit of the signature flipped (in
			// the bytes: flipping a character of the base64 text can
			// leave the decoded signature unchanged, which is no attack)
			ctl.Sign(&ev)
			sig, err := base64.RawURLEncoding.DecodeString(ev.Signature)
			if err != nil {
				t.Fatal(err)
			}
			sig[rng.IntN(len(sig))] ^= 1 << rng.IntN(8)
			ev.Signature = base64.RawURLEncoding.EncodeToString(sig)
		}
		if b == nil {
			var err error
			if b, err = json.Marshal(&ev); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, b)
	}
	return out
}

// TestAttackT15ForgedEvacVerifier: 10,000 forged, altered, expired,
// replayed and fenced-out evacuation messages against an executor's
// verifier (pinned controller key): 0 accepted, each refusal with its
// reason; genuine messages all accepted.
func TestAttackT15ForgedEvacVerifier(t *testing.T) {
	_, ctl := userKey(t)
	now := time.Now()
	v := hooks.NewVerifier([]string{ctl.PublicKey()}, 30*time.Second, func() time.Time { return now })
	// The genuine stream: the leader's messages, fence 100.
	const fence = 100
	first := wire.Evacuation{ID: "ev-real", Site: "chaos", Domain: "ups-1", Phase: wire.PhasePrestage, Urgency: wire.UrgencyNormal,
		Targets: []string{"host-a"}, Time: now, Fence: fence}
	ctl.Sign(&first)
	genuine, _ := json.Marshal(&first)
	if _, err := v.Verify(genuine); err != nil {
		t.Fatalf("genuine message refused: %v", err)
	}
	n := 10000
	if testing.Short() {
		n = 2000
	}
	variants := evacVariants(t, n, ctl, now, genuine, fence)
	reasons := map[string]int{}
	accepted := 0
	for i, b := range variants {
		ev, err := v.Verify(b)
		if err == nil {
			accepted++
			t.Errorf("variant %d (class %d) accepted: %s %s fence %d", i, i%10, ev.ID, ev.Phase, ev.Fence)
			continue
		}
		reasons[refusalReason(err)]++
	}
	// Control: the controller's genuine messages keep passing.
	good := 0
	for i := range 100 {
		ev := wire.Evacuation{ID: fmt.Sprintf("ev-real-%d", i), Site: "chaos", Domain: "ups-1", Phase: wire.PhaseEvacuate,
			Targets: []string{"host-a"}, Time: now.Add(time.Duration(i-50) * 100 * time.Millisecond), Fence: fence + uint64(i/10)}
		ctl.Sign(&ev)
		b, _ := json.Marshal(&ev)
		if _, err := v.Verify(b); err != nil {
			t.Errorf("genuine message %d refused: %v", i, err)
		} else {
			good++
		}
	}
	if accepted != 0 {
		t.Fatalf("%d of %d attack messages accepted", accepted, n)
	}
	if strings.Contains(fmt.Sprint(reasons), "other:") {
		t.Errorf("refusals without a reason code: %v", reasons)
	}
	t.Logf("T15: %d attack variants, 0 accepted (criterion 0); refusals by reason %v; %d/100 genuine messages accepted", n, reasons, good)
}

// TestAttackT15ForgedEvacEngine: the same attack end to end on NATS
// against a running evacuation engine (the collector): not one hook runs,
// no evacuation appears, every refusal is audited with its reason, and
// the NOC gets a security alert within 5 s of the first one. (Layer 1,
// NATS subject permissions that keep agents and NOC users off
// ember.<site>.evac.>, is tested by internal/selfmon
// TestNATSPermissionsAcrossHubAndLeaf against the shipped accounts.)
func TestAttackT15ForgedEvacEngine(t *testing.T) {
	s := testenv.NATS(t)
	runs := filepath.Join(t.TempDir(), "runs")
	hook := script(t, `echo "$EMBER_EVAC_ID $EMBER_PHASE" >> "$1"`)
	_, ctl := userKey(t)
	var mu sync.Mutex
	refused := map[string]int{}
	e, _ := startEngine(t, s.ClientURL(), "col-a", ctl, []hooks.Spec{{Name: "drain", Command: []string{hook, runs}, Timeout: 5 * time.Second}},
		func(r evacuate.AuditRecord) {
			if r.Kind == "message_refused" {
				mu.Lock()
				refused[strings.SplitN(r.Error, ":", 2)[0]]++
				mu.Unlock()
			}
		})
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !e.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	// The NOC watches security alerts.
	noc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer noc.Close()
	var secMu sync.Mutex
	var firstSec time.Time
	secN := 0
	noc.Subscribe(wire.Wildcard("chaos", wire.KindAlert), func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil && a.Category == wire.CategorySecurity {
			secMu.Lock()
			if firstSec.IsZero() {
				firstSec = time.Now()
			}
			secN++
			secMu.Unlock()
		}
	})
	noc.Flush()

	// Inject: a genuine message is captured by the attacker (any leader
	// message would do; here the controller key signs one with fence 1)
	// and thousands of variants are published.
	g := wire.Evacuation{ID: "ev-captured", Site: "chaos", Domain: "ups-1", Phase: wire.PhasePrestage, Targets: []string{"host-a"}, Time: time.Now(), Fence: 1}
	ctl.Sign(&g)
	genuine, _ := json.Marshal(&g)
	attacker, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	attacker.Publish(wire.EvacSubject("chaos", "ups-1"), genuine)
	n := 2000
	if testing.Short() {
		n = 500
	}
	variants := evacVariants(t, n, ctl, time.Now(), genuine, 50)
	// Class 7 (stale fence) needs a higher fence seen first: the genuine
	// leader's message with fence 50.
	g2 := g
	g2.ID, g2.Fence, g2.Time = "ev-captured-2", 50, time.Now()
	ctl.Sign(&g2)
	b2, _ := json.Marshal(&g2)
	attacker.Publish(wire.EvacSubject("chaos", "ups-1"), b2)
	start := time.Now()
	for i, b := range variants {
		if i%10 == 6 {
			// The replay goes to the other domain's subject too (scope).
			attacker.Publish(wire.EvacSubject("chaos", "ups-2"), b)
			continue
		}
		attacker.Publish(wire.EvacSubject("chaos", []string{"ups-1", "ups-2"}[i%2]), b)
	}
	attacker.Flush()

	// WaitPropagate: every variant refused and audited.
	testenv.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, c := range refused {
			total += c
		}
		if total < n {
			return fmt.Errorf("%d of %d refusals audited", total, n)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // anything slower would show up now

	// Check.
	if b, _ := os.ReadFile(runs); len(b) != 0 {
		t.Fatalf("forged messages ran hooks:\n%s", b)
	}
	if l, _ := e.List(context.Background()); len(l) != 0 {
		t.Fatalf("forged messages created evacuations: %+v", l)
	}
	secMu.Lock()
	lat, nsec := firstSec.Sub(start), secN
	secMu.Unlock()
	if firstSec.IsZero() {
		t.Fatal("no security alert reached the NOC")
	}
	mu.Lock()
	t.Logf("T15 end to end: %d attack messages on ember.chaos.evac.>, 0 hook executions, 0 evacuations (criterion 0); refusals audited by reason %v; first security alert at the NOC after %v (criterion <= 5s), %d security alerts in all",
		n, refused, lat.Round(time.Millisecond), nsec)
	mu.Unlock()
	if lat > 5*time.Second {
		t.Errorf("first security alert after %v", lat)
	}
}

// chaosTopology is two domains of two hosts' worth each, plus a third so
// that neither is the whole site.
func chaosTopology() *evacuate.Topology {
	return &evacuate.Topology{Domains: []evacuate.Domain{
		{ID: "ups-1", Capacity: 30, Batteries: []evacuate.Battery{{Agent: "gw-1", Device: "rack-t"}}, Hosts: []string{"host-a", "host-b"}},
		{ID: "ups-2", Capacity: 30, Batteries: []evacuate.Battery{{Agent: "gw-2", Device: "rack-u"}}, Hosts: []string{"host-c"}},
		{ID: "ups-3", Capacity: 40, Batteries: []evacuate.Battery{{Agent: "gw-3", Device: "rack-v"}}, Hosts: []string{"host-d"}},
	}}
}

// startEngine runs an evacuation engine for site "chaos" until the test
// ends.
func startEngine(t testing.TB, url, id string, signer *hooks.Signer, hs []hooks.Spec, onAudit func(evacuate.AuditRecord)) (*evacuate.Engine, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name(id))
	if err != nil {
		t.Fatal(err)
	}
	pol := evacuate.DefaultPolicy()
	pol.Hold = 0
	e, err := evacuate.New(evacuate.Config{Site: "chaos", ID: id, Topology: chaosTopology(), Policy: pol, Hooks: hs, Signer: signer,
		LeaseTTL: time.Second, Tick: 20 * time.Millisecond, OnAudit: onAudit}, nc, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e, nc, id)
	return e, nc
}

// runEngine runs e until the test ends and waits for it to lead or follow.
func runEngine(t testing.TB, e *evacuate.Engine, nc *nats.Conn, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	select {
	case <-e.Started():
	case <-done:
		t.Fatalf("engine %s stopped at start", id)
	case <-time.After(10 * time.Second):
		t.Fatalf("engine %s did not start", id)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("engine %s did not stop", id)
		}
		nc.Close()
	})
}
