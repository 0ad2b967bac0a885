package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/spool"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// tmpfs mounts a small tmpfs for the test. Mounting needs root: without
// it the test is skipped locally and fails under CI=true.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs (CI must run as root): %v: %s", err, out)
		}
		t.Skipf("mount tmpfs needs root: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t testing.TB, dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestChaosT20DiskFull: the spool lives on a 16 MiB tmpfs that another
// file (fallocate) has almost filled, and the broker is down: the spool
// fills. It must stay up, keep every alert, drop the oldest telemetry and
// count exactly what it dropped, and take telemetry again as soon as
// space is freed. (The spool's own tests, agent/spool TestDiskFull and
// TestNoRoomForTelemetry, drive the same with a manual clock.)
func TestChaosT20DiskFull(t *testing.T) {
	// Setup.
	mnt := tmpfs(t, "16m")
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, freeBytes(t, mnt)-3<<20); err != nil {
		f.Close()
		t.Fatalf("fallocate: %v", err)
	}
	f.Close()
	storeDir, port := t.TempDir(), testenv.FreePorts(t, 1)[0]
	s := testenv.NATSWithStore(t, storeDir, port)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	opts := spool.Options{SegmentBytes: 64 << 10, SyncInterval: 200 * time.Millisecond, AckTimeout: time.Second, MaxBackoff: 200 * time.Millisecond}
	js, err := spool.NewJetStream(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	createStreams(t, js, 1)
	s.Shutdown() // the broker is down from the start: everything spools
	s.WaitForShutdown()
	sp, err := spool.Open(filepath.Join(mnt, "spool"), opts, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { sp.Run(ctx, js); close(runDone) }()
	defer func() { cancel(); <-runDone }()

	// Inject: 1 KiB rounds at full speed until several MiB were offered
	// (more than the 3 MiB left), an alert every 200 rounds.
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	telSubj, alSubj := wire.TelemetrySubject("chaos", "gw-1", "rack-1"), wire.AlertSubject("chaos", "gw-1", "rack-1")
	gen, alerts := 0, 0
	publish := func(n int) {
		for range n {
			if err := sp.Publish(ctx, telSubj, fmt.Sprintf("t.%d", gen), payload); err != nil {
				t.Fatalf("telemetry %d: %v", gen, err)
			}
			gen++
			if gen%200 == 0 {
				if err := sp.Publish(ctx, alSubj, fmt.Sprintf("a.%d", alerts), []byte(`{"stage":"warning"}`)); err != nil {
					t.Fatalf("alert %d refused: %v", alerts, err)
				}
				alerts++
			}
			if gen%50 == 0 {
				time.Sleep(time.Millisecond) // a burst, not a spin: the syncer ticks
			}
		}
	}
	publish(6000)
	// WaitPropagate: the spool reports the disk full and has dropped.
	time.Sleep(500 * time.Millisecond)
	full := sp.Stats()
	if full.TelemetryDropped == 0 {
		t.Fatalf("6 MiB offered to 3 MiB of disk and nothing dropped: %+v", full)
	}

	// Recover: the other file goes away; sampling goes on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	// WaitRecover: the spool sees the space at its next tick (its bound
	// follows the filesystem), then takes telemetry without dropping.
	var resumed time.Duration
	testenv.WaitFor(t, 10*time.Second, func() error {
		if st := sp.Stats(); st.Limit < full.Limit+8<<20 || st.DiskFull {
			return fmt.Errorf("limit %d (was %d), disk full %v", st.Limit, full.Limit, st.DiskFull)
		}
		resumed = time.Since(freed)
		return nil
	})
	droppedAtFree := sp.Stats().TelemetryDropped
	publish(500)
	if d := sp.Stats().TelemetryDropped - droppedAtFree; d != 0 {
		t.Errorf("%d telemetry dropped after space was freed", d)
	}
	// The broker comes back.
	testenv.NATSWithStore(t, storeDir, port)
	dctx, dcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer dcancel()
	if err := sp.Drain(dctx); err != nil {
		t.Fatalf("drain: %v; %+v", err, sp.Stats())
	}

	// Check.
	end := sp.Stats()
	tel := streamIDs(t, js, "EMBER_TELEMETRY")
	al := streamIDs(t, js, "EMBER_ALERTS")
	stored := len(tel)
	if uint64(stored)+end.TelemetryDropped != uint64(gen) {
		t.Errorf("%d generated, %d stored + %d counted as dropped = %d", gen, stored, end.TelemetryDropped, uint64(stored)+end.TelemetryDropped)
	}
	for i := range alerts {
		if al[fmt.Sprintf("a.%d", i)] != 1 {
			t.Errorf("alert a.%d stored %d times", i, al[fmt.Sprintf("a.%d", i)])
		}
	}
	// Oldest first: every stored id is newer than every dropped one, up
	// to the moment space was freed.
	oldestKept := -1
	for i := range gen {
		if tel[fmt.Sprintf("t.%d", i)] > 0 {
			oldestKept = i
			break
		}
	}
	gaps := 0
	for i := oldestKept; i < gen; i++ {
		if tel[fmt.Sprintf("t.%d", i)] == 0 {
			gaps++
		}
	}
	t.Logf("T20: 16 MiB tmpfs, 3 MiB free, broker down: %d telemetry (1 KiB) and %d alerts offered; disk full after %d dropped; space freed -> the spool's bound followed the filesystem after %v and 500 more were kept without a drop (criterion: resumes <= 1 poll); at the end %d stored + %d dropped = %d generated (exact), %d/%d alerts stored (criterion 100%%); oldest kept t.%d, %d gaps after it (dropped while the disk was full)",
		gen, alerts, full.TelemetryDropped, resumed.Round(time.Millisecond), stored, end.TelemetryDropped, gen, len(al), alerts, oldestKept, gaps)
	if len(al) != alerts {
		t.Errorf("%d of %d alerts stored", len(al), alerts)
	}
	if resumed > 3*time.Second {
		t.Errorf("telemetry accepted again %v after space was freed", resumed)
	}
	if gaps != 0 {
		t.Errorf("%d telemetry missing after the oldest kept one: drops were not oldest first", gaps)
	}
}
