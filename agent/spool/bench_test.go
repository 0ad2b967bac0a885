package spool

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// BenchmarkPublish is the cost of spooling one 600-byte telemetry message:
// encode, append (write(2), no fsync), bound check.
func BenchmarkPublish(b *testing.B) {
	sp, err := Open(b.TempDir(), Options{tick: make(chan time.Time)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	payload := bytes.Repeat([]byte("x"), 600)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = "a1.ups-01." + strconv.Itoa(i)
	}
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := sp.Publish(ctx, "ember.s1.telemetry.a1.ups-01", ids[i%len(ids)], payload); err != nil {
			b.Fatal(err)
		}
		i++
		if i%20000 == 0 {
			sp.housekeep() // keep the bound (and disk use) in check as the syncer would
		}
	}
}

// BenchmarkForward is the forwarder's throughput draining a spooled
// backlog of 1000 telemetry messages into an in-process JetStream stream,
// acks included (publishing the backlog is not timed).
func BenchmarkForward(b *testing.B) {
	s := testenv.NATS(b)
	_, js := connect(b, s.ClientURL())
	createStreams(b, js)
	sp, err := Open(b.TempDir(), Options{tick: make(chan time.Time)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	payload := bytes.Repeat([]byte("x"), 600)
	ctx := context.Background()
	const backlog = 1000
	b.ReportAllocs()
	var gate sync.Mutex // the forwarder only starts once the backlog is spooled
	runForwarder(b, sp, gatedPublisher{js, &gate})
	n := 0
	for b.Loop() {
		b.StopTimer()
		gate.Lock()
		for range backlog {
			if err := sp.Publish(ctx, "ember.s1.telemetry.a1.ups-01", "f."+strconv.Itoa(n), payload); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.StartTimer()
		gate.Unlock()
		drain(b, sp, time.Minute)
	}
	b.ReportMetric(float64(b.N*backlog)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*backlog), "ns/msg")
}

// gatedPublisher holds the forwarder back while the benchmark spools.
type gatedPublisher struct {
	js   AsyncPublisher
	gate *sync.Mutex
}

func (g gatedPublisher) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	g.gate.Lock()
	defer g.gate.Unlock()
	return g.js.PublishMsgAsync(m, opts...)
}
