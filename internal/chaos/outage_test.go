package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/agent/spool"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestHelperProcessAgent is not a test: it is the body of a child process
// playing an agent's publishing side (T1): it samples at CHAOS_RATE
// messages/s into the spool in CHAOS_DIR, forwards to CHAOS_NATS, prints
// "P <seq>" after each Publish returned, raises one alert after
// CHAOS_ALERT_AFTER, stops sampling after CHAOS_SAMPLES and keeps
// forwarding until killed.
func TestHelperProcessAgent(t *testing.T) {
	if os.Getenv("CHAOS_CHILD") != "agent" {
		t.Skip("helper process for TestChaosT1BrokerOutageAndKill")
	}
	boot := os.Getenv("CHAOS_BOOT")
	rate, _ := strconv.Atoi(os.Getenv("CHAOS_RATE"))
	samples, _ := strconv.Atoi(os.Getenv("CHAOS_SAMPLES"))
	alertAfter, _ := time.ParseDuration(os.Getenv("CHAOS_ALERT_AFTER"))
	cfg := agent.NATSConfig{Servers: []string{os.Getenv("CHAOS_NATS")}, PingInterval: time.Second, MaxPingsOut: 2, ReconnectBufBytes: -1}
	nc, err := agent.ConnectNATS(cfg, "gw-1-"+boot)
	if err != nil {
		t.Fatal(err)
	}
	opts := spool.Options{AckTimeout: time.Second, MaxBackoff: 200 * time.Millisecond}
	js, err := spool.NewJetStream(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(os.Getenv("CHAOS_DIR"), opts, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	go sp.Run(context.Background(), js)
	out := os.Stdout // unbuffered: a line is out as soon as Publish returned
	ctx := context.Background()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	alerted := alertAfter <= 0
	for seq := 0; seq < samples; seq++ {
		<-tick.C
		id := fmt.Sprintf("gw-1.rack-1.%s.%d", boot, seq)
		if err := sp.Publish(ctx, wire.TelemetrySubject("chaos", "gw-1", "rack-1"), id, []byte("ember,site=chaos,device=rack-1 v="+strconv.Itoa(seq))); err != nil {
			fmt.Fprintf(os.Stderr, "publish %d: %v\n", seq, err)
			continue
		}
		fmt.Fprintf(out, "P %d\n", seq)
		if !alerted && time.Since(start) >= alertAfter {
			alerted = true
			if err := sp.Publish(ctx, wire.AlertSubject("chaos", "gw-1", "rack-1"), "alert-"+boot, []byte(`{"stage":"warning"}`)); err != nil {
				fmt.Fprintf(os.Stderr, "alert: %v\n", err)
			} else {
				fmt.Fprintln(out, "A")
			}
		}
	}
	fmt.Fprintln(out, "DONE")
	select {} // keep forwarding until killed
}

// child is a running helper process and what it reported.
type child struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	last    int // highest seq whose Publish returned
	alerted bool
	done    chan struct{} // closed at DONE
	stderr  strings.Builder
}

func startChild(t testing.TB, env ...string) *child {
	t.Helper()
	c := &child{last: -1, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcessAgent$", "-test.count=1")
	c.cmd.Env = append(append(os.Environ(), "CHAOS_CHILD=agent"), env...)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l := sc.Text()
			c.mu.Lock()
			switch {
			case strings.HasPrefix(l, "P "):
				if n, err := strconv.Atoi(l[2:]); err == nil {
					c.last = n
				}
			case l == "A":
				c.alerted = true
			case l == "DONE":
				close(c.done)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// kill sends SIGKILL and reaps the child (idempotent).
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func (c *child) reported() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.alerted
}

// TestChaosT1BrokerOutageAndKill: the broker is down for 7 s; during the
// outage the agent is killed with SIGKILL and restarted, and raises a
// pre-alarm. Every sample whose Publish returned reaches the stream once,
// the alarm is stored first when the broker returns, and the backlog
// drains quickly. (Design: 1,000 points/s, a 10 min outage with kill at
// minute 5; CI: 200 msg/s, 7 s. The crash-only half is agent/spool
// TestKill9.)
func TestChaosT1BrokerOutageAndKill(t *testing.T) {
	// Setup.
	storeDir, port := t.TempDir(), testenv.FreePorts(t, 1)[0]
	s := testenv.NATSWithStore(t, storeDir, port)
	url := s.ClientURL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	createStreams(t, js, 1)
	dir := t.TempDir()
	const rate = 200
	env := func(boot string, samples int, alertAfter string) []string {
		return []string{"CHAOS_DIR=" + dir, "CHAOS_NATS=" + url, "CHAOS_BOOT=" + boot, "CHAOS_RATE=" + strconv.Itoa(rate),
			"CHAOS_SAMPLES=" + strconv.Itoa(samples), "CHAOS_ALERT_AFTER=" + alertAfter}
	}
	a := startChild(t, env("a", 1_000_000, "0")...)
	time.Sleep(1500 * time.Millisecond)

	// Inject: broker down; 3 s later kill -9 the agent, restart it 1 s
	// later; it raises a pre-alarm 1 s after its restart.
	s.Shutdown()
	s.WaitForShutdown()
	down := time.Now()
	time.Sleep(3 * time.Second)
	a.kill()
	lastA, _ := a.reported()
	time.Sleep(time.Second)
	b := startChild(t, env("b", 4*rate, "1s")...)
	for time.Since(down) < 7*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	if _, alerted := b.reported(); !alerted {
		t.Fatalf("restarted agent did not raise its alarm during the outage; stderr:\n%s", b.stderr.String())
	}

	// Recover.
	testenv.NATSWithStore(t, storeDir, port)
	up := time.Now()

	// WaitRecover: the restarted agent stops sampling; everything drains.
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("restarted agent did not finish sampling; stderr:\n%s", b.stderr.String())
	}
	lastB, _ := b.reported()
	var drained time.Duration
	var tel map[string]int
	testenv.WaitFor(t, 60*time.Second, func() error {
		tel = streamIDs(t, js, "EMBER_TELEMETRY")
		for i := 0; i <= lastB; i++ {
			if tel[fmt.Sprintf("gw-1.rack-1.b.%d", i)] == 0 {
				return fmt.Errorf("b.%d not stored yet", i)
			}
		}
		for i := 0; i <= lastA; i++ {
			if tel[fmt.Sprintf("gw-1.rack-1.a.%d", i)] == 0 {
				return fmt.Errorf("a.%d not stored yet", i)
			}
		}
		drained = time.Since(up)
		return nil
	})

	// Check: 0 lost, 0 duplicates; the alarm first.
	lost, dup, extraA := 0, 0, 0
	for id, n := range tel {
		if n > 1 {
			dup++
			t.Errorf("%s stored %d times", id, n)
		}
	}
	for i := 0; ; i++ {
		if tel[fmt.Sprintf("gw-1.rack-1.a.%d", i)] == 0 {
			if i <= lastA {
				lost++
			}
			break
		}
		if i > lastA {
			extraA++ // published by the killed agent after its last report
		}
	}
	if want := lastA + 1 + extraA + lastB + 1; len(tel) != want {
		t.Errorf("%d telemetry ids stored, want %d (a: 0..%d+%d, b: 0..%d)", len(tel), want, lastA, extraA, lastB)
	}
	st, err := js.Stream(context.Background(), "EMBER_ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), wire.AlertSubject("chaos", "gw-1", "rack-1"))
	if err != nil {
		t.Fatalf("the pre-alarm never reached the stream: %v", err)
	}
	alertLat := m.Time.Sub(up)
	tst, err := js.Stream(context.Background(), "EMBER_TELEMETRY")
	if err != nil {
		t.Fatal(err)
	}
	// Telemetry stored after the broker returned must come after the alarm.
	c, err := tst.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &up})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := c.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var firstTelAfter time.Time
	for tm := range mb.Messages() {
		md, _ := tm.Metadata()
		firstTelAfter = md.Timestamp
	}
	if lost != 0 || dup != 0 {
		t.Fatalf("%d lost, %d duplicates", lost, dup)
	}
	t.Logf("T1: %d msg/s; broker down 7s, agent SIGKILLed at +3s and restarted at +4s: %d + %d samples spooled, 0 lost, 0 duplicates (criterion 0, 0; %d extra samples of the killed agent stored too); pre-alarm stored %v after the broker returned (criterion <= 1s), first telemetry after it %v; backlog drained %v after reconnect (criterion <= 60s)",
		rate, lastA+1, lastB+1, extraA, alertLat.Round(time.Millisecond), firstTelAfter.Sub(up).Round(time.Millisecond), drained.Round(time.Millisecond))
	if alertLat > 5*time.Second {
		t.Errorf("pre-alarm stored %v after the broker returned", alertLat)
	}
	if !firstTelAfter.IsZero() && firstTelAfter.Before(m.Time) {
		t.Errorf("telemetry stored at %v before the pending alarm at %v", firstTelAfter, m.Time)
	}
	if drained > 60*time.Second {
		t.Errorf("backlog drained in %v", drained)
	}
}
