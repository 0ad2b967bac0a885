package chaos

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func startServer(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("%s not ready", o.ServerName)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestChaosT8LeafCutOff: an edge leaf node (JetStream domain "edge") loses
// its link to the hub. Alarms keep reaching the local NOC consumer on the
// leaf; when the link returns, the hub stream, which sources from the
// leaf's, catches up with every message once, in order. (Design: 30 min,
// CI 2 min; here 5 s.)
func TestChaosT8LeafCutOff(t *testing.T) {
	// Setup: hub, leaf behind Toxiproxy, a leaf stream and a hub stream
	// sourcing from it.
	leafPort := testenv.FreePorts(t, 1)[0]
	hub := startServer(t, &server.Options{Host: "127.0.0.1", Port: -1, ServerName: "hub", JetStream: true, JetStreamDomain: "hub",
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: leafPort}})
	tp := toxi(t)
	px := proxy(t, tp, "t8-leaf", fmt.Sprintf("127.0.0.1:%d", leafPort))
	remote, _ := url.Parse("nats-leaf://" + px.Listen)
	leaf := startServer(t, &server.Options{Host: "127.0.0.1", Port: -1, ServerName: "leaf", JetStream: true, JetStreamDomain: "edge",
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}, ReconnectInterval: 200 * time.Millisecond}})
	testenv.WaitFor(t, 10*time.Second, func() error {
		if leaf.NumLeafNodes() == 0 {
			return fmt.Errorf("leaf not connected")
		}
		return nil
	})
	lnc, err := nats.Connect(leaf.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	ljs, _ := jetstream.New(lnc)
	hnc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	ctx := context.Background()
	if _, err := ljs.CreateStream(ctx, jetstream.StreamConfig{Name: "EDGE_ALERTS", Subjects: []string{wire.Wildcard("chaos", wire.KindAlert)},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := hjs.CreateStream(ctx, jetstream.StreamConfig{Name: "HUB_ALERTS", Storage: jetstream.FileStorage,
		Sources: []*jetstream.StreamSource{{Name: "EDGE_ALERTS", External: &jetstream.ExternalStream{APIPrefix: "$JS.edge.API"}}}}); err != nil {
		t.Fatal(err)
	}
	// The local NOC consumer on the leaf.
	var mu sync.Mutex
	sent, got := map[string]time.Time{}, map[string]time.Time{}
	sub, err := lnc.Subscribe(wire.Wildcard("chaos", wire.KindAlert), func(m *nats.Msg) {
		mu.Lock()
		if id := m.Header.Get(wire.MsgIDHeader); got[id].IsZero() {
			got[id] = time.Now()
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	lnc.Flush()
	n := 0
	publish := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			id := fmt.Sprintf("al-%d", n)
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := ljs.PublishMsg(pctx, &nats.Msg{Subject: wire.AlertSubject("chaos", "gw-1", "rack-1"), Data: []byte(id),
				Header: nats.Header{wire.MsgIDHeader: []string{id}}})
			cancel()
			if err != nil {
				t.Fatalf("publish %s on the leaf: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(time.Second)

	// Inject: the leaf link goes down.
	if err := px.Disable(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if leaf.NumLeafNodes() != 0 {
			return fmt.Errorf("leaf still connected")
		}
		return nil
	})
	cutAt := n
	// WaitPropagate: 5 s of alarms while cut off.
	publish(5 * time.Second)
	duringCut := n - cutAt
	var worstLocal time.Duration
	mu.Lock()
	for i := cutAt; i < n; i++ {
		id := fmt.Sprintf("al-%d", i)
		if got[id].IsZero() {
			t.Errorf("%s never reached the local NOC consumer while cut off", id)
			continue
		}
		worstLocal = max(worstLocal, got[id].Sub(sent[id]))
	}
	mu.Unlock()

	// Recover.
	if err := px.Enable(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	publish(time.Second)

	// WaitRecover and Check: the hub holds every message once, in order.
	var caught time.Duration
	testenv.WaitFor(t, 60*time.Second, func() error {
		st, err := hjs.Stream(ctx, "HUB_ALERTS")
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(n) {
			return fmt.Errorf("hub holds %d of %d", info.State.Msgs, n)
		}
		caught = time.Since(back)
		return nil
	})
	ids := streamIDs(t, hjs, "HUB_ALERTS")
	st, _ := hjs.Stream(ctx, "HUB_ALERTS")
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	outOfOrder := 0
	for i := range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data()) != fmt.Sprintf("al-%d", i) {
			outOfOrder++
		}
	}
	dups := 0
	for _, k := range ids {
		if k > 1 {
			dups++
		}
	}
	if len(ids) != n || dups != 0 || outOfOrder != 0 {
		t.Fatalf("hub: %d ids for %d sent, %d duplicates, %d out of order", len(ids), n, dups, outOfOrder)
	}
	t.Logf("T8: leaf cut off from the hub for 5s: %d alarms reached the local NOC consumer, worst %v (criterion <= 1s); hub caught up %v after the link returned (criterion <= 60s): %d messages, in order, 0 duplicates",
		duringCut, worstLocal.Round(time.Microsecond), caught.Round(time.Millisecond), n)
	if worstLocal > time.Second {
		t.Errorf("local alarm latency %v", worstLocal)
	}
}
