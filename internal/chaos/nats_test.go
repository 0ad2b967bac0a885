package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tpclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/agent/spool"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// agentNATS parses a minimal agent.yaml whose nats: section is extra and
// returns the effective NATS configuration (defaults applied), as
// ember-agent would hand it to agent.ConnectNATS.
func agentNATS(t testing.TB, natsYAML string) agent.NATSConfig {
	t.Helper()
	y := "site: chaos\nagent_id: gw-1\nnats: " + natsYAML + "\n" +
		"devices:\n  - id: rack-1\n    profile: sunspec\n    period: 1s\n    modbus: {url: \"tcp://127.0.0.1:1\", unit_id: 1}\n"
	cfg, err := agent.ParseConfig("agent.yaml", []byte(y))
	if err != nil {
		t.Fatalf("agent config: %v", err)
	}
	return cfg.NATS
}

// connEvents records a connection's lifecycle callbacks.
type connEvents struct {
	mu                    sync.Mutex
	disconnects, reconns  []time.Time
	closed, reconnectErrs atomic.Int64
}

func (e *connEvents) options() []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			e.mu.Lock()
			e.disconnects = append(e.disconnects, time.Now())
			e.mu.Unlock()
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			e.mu.Lock()
			e.reconns = append(e.reconns, time.Now())
			e.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) { e.closed.Add(1) }),
		nats.ReconnectErrHandler(func(*nats.Conn, error) { e.reconnectErrs.Add(1) }),
	}
}

// wait waits until the list returned by get has more than n entries and
// returns the n-th (0-based) time.
func (e *connEvents) wait(t testing.TB, d time.Duration, what string, get func() []time.Time, n int) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		l := get()
		var at time.Time
		if len(l) > n {
			at = l[n]
		}
		e.mu.Unlock()
		if !at.IsZero() {
			return at
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s after %v", what, d)
	return time.Time{}
}

func (e *connEvents) disconnected(t testing.TB, d time.Duration) time.Time {
	return e.wait(t, d, "disconnect", func() []time.Time { return e.disconnects }, 0)
}

func (e *connEvents) reconnected(t testing.TB, d time.Duration) time.Time {
	return e.wait(t, d, "reconnect", func() []time.Time { return e.reconns }, 0)
}

// TestChaosT2NATSOptionsNeverClose: nats.go's defaults close a connection
// after 60 failed reconnects per server (about 2 min at 2 s); the agent's
// connection must survive any outage and be back within ReconnectWait +
// jitter + 1 s of the server's return.
func TestChaosT2NATSOptionsNeverClose(t *testing.T) {
	// Setup: a server on a fixed port (so it can come back on it) and two
	// connections with the production options: one as shipped, one with a
	// 20 ms ReconnectWait so that a 10 s outage makes far more than 60
	// attempts (the outage of the design, 5 min at 2 s, compressed 30x).
	storeDir, port := t.TempDir(), testenv.FreePorts(t, 1)[0]
	s := testenv.NATSWithStore(t, storeDir, port)
	cfg := agentNATS(t, fmt.Sprintf("{servers: [%q, \"nats://127.0.0.1:1\"]}", s.ClientURL()))

	var prodEv, fastEv connEvents
	prod, err := agent.ConnectNATS(cfg, "t2-prod", append(prodEv.options(), nats.DontRandomize())...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	fast, err := agent.ConnectNATS(cfg, "t2-fast", append(fastEv.options(), nats.DontRandomize(),
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()

	// The regression guard on the option values themselves.
	o := prod.Opts
	if o.MaxReconnect >= 0 {
		t.Errorf("MaxReconnect = %d, want < 0 (unlimited); nats.go's default 60 closes the connection", o.MaxReconnect)
	}
	if !o.RetryOnFailedConnect {
		t.Error("RetryOnFailedConnect is off: an agent booting before its broker would exit")
	}
	if o.PingInterval != 5*time.Second || o.MaxPingsOut != 2 {
		t.Errorf("PingInterval %v MaxPingsOut %d, want 5s and 2 (stale link found in <= 15 s, not 6 min)", o.PingInterval, o.MaxPingsOut)
	}
	if o.ReconnectWait > 2*time.Second || o.ReconnectWait <= 0 {
		t.Errorf("ReconnectWait = %v", o.ReconnectWait)
	}
	if o.ReconnectBufSize <= 0 || o.ReconnectBufSize > 64<<20 {
		t.Errorf("ReconnectBufSize = %d, want bounded and > 0", o.ReconnectBufSize)
	}
	if len(o.Servers) != 2 {
		t.Errorf("server list %v, want both configured URLs", o.Servers)
	}

	// Inject: the broker goes away for 10 s.
	s.Shutdown()
	s.WaitForShutdown()
	down := time.Now()
	prodEv.disconnected(t, 5*time.Second)
	fastEv.disconnected(t, 5*time.Second)

	// WaitPropagate: the outage lasts.
	time.Sleep(10*time.Second - time.Since(down))
	attempts := fastEv.reconnectErrs.Load()
	if attempts <= 60 {
		t.Fatalf("only %d reconnect attempts in 10 s; the test needs > 60 to prove the default limit is gone", attempts)
	}

	// Recover: the same server comes back on the same port and store.
	testenv.NATSWithStore(t, storeDir, port)
	back := time.Now()

	// WaitRecover.
	prodAt := prodEv.reconnected(t, 15*time.Second)
	fastEv.reconnected(t, 15*time.Second)

	// Check.
	if n := prodEv.closed.Load() + fastEv.closed.Load(); n != 0 {
		t.Fatalf("ClosedHandler called %d times", n)
	}
	for _, nc := range []*nats.Conn{prod, fast} {
		if nc.Status() != nats.CONNECTED {
			t.Fatalf("%s status %v after the outage", nc.Opts.Name, nc.Status())
		}
		if err := nc.FlushTimeout(2 * time.Second); err != nil {
			t.Fatalf("%s: round trip after reconnect: %v", nc.Opts.Name, err)
		}
	}
	lat := prodAt.Sub(back)
	crit := o.ReconnectWait + o.ReconnectJitter + time.Second
	t.Logf("T2: 10s outage, %d reconnect attempts (default limit 60), 0 closes; reconnected %v after the server returned (criterion <= %v)",
		attempts, lat.Round(time.Millisecond), crit)
	if lat > crit+4*time.Second {
		t.Errorf("reconnect took %v, criterion %v (+4 s slack for a loaded CI machine)", lat, crit)
	}
}

// createStreams creates the telemetry and alert streams as the collector does
// (subjects and Duplicates windows of collector/streams.go).
func createStreams(t testing.TB, js jetstream.JetStream, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []jetstream.StreamConfig{
		{Name: "EMBER_TELEMETRY", Subjects: []string{wire.Wildcard("*", wire.KindTelemetry)}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: replicas},
		{Name: "EMBER_ALERTS", Subjects: []string{wire.Wildcard("*", wire.KindAlert)}, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, Replicas: replicas},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			t.Fatalf("create stream %s: %v", c.Name, err)
		}
	}
}

// streamIDs returns how often each Nats-Msg-Id is stored in a stream.
func streamIDs(t testing.TB, js jetstream.JetStream, stream string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	n := int(info.State.Msgs)
	ids := make(map[string]int, n)
	if n == 0 {
		return ids
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer on %s: %v", stream, err)
	}
	for got := 0; got < n; {
		mb, err := c.Fetch(min(n-got, 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch %s: %v", stream, err)
		}
		k := 0
		for m := range mb.Messages() {
			ids[m.Headers().Get(wire.MsgIDHeader)]++
			k++
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch %s: %v", stream, err)
		}
		if k == 0 {
			t.Fatalf("fetch %s: %d of %d messages", stream, got, n)
		}
		got += k
	}
	return ids
}

// TestChaosT3HalfOpenFailover: the agent's link to one broker becomes a
// black hole (TCP stays open, nothing passes either way) while two other
// brokers of the cluster stay healthy. The ping timer must declare the
// link stale and the connection fail over; the spool resends whatever the
// dead link swallowed, so nothing is lost and nothing is stored twice.
func TestChaosT3HalfOpenFailover(t *testing.T) {
	// Setup: a 3-node cluster; the agent reaches n1 through Toxiproxy and
	// knows n2 and n3. Ping 1 s x 2 outstanding (production: 5 s x 2, so
	// the figures scale by 5).
	servers := testenv.NATSCluster(t, 3)
	tp := toxi(t)
	px := proxy(t, tp, "t3-nats", hostPort(servers[0].ClientURL()))
	cfg := agentNATS(t, fmt.Sprintf("{servers: [%q, %q, %q], ping_interval: 1s, max_pings_out: 2, reconnect_buffer_bytes: -1}",
		"nats://"+px.Listen, servers[1].ClientURL(), servers[2].ClientURL()))
	var ev connEvents
	nc, err := agent.ConnectNATS(cfg, "t3-agent", append(ev.options(), nats.DontRandomize())...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !strings.Contains(nc.ConnectedUrl(), px.Listen) {
		t.Fatalf("connected to %s, want the proxied n1 %s", nc.ConnectedUrl(), px.Listen)
	}
	spOpts := spool.Options{AckTimeout: 2 * time.Second, MaxBackoff: 200 * time.Millisecond, MaxInFlight: 64}
	js, err := spool.NewJetStream(nc, spOpts)
	if err != nil {
		t.Fatal(err)
	}
	createStreams(t, js, 1)
	sp, err := spool.Open(t.TempDir(), spOpts, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { sp.Run(ctx, js); close(runDone) }()
	defer func() { cancel(); <-runDone }()

	// The NOC listens on n3 directly.
	noc, err := nats.Connect(servers[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer noc.Close()
	var mu sync.Mutex
	sentAt, gotAt := map[string]time.Time{}, map[string]time.Time{}
	sub, err := noc.Subscribe(wire.Wildcard("chaos", wire.KindAlert), func(m *nats.Msg) {
		mu.Lock()
		id := m.Header.Get(wire.MsgIDHeader)
		if _, ok := gotAt[id]; !ok {
			gotAt[id] = time.Now()
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	noc.Flush()

	// The agent samples at 20 Hz and raises an alert every 250 ms.
	telSubj, alSubj := wire.TelemetrySubject("chaos", "gw-1", "rack-1"), wire.AlertSubject("chaos", "gw-1", "rack-1")
	stopPub := make(chan struct{})
	pubDone := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPub:
				pubDone <- n
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("gw-1.rack-1.%d", n)
			if err := sp.Publish(ctx, telSubj, id, []byte(fmt.Sprintf("ember,site=chaos v=%d %d", n, n))); err != nil {
				t.Errorf("spool telemetry %d: %v", n, err)
			}
			if n%5 == 0 {
				aid := fmt.Sprintf("alert-%d", n)
				mu.Lock()
				sentAt[aid] = time.Now()
				mu.Unlock()
				if err := sp.Publish(ctx, alSubj, aid, []byte(`{"id":"`+aid+`"}`)); err != nil {
					t.Errorf("spool alert %d: %v", n, err)
				}
			}
			n++
		}
	}()
	time.Sleep(time.Second) // steady state through n1

	// Inject: black-hole both directions of the agent -> n1 link.
	for _, dir := range []string{"upstream", "downstream"} {
		if _, err := px.AddToxic("hole-"+dir, "timeout", dir, 1, tpclient.Attributes{"timeout": 0}); err != nil {
			t.Fatal(err)
		}
	}
	injected := time.Now()

	// WaitPropagate: the ping timer finds the link stale; the client fails
	// over to n2 or n3.
	discAt := ev.disconnected(t, 30*time.Second)
	recAt := ev.reconnected(t, 30*time.Second)
	if strings.Contains(nc.ConnectedUrl(), px.Listen) {
		t.Fatalf("reconnected to the black hole %s", nc.ConnectedUrl())
	}

	// Recover: the link heals; sampling goes on for a while on the new server.
	for _, dir := range []string{"upstream", "downstream"} {
		px.RemoveToxic("hole-" + dir)
	}
	time.Sleep(time.Second)
	close(stopPub)
	n := <-pubDone

	// WaitRecover: everything spooled reaches the streams.
	dctx, dcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer dcancel()
	if err := sp.Drain(dctx); err != nil {
		t.Fatalf("drain: %v; stats %+v", err, sp.Stats())
	}

	// Check: 0 lost, 0 duplicates, alert latency.
	tel := streamIDs(t, js, "EMBER_TELEMETRY")
	lost, dup := 0, 0
	for i := range n {
		switch c := tel[fmt.Sprintf("gw-1.rack-1.%d", i)]; {
		case c == 0:
			lost++
		case c > 1:
			dup++
		}
	}
	if lost != 0 || dup != 0 || len(tel) != n {
		t.Errorf("telemetry: %d sampled, %d stored ids, %d lost, %d stored twice", n, len(tel), lost, dup)
	}
	alerts := streamIDs(t, js, "EMBER_ALERTS")
	var worst time.Duration
	testenv.WaitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(gotAt) < len(sentAt) {
			return fmt.Errorf("NOC saw %d of %d alerts", len(gotAt), len(sentAt))
		}
		return nil
	})
	mu.Lock()
	for id, at := range sentAt {
		if alerts[id] != 1 {
			t.Errorf("alert %s stored %d times", id, alerts[id])
		}
		if d := gotAt[id].Sub(at); d > worst {
			worst = d
		}
	}
	nAlerts := len(sentAt)
	mu.Unlock()
	if ev.closed.Load() != 0 {
		t.Error("connection closed")
	}
	detect, failover := discAt.Sub(injected), recAt.Sub(injected)
	t.Logf("T3: half-open link detected after %v (ping 1s x 2; criterion <= 20s at 5s x 2), failed over to %s after %v; worst alert latency %v (criterion <= 21s); %d samples and %d alerts, 0 lost, 0 duplicates",
		detect.Round(time.Millisecond), nc.ConnectedUrl(), failover.Round(time.Millisecond), worst.Round(time.Millisecond), n, nAlerts)
	if detect > 20*time.Second {
		t.Errorf("disconnect detected after %v, criterion 20 s", detect)
	}
	if worst > 21*time.Second {
		t.Errorf("alert latency %v, criterion 21 s", worst)
	}
}
