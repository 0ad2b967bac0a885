package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// cluster is a 3-node in-process JetStream cluster whose nodes can be
// killed and restarted on the same ports and stores (testenv.NATSCluster
// cannot restart a node).
type cluster struct {
	t       testing.TB
	opts    []*server.Options
	mu      sync.Mutex
	servers []*server.Server
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	ports := testenv.FreePorts(t, 2*n)
	routes := make([]*url.URL, n)
	for i := range n {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])}
	}
	c := &cluster{t: t, servers: make([]*server.Server, n)}
	for i := range n {
		o := &server.Options{Host: "127.0.0.1", Port: ports[i], ServerName: fmt.Sprintf("n%d", i+1),
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true, Routes: routes}
		o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = "chaos", "127.0.0.1", ports[n+i]
		c.opts = append(c.opts, o)
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range n {
			c.kill(i)
		}
	})
	for i := range n {
		if !c.servers[i].ReadyForConnections(10 * time.Second) {
			t.Fatalf("n%d not ready", i+1)
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() error {
		for _, s := range c.servers {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("no meta leader")
	})
	return c
}

func (c *cluster) start(i int) {
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("n%d: %v", i+1, err)
	}
	go s.Start()
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
}

func (c *cluster) kill(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (c *cluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(u, ",")
}

func (c *cluster) index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// streamStates returns each running node's view of a stream.
func (c *cluster) streamStates(stream string) map[string]server.StreamState {
	out := map[string]server.StreamState{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s == nil {
			continue
		}
		ad, err := s.JszAccount(&server.JSzOptions{Account: "$G", Streams: true})
		if err != nil {
			continue
		}
		for _, sd := range ad.Streams {
			if sd.Name == stream {
				out[s.Name()] = sd.State
			}
		}
	}
	return out
}

// TestChaosT4StreamLeaderKilled: an R3 stream takes a steady flow of
// messages with Nats-Msg-Id while its leader is killed and restarted,
// twice. The publisher retries with the same id until acked: the stream
// ends with every sequence number exactly once, and all three replicas
// agree.
func TestChaosT4StreamLeaderKilled(t *testing.T) {
	rounds := 2
	if testing.Short() {
		rounds = 1
	}
	// Setup.
	c := newCluster(t, 3)
	nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testenv.WaitFor(t, 20*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{Name: "EMBER_TELEMETRY", Subjects: []string{wire.Wildcard("*", wire.KindTelemetry)},
			Storage: jetstream.FileStorage, Replicas: 3, Duplicates: 2 * time.Minute})
		return err
	})
	leader := func() string {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := js.Stream(cctx, "EMBER_TELEMETRY")
		if err != nil {
			return ""
		}
		info, err := st.Info(cctx)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}

	// The publisher: 1 message per ms target, each retried with its id
	// until a PubAck arrives.
	subj := wire.TelemetrySubject("chaos", "gw-1", "rack-1")
	var sent atomic.Int64
	var dupAcks, retries atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("gw-1.rack-1.%d", seq)
			start := time.Now()
			for attempt := 0; ; attempt++ {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				ack, err := js.Publish(pctx, subj, []byte(id), jetstream.WithMsgID(id))
				cancel()
				if err == nil {
					if ack.Duplicate {
						dupAcks.Add(1)
					}
					break
				}
				retries.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
			latMu.Lock()
			lats = append(lats, time.Since(start))
			latMu.Unlock()
			sent.Store(int64(seq + 1))
		}
	}()
	time.Sleep(time.Second)

	var elections []time.Duration
	for r := range rounds {
		// Inject: kill the stream leader.
		l := leader()
		i := c.index(l)
		if i < 0 {
			t.Fatalf("round %d: no stream leader (%q)", r, l)
		}
		c.kill(i)
		killed := time.Now()
		// WaitPropagate: another node leads.
		testenv.WaitFor(t, 30*time.Second, func() error {
			if nl := leader(); nl == "" || nl == l {
				return fmt.Errorf("leader %q", nl)
			}
			return nil
		})
		elections = append(elections, time.Since(killed))
		time.Sleep(500 * time.Millisecond)
		// Recover: restart it on the same store.
		c.start(i)
		time.Sleep(time.Second)
	}
	close(stop)
	<-pubDone
	n := int(sent.Load())

	// WaitRecover: every replica has every message.
	testenv.WaitFor(t, 30*time.Second, func() error {
		st := c.streamStates("EMBER_TELEMETRY")
		if len(st) != 3 {
			return fmt.Errorf("%d replicas report", len(st))
		}
		for name, s := range st {
			if s.Msgs != uint64(n) {
				return fmt.Errorf("%s holds %d of %d", name, s.Msgs, n)
			}
		}
		return nil
	})

	// Check: contiguous, no duplicate, replicas equal.
	ids := streamIDs(t, js, "EMBER_TELEMETRY")
	gaps, dups := 0, 0
	for i := range n {
		switch ids[fmt.Sprintf("gw-1.rack-1.%d", i)] {
		case 0:
			gaps++
		case 1:
		default:
			dups++
		}
	}
	states := c.streamStates("EMBER_TELEMETRY")
	var ref *server.StreamState
	for name, s := range states {
		if ref == nil {
			r := s
			ref = &r
			continue
		}
		if s.Msgs != ref.Msgs || s.Bytes != ref.Bytes || s.FirstSeq != ref.FirstSeq || s.LastSeq != ref.LastSeq {
			t.Errorf("replica %s differs: %+v vs %+v", name, s, *ref)
		}
	}
	latMu.Lock()
	slices.Sort(lats)
	p50, p99, worst := percentile(lats, 50), percentile(lats, 99), lats[len(lats)-1]
	latMu.Unlock()
	if gaps != 0 || dups != 0 || len(ids) != n {
		t.Fatalf("%d published, %d stored ids, %d gaps, %d duplicates", n, len(ids), gaps, dups)
	}
	t.Logf("T4: %d messages with ids through %d stream-leader kills (re-election after %v): 0 gaps, 0 duplicates (criterion 0, 0); %d retries, %d acked as duplicate; PubAck latency p50 %v p99 %v max %v (criterion p99 <= 5s); 3 replicas equal (%d msgs, seq %d..%d)",
		n, rounds, elections, retries.Load(), dupAcks.Load(), p50, p99.Round(time.Millisecond), worst.Round(time.Millisecond), ref.Msgs, ref.FirstSeq, ref.LastSeq)
	if p99 > 5*time.Second {
		t.Errorf("p99 PubAck latency %v", p99)
	}
}
