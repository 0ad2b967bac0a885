package spool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// TestCompaction: while a backlog drains, fully acked segments are deleted
// (nothing rewritten); a drained log is emptied at the next tick after
// CompactInterval; a restart replays at most the acked part of the
// segment still on disk, which the stream de-duplicates.
func TestCompaction(t *testing.T) {
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	clock := &fakeClock{t: time.Unix(1700000000, 0)}
	dir := t.TempDir()
	opts := Options{SegmentBytes: 64 << 10, MaxInFlight: 100, Now: clock.Now, tick: make(chan time.Time)}
	sp, err := Open(dir, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1000)
	const n = 2000 // about 31 segments of 64 KiB
	for i := range n {
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", fmt.Sprint("c-", i), payload); err != nil {
			t.Fatal(err)
		}
	}
	segsBefore, _ := sp.q[Telemetry].segments()
	// Forward 13 batches of 100 by hand, then tick.
	var b batch
	for range 13 {
		if sp.take(&b, sp.opts.MaxInFlight) != 100 {
			t.Fatal("short batch")
		}
		acked, err := sp.send(t.Context(), js, &b)
		if err != nil {
			t.Fatal(err)
		}
		sp.ack(&b, acked)
	}
	written := sp.Stats().BytesWritten
	sp.housekeep()
	segsAfter, _ := sp.q[Telemetry].segments()
	st := sp.Stats()
	if st.TelemetryPublished != 1300 || st.TelemetryDepth != 700 {
		t.Fatalf("published %d depth %d, want 1300 and 700", st.TelemetryPublished, st.TelemetryDepth)
	}
	if len(segsAfter) >= len(segsBefore) || segsAfter[0].index > 1301 || segsAfter[1].index <= 1301 {
		t.Fatalf("segments %d -> %d, first now starts at %d: want the fully acked ones gone, the one holding #1301 kept",
			len(segsBefore), len(segsAfter), segsAfter[0].index)
	}
	if st.BytesWritten != written {
		t.Fatalf("compaction wrote %d bytes; deleting whole segments writes none", st.BytesWritten-written)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: the acked entries still in the first segment are replayed.
	sp, err = Open(dir, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	replayed := sp.Stats().TelemetryDepth - 700
	if replayed == 0 || replayed > 64 {
		t.Fatalf("%d acked entries replayed after restart, want 1..64 (the rest of one segment)", replayed)
	}
	runForwarder(t, sp, js)
	drain(t, sp, 20*time.Second)
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprint("c-", i)] = true
	}
	checkExactlyOnce(t, streamMsgs(t, js, streamTelemetry), want)

	// Drained with more than half a segment acked: emptied at once.
	sp.housekeep()
	if st := sp.Stats(); st.Bytes != 0 {
		t.Fatalf("drained backlog not emptied: %+v", st)
	}
	// A few small acked entries wait for CompactInterval.
	for i := range 10 {
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", fmt.Sprint("small-", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, sp, 10*time.Second)
	sp.housekeep()
	if st := sp.Stats(); st.Bytes == 0 {
		t.Fatalf("emptied before CompactInterval: %+v", st)
	}
	clock.Advance(11 * time.Second)
	sp.housekeep()
	if st := sp.Stats(); st.Bytes != 0 || st.TelemetryDepth != 0 {
		t.Fatalf("after CompactInterval: %d bytes, depth %d; want an empty log", st.Bytes, st.TelemetryDepth)
	}
}

// TestCorruptEntrySkipped: an entry whose bytes changed on disk is skipped
// at replay and counted; its neighbours are forwarded.
func TestCorruptEntrySkipped(t *testing.T) {
	dir := t.TempDir()
	sp, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", fmt.Sprint("k-", i), []byte(fmt.Sprintf("payload-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "telemetry", fmt.Sprintf("%020d", 1))
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte("payload-4"))
	raw[i] ^= 0x20 // a flipped bit in entry 5's data
	if err := os.WriteFile(seg, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	sp, err = Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	runForwarder(t, sp, js)
	drain(t, sp, 10*time.Second)
	want := map[string]bool{}
	for i := range 10 {
		if i != 4 {
			want[fmt.Sprint("k-", i)] = true
		}
	}
	checkExactlyOnce(t, streamMsgs(t, js, streamTelemetry), want)
	if st := sp.Stats(); st.Corrupt != 1 || st.TelemetryPublished != 9 {
		t.Fatalf("corrupt %d published %d, want 1 and 9", st.Corrupt, st.TelemetryPublished)
	}
}

// TestRejectedSkipped: a message the stream will never take (over its max
// message size) is skipped and counted instead of wedging the queue.
func TestRejectedSkipped(t *testing.T) {
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamTelemetry, Subjects: []string{"ember.*.telemetry.>"},
		Duplicates: 2 * time.Minute, MaxMsgSize: 1000}); err != nil {
		t.Fatal(err)
	}
	sp, err := Open(t.TempDir(), Options{MaxBackoff: 100 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range 5 {
		size := 100
		if i == 2 {
			size = 2000
		}
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", fmt.Sprint("r-", i), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	runForwarder(t, sp, js)
	drain(t, sp, 10*time.Second)
	checkExactlyOnce(t, streamMsgs(t, js, streamTelemetry), map[string]bool{"r-0": true, "r-1": true, "r-3": true, "r-4": true})
	if st := sp.Stats(); st.Rejected != 1 || st.TelemetryPublished != 4 || st.LastError == "" {
		t.Fatalf("rejected %d published %d last error %q", st.Rejected, st.TelemetryPublished, st.LastError)
	}
}

// TestRunOnce: a second Run is refused; Run ends with ErrClosed at Close.
func TestRunOnce(t *testing.T) {
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	sp, err := Open(t.TempDir(), Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sp.Run(context.Background(), js) }()
	testenv.WaitFor(t, 5*time.Second, func() error {
		if !sp.running.Load() {
			return fmt.Errorf("Run not started")
		}
		return nil
	})
	if err := sp.Run(context.Background(), js); err == nil {
		t.Fatal("a second Run was accepted")
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5s after Close")
	}
}
