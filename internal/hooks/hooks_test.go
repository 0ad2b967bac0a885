package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func testEvac(phase string) *wire.Evacuation {
	return &wire.Evacuation{ID: "ev-1", Site: "s1", Domain: "ups-2", Phase: phase, Urgency: wire.UrgencyNormal,
		Targets: []string{"host-a", "host-b"}, Time: time.Now().UTC(), Reason: wire.EvacReason{AlertIDs: []string{"a1"}, Summary: "x"}}
}

func nolog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecGetsJSONAndEnv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	// Payload fields with shell metacharacters must arrive verbatim.
	ev := testEvac(wire.PhaseEvacuate)
	ev.Reason.Summary = "; rm -rf ~ $(reboot) `id`\nnext"
	ev.DryRun = true
	script := writeScript(t, `cat > "$1"; echo "$EMBER_EVAC_ID $EMBER_PHASE $EMBER_DOMAIN $EMBER_DRILL $EMBER_DRY_RUN $SECRET_TOKEN" >> "$1"`)
	t.Setenv("SECRET_TOKEN", "leak")
	e := &Exec{Argv: []string{script, out}, Timeout: 5 * time.Second}
	body, _ := json.Marshal(ev)
	if err := e.Run(t.Context(), ev, body); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.HasPrefix(got, string(body)) {
		t.Fatalf("stdin not the evacuation JSON: %q", got)
	}
	if !strings.HasSuffix(got, "ev-1 evacuate ups-2 0 1 \n") {
		t.Fatalf("env = %q, want ids, phase, domain, drill=0, dry_run=1 and no SECRET_TOKEN", got[len(body):])
	}
}

func TestExecNonZeroExitIsError(t *testing.T) {
	e := &Exec{Argv: []string{writeScript(t, "echo nope >&2; exit 3")}, Timeout: 5 * time.Second}
	err := e.Run(t.Context(), testEvac("prestage"), []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want exit status 3 with output", err)
	}
	e = &Exec{Argv: []string{"/nonexistent/hook"}}
	if err := e.Run(t.Context(), testEvac("prestage"), nil); !IsPermanent(err) {
		t.Fatalf("missing program: err = %v, want permanent", err)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The hook forks a long-lived child and then hangs.
	script := writeScript(t, `sleep 300 & echo $! > "$1"; sleep 300`)
	e := &Exec{Argv: []string{script, pidFile}, Timeout: 300 * time.Millisecond}
	start := time.Now()
	err := e.Run(t.Context(), testEvac("evacuate"), nil)
	if err == nil || !strings.Contains(err.Error(), "killed process group") {
		t.Fatalf("err = %v, want timeout kill", err)
	}
	if d := time.Since(start); d > 1300*time.Millisecond {
		t.Fatalf("took %v, want <= timeout + 1s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	testenv.WaitFor(t, 2*time.Second, func() error {
		// The child was reparented and killed; it may linger as a zombie
		// of PID 1, so look at its state, not only its existence.
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return nil
		}
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		return errors.New("forked child " + strconv.Itoa(pid) + " still alive")
	})
}

func TestWebhookSignatureAndRetries(t *testing.T) {
	secret := []byte("s3cret")
	recv := &Receiver{Secrets: [][]byte{secret}}
	var calls atomic.Int32
	var got []byte
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := recv.Verify(r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if n < 3 { // fail twice: the sender must retry
			recv.Forget(body)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got = body
		mu.Unlock()
	}))
	defer srv.Close()
	set, err := NewSet([]Spec{{Name: "wh", Type: TypeWebhook, URL: srv.URL, Secret: string(secret), Timeout: 2 * time.Second}}, nil, NewMemLedger(), nolog())
	if err != nil {
		t.Fatal(err)
	}
	set.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	var events []string
	failed := set.RunPhase(t.Context(), testEvac("evacuate"), PhaseOptions{Owner: "c1", OnEvent: func(e Event) { events = append(events, e.Kind) }})
	if failed != 0 || calls.Load() != 3 {
		t.Fatalf("failed=%d calls=%d events=%v, want success on 3rd call", failed, calls.Load(), events)
	}
	var ev wire.Evacuation
	if err := json.Unmarshal(got, &ev); err != nil || ev.ID != "ev-1" || ev.Phase != "evacuate" {
		t.Fatalf("receiver got %q (%v)", got, err)
	}
	// Second run of the same phase: ledger says done, no call.
	set.RunPhase(t.Context(), testEvac("evacuate"), PhaseOptions{Owner: "c1"})
	if calls.Load() != 3 {
		t.Fatalf("phase re-run called the webhook again (%d calls)", calls.Load())
	}
}

func TestWebhookPermanentFailureNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "bad", http.StatusBadRequest)
	}))
	defer srv.Close()
	set, _ := NewSet([]Spec{{Name: "wh", Type: TypeWebhook, URL: srv.URL, Secret: "k"}}, nil, NewMemLedger(), nolog())
	set.Backoff = func(int) time.Duration { return time.Millisecond }
	if failed := set.RunPhase(t.Context(), testEvac("evacuate"), PhaseOptions{}); failed != 1 || calls.Load() != 1 {
		t.Fatalf("failed=%d calls=%d, want 1 and 1 (400 is permanent)", failed, calls.Load())
	}
}

func TestVerifyWebhook(t *testing.T) {
	secret, old := []byte("new"), []byte("old")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"e1"}`)
	good := SignWebhook(secret, now, body)
	cases := []struct {
		name   string
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"valid", good, body, now, nil},
		{"skew within 60s", good, body, now.Add(60 * time.Second), nil},
		{"body modified", good, []byte(`{"id":"e2"}`), now, ErrBadSignature},
		{"wrong secret", SignWebhook([]byte("x"), now, body), body, now, ErrBadSignature},
		{"missing", "", body, now, ErrNoSignature},
		{"no v1", "t=" + strconv.FormatInt(now.Unix(), 10), body, now, ErrNoSignature},
		{"old timestamp", good, body, now.Add(301 * time.Second), ErrStale},
		{"future timestamp", good, body, now.Add(-301 * time.Second), ErrStale},
		{"rotated receiver secret", SignWebhook(old, now, body), body, now, nil},
		{"two v1 from sender", good + ",v1=" + strings.Repeat("ab", 32), body, now, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyWebhook(c.header, c.body, [][]byte{secret, old}, c.at, 0)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// Shared test vector (checked with openssl dgst -sha256 -hmac), so that
	// receivers in other languages can test theirs.
	if v := SignWebhook([]byte("whsec"), time.Unix(1700000000, 0), []byte(`{"id":"x"}`)); v != "t=1700000000,v1=53c863f98a429b819c35087cf6e3f9bcad57da8addfbf41135fafcb6ba9ab225" {
		t.Fatalf("test vector: got %s", v)
	}
}

func TestReceiverRefusesReplay(t *testing.T) {
	r := &Receiver{Secrets: [][]byte{[]byte("k")}}
	now := time.Now()
	body := []byte(`{}`)
	h := http.Header{}
	h.Set(SignatureHeader, SignWebhook([]byte("k"), now, body))
	h.Set(EventIDHeader, "ev-1.evacuate")
	if err := r.Verify(h, body, now); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(h, body, now.Add(time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: err = %v, want ErrReplay", err)
	}
	// A fresh signature for the same event id is still a replay of the event.
	h.Set(SignatureHeader, SignWebhook([]byte("k"), now.Add(2*time.Second), body))
	if err := r.Verify(h, body, now.Add(2*time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("same event id: err = %v, want ErrReplay", err)
	}
}

func TestNATSRequestHook(t *testing.T) {
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int32
	sub, _ := nc.Subscribe("ops.evac", func(m *nats.Msg) {
		var ev wire.Evacuation
		if json.Unmarshal(m.Data, &ev) != nil || m.Header.Get("Ember-Phase") != ev.Phase {
			m.Respond([]byte(`{"ok":false,"error":"bad"}`))
			return
		}
		got.Add(1)
		m.Respond([]byte(`{"ok":true}`))
	})
	defer sub.Unsubscribe()
	nsub, _ := nc.Subscribe("ops.no", func(m *nats.Msg) { m.Respond([]byte(`{"ok":false,"error":"refused"}`)) })
	defer nsub.Unsubscribe()
	set, err := NewSet([]Spec{
		{Name: "ok", Type: TypeNATS, Subject: "ops.evac", Timeout: time.Second},
		{Name: "no", Type: TypeNATS, Subject: "ops.no", Timeout: time.Second, Retries: -1},
	}, nc, NewMemLedger(), nolog())
	if err != nil {
		t.Fatal(err)
	}
	if failed := set.RunPhase(t.Context(), testEvac("prestage"), PhaseOptions{}); failed != 1 || got.Load() != 1 {
		t.Fatalf("failed=%d ok-calls=%d, want 1 failed (refused) and 1 ok", failed, got.Load())
	}
}

func TestKVLedgerExactlyOnceAcrossSets(t *testing.T) {
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	count := filepath.Join(t.TempDir(), "count")
	script := writeScript(t, `echo run >> "$1"; sleep 0.2`)
	spec := []Spec{{Name: "drain", Type: TypeExec, Command: []string{script, count}, Timeout: 5 * time.Second}}
	var sets []*Set
	for range 3 {
		l, err := NewKVLedger(ctx, js, "", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		set, err := NewSet(spec, nil, l, nolog())
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, set)
	}
	// Three "collectors" race on the same phase.
	var wg sync.WaitGroup
	var kinds sync.Map
	for i, set := range sets {
		wg.Go(func() {
			set.RunPhase(ctx, testEvac("evacuate"), PhaseOptions{Owner: "c" + strconv.Itoa(i), OnEvent: func(e Event) {
				v, _ := kinds.LoadOrStore(e.Kind, new(atomic.Int32))
				v.(*atomic.Int32).Add(1)
			}})
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "run"); n != 1 {
		t.Fatalf("hook ran %d times, want 1", n)
	}
	// After completion, a later run sees it done.
	sets[0].RunPhase(ctx, testEvac("evacuate"), PhaseOptions{Owner: "c9", OnEvent: func(e Event) {
		if e.Kind != EventAlreadyDone {
			t.Errorf("event %s after completion, want %s", e.Kind, EventAlreadyDone)
		}
	}})
	e, err := sets[0].Ledger.(*KVLedger).Get(ctx, LedgerKey("ev-1", "evacuate", "drain"))
	if err != nil || e.State != StateDone {
		t.Fatalf("ledger entry %+v, %v; want done", e, err)
	}
}

func TestInDoubtNotRerunUnlessAllowed(t *testing.T) {
	l := NewMemLedger()
	ctx := context.Background()
	key := LedgerKey("ev-1", "evacuate", "h")
	l.Claim(ctx, key, Entry{State: StateStarted, Owner: "dead-leader"}, false)
	count := filepath.Join(t.TempDir(), "count")
	script := writeScript(t, `echo run >> "$1"`)
	for _, rerun := range []bool{false, true} {
		set, _ := NewSet([]Spec{{Name: "h", Type: TypeExec, Command: []string{script, count}, RerunInDoubt: rerun}}, nil, l, nolog())
		set.RunPhase(ctx, testEvac("evacuate"), PhaseOptions{Owner: "new"})
	}
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "run"); n != 1 {
		t.Fatalf("ran %d times, want once (only with rerun_in_doubt)", n)
	}
}

func TestDryRunSkip(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	script := writeScript(t, `echo "$EMBER_DRY_RUN" >> "$1"`)
	set, _ := NewSet([]Spec{
		{Name: "runs", Type: TypeExec, Command: []string{script, count}},
		{Name: "skips", Type: TypeExec, Command: []string{script, count}, DryRun: DryRunSkip},
	}, nil, NewMemLedger(), nolog())
	ev := testEvac("evacuate")
	ev.DryRun = true
	var skipped int
	set.RunPhase(t.Context(), ev, PhaseOptions{OnEvent: func(e Event) {
		if e.Kind == EventSkipped {
			skipped++
		}
	}})
	b, _ := os.ReadFile(count)
	if string(b) != "1\n" || skipped != 1 {
		t.Fatalf("output %q skipped %d, want one run with EMBER_DRY_RUN=1 and one skip", b, skipped)
	}
}

func TestGuardStopsFencedLeader(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	set, _ := NewSet([]Spec{{Name: "h", Type: TypeExec, Command: []string{writeScript(t, `echo run >> "$1"`), count}}}, nil, NewMemLedger(), nolog())
	failed := set.RunPhase(t.Context(), testEvac("evacuate"), PhaseOptions{Guard: func() error { return errors.New("lease lost") }})
	if _, err := os.Stat(count); failed != 1 || err == nil {
		t.Fatalf("fenced leader ran the hook (failed=%d)", failed)
	}
}

func TestValidate(t *testing.T) {
	probs := Validate([]Spec{
		{Name: "a", Type: TypeExec, Command: []string{"sh", "-c", "x"}},
		{Name: "a", Type: TypeWebhook, URL: "ftp://x"},
		{Name: "B!", Type: "smtp"},
		{Name: "n", Type: TypeNATS, Subject: "a.>", Phases: []string{"bogus"}, DryRun: "maybe"},
	})
	want := []string{"hooks[0].command: exec hooks take argv", "hooks[1].name: duplicate", "hooks[1].url:", "hooks[1].secret:",
		"hooks[2].name:", "hooks[2].type:", "hooks[3].phases: unknown phase", "hooks[3].dry_run:", "hooks[3].subject:"}
	var all []string
	for _, p := range probs {
		all = append(all, p.Error())
	}
	joined := strings.Join(all, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing problem %q in:\n%s", w, joined)
		}
	}
}

func TestInferredType(t *testing.T) {
	specs := []Spec{{Name: "a", Exec: []string{"/bin/true"}}, {Name: "b", URL: "https://x", Secret: "k"}, {Name: "c", Subject: "x.y"}, {Name: "d", URL: "https://x", Subject: "x.y"}}
	probs := Validate(specs)
	if len(probs) != 1 || probs[0].Index != 3 || probs[0].Key != "type" {
		t.Fatalf("problems %v, want only hooks[3].type", probs)
	}
	set, err := NewSet(specs[:1], nil, NewMemLedger(), nolog())
	if err != nil || set.Hooks[0].Spec.Type != TypeExec {
		t.Fatalf("set %+v %v", set, err)
	}
}

func TestResolveSecret(t *testing.T) {
	t.Setenv("EMBER_TEST_SECRET", "fromenv")
	f := filepath.Join(t.TempDir(), "s")
	os.WriteFile(f, []byte("fromfile\n"), 0o600)
	for in, want := range map[string]string{"lit": "lit", "${EMBER_TEST_SECRET}": "fromenv", "file:" + f: "fromfile"} {
		if b, err := ResolveSecret(in); err != nil || string(b) != want {
			t.Errorf("ResolveSecret(%q) = %q, %v", in, b, err)
		}
	}
	if _, err := ResolveSecret("${EMBER_NOT_SET_X}"); err == nil {
		t.Error("unset env var accepted")
	}
}

func BenchmarkSignWebhook(b *testing.B) {
	body := make([]byte, 600)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		SignWebhook([]byte("secret"), now, body)
	}
}

func TestExecTemplateScript(t *testing.T) {
	if _, err := os.Stat("/usr/bin/jq"); err != nil {
		t.Skip("jq not installed")
	}
	e := &Exec{Argv: []string{"../../deploy/hooks/exec-template.sh"}, Timeout: 5 * time.Second}
	ev := testEvac(wire.PhaseEvacuate)
	ev.DryRun = true
	body, _ := json.Marshal(ev)
	out := filepath.Join(t.TempDir(), "out")
	// Run through a wrapper to capture its output.
	w := writeScript(t, `../../deploy/hooks/exec-template.sh > "$1"`)
	e.Argv = []string{w, out}
	if err := e.Run(t.Context(), ev, body); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "dry run: would run: echo evacuate: migrate work off host-a") {
		t.Fatalf("template output %q", b)
	}
	ev.Phase = "bogus"
	body, _ = json.Marshal(ev)
	if err := (&Exec{Argv: []string{"../../deploy/hooks/exec-template.sh"}}).Run(t.Context(), ev, body); err == nil {
		t.Fatal("unknown phase accepted")
	}
}

func TestSignVerify(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	s, _ := NewSigner(kp)
	now := time.Now()
	v := NewVerifier([]string{s.PublicKey()}, 30*time.Second, func() time.Time { return now })
	ev := testEvac("evacuate")
	ev.Time, ev.Fence = now, 7
	s.Sign(ev)
	b, _ := json.Marshal(ev)
	if _, err := v.Verify(b); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(b); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	old := *ev
	old.Phase, old.Fence = "abort", 6
	s.Sign(&old)
	b, _ = json.Marshal(&old)
	if _, err := v.Verify(b); !errors.Is(err, ErrFenced) {
		t.Fatalf("lower fence: %v", err)
	}
	stale := *ev
	stale.Phase, stale.Time = "complete", now.Add(-time.Minute)
	s.Sign(&stale)
	b, _ = json.Marshal(&stale)
	if _, err := v.Verify(b); !errors.Is(err, ErrStaleMessage) {
		t.Fatalf("stale: %v", err)
	}
	if _, err := v.Verify([]byte("{")); !errors.Is(err, ErrMalformedEvac) {
		t.Fatalf("malformed: %v", err)
	}
	// A fallback message (no fence) from a trusted agent passes after
	// fenced collector messages.
	akp, _ := nkeys.CreateUser()
	as, _ := NewSigner(akp)
	v2 := NewVerifier([]string{s.PublicKey(), as.PublicKey()}, 0, func() time.Time { return now })
	fb := testEvac("evacuate")
	fb.ID, fb.Time = "fb-1", now
	as.Sign(fb)
	b, _ = json.Marshal(fb)
	v2.maxFence = 9
	if _, err := v2.Verify(b); err != nil {
		t.Fatalf("agent fallback message: %v", err)
	}
}

func TestLoadSigner(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	p := filepath.Join(t.TempDir(), "k.nk")
	os.WriteFile(p, append(seed, '\n'), 0o600)
	s, err := LoadSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); s.PublicKey() != pub {
		t.Fatal("public key mismatch")
	}
	os.WriteFile(p, []byte("not a seed"), 0o600)
	if _, err := LoadSigner(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad seed: %v", err)
	}
}

func BenchmarkVerifyEvacuation(b *testing.B) {
	kp, _ := nkeys.CreateUser()
	s, _ := NewSigner(kp)
	v := NewVerifier([]string{s.PublicKey()}, time.Hour, nil)
	ev := testEvac("evacuate")
	s.Sign(ev)
	data, _ := json.Marshal(ev)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Check(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRateLimit(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	script := writeScript(t, `echo run >> "$1"`)
	set, _ := NewSet([]Spec{{Name: "h", Type: TypeExec, Command: []string{script, count}}}, nil, NewMemLedger(), nolog())
	set.Limit = PerMinute(2) // burst 2, then one every 30 s
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	failed := 0
	for i := range 3 {
		ev := testEvac("evacuate")
		ev.ID = "ev-" + strconv.Itoa(i)
		failed += set.RunPhase(ctx, ev, PhaseOptions{})
	}
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "run"); n != 2 || failed != 1 {
		t.Fatalf("ran %d, failed %d: want 2 runs within the burst and the 3rd waiting past the deadline", n, failed)
	}
	if PerMinute(0) != nil {
		t.Fatal("PerMinute(0) should mean no limit")
	}
}
