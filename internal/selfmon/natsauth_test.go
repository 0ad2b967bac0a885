package selfmon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// The NATS files under test, relative to this package.
const natsDeploy = "../../deploy/nats"

// site holds the running servers and the passwords the test put into the
// environment for the $EMBER_PW_* references.
type site struct {
	hubs []*server.Server
	edge *server.Server
	pw   map[string]string
}

func randomPW(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startSite runs deploy/nats/cluster/hub-{1,2,3}.conf and
// deploy/nats/leaf/edge.conf as they are, except for listen addresses
// (loopback, dynamic ports) and store directories.
func startSite(t *testing.T) *site {
	t.Helper()
	s := &site{pw: map[string]string{}}
	for _, u := range []string{"sys", "pangyo-a-gw-01", "pangyo-a-gw-02", "pangyo-a-col-1", "pangyo-a-col-2",
		"noc", "ops", "route", "leaf-pangyo-a"} {
		s.pw[u] = randomPW(t)
		t.Setenv("EMBER_PW_"+strings.ToUpper(strings.ReplaceAll(u, "-", "_")), s.pw[u])
	}
	ports := testenv.FreePorts(t, 6)
	routePorts, leafPorts := ports[:3], ports[3:]
	var routes, leafURLs []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", s.pw["route"], routePorts[i])))
		leafURLs = append(leafURLs, fmt.Sprintf("%q", fmt.Sprintf("nats-leaf://leaf-pangyo-a:%s@127.0.0.1:%d", s.pw["leaf-pangyo-a"], leafPorts[i])))
	}
	t.Setenv("EMBER_HUB_ROUTES", "["+strings.Join(routes, ", ")+"]")
	t.Setenv("EMBER_HUB_LEAF_URLS", "["+strings.Join(leafURLs, ", ")+"]")

	for i := range 3 {
		o := loadConf(t, filepath.Join(natsDeploy, "cluster", fmt.Sprintf("hub-%d.conf", i+1)))
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", routePorts[i]
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", leafPorts[i]
		s.hubs = append(s.hubs, startConf(t, o, false))
	}
	for _, h := range s.hubs {
		if !h.ReadyForConnections(10 * time.Second) {
			t.Fatal("hub not ready")
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() error {
		for _, h := range s.hubs {
			if h.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("no JetStream meta leader in the hub")
	})
	s.edge = startConf(t, loadConf(t, filepath.Join(natsDeploy, "leaf", "edge.conf")), true)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if s.edge.NumLeafNodes() == 0 {
			return errors.New("edge leaf not connected to the hub")
		}
		return nil
	})
	return s
}

func loadConf(t *testing.T, path string) *server.Options {
	t.Helper()
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	o.Host, o.Port, o.HTTPPort = "127.0.0.1", -1, 0
	o.StoreDir = t.TempDir()
	o.NoSigs, o.NoLog = true, true
	return o
}

func startConf(t *testing.T, o *server.Options, wait bool) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("start %s: %v", o.ServerName, err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if wait && !s.ReadyForConnections(10*time.Second) {
		t.Fatalf("%s not ready", o.ServerName)
	}
	return s
}

// client is a connection that records the permission violations the
// server reports for it.
type client struct {
	*nats.Conn
	mu   sync.Mutex
	errs []string
}

func (s *site) connect(t *testing.T, srv *server.Server, user string) *client {
	t.Helper()
	c := &client{}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, s.pw[user]), nats.Name(user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// violated waits until the server reported a publish violation for subject.
func (c *client) violated(t *testing.T, subject string) {
	t.Helper()
	want := fmt.Sprintf("permissions violation for publish to %q", subject)
	testenv.WaitFor(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.errs {
			if strings.Contains(strings.ToLower(e), strings.ToLower(want)) {
				return nil
			}
		}
		return fmt.Errorf("no violation for %s; errors so far %q", subject, c.errs)
	})
}

// recv waits for the next message on ch.
func recv(t *testing.T, ch <-chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no message: %s", what)
		return nil
	}
}

// settle publishes on subject until sub sees it: leaf and route interest
// propagates asynchronously, and later publications from the same
// connection then arrive in order.
func settle(t *testing.T, pub *client, subject string, ch <-chan *nats.Msg) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if err := pub.Publish(subject, []byte("settle")); err != nil {
			return err
		}
		select {
		case m := <-ch:
			if m.Subject == subject {
				return nil
			}
			return fmt.Errorf("unexpected %s", m.Subject)
		case <-time.After(50 * time.Millisecond):
			return errors.New("interest not propagated yet")
		}
	})
	for len(ch) > 0 {
		<-ch
	}
}

func TestNATSPermissionsAcrossHubAndLeaf(t *testing.T) {
	s := startSite(t)

	agent := s.connect(t, s.edge, "pangyo-a-gw-01")
	col := s.connect(t, s.hubs[1], "pangyo-a-col-1")
	noc := s.connect(t, s.hubs[2], "noc")

	// The collector at the hub watches everything of the site.
	all := make(chan *nats.Msg, 64)
	if _, err := col.ChanSubscribe("ember.>", all); err != nil {
		t.Fatal(err)
	}
	if err := col.Flush(); err != nil {
		t.Fatal(err)
	}
	own := wire.TelemetrySubject("pangyo-a", "gw-01", "rack-a1")
	settle(t, agent, own, all)

	t.Run("agent publishes its own subjects", func(t *testing.T) {
		for _, subj := range []string{own, wire.AlertSubject("pangyo-a", "gw-01", "rack-a1"), wire.HeartbeatSubject("pangyo-a", "gw-01")} {
			if err := agent.Publish(subj, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, all, subj); m.Subject != subj {
				t.Fatalf("collector got %s, want %s", m.Subject, subj)
			}
		}
	})

	t.Run("agent cannot publish for another agent or an evacuation", func(t *testing.T) {
		for _, subj := range []string{
			wire.TelemetrySubject("pangyo-a", "gw-02", "rack-b1"),
			wire.AlertSubject("pangyo-a", "gw-02", "rack-b1"),
			wire.HeartbeatSubject("pangyo-a", "gw-02"),
			wire.TelemetrySubject("other-site", "gw-01", "rack-a1"),
			wire.EvacSubject("pangyo-a", "ups-2"),
			wire.EvacSubject("other-site", "ups-2"),
			"ember.pangyo-a.evacctl",
		} {
			if err := agent.Publish(subj, []byte("forged")); err != nil {
				t.Fatal(err)
			}
			agent.violated(t, subj)
		}
		// A marker sent after the forgeries arrives first: nothing forged
		// was delivered ahead of it.
		if err := agent.Publish(own, []byte("marker")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, all, "marker"); m.Subject != own || string(m.Data) != "marker" {
			t.Fatalf("forged message delivered: %s %q", m.Subject, m.Data)
		}
	})

	t.Run("collector publishes evacuations that reach the agent", func(t *testing.T) {
		evac := make(chan *nats.Msg, 8)
		if _, err := agent.ChanSubscribe(wire.Wildcard("pangyo-a", wire.KindEvac), evac); err != nil {
			t.Fatal(err)
		}
		if err := agent.Flush(); err != nil {
			t.Fatal(err)
		}
		subj := wire.EvacSubject("pangyo-a", "ups-2")
		settle(t, col, subj, evac)
		if err := col.Publish(subj, []byte(`{"phase":"prestage"}`)); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, evac, "evacuation at the agent"); string(m.Data) != `{"phase":"prestage"}` {
			t.Fatalf("agent got %q", m.Data)
		}
		// But a collector does not forge telemetry.
		forged := wire.TelemetrySubject("pangyo-a", "gw-01", "rack-a1")
		if err := col.Publish(forged, []byte("forged")); err != nil {
			t.Fatal(err)
		}
		col.violated(t, forged)
	})

	t.Run("noc reads and cannot publish", func(t *testing.T) {
		alerts := make(chan *nats.Msg, 8)
		if _, err := noc.ChanSubscribe(wire.Wildcard("*", wire.KindAlert), alerts); err != nil {
			t.Fatal(err)
		}
		if err := noc.Flush(); err != nil {
			t.Fatal(err)
		}
		settle(t, agent, wire.AlertSubject("pangyo-a", "gw-01", "rack-a1"), alerts)
		for _, subj := range []string{wire.EvacSubject("pangyo-a", "ups-2"), wire.AlertSubject("pangyo-a", "gw-01", "rack-a1")} {
			if err := noc.Publish(subj, []byte("x")); err != nil {
				t.Fatal(err)
			}
			noc.violated(t, subj)
		}
	})

	t.Run("agent cannot subscribe to another agent's acks", func(t *testing.T) {
		subj := "ember.pangyo-a.evacack.gw-02"
		if _, err := agent.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, func() error {
			agent.mu.Lock()
			defer agent.mu.Unlock()
			for _, e := range agent.errs {
				if strings.Contains(strings.ToLower(e), "subscription to \""+subj+"\"") {
					return nil
				}
			}
			return fmt.Errorf("no subscribe violation; errors %q", agent.errs)
		})
	})
}

// TestNATSPermissionsJetStream proves the agent permissions are enough for
// what the agent does with JetStream at the edge: publish with acks, and
// the fallback key-value bucket of its own site only.
func TestNATSPermissionsJetStream(t *testing.T) {
	s := startSite(t)
	ctx := t.Context()

	// A local collector at the edge makes the telemetry stream there.
	col := s.connect(t, s.edge, "pangyo-a-col-2")
	cjs, err := jetstream.New(col.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cjs.CreateStream(ctx, jetstream.StreamConfig{Name: "EMBER_TELEMETRY",
		Subjects: []string{wire.Wildcard("*", wire.KindTelemetry)}}); err != nil {
		t.Fatalf("collector creates stream at the edge: %v", err)
	}

	agent := s.connect(t, s.edge, "pangyo-a-gw-01")
	ajs, err := jetstream.New(agent.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := ajs.Publish(ctx, wire.TelemetrySubject("pangyo-a", "gw-01", "rack-a1"), []byte("ember v=1 1"),
		jetstream.WithMsgID("gw-01:boot:1"))
	if err != nil {
		t.Fatalf("agent JetStream publish: %v", err)
	}
	if ack.Stream != "EMBER_TELEMETRY" || ack.Domain != "edge-pangyo-a" {
		t.Fatalf("ack %+v, want stream EMBER_TELEMETRY in domain edge-pangyo-a", ack)
	}
	// The agent cannot manage streams. A denied request gets no answer, so
	// bound the wait; the violation report is the proof.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := ajs.CreateStream(short, jetstream.StreamConfig{Name: "ROGUE", Subjects: []string{"rogue.>"}}); err == nil {
		t.Fatal("agent created a stream")
	}
	agent.violated(t, "$JS.API.STREAM.CREATE.ROGUE")

	// Fallback coordination: the bucket and this site's keys only.
	kv, err := ajs.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "EMBER_FALLBACK", History: 1, TTL: time.Minute})
	if err != nil {
		t.Fatalf("agent opens the fallback bucket: %v (server errors %q)", err, agent.errs)
	}
	if _, err := kv.Create(ctx, "pangyo-a.ups-2", []byte(`{"agent":"gw-01"}`)); err != nil {
		t.Fatalf("agent claims its site's domain: %v", err)
	}
	if _, err := kv.Create(ctx, "pangyo-a.ups-2", []byte(`{"agent":"gw-01"}`)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second claim: %v, want ErrKeyExists", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := kv.Create(short2, "other-site.ups-2", []byte("x")); err == nil {
		t.Fatal("agent wrote another site's fallback key")
	}
	agent.violated(t, "$KV.EMBER_FALLBACK.other-site.ups-2")
}

// TestNATSEdgeStoreAndForward runs the layout of docs/deploy.md "Leaf
// nodes": the edge keeps a telemetry stream in its own domain, the hub's
// R3 stream sources it through $JS.edge-pangyo-a.API, and what the agent
// published at the edge arrives at the hub.
func TestNATSEdgeStoreAndForward(t *testing.T) {
	s := startSite(t)
	ctx := t.Context()

	local := s.connect(t, s.edge, "pangyo-a-col-2")
	ljs, err := jetstream.New(local.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ljs.CreateStream(ctx, jetstream.StreamConfig{Name: "EMBER_TELEMETRY",
		Subjects: []string{wire.Wildcard("pangyo-a", wire.KindTelemetry)}}); err != nil {
		t.Fatalf("edge stream: %v", err)
	}
	hub := s.connect(t, s.hubs[0], "pangyo-a-col-1")
	hjs, err := jetstream.New(hub.Conn)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := hjs.CreateStream(ctx, jetstream.StreamConfig{Name: "EMBER_TELEMETRY_PANGYO_A", Replicas: 3,
		Sources: []*jetstream.StreamSource{{Name: "EMBER_TELEMETRY",
			External: &jetstream.ExternalStream{APIPrefix: "$JS.edge-pangyo-a.API"}}}})
	if err != nil {
		t.Fatalf("hub R3 stream sourcing the edge: %v", err)
	}

	agent := s.connect(t, s.edge, "pangyo-a-gw-01")
	ajs, err := jetstream.New(agent.Conn)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := ajs.Publish(ctx, wire.TelemetrySubject("pangyo-a", "gw-01", "rack-a1"),
			fmt.Appendf(nil, "ember v=%d %d", i, i), jetstream.WithMsgID(fmt.Sprintf("gw-01:b:%d", i))); err != nil {
			t.Fatalf("publish %d at the edge: %v", i, err)
		}
	}
	testenv.WaitFor(t, 15*time.Second, func() error {
		info, err := hs.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != n {
			return fmt.Errorf("hub has %d of %d messages", info.State.Msgs, n)
		}
		return nil
	})
}
