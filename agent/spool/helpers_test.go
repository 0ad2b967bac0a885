package spool

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Stream names and configuration as the collector creates them
// (collector/streams.go): what matters here is the subjects and the
// Duplicates windows.
const (
	streamTelemetry = "EMBER_TELEMETRY"
	streamAlerts    = "EMBER_ALERTS"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// connect dials url with the reconnect behaviour of agent.ConnectNATS and,
// unless extra says otherwise, no reconnect buffer: a publish while
// disconnected fails at once instead of being replayed, out of the spool's
// order, on reconnect.
func connect(t testing.TB, url string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.Timeout(2 * time.Second), nats.ReconnectBufSize(-1)}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := NewJetStream(nc, Options{AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func createStreams(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []jetstream.StreamConfig{
		{Name: streamTelemetry, Subjects: []string{wire.Wildcard("*", wire.KindTelemetry)}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute},
		{Name: streamAlerts, Subjects: []string{wire.Wildcard("*", wire.KindAlert)}, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			t.Fatalf("create stream %s: %v", c.Name, err)
		}
	}
}

// stored is one message as the stream holds it.
type stored struct {
	id      string
	subject string
	data    string
	at      time.Time
	seq     uint64
}

// streamMsgs returns every message of a stream, in stream order.
func streamMsgs(t testing.TB, js jetstream.JetStream, stream string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	if n == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer on %s: %v", stream, err)
	}
	out := make([]stored, 0, n)
	for len(out) < n {
		mb, err := c.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch %s: %v", stream, err)
		}
		got := 0
		for m := range mb.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, stored{id: m.Headers().Get(wire.MsgIDHeader), subject: m.Subject(), data: string(m.Data()), at: md.Timestamp, seq: md.Sequence.Stream})
			got++
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch %s: %v", stream, err)
		}
		if got == 0 {
			t.Fatalf("fetch %s: got %d of %d messages", stream, len(out), n)
		}
	}
	return out
}

// idCounts counts stored messages by msg id.
func idCounts(msgs []stored) map[string]int {
	m := make(map[string]int, len(msgs))
	for _, s := range msgs {
		m[s.id]++
	}
	return m
}

// runForwarder runs sp.Run until the test ends.
func runForwarder(t testing.TB, sp *Spool, js AsyncPublisher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx, js) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop within 10s of cancel")
		}
	})
}

func drain(t testing.TB, sp *Spool, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := sp.Drain(ctx); err != nil {
		t.Fatalf("%v; stats %+v", err, sp.Stats())
	}
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func serverPort(t testing.TB, s *server.Server) int {
	t.Helper()
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("server address %v is not TCP", s.Addr())
	}
	return a.Port
}
