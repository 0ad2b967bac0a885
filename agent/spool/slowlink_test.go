package spool

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	tpclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// countingPublisher counts the publishes the forwarder makes (resends
// included) on the way to the real JetStream context.
type countingPublisher struct {
	js AsyncPublisher
	n  atomic.Int64
}

func (c *countingPublisher) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	c.n.Add(1)
	return c.js.PublishMsgAsync(m, opts...)
}

// TestSlowLink: on a link too slow to carry a full window within
// AckTimeout (a cellular backhaul), the forwarder shrinks its window
// instead of resending whole batches forever; the backlog arrives exactly
// once with few resends.
func TestSlowLink(t *testing.T) {
	s := testenv.NATS(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	go srv.Listen(addr)
	t.Cleanup(func() { srv.Shutdown() })
	tc := tpclient.NewClient("http://" + addr)
	testenv.WaitFor(t, 10*time.Second, func() error { _, err := tc.Version(); return err })
	px, err := tc.CreateProxy("nats", "127.0.0.1:0", strings.TrimPrefix(s.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	_, js := connect(t, "nats://"+px.Listen)
	createStreams(t, js)
	// 100 KB/s towards the server: the backlog of 200 messages of 1 KB,
	// one window, takes 2 s to carry, over the 1 s AckTimeout.
	if _, err := px.AddToxic("slow", "bandwidth", "upstream", 1, tpclient.Attributes{"rate": 100}); err != nil {
		t.Fatal(err)
	}
	sp, err := Open(t.TempDir(), Options{AckTimeout: time.Second, MaxBackoff: 100 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	const n = 200
	payload := make([]byte, 1000)
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprint("slow-", i)
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", id, payload); err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	cp := &countingPublisher{js: js}
	start := time.Now()
	runForwarder(t, sp, cp)
	drain(t, sp, 30*time.Second)
	t.Logf("%d KB over a 100 KB/s link in %v with %d publishes (%.2f per message)", n, time.Since(start).Round(time.Millisecond), cp.n.Load(), float64(cp.n.Load())/n)
	if err := px.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, streamMsgs(t, js, streamTelemetry), want)
	if r := float64(cp.n.Load()) / n; r > 2 {
		t.Errorf("%.2f publishes per message: the window did not adapt to the link", r)
	}
}
