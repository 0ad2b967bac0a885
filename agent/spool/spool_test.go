package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name, subject, id string
		data              []byte
	}{
		{"telemetry", "ember.s1.telemetry.a1.ups-1", "a1.ups-1.1700000000123456789", []byte("ember,site=s1 v=1 1")},
		{"empty data", "ember.s1.alert.a1.d", "x", nil},
		{"empty id", "ember.s1.alert.a1.d", "", []byte{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendRecord(nil, tc.subject, tc.id, tc.data, at)
			r, err := decodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.subject) != tc.subject || string(r.msgID) != tc.id || !bytes.Equal(r.data, tc.data) || !r.enqueued.Equal(at) {
				t.Fatalf("got %q %q %q %v", r.subject, r.msgID, r.data, r.enqueued)
			}
		})
	}
}

func TestRecordCorrupt(t *testing.T) {
	good := appendRecord(nil, "ember.s.telemetry.a.d", "id-1", []byte("payload"), time.Unix(1, 0))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	for name, b := range map[string][]byte{
		"empty":          nil,
		"zeros":          make([]byte, 32), // what power loss leaves in an unsynced tail
		"bit flip":       flipped,
		"truncated":      good[:len(good)-3],
		"header only":    good[:recHeader],
		"wrong checksum": append([]byte{1, 2, 3, 4}, good[4:]...),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeRecord(b); !errors.Is(err, errCorruptRecord) {
				t.Fatalf("decode %x: err %v, want errCorruptRecord", b, err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for subject, want := range map[string]string{
		"ember.s1.telemetry.a1.d1": "telemetry",
		"ember.s1.alert.a1.d1":     "alert",
		"ember.s1.heartbeat.a1":    "live",
		"ember.s1.evac.dom":        "live",
		"ember":                    "live",
		"":                         "live",
	} {
		k, ok := classify(subject)
		got := "live"
		if ok {
			got = k.String()
		}
		if got != want {
			t.Errorf("classify(%q) = %s, want %s", subject, got, want)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"negative":       {SyncInterval: -time.Second},
		"bound too tiny": {MaxBytes: 100 << 10, SegmentBytes: 64 << 10},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(t.TempDir(), o, nil)
			if err == nil || !strings.Contains(err.Error(), "spool options") {
				t.Fatalf("Open: %v, want a spool options error", err)
			}
		})
	}
}

// recordingPublisher is the live path of a test: it keeps what it got.
type recordingPublisher struct{ subjects []string }

func (r *recordingPublisher) Publish(_ context.Context, subject, _ string, _ []byte) error {
	r.subjects = append(r.subjects, subject)
	return nil
}

func TestPublishRouting(t *testing.T) {
	live := &recordingPublisher{}
	sp, err := Open(t.TempDir(), Options{Live: live}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx := t.Context()
	buf := []byte("round-1")
	if err := sp.Publish(ctx, "ember.s.telemetry.a.d", "t1", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXX") // the caller reuses its buffer
	if err := sp.Publish(ctx, "ember.s.alert.a.d", "al1", []byte("alert")); err != nil {
		t.Fatal(err)
	}
	if err := sp.Publish(ctx, "ember.s.heartbeat.a", "hb1", []byte("hb")); err != nil {
		t.Fatal(err)
	}
	if len(live.subjects) != 1 || live.subjects[0] != "ember.s.heartbeat.a" {
		t.Fatalf("live publisher got %v, want the heartbeat only", live.subjects)
	}
	st := sp.Stats()
	if st.TelemetryDepth != 1 || st.AlertDepth != 1 || st.TelemetryEnqueued != 1 || st.AlertsEnqueued != 1 {
		t.Fatalf("stats %+v", st)
	}
	q := sp.q[Telemetry]
	raw, err := q.log.Read(q.first)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRecord(raw)
	if err != nil || string(r.data) != "round-1" || string(r.msgID) != "t1" {
		t.Fatalf("stored %q/%q (%v), want the data as it was at Publish", r.msgID, r.data, err)
	}

	for name, call := range map[string]func() error{
		"empty id":  func() error { return sp.Publish(ctx, "ember.s.alert.a.d", "", []byte("x")) },
		"too large": func() error { return sp.Publish(ctx, "ember.s.telemetry.a.d", "big", make([]byte, 2<<20)) },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: Publish accepted it", name)
		}
	}
	noLive, err := Open(t.TempDir(), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer noLive.Close()
	if err := noLive.Publish(ctx, "ember.s.heartbeat.a", "hb", nil); err == nil || !strings.Contains(err.Error(), "live publisher") {
		t.Fatalf("heartbeat without a live publisher: %v", err)
	}
}

// TestReopenKeepsBacklog: what a closed spool held is there, in order,
// after Open.
func TestReopenKeepsBacklog(t *testing.T) {
	dir := t.TempDir()
	sp, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", fmt.Sprint("t", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir, Options{}, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a spool dir in use: %v, want an in-use error", err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", "late", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	sp, err = Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if d := sp.Stats().TelemetryDepth; d != 100 {
		t.Fatalf("depth after reopen %d, want 100", d)
	}
	var b batch
	if n := sp.take(&b, sp.opts.MaxInFlight); n != 100 || b.items[0].msgID != "t0" || b.items[99].msgID != "t99" {
		t.Fatalf("took %d entries, first %q", n, b.items[0].msgID)
	}
}

// TestTornTailRepaired: a tail cut in the middle of an entry (a write
// that failed half way) is cut back to the last whole entry at Open.
func TestTornTailRepaired(t *testing.T) {
	dir := t.TempDir()
	sp, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", fmt.Sprint("t", i), bytes.Repeat([]byte("v"), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "telemetry", fmt.Sprintf("%020d", 1))
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-30); err != nil {
		t.Fatal(err)
	}
	sp, err = Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatalf("open after a torn tail: %v", err)
	}
	defer sp.Close()
	st := sp.Stats()
	if st.TelemetryDepth != 9 || st.TornTails != 1 || st.Corrupt != 0 {
		t.Fatalf("after repair: depth %d torn %d corrupt %d, want 9, 1, 0", st.TelemetryDepth, st.TornTails, st.Corrupt)
	}
	if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", "t10", []byte("after")); err != nil {
		t.Fatal(err)
	}
	var b batch
	if n := sp.take(&b, sp.opts.MaxInFlight); n != 10 || b.items[8].msgID != "t8" || b.items[9].msgID != "t10" {
		t.Fatalf("took %d, want t0..t8 then t10", n)
	}
}

// TestBound: with a small MaxBytes and no broker, the oldest telemetry is
// dropped in chunks, alerts are all kept, and the counters are exact:
// the stream ends up with exactly the newest TelemetryDepth entries.
func TestBound(t *testing.T) {
	const maxBytes = 256 << 10
	sp, err := Open(t.TempDir(), Options{MaxBytes: maxBytes, SegmentBytes: 32 << 10}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	payload := bytes.Repeat([]byte("x"), 1000)
	const nTel, nAlert = 1000, 50
	for i := range nTel {
		if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", fmt.Sprint("t", i), payload); err != nil {
			t.Fatal(err)
		}
		if i%(nTel/nAlert) == 0 {
			if err := sp.Publish(t.Context(), "ember.s.alert.a.d", fmt.Sprint("al", i), payload); err != nil {
				t.Fatal(err)
			}
		}
		if b := sp.Stats().Bytes; b > maxBytes {
			t.Fatalf("after %d messages the spool holds %d bytes > %d", i+1, b, maxBytes)
		}
	}
	st := sp.Stats()
	if st.AlertDepth != nAlert {
		t.Errorf("alerts kept %d, want %d", st.AlertDepth, nAlert)
	}
	if st.TelemetryDropped == 0 || st.TelemetryDropped+st.TelemetryDepth != nTel {
		t.Errorf("telemetry dropped %d + depth %d != %d", st.TelemetryDropped, st.TelemetryDepth, nTel)
	}
	t.Logf("bound %d: %d bytes, telemetry depth %d, dropped %d, alerts %d", maxBytes, st.Bytes, st.TelemetryDepth, st.TelemetryDropped, st.AlertDepth)

	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	runForwarder(t, sp, js)
	drain(t, sp, 20*time.Second)
	tel := streamMsgs(t, js, streamTelemetry)
	if uint64(len(tel)) != st.TelemetryDepth {
		t.Fatalf("stream has %d telemetry messages, spool had %d", len(tel), st.TelemetryDepth)
	}
	for i, m := range tel {
		if want := fmt.Sprint("t", int(st.TelemetryDropped)+i); m.id != want {
			t.Fatalf("telemetry %d is %s, want %s (the oldest are the ones dropped)", i, m.id, want)
		}
	}
	if al := streamMsgs(t, js, streamAlerts); len(al) != nAlert {
		t.Fatalf("stream has %d alerts, want %d", len(al), nAlert)
	}
	end := sp.Stats()
	if end.TelemetryPublished != st.TelemetryDepth || end.AlertsPublished != nAlert {
		t.Fatalf("published %d telemetry %d alerts, want %d and %d", end.TelemetryPublished, end.AlertsPublished, st.TelemetryDepth, nAlert)
	}
}

// TestZeroTailRepaired: the zero-filled tail a power cut can leave after
// unsynced appends is cut at open, not replayed as thousands of empty
// entries.
func TestZeroTailRepaired(t *testing.T) {
	dir := t.TempDir()
	sp, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := sp.Publish(t.Context(), "ember.s.telemetry.a.d", fmt.Sprint("t", i), []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "telemetry", fmt.Sprintf("%020d", 1)), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sp, err = Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if st := sp.Stats(); st.TelemetryDepth != 5 || st.TornTails != 1 {
		t.Fatalf("depth %d torn %d, want 5 and 1", st.TelemetryDepth, st.TornTails)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, "ember.s.telemetry.a.d", "id", []byte("data"), time.Unix(1, 0)))
	f.Add(make([]byte, 20))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again := appendRecord(nil, string(r.subject), string(r.msgID), r.data, r.enqueued)
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %x re-encodes as %x", b, again)
		}
	})
}
