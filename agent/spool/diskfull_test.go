package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// smallDisk mounts a tmpfs of the given size for the test, skipping when
// mounting is not allowed (not root, no CAP_SYS_ADMIN).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if fds := openFilesUnder(dir); len(fds) > 0 {
			t.Errorf("files still open under %s: %v", dir, fds)
		}
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the filesystem refuses more, as
// another process filling the disk would, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1 << 20 { // bounded: 4 GiB
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill disk: %v", err)
			}
			return path
		}
	}
	t.Fatal("the disk never filled")
	return ""
}

// TestDiskFull (T20): on a 2 MiB filesystem, with the broker down, the
// spool bounds itself to the filesystem, drops telemetry (counted) when
// the disk is filled by someone else, keeps every alert (on disk, else in
// memory), never panics, resumes writing telemetry at the first tick after
// space is freed, and forwards exactly what it counts as kept.
func TestDiskFull(t *testing.T) {
	mnt := smallDisk(t, "2m")
	sp, err := Open(filepath.Join(mnt, "spool"), Options{SegmentBytes: 64 << 10, tick: make(chan time.Time)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	payload := bytes.Repeat([]byte("v"), 1000)
	ctx := t.Context()
	var telemetry, alerts []string
	pubTel := func(id string) {
		t.Helper()
		if err := sp.Publish(ctx, "ember.s1.telemetry.a1.d1", id, payload); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		telemetry = append(telemetry, id)
	}
	pubAlert := func(id string) {
		t.Helper()
		if err := sp.Publish(ctx, "ember.s1.alert.a1.d1", id, payload); err != nil {
			t.Fatalf("publish alert %s: %v", id, err)
		}
		alerts = append(alerts, id)
	}

	// 1. Someone fills the disk while the spool is empty: alerts have no
	// telemetry to displace and are held in memory; telemetry is dropped.
	filler := fillDisk(t, mnt)
	for i := range 5 {
		pubAlert(fmt.Sprint("held-", i))
	}
	for i := range 50 {
		pubTel(fmt.Sprint("lost-", i))
	}
	st := sp.Stats()
	if st.AlertsHeld != 5 || st.TelemetryDropped != 50 || !st.DiskFull {
		t.Fatalf("disk full: held %d alerts, dropped %d telemetry, full %v; want 5, 50, true", st.AlertsHeld, st.TelemetryDropped, st.DiskFull)
	}

	// 2. Space comes back: the next tick writes the held alerts to disk
	// and telemetry is written again.
	os.Remove(filler)
	sp.housekeep()
	pubTel("resumed-0")
	st = sp.Stats()
	if st.AlertsHeld != 0 || st.AlertDepth != 5 || st.TelemetryDepth != 1 || st.DiskFull {
		t.Fatalf("after space came back: %+v", st)
	}

	// 3. A long outage: the bound is the filesystem's size, not MaxBytes;
	// the oldest telemetry goes, no write fails.
	for i := range 3000 {
		pubTel(fmt.Sprint("outage-", i))
		if i%100 == 0 {
			pubAlert(fmt.Sprint("outage-alert-", i))
		}
	}
	st = sp.Stats()
	if st.Bytes > st.Limit || st.Limit >= 2<<20 || st.DiskFull {
		t.Fatalf("after the outage: %d bytes, limit %d, disk full %v", st.Bytes, st.Limit, st.DiskFull)
	}
	dropped := st.TelemetryDropped

	// 4. The disk is filled again while telemetry is spooled: telemetry
	// is dropped at append, alerts displace the oldest telemetry.
	filler = fillDisk(t, mnt)
	for i := range 200 {
		pubTel(fmt.Sprint("full-", i))
		if i%20 == 0 {
			pubAlert(fmt.Sprint("full-alert-", i))
		}
	}
	st = sp.Stats()
	if st.TelemetryDropped < dropped+200 || st.AlertsHeld != 0 {
		t.Fatalf("second fill: dropped %d (was %d), held %d: want >= 200 more dropped, alerts on disk", st.TelemetryDropped, dropped, st.AlertsHeld)
	}

	// 5. Space freed: writing resumes at the first tick.
	os.Remove(filler)
	sp.housekeep()
	for i := range 100 {
		pubTel(fmt.Sprint("late-", i))
	}
	before := sp.Stats()
	if before.DiskFull {
		t.Fatalf("telemetry still refused after space was freed: %+v", before)
	}
	t.Logf("before forwarding: %d telemetry kept, %d dropped, %d alerts, %d bytes of limit %d", before.TelemetryDepth, before.TelemetryDropped, before.AlertDepth, before.Bytes, before.Limit)

	// 6. The broker comes back: all alerts, and exactly the telemetry the
	// counters say was kept.
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	runForwarder(t, sp, js)
	drain(t, sp, 30*time.Second)
	wantAlerts := map[string]bool{}
	for _, id := range alerts {
		wantAlerts[id] = true
	}
	checkExactlyOnce(t, streamMsgs(t, js, streamAlerts), wantAlerts)
	tel := idCounts(streamMsgs(t, js, streamTelemetry))
	end := sp.Stats()
	if uint64(len(telemetry)) != end.TelemetryEnqueued || end.TelemetryPublished+end.TelemetryDropped != end.TelemetryEnqueued {
		t.Errorf("published %d + dropped %d != enqueued %d (published by the test: %d)", end.TelemetryPublished, end.TelemetryDropped, end.TelemetryEnqueued, len(telemetry))
	}
	if uint64(len(tel)) != end.TelemetryPublished {
		t.Errorf("stream holds %d telemetry ids, spool counts %d published", len(tel), end.TelemetryPublished)
	}
	for id, n := range tel {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	for i := range 100 {
		if tel[fmt.Sprint("late-", i)] != 1 {
			t.Fatalf("late-%d (written after space was freed) missing", i)
		}
	}
	if tel["resumed-0"] != 0 && tel["outage-0"] != 0 {
		t.Errorf("the oldest telemetry should have been dropped first")
	}
}

// TestHeldAlertsForwarded: alerts held in memory (the disk refuses them)
// are forwarded from memory when the broker is up, after those on disk.
func TestHeldAlertsForwarded(t *testing.T) {
	mnt := smallDisk(t, "1m")
	sp, err := Open(filepath.Join(mnt, "spool"), Options{SegmentBytes: 16 << 10, tick: make(chan time.Time)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range 3 {
		if err := sp.Publish(t.Context(), "ember.s1.alert.a1.d1", fmt.Sprint("disk-", i), []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	fillDisk(t, mnt)
	for i := range 20 {
		if err := sp.Publish(t.Context(), "ember.s1.alert.a1.d1", fmt.Sprint("mem-", i), bytes.Repeat([]byte("a"), 5000)); err != nil {
			t.Fatal(err)
		}
	}
	if st := sp.Stats(); st.AlertsHeld != 20 || st.AlertDepth != 3 {
		t.Fatalf("held %d alerts, %d on disk; want 20 and 3", st.AlertsHeld, st.AlertDepth)
	}
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	runForwarder(t, sp, js)
	drain(t, sp, 20*time.Second)
	msgs := streamMsgs(t, js, streamAlerts)
	if len(msgs) != 23 {
		t.Fatalf("stream has %d alerts, want 23", len(msgs))
	}
	for i, m := range msgs {
		want := fmt.Sprint("disk-", i)
		if i >= 3 {
			want = fmt.Sprint("mem-", i-3)
		}
		if m.id != want {
			t.Fatalf("alert %d is %s, want %s", i, m.id, want)
		}
	}
	if st := sp.Stats(); st.AlertsPublished != 23 || st.AlertsHeld != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAlertOverflowBounded: when the disk and the memory overflow are both
// full, Publish says so instead of losing the alert silently.
func TestAlertOverflowBounded(t *testing.T) {
	mnt := smallDisk(t, "1m")
	sp, err := Open(filepath.Join(mnt, "spool"), Options{SegmentBytes: 16 << 10, OverflowBytes: 10000, tick: make(chan time.Time)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	fillDisk(t, mnt)
	var err2 error
	n := 0
	for ; n < 100; n++ {
		if err2 = sp.Publish(t.Context(), "ember.s1.alert.a1.d1", fmt.Sprint("a-", n), make([]byte, 1000)); err2 != nil {
			break
		}
	}
	if !errors.Is(err2, ErrAlertOverflow) || n == 0 || n >= 100 {
		t.Fatalf("after %d alerts: %v, want ErrAlertOverflow once the 10000-byte overflow is full", n, err2)
	}
	if st := sp.Stats(); st.AlertsHeld != n || st.AlertsEnqueued != uint64(n) {
		t.Fatalf("held %d enqueued %d, want %d", st.AlertsHeld, st.AlertsEnqueued, n)
	}
	if err := sp.Close(); err == nil {
		t.Fatal("Close with alerts held on a full disk must report them")
	}
}

// openFilesUnder lists this process's open files under dir (leak check).
func openFilesUnder(dir string) []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if p, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(p, dir) {
			out = append(out, p)
		}
	}
	return out
}

// TestNoRoomForTelemetry: on a filesystem with less free space than the
// spool's headroom, telemetry is dropped without being written (no
// write-then-cut churn, no fsync per message) and alerts are still kept.
func TestNoRoomForTelemetry(t *testing.T) {
	mnt := smallDisk(t, "1m")
	filler := fillDisk(t, mnt)
	// Leave 96 KiB free: less than the headroom of two 64 KiB segments.
	if err := os.Truncate(filler, 1<<20-96<<10); err != nil {
		t.Fatal(err)
	}
	sp, err := Open(filepath.Join(mnt, "spool"), Options{SegmentBytes: 64 << 10, tick: make(chan time.Time)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range 100 {
		if err := sp.Publish(t.Context(), "ember.s1.telemetry.a1.d1", fmt.Sprint("t-", i), make([]byte, 500)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := sp.Publish(t.Context(), "ember.s1.alert.a1.d1", fmt.Sprint("a-", i), make([]byte, 500)); err != nil {
			t.Fatal(err)
		}
	}
	sp.housekeep()
	st := sp.Stats()
	if st.Limit != 0 || st.TelemetryDropped != 100 || st.TelemetryDepth != 0 || st.AlertDepth != 5 {
		t.Fatalf("limit %d, dropped %d, telemetry depth %d, alerts %d; want 0, 100, 0, 5", st.Limit, st.TelemetryDropped, st.TelemetryDepth, st.AlertDepth)
	}
	if st.Syncs > 1 {
		t.Fatalf("%d fsyncs for 100 dropped messages and one tick", st.Syncs)
	}
}
