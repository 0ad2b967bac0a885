package spool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// publishRound spools one 1 Hz round of devices: a telemetry message per
// device, plus an alert when alert is set. Ids are prefix-round-device.
func publishRound(t testing.TB, sp *Spool, prefix string, round, devices int, alert bool) {
	t.Helper()
	line := []byte("ember,site=s1,agent=a1,device=ups-00 battery.voltage.volts=54.1,battery.temperature.celsius=25.2 1700000000000000000")
	for d := range devices {
		id := fmt.Sprintf("%s-%d-%d", prefix, round, d)
		if err := sp.Publish(context.Background(), fmt.Sprintf("ember.s1.telemetry.a1.ups-%02d", d), id, line); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	if alert {
		id := fmt.Sprintf("%s-alert-%d", prefix, round)
		if err := sp.Publish(context.Background(), "ember.s1.alert.a1.ups-00", id, []byte(`{"id":"`+id+`","level":"warning"}`)); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
}

// checkExactlyOnce fails unless every wanted id is stored exactly once and
// nothing else is stored.
func checkExactlyOnce(t testing.TB, msgs []stored, want map[string]bool) {
	t.Helper()
	counts := idCounts(msgs)
	for id := range want {
		if counts[id] != 1 {
			t.Errorf("msg id %s stored %d times, want once", id, counts[id])
		}
	}
	for id, n := range counts {
		if !want[id] {
			t.Errorf("unexpected msg id %s stored %d times", id, n)
		}
	}
}

// TestBrokerOutage (T1, shortened): the broker goes away while the agent
// keeps spooling, comes back on the same port and store; everything
// arrives exactly once and the outage's alerts are stored before its
// telemetry.
//
// With nats.go's reconnect buffer left on (agent.ConnectNATS's default),
// batches the forwarder published while disconnected are replayed from
// that buffer on reconnect, before the spool's retry: still exactly once
// (de-duplicated), but alerts-first only holds without the buffer.
func TestBrokerOutage(t *testing.T) {
	t.Run("no reconnect buffer", func(t *testing.T) { testBrokerOutage(t, true) })
	t.Run("8 MiB reconnect buffer", func(t *testing.T) { testBrokerOutage(t, false, nats.ReconnectBufSize(8<<20)) })
}

func testBrokerOutage(t *testing.T, strictOrder bool, natsOpts ...nats.Option) {
	storeDir := t.TempDir()
	s := testenv.NATSWithStore(t, storeDir, -1)
	port := serverPort(t, s)
	// A long MaxBackoff: the forwarder is woken by the reconnect, not by
	// its timer.
	sp, err := Open(t.TempDir(), Options{MaxBackoff: 10 * time.Second, AckTimeout: time.Second}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	natsOpts = append(natsOpts, nats.ReconnectHandler(func(*nats.Conn) { sp.Kick() }))
	_, js := connect(t, s.ClientURL(), natsOpts...)
	createStreams(t, js)
	runForwarder(t, sp, js)

	const devices = 20
	wantTel, wantAlert := map[string]bool{}, map[string]bool{}
	round := func(prefix string, r int, alert bool) {
		publishRound(t, sp, prefix, r, devices, alert)
		for d := range devices {
			wantTel[fmt.Sprintf("%s-%d-%d", prefix, r, d)] = true
		}
		if alert {
			wantAlert[fmt.Sprintf("%s-alert-%d", prefix, r)] = true
		}
	}
	for r := range 5 {
		round("before", r, r == 2)
	}
	drain(t, sp, 10*time.Second)

	stopServer(s)
	for r := range 60 {
		round("outage", r, r%10 == 9) // the alerts come after most of the telemetry
	}
	st := sp.Stats()
	if st.TelemetryDepth != 60*devices || st.AlertDepth != 6 {
		t.Fatalf("during the outage: depth %d telemetry %d alerts, want %d and 6", st.TelemetryDepth, st.AlertDepth, 60*devices)
	}
	t.Logf("during outage: %+v", st)

	// Let the backoff grow: after the 6th failure the forwarder sleeps
	// 1.6–4.8 s, so only the reconnect's Kick gets the alerts out in 1 s.
	// (With the reconnect buffer each failure is an ack timeout of 1 s:
	// one is enough there.)
	minFailures := uint64(6)
	if !strictOrder {
		minFailures = 1
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := sp.Stats().ForwardFailures; n < minFailures {
			return fmt.Errorf("%d forwarding failures", n)
		}
		return nil
	})
	restarted := time.Now()
	testenv.NATSWithStore(t, storeDir, port)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if st := sp.Stats(); st.AlertDepth > 0 {
			return fmt.Errorf("%d alerts not forwarded", st.AlertDepth)
		}
		return nil
	})
	alertLatency := time.Since(restarted)
	drain(t, sp, 30*time.Second)
	t.Logf("outage alerts stored %v after the restart", alertLatency.Round(time.Millisecond))
	if alertLatency > time.Second {
		t.Errorf("alerts stored %v after the server came back, want <= 1s (T1)", alertLatency)
	}
	t.Logf("backlog of %d messages drained %v after the restart", 60*devices+6, time.Since(restarted).Round(time.Millisecond))
	for r := range 3 {
		round("after", r, r == 1)
	}
	drain(t, sp, 10*time.Second)

	tel := streamMsgs(t, js, streamTelemetry)
	alerts := streamMsgs(t, js, streamAlerts)
	checkExactlyOnce(t, tel, wantTel)
	checkExactlyOnce(t, alerts, wantAlert)

	var lastOutageAlert, firstOutageTel time.Time
	for _, m := range alerts {
		if strings.HasPrefix(m.id, "outage-") && m.at.After(lastOutageAlert) {
			lastOutageAlert = m.at
		}
	}
	for _, m := range tel {
		if strings.HasPrefix(m.id, "outage-") && (firstOutageTel.IsZero() || m.at.Before(firstOutageTel)) {
			firstOutageTel = m.at
		}
	}
	if strictOrder && !lastOutageAlert.Before(firstOutageTel) {
		t.Errorf("last outage alert stored at %v, first outage telemetry at %v: alerts must go first", lastOutageAlert, firstOutageTel)
	}
	// Within the telemetry stream the spool's order is kept.
	for i := 1; i < len(tel); i++ {
		if tel[i].seq <= tel[i-1].seq {
			t.Fatalf("stream order broken at %d", i)
		}
	}
	prev := -1
	for _, m := range tel {
		if !strictOrder {
			break
		}
		if !strings.HasPrefix(m.id, "outage-") {
			continue
		}
		var r, d int
		fmt.Sscanf(strings.TrimPrefix(m.id, "outage-"), "%d-%d", &r, &d)
		if k := r*devices + d; k != prev+1 {
			t.Fatalf("outage telemetry out of order: %s after #%d", m.id, prev)
		} else {
			prev = k
		}
	}
	end := sp.Stats()
	if end.TelemetryPublished != uint64(len(wantTel)) || end.AlertsPublished != uint64(len(wantAlert)) || end.TelemetryDropped != 0 {
		t.Errorf("counters %+v, want %d telemetry and %d alerts published, none dropped", end, len(wantTel), len(wantAlert))
	}
}

// TestKill9 (T1's crash half): a child process forwards a first lot, loses
// the broker, spools a second lot and keeps appending until it is
// SIGKILLed. A new spool on the same directory forwards everything the
// child's Publish accepted, each message exactly once in the stream (the
// first lot, acked but not yet compacted, is replayed and de-duplicated).
func TestKill9(t *testing.T) {
	if os.Getenv("SPOOL_CHILD") == "1" {
		kill9Child(t)
		return
	}
	storeDir := t.TempDir()
	s := testenv.NATSWithStore(t, storeDir, -1)
	port := serverPort(t, s)
	url := s.ClientURL()
	_, js := connect(t, url)
	createStreams(t, js)
	spoolDir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SPOOL_CHILD=1", "SPOOL_DIR="+spoolDir, "SPOOL_NATS="+url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before %q; stderr:\n%s", want, stderr.String())
				}
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("child did not say %q in 30s; stderr:\n%s", want, stderr.String())
			}
		}
	}
	expect("forwarded")
	stopServer(s)
	io.WriteString(stdin, "go\n")
	expect("spooled")
	time.Sleep(30 * time.Millisecond) // let the child be mid-append when it dies
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit: %v, want killed", err)
	}

	testenv.NATSWithStore(t, storeDir, port)
	sp, err := Open(spoolDir, Options{MaxBackoff: 200 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st := sp.Stats()
	t.Logf("reopened after kill -9: %d telemetry, %d alerts on disk, %d corrupt", st.TelemetryDepth, st.AlertDepth, st.Corrupt)
	runForwarder(t, sp, js)
	drain(t, sp, 30*time.Second)

	tel := streamMsgs(t, js, streamTelemetry)
	alerts := streamMsgs(t, js, streamAlerts)
	wantTel, wantAlert := map[string]bool{}, map[string]bool{}
	for _, lot := range []string{"first", "second"} {
		for r := range kill9Rounds {
			for d := range kill9Devices {
				wantTel[fmt.Sprintf("%s-%d-%d", lot, r, d)] = true
			}
			wantAlert[fmt.Sprintf("%s-alert-%d", lot, r)] = true
		}
	}
	// The extras the child appended until it died must form a prefix:
	// every one whose Publish returned is there, none twice.
	extra := 0
	counts := idCounts(tel)
	for counts[fmt.Sprintf("extra-%d-0", extra)] == 1 {
		wantTel[fmt.Sprintf("extra-%d-0", extra)] = true
		extra++
	}
	t.Logf("child appended %d extra messages before SIGKILL", extra)
	checkExactlyOnce(t, tel, wantTel)
	checkExactlyOnce(t, alerts, wantAlert)
	if st.Corrupt != 0 {
		t.Errorf("%d corrupt entries after kill -9", st.Corrupt)
	}
}

const kill9Rounds, kill9Devices = 10, 20

// kill9Child is the agent side of TestKill9.
func kill9Child(t *testing.T) {
	sp, err := Open(os.Getenv("SPOOL_DIR"), Options{MaxBackoff: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, js := connect(t, os.Getenv("SPOOL_NATS"))
	go sp.Run(context.Background(), js)
	for r := range kill9Rounds {
		publishRound(t, sp, "first", r, kill9Devices, true)
	}
	drain(t, sp, 20*time.Second)
	fmt.Println("forwarded")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	for r := range kill9Rounds {
		publishRound(t, sp, "second", r, kill9Devices, true)
	}
	fmt.Println("spooled")
	for i := 0; ; i++ {
		publishRound(t, sp, "extra", i, 1, false)
	}
}
