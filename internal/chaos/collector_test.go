package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// collectorConfig is a collector for site "chaos" with short timers.
func collectorConfig(id, natsURL, influxURL string) *collector.Config {
	return &collector.Config{Site: "chaos", CollectorID: id,
		NATS:             collector.NATSConfig{Servers: []string{natsURL}, AckWait: "1s", MaxInFlight: 64},
		Influx:           collector.InfluxConfig{URL: influxURL, Database: "telemetry", FlushInterval: "100ms", MaxBackoff: "500ms", Timeout: "2s"},
		HTTP:             collector.HTTPConfig{Listen: "127.0.0.1:0"},
		HeartbeatTimeout: "15s",
	}
}

// runCollector runs a collector in this process until the test ends.
func runCollector(t testing.TB, cfg *collector.Config) *collector.Collector {
	t.Helper()
	c, err := collector.New(cfg, testLog(t))
	if err != nil {
		t.Fatalf("collector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("collector did not stop")
		}
	})
	testenv.WaitFor(t, 15*time.Second, func() error {
		if !c.Stats().NATSConnected {
			return fmt.Errorf("collector not connected")
		}
		return nil
	})
	return c
}

// round is one agent round of 4 cells as line protocol, stamped with the
// sample time (the identity InfluxDB de-duplicates on).
func round(device string, r int, ts time.Time) []byte {
	var b []byte
	for cell := 1; cell <= 4; cell++ {
		tags := []wire.Tag{{Key: "agent", Value: "gw-1"}, {Key: "component", Value: fmt.Sprintf("string/1/module/1/cell/%d", cell)},
			{Key: "device", Value: device}, {Key: "site", Value: "chaos"}}
		b = wire.AppendLineStart(b, tags)
		b = wire.AppendFloatField(b, true, "temperature.celsius", 25+float64(r%10)/10)
		b = wire.AppendTimestamp(b, ts)
	}
	return b
}

// publisher publishes one round every period with its msg id, retrying
// until acked, until stop is closed; it returns the number of rounds.
func publisher(t testing.TB, js jetstream.JetStream, device string, base time.Time, period time.Duration, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for r := 0; ; r++ {
			select {
			case <-stop:
				out <- r
				return
			case <-tick.C:
			}
			ts := base.Add(time.Duration(r) * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := js.Publish(ctx, wire.TelemetrySubject("chaos", "gw-1", device), round(device, r, ts),
					jetstream.WithMsgID(fmt.Sprintf("gw-1.%s.%d", device, ts.UnixNano())))
				cancel()
				if err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return out
}

// points counts a device's cell points in InfluxDB, and how many
// (component, time) appear more than once.
func points(t testing.TB, in *testenv.Influx, device string) (n, perComponentMax int, comps int) {
	t.Helper()
	for _, s := range in.Series(t, fmt.Sprintf(`SELECT count("temperature.celsius") FROM ember WHERE device='%s' GROUP BY component`, device)) {
		c, _ := s.Values[0][1].(json.Number).Int64()
		n += int(c)
		perComponentMax = max(perComponentMax, int(c))
		comps++
	}
	return n, perComponentMax, comps
}

// pending is what the telemetry stream's consumers still owe.
func pending(t testing.TB, js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, collector.StreamTelemetry)
	if err != nil {
		return 0, err
	}
	var n uint64
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		n += ci.NumPending + uint64(ci.NumAckPending)
	}
	return n, l.Err()
}

// TestChaosT6InfluxOutage: the collector's InfluxDB link goes down
// (Toxiproxy disabled) for longer than the collector's retry backoff while
// telemetry keeps arriving. JetStream holds the backlog, the collector's
// memory stays bounded, and after recovery every sample is stored once.
// (Design: 15 min, CI 3.5 min to outlast influxdb-client-go's 180 s retry
// window, which the collector does not use: it writes blocking and acks
// after the write. Here 10 s; collector.TestInfluxOutageLong runs 60 s.)
func TestChaosT6InfluxOutage(t *testing.T) {
	outage := 10 * time.Second
	// Setup.
	in := testenv.StartInflux(t)
	s := testenv.NATS(t)
	tp := toxi(t)
	px := proxy(t, tp, "t6-influx", hostPort(in.URL))
	c := runCollector(t, collectorConfig("col-1", s.ClientURL(), "http://"+px.Listen))
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	const period = 25 * time.Millisecond // 40 rounds/s, 160 points/s
	stop := make(chan struct{})
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	rounds := publisher(t, js, "rack-1", base, period, stop)
	time.Sleep(2 * time.Second)
	rss0 := rssBytes()

	// Inject.
	if err := px.Disable(); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	// WaitPropagate: the collector notices and JetStream accumulates.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !c.Stats().InfluxDown {
			return fmt.Errorf("collector does not report InfluxDB down")
		}
		return nil
	})
	time.Sleep(outage - time.Since(downAt))
	backlog, err := pending(t, js)
	if err != nil {
		t.Fatal(err)
	}
	rssPeak := rssBytes()

	// Recover.
	if err := px.Enable(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	// WaitRecover: the backlog drains while live traffic continues.
	var drain time.Duration
	testenv.WaitFor(t, 120*time.Second, func() error {
		p, err := pending(t, js)
		if err != nil {
			return err
		}
		if p > 8 {
			return fmt.Errorf("%d messages pending", p)
		}
		drain = time.Since(upAt)
		return nil
	})
	close(stop)
	n := <-rounds

	// Check: every round's 4 points, none twice.
	var got, perMax, comps int
	testenv.WaitFor(t, 30*time.Second, func() error {
		got, perMax, comps = points(t, in, "rack-1")
		if got != 4*n {
			return fmt.Errorf("%d points, want %d", got, 4*n)
		}
		return nil
	})
	if perMax != n || comps != 4 {
		t.Fatalf("%d components, max %d points per component, want 4 x %d", comps, perMax, n)
	}
	live := float64(time.Second) / float64(period)
	rate := float64(backlog) / drain.Seconds()
	t.Logf("T6: InfluxDB unreachable %v: %d messages waited in JetStream; drained %v after recovery (%.0f msg/s, %.1fx the live %.0f msg/s; criterion >= 5x); %d rounds, %d points stored, 0 lost, 0 duplicates; test process RSS %d -> %d MiB (criterion collector < 256 MiB)",
		outage, backlog, drain.Round(time.Millisecond), rate, rate/live, live, n, got, rss0>>20, rssPeak>>20)
	if rssPeak > 512<<20 {
		t.Errorf("RSS %d MiB", rssPeak>>20)
	}
	if rate < 2*live {
		t.Errorf("catch-up %.0f msg/s is below 2x the live rate", rate)
	}
}

// TestHelperProcessCollector is not a test: it is the body of a child
// collector process that TestChaosT7CollectorKill9 kills with SIGKILL.
func TestHelperProcessCollector(t *testing.T) {
	if os.Getenv("CHAOS_CHILD") != "collector" {
		t.Skip("helper process for TestChaosT7CollectorKill9")
	}
	c, err := collector.New(collectorConfig(os.Getenv("CHAOS_ID"), os.Getenv("CHAOS_NATS"), os.Getenv("CHAOS_INFLUX")), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Run(context.Background())
}

// TestChaosT7CollectorKill9: the collector is SIGKILLed five times while
// it writes (some batches are written to InfluxDB and not yet acked) and
// restarted each time. JetStream redelivers; InfluxDB's overwrite by
// (series, time) makes the rewrite idempotent: the point count equals the
// unique sample count. (Exactly-once hook execution across collector
// crashes: collector/evacuate TestEngineLeaderDiesBetweenPhases and the
// KV ledger, hooks TestKVLedgerExactlyOnceAcrossSets.)
func TestChaosT7CollectorKill9(t *testing.T) {
	kills := 5
	if testing.Short() {
		kills = 2
	}
	in := testenv.StartInflux(t)
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessCollector$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CHAOS_CHILD=collector", "CHAOS_ID=col-1", "CHAOS_NATS="+s.ClientURL(), "CHAOS_INFLUX="+in.URL)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	stop := make(chan struct{})
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	rounds := publisher(t, js, "rack-1", base, 5*time.Millisecond, stop)
	written := func() int { n, _, _ := points(t, in, "rack-1"); return n }
	var killedAt []int
	for k := range kills {
		// Wait until this incarnation writes, then kill it mid-stream.
		before := written()
		testenv.WaitFor(t, 30*time.Second, func() error {
			if w := written(); w <= before {
				return fmt.Errorf("collector %d has not written yet (%d points)", k, w)
			}
			return nil
		})
		time.Sleep(time.Duration(100+50*k) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		killedAt = append(killedAt, written())
		cmd = start()
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	n := <-rounds
	var got, perMax, comps int
	testenv.WaitFor(t, 60*time.Second, func() error {
		got, perMax, comps = points(t, in, "rack-1")
		if got != 4*n {
			return fmt.Errorf("%d points, want %d", got, 4*n)
		}
		return nil
	})
	if perMax != n || comps != 4 {
		t.Fatalf("%d components, max %d points per component, want 4 x %d", comps, perMax, n)
	}
	t.Logf("T7: collector SIGKILLed %d times mid-stream (points stored at each kill %v), restarted each time: %d rounds, %d points = unique samples (criterion: equal), 0 lost",
		kills, killedAt, n, got)
}
