package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func script(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func evac(phase string) *wire.Evacuation {
	return &wire.Evacuation{ID: "ev-chaos-1", Site: "chaos", Domain: "ups-1", Phase: phase, Urgency: wire.UrgencyNormal,
		Targets: []string{"host-a", "host-b"}, Time: time.Now().UTC(),
		Reason: wire.EvacReason{AlertIDs: []string{"a1"}, Summary: "cell 3 thermal critical"}}
}

// alive reports whether pid is a live process (a zombie of PID 1, which
// does not reap here, counts as dead).
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && (st[i+2] == 'Z' || st[i+2] == 'X') {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func readPIDs(t testing.TB, f string) []int {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(l); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// TestChaosT17HookTreeKilled: a hook that hangs after forking a tree of
// children, some ignoring SIGTERM, is killed with all its descendants
// within timeout + 1 s.
func TestChaosT17HookTreeKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	// Setup: the hook forks a subshell with a grandchild, a child that
	// ignores TERM and HUP, and hangs itself.
	hook := script(t, `trap '' TERM HUP INT
( sleep 300 & echo $! >> "$1"; sleep 300 ) & echo $! >> "$1"
sh -c 'trap "" TERM HUP; sleep 300' & echo $! >> "$1"
( ( sleep 300 & echo $! >> "$1"; wait ) & echo $! >> "$1"; wait ) & echo $! >> "$1"
echo $$ >> "$1"
sleep 300
`)
	const timeout = 300 * time.Millisecond
	e := &hooks.Exec{Argv: []string{hook, pidFile}, Timeout: timeout}

	// Inject: run it.
	start := time.Now()
	err := e.Run(context.Background(), evac(wire.PhaseEvacuate), nil)
	returned := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "killed process group") {
		t.Fatalf("hanging hook: err %v, want a timeout kill", err)
	}
	pids := readPIDs(t, pidFile)
	if len(pids) < 6 {
		t.Fatalf("hook wrote %d pids before it was killed, want 6 (too slow a machine?)", len(pids))
	}

	// WaitPropagate/Check: every process of the tree is dead.
	var allDead time.Duration
	testenv.WaitFor(t, timeout+2*time.Second, func() error {
		for _, p := range pids {
			if alive(p) {
				return fmt.Errorf("pid %d of the hook tree alive", p)
			}
		}
		allDead = time.Since(start)
		return nil
	})
	t.Logf("T17: hook with a tree of %d processes (TERM ignored): Run returned after %v, all dead after %v (criterion <= timeout %v + 1s)",
		len(pids), returned.Round(time.Millisecond), allDead.Round(time.Millisecond), timeout)
	if allDead > timeout+time.Second {
		t.Errorf("tree dead after %v", allDead)
	}
}

// TestChaosT17HookRetriesAudited: a failing hook is attempted at most 3
// times, and every attempt leaves one start and one failure record.
func TestChaosT17HookRetriesAudited(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	hook := script(t, `echo run >> "$1"; exit 3`)
	set, err := hooks.NewSet([]hooks.Spec{{Name: "drain", Command: []string{hook, runs}, Timeout: 5 * time.Second}}, nil, hooks.NewMemLedger(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	kinds := map[string]int{}
	var gaps []time.Time
	set.Backoff = func(n int) time.Duration { return hooks.Backoff(n) / 10 }
	failed := set.RunPhase(context.Background(), evac(wire.PhaseEvacuate), hooks.PhaseOptions{Owner: "c1", OnEvent: func(e hooks.Event) {
		mu.Lock()
		kinds[e.Kind]++
		if e.Kind == hooks.EventStart {
			gaps = append(gaps, e.Time)
		}
		mu.Unlock()
	}})
	n := strings.Count(mustRead(t, runs), "run")
	if failed != 1 || n != 3 {
		t.Fatalf("failed %d, %d executions; want 1 failed hook after 3 attempts", failed, n)
	}
	if kinds[hooks.EventStart] != n || kinds[hooks.EventAttemptFail] != n || kinds[hooks.EventFailed] != 1 {
		t.Fatalf("events %v for %d executions: want one start and one attempt_failed per attempt, one failed", kinds, n)
	}
	// Running the phase again does not run the hook again (ledger).
	set.RunPhase(context.Background(), evac(wire.PhaseEvacuate), hooks.PhaseOptions{Owner: "c1"})
	if m := strings.Count(mustRead(t, runs), "run"); m != n {
		t.Fatalf("second RunPhase executed the failed hook again (%d runs)", m)
	}
	t.Logf("T17: failing hook: %d attempts (criterion <= 3) with backoffs %v, %v; audit events %v (1 start + 1 failure per attempt)",
		n, gaps[1].Sub(gaps[0]).Round(time.Millisecond), gaps[2].Sub(gaps[1]).Round(time.Millisecond), kinds)
}

func mustRead(t testing.TB, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAttackT17ShellInjection: payload fields full of shell syntax reach
// exec hooks (our argv-only runner and the shipped template script) as
// data: no command in them ever runs.
func TestAttackT17ShellInjection(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	template, err := filepath.Abs("../../deploy/hooks/exec-template.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("jq"); err != nil {
		testenv.Need(t, "jq")
	}
	payloads := []string{
		"; touch " + pwned, "$(touch " + pwned + ")", "`touch " + pwned + "`", "\ntouch " + pwned,
		"| touch " + pwned, "&& touch " + pwned, "' ; touch " + pwned + " ; '", `"; touch ` + pwned + `; "`,
		"${IFS}touch${IFS}" + pwned, "host-a\x00; touch " + pwned, "-rf ~", "$((1+1))$(id)",
	}
	rng := rand.New(rand.NewPCG(17, 17))
	meta := []string{";", "|", "&", "$(", ")", "`", "\n", "'", `"`, "\\", "*", "?", "~", " ", "${IFS}", ">", "<"}
	for range 20 {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(meta[rng.IntN(len(meta))])
		}
		b.WriteString("touch " + pwned)
		for range rng.IntN(3) {
			b.WriteString(meta[rng.IntN(len(meta))])
		}
		payloads = append(payloads, b.String())
	}
	// A hook that records what it was given, without interpreting it.
	record := script(t, `env > "$1"; cat > "$2"`)
	envOut, stdinOut := filepath.Join(dir, "env"), filepath.Join(dir, "stdin")
	runs := 0
	for i, p := range payloads {
		ev := evac(wire.PhaseEvacuate)
		ev.ID = "ev-" + p
		ev.Domain = p
		ev.Reason.Summary = p
		ev.Targets = []string{"host-a", p}
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// Our runner: the values arrive verbatim.
		if err := (&hooks.Exec{Argv: []string{record, envOut, stdinOut}, Timeout: 5 * time.Second}).Run(context.Background(), ev, body); err != nil {
			if strings.ContainsRune(p, 0) {
				continue // a NUL cannot be carried in an environment variable: refused, not run
			}
			t.Fatalf("payload %d: %v", i, err)
		}
		runs++
		if got := mustRead(t, stdinOut); got != string(body) {
			t.Fatalf("payload %d: stdin differs from the JSON", i)
		}
		if env := mustRead(t, envOut); !strings.Contains(env, "EMBER_DOMAIN="+p) {
			t.Fatalf("payload %d: EMBER_DOMAIN not carried verbatim", i)
		}
		// The shipped template, for real (not a dry run).
		for _, phase := range []string{wire.PhasePrestage, wire.PhaseEvacuate, wire.PhaseAbort, wire.PhaseComplete} {
			ev.Phase = phase
			body, _ := json.Marshal(ev)
			e := &hooks.Exec{Argv: []string{template}, Timeout: 5 * time.Second}
			if err := e.Run(context.Background(), ev, body); err != nil && !strings.ContainsRune(p, 0) {
				t.Fatalf("template, payload %d, phase %s: %v", i, phase, err)
			}
			runs++
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("payload %q executed a command", p)
		}
	}
	t.Logf("T17: %d payloads with shell syntax, %d hook runs (argv recorder + deploy/hooks/exec-template.sh, 4 phases): 0 commands executed (criterion 0)", len(payloads), runs)
}

// webhookReceiver is an HTTP receiver using hooks.Receiver, counting what
// it accepted and refused.
type webhookReceiver struct {
	srv               *httptest.Server
	rcv               *hooks.Receiver
	mu                sync.Mutex
	accepted, refused int
	lastHeader        http.Header
	lastBody          []byte
}

func newWebhookReceiver(t testing.TB, secrets ...[]byte) *webhookReceiver {
	w := &webhookReceiver{rcv: &hooks.Receiver{Secrets: secrets, Tolerance: 5 * time.Minute}}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := w.rcv.Verify(r.Header, body, time.Now())
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.refused++
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		w.accepted++
		w.lastHeader, w.lastBody = r.Header.Clone(), body
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// post sends a raw delivery and reports whether it was accepted.
func (w *webhookReceiver) post(t testing.TB, h http.Header, body []byte) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if k == "Content-Length" {
			continue
		}
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// TestAttackT16WebhookForgery: deliveries from our webhook hook to a
// receiver using hooks.Receiver. Every forgery, tampering and replay is
// refused; every genuine delivery within +-60 s of skew, and across a key
// rotation on either side, is accepted.
func TestAttackT16WebhookForgery(t *testing.T) {
	oldKey, newKey, wrong := []byte("old-secret-0123456789"), []byte("new-secret-9876543210"), []byte("attacker-guess")
	w := newWebhookReceiver(t, newKey, oldKey)
	send := func(secret []byte, skew time.Duration, id string) error {
		ev := evac(wire.PhaseEvacuate)
		ev.ID = id
		body, _ := json.Marshal(ev)
		hk := &hooks.Webhook{URL: w.srv.URL, Secret: secret, Timeout: 5 * time.Second, Now: func() time.Time { return time.Now().Add(skew) }}
		return hk.Run(context.Background(), ev, body)
	}
	// Genuine deliveries: must all be accepted.
	genuine := 0
	for i, c := range []struct {
		secret []byte
		skew   time.Duration
	}{{newKey, 0}, {oldKey, 0}, {newKey, 60 * time.Second}, {newKey, -60 * time.Second}, {oldKey, 59 * time.Second}} {
		if err := send(c.secret, c.skew, fmt.Sprintf("ev-good-%d", i)); err != nil {
			t.Errorf("genuine delivery %d (skew %v): %v", i, c.skew, err)
		} else {
			genuine++
		}
	}
	w.mu.Lock()
	capH, capB := w.lastHeader.Clone(), append([]byte(nil), w.lastBody...)
	w.mu.Unlock()
	sig := capH.Get(hooks.SignatureHeader)
	// The sender's rotation: two v1 entries, one of them good, on a new
	// delivery (the same body again would be a replay).
	rotEv := evac(wire.PhaseEvacuate)
	rotEv.ID = "ev-rotated"
	rotB, _ := json.Marshal(rotEv)
	rot := capH.Clone()
	rot.Set(hooks.SignatureHeader, hooks.SignWebhook(wrong, time.Now(), rotB)+","+strings.SplitN(hooks.SignWebhook(newKey, time.Now(), rotB), ",", 2)[1])
	rot.Set(hooks.EventIDHeader, "ev-rotated.evacuate")
	if w.post(t, rot, rotB) {
		genuine++
	} else {
		t.Error("delivery with two v1 signatures (one valid) refused")
	}

	// Attacks.
	type attack struct {
		name string
		h    http.Header
		body []byte
	}
	with := func(f func(h http.Header)) http.Header { h := capH.Clone(); f(h); return h }
	tampered := bytes.Replace(capB, []byte("host-a"), []byte("host-z"), 1)
	ts := strings.SplitN(strings.TrimPrefix(sig, "t="), ",", 2)[0]
	attacks := []attack{
		{"replay-same-event", capH, capB},
		{"body-modified", with(func(h http.Header) { h.Set(hooks.EventIDHeader, "ev-x1") }), tampered},
		{"bad-hmac", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x2")
			h.Set(hooks.SignatureHeader, strings.Replace(sig, "v1=", "v1=00", 1)[:len(sig)])
		}), capB},
		{"missing-header", with(func(h http.Header) { h.Del(hooks.SignatureHeader); h.Set(hooks.EventIDHeader, "ev-x3") }), capB},
		{"wrong-key", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x4")
			h.Set(hooks.SignatureHeader, hooks.SignWebhook(wrong, time.Now(), capB))
		}), capB},
		{"timestamp-swapped", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x5")
			h.Set(hooks.SignatureHeader, strings.Replace(sig, "t="+ts, "t="+strconv.FormatInt(time.Now().Unix()+1, 10), 1))
		}), capB},
		{"old-t-301s", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x6")
			h.Set(hooks.SignatureHeader, hooks.SignWebhook(newKey, time.Now().Add(-301*time.Second), capB))
		}), capB},
		{"future-t-301s", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x7")
			h.Set(hooks.SignatureHeader, hooks.SignWebhook(newKey, time.Now().Add(301*time.Second), capB))
		}), capB},
		{"v0-scheme-only", with(func(h http.Header) {
			h.Set(hooks.EventIDHeader, "ev-x8")
			h.Set(hooks.SignatureHeader, strings.Replace(sig, "v1=", "v0=", 1))
		}), capB},
		{"empty-body", with(func(h http.Header) { h.Set(hooks.EventIDHeader, "ev-x9") }), nil},
	}
	// Random single-byte mutations of a fresh genuine delivery's signature
	// and body.
	rng := rand.New(rand.NewPCG(16, 16))
	for i := range 300 {
		h := capH.Clone()
		h.Set(hooks.EventIDHeader, fmt.Sprintf("ev-m%d", i))
		s := []byte(hooks.SignWebhook(newKey, time.Now(), capB))
		b := append([]byte(nil), capB...)
		if i%2 == 0 {
			// A different printable byte (net/http refuses control bytes).
			j := len("t=") + rng.IntN(len(s)-2)
			// Not a case change either: hex is case-insensitive, so
			// "A" for "a" is the same signature, not a forgery.
			c := s[j]
			for strings.EqualFold(string(c), string(s[j])) {
				c = byte(0x21 + rng.IntN(0x5e))
			}
			s[j] = c
		} else {
			j := rng.IntN(len(b))
			b[j] ^= byte(1 + rng.IntN(255))
		}
		h.Set(hooks.SignatureHeader, string(s))
		attacks = append(attacks, attack{fmt.Sprintf("mutation-%d", i), h, b})
	}
	accepted := 0
	for _, a := range attacks {
		if w.post(t, a.h, a.body) {
			accepted++
			t.Errorf("attack %s accepted", a.name)
		}
	}
	if accepted != 0 {
		t.Fatalf("%d of %d attacks accepted", accepted, len(attacks))
	}
	t.Logf("T16: %d/%d genuine deliveries accepted (skew +-60s, old and new key, sender rotation); %d/%d attacks refused (replay, tampering, bad/missing/wrong-key signature, t outside 300s, %d random mutations)",
		genuine, 6, len(attacks), len(attacks), 300)
}

// TestAttackT16ReplayNewEventID: an attacker who captured one genuine
// delivery resends it within the 5 min tolerance with another
// Ember-Event-Id header, or with none and the signature's hex in upper
// case. Neither header change is covered by the HMAC, so the receiver must
// not let it defeat replay protection: the body (the same evacuation id and
// phase) is the same delivery.
//
// This fails at the time of writing: hooks.Receiver de-duplicates on the
// unsigned Ember-Event-Id header (or on the signature text), so both
// replays are accepted and deploy/hooks/webhook-receiver would run its
// handler again.
func TestAttackT16ReplayNewEventID(t *testing.T) {
	secret := []byte("site-secret-0123456789")
	w := newWebhookReceiver(t, secret)
	ev := evac(wire.PhaseEvacuate)
	body, _ := json.Marshal(ev)
	hk := &hooks.Webhook{URL: w.srv.URL, Secret: secret, Timeout: 5 * time.Second}
	if err := hk.Run(context.Background(), ev, body); err != nil {
		t.Fatalf("genuine delivery: %v", err)
	}
	w.mu.Lock()
	capH, capB := w.lastHeader.Clone(), append([]byte(nil), w.lastBody...)
	w.mu.Unlock()
	var accepted []string
	h := capH.Clone()
	h.Set(hooks.EventIDHeader, "attacker-chosen-1")
	if w.post(t, h, capB) {
		accepted = append(accepted, "same body and signature, new Ember-Event-Id")
	}
	h = capH.Clone()
	h.Del(hooks.EventIDHeader)
	ts, mac, _ := strings.Cut(h.Get(hooks.SignatureHeader), ",v1=")
	h.Set(hooks.SignatureHeader, ts+",v1="+strings.ToUpper(mac))
	if w.post(t, h, capB) {
		accepted = append(accepted, "no Ember-Event-Id, signature hex in upper case")
	}
	if len(accepted) > 0 {
		t.Fatalf("T16: %d replays of one captured delivery accepted within the tolerance: %v (hooks.Receiver keys replay protection on unsigned or non-canonical header text; key it on the signed content: the decoded v1 MAC, or the evacuation id and phase in the body)",
			len(accepted), accepted)
	}
	t.Log("T16: replays under a new event id or a re-spelled signature refused")
}
