package selfmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// listenNotify opens a unixgram socket like systemd's notify socket and
// returns a function that reads the next datagram (or "" after timeout).
func listenNotify(t *testing.T, name string) (string, func(timeout time.Duration) string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 4096)
	return name, func(timeout time.Duration) string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return ""
			}
			t.Fatalf("read notify socket: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifierMessages(t *testing.T) {
	sock, next := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	t.Setenv("NOTIFY_SOCKET", sock)
	n, err := NewNotifier()
	if err != nil || n == nil {
		t.Fatalf("NewNotifier: %v, %v", n, err)
	}
	if n.Socket() != sock {
		t.Fatalf("Socket() = %q, want %q", n.Socket(), sock)
	}
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", func() error { return n.Ready("polling 3 devices") }, "READY=1\nSTATUS=polling 3 devices"},
		{"ready bare", func() error { return n.Ready("") }, "READY=1"},
		{"status newline folded", func() error { return n.Status("a\nb") }, "STATUS=a b"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"stopping", func() error { return n.Stopping("flushing buffer") }, "STOPPING=1\nSTATUS=flushing buffer"},
		{"raw", func() error { return n.Notify("EXTEND_TIMEOUT_USEC=5000000") }, "EXTEND_TIMEOUT_USEC=5000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if got := next(2 * time.Second); got != tt.want {
				t.Fatalf("datagram %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@emberwatch-selfmon-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	_, next := listenNotify(t, name)
	n, err := NotifierAt(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready("ok"); err != nil {
		t.Fatalf("ready to abstract socket: %v", err)
	}
	if got := next(2 * time.Second); got != "READY=1\nSTATUS=ok" {
		t.Fatalf("datagram %q", got)
	}
}

func TestNotifierNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := NewNotifier()
	if err != nil || n != nil {
		t.Fatalf("NewNotifier without socket = %v, %v; want nil, nil", n, err)
	}
	// A nil notifier is a no-op, not a panic.
	if err := n.Ready("x"); err != nil {
		t.Fatal(err)
	}
	if err := n.Stopping(""); err != nil {
		t.Fatal(err)
	}
	if n.Socket() != "" {
		t.Fatal("nil notifier has a socket")
	}
}

func TestNotifierErrors(t *testing.T) {
	for _, bad := range []string{"relative/notify.sock", "/" + strings.Repeat("x", 120)} {
		if _, err := NotifierAt(bad); err == nil || !strings.Contains(err.Error(), "NOTIFY_SOCKET") {
			t.Errorf("NotifierAt(%q) error = %v, want one naming NOTIFY_SOCKET", bad, err)
		}
	}
	n, err := NotifierAt(filepath.Join(t.TempDir(), "nobody-listens.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil || !strings.Contains(err.Error(), "nobody-listens.sock") {
		t.Fatalf("send to missing socket: %v, want an error naming the socket", err)
	}
	sock, _ := listenNotify(t, filepath.Join(t.TempDir(), "n.sock"))
	n, _ = NotifierAt(sock)
	for _, bad := range []string{"READY=1\nX=2", "READY"} {
		if err := n.Notify(bad); err == nil {
			t.Errorf("Notify(%q) accepted", bad)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := 4242
	tests := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"10000000", "", 10 * time.Second, false},
		{"10000000", "4242", 10 * time.Second, false},
		{"10000000", "1", 0, false}, // meant for another process
		{"abc", "", 0, true},
		{"0", "", 0, true},
		{"-5", "", 0, true},
		{"1000", "pid", 0, true},
	}
	for _, tt := range tests {
		got, err := watchdogInterval(tt.usec, tt.pid, self)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, err %v", tt.usec, tt.pid, got, err, tt.want, tt.err)
		}
		if err != nil && !strings.Contains(err.Error(), "WATCHDOG_") {
			t.Errorf("error %q does not name the variable", err)
		}
	}
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	if d, err := WatchdogInterval(); err != nil || d != 3*time.Second {
		t.Fatalf("WatchdogInterval from env = %v, %v", d, err)
	}
}

// manualTicker lets a test decide when the watchdog loop ticks.
type manualTicker struct {
	c      chan time.Time
	period time.Duration
}

func (m *manualTicker) install(w *Watchdog) {
	w.tick = func(d time.Duration) (<-chan time.Time, func()) { m.period = d; return m.c, func() {} }
}

func TestWatchdogPingsOnlyOnProgress(t *testing.T) {
	sock, next := listenNotify(t, filepath.Join(t.TempDir(), "wd.sock"))
	n, _ := NotifierAt(sock)
	w := NewWatchdog(n, 10*time.Second, nil)
	stalls := 0
	w.OnStall = func() { stalls++ }
	mt := &manualTicker{c: make(chan time.Time)}
	mt.install(w)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	tick := func() { now = now.Add(5 * time.Second); mt.c <- now }

	// Progress, tick: one ping.
	w.Progress()
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after progress: %q, want WATCHDOG=1", got)
	}
	if mt.period != 5*time.Second {
		t.Fatalf("ping period %v, want interval/2 = 5s", mt.period)
	}
	// Several Progress calls between ticks still give one ping.
	w.Progress()
	w.Progress()
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after progress: %q", got)
	}
	if got := next(50 * time.Millisecond); got != "" {
		t.Fatalf("extra datagram %q", got)
	}
	// No progress: no ping, one status line saying why, whatever the ticks.
	tick()
	if got := next(2 * time.Second); got != "STATUS=stalled: no completed round" {
		t.Fatalf("stall status %q", got)
	}
	tick()
	tick()
	if got := next(100 * time.Millisecond); got != "" {
		t.Fatalf("stalled pipeline produced %q; the watchdog must starve", got)
	}
	// Recovery: ping plus status reset.
	w.Progress()
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1\nSTATUS=running" {
		t.Fatalf("after recovery: %q", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if w.Pings() != 3 || w.Stalls() != 3 || stalls != 3 {
		t.Fatalf("pings %d stalls %d onStall %d, want 3 3 3", w.Pings(), w.Stalls(), stalls)
	}
}

// TestWatchdogRealTime runs the real ticker: a stuck loop stops the pings
// within one period, as systemd would see it.
func TestWatchdogRealTime(t *testing.T) {
	sock, next := listenNotify(t, filepath.Join(t.TempDir(), "wd.sock"))
	n, _ := NotifierAt(sock)
	w := NewWatchdog(n, 100*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx)

	// A healthy loop: a round every 10 ms.
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				w.Progress()
			}
		}
	}()
	for i := range 3 {
		if got := next(2 * time.Second); got != "WATCHDOG=1" {
			close(stop)
			t.Fatalf("ping %d: %q", i, got)
		}
	}
	close(stop) // the loop hangs
	// At most one ping still in flight for progress made before the hang,
	// then the stall status, then silence.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		got := next(time.Second)
		if strings.HasPrefix(got, "STATUS=stalled") {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("while stalling: %q", got)
		}
	}
	if got := next(300 * time.Millisecond); got != "" {
		t.Fatalf("hung loop still feeds the watchdog: %q", got)
	}
}

// TestWatchdogSources: with several loops, one hung loop starves the
// watchdog even though the others keep going.
func TestWatchdogSources(t *testing.T) {
	sock, next := listenNotify(t, filepath.Join(t.TempDir(), "wd.sock"))
	n, _ := NotifierAt(sock)
	w := NewWatchdog(n, 10*time.Second, nil)
	clock := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	w.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	mt := &manualTicker{c: make(chan time.Time)}
	mt.install(w)

	rtu := w.Source("link rtu:///dev/ttyUSB0", 0) // allowance = interval = 10s
	snmp := w.Source("link udp://10.0.0.9:161", 30*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx)
	tick := func() { mt.c <- time.Time{} }

	advance(5 * time.Second)
	rtu.Progress()
	w.Progress() // ignored once sources exist
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("both fresh: %q", got)
	}
	// The SNMP loop (slow period) has not progressed for 11 s, within its
	// 30 s allowance; the RTU loop hangs from now on.
	advance(6 * time.Second)
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("rtu 6 s old, snmp 11 s old: %q", got)
	}
	advance(5 * time.Second)
	snmp.Progress()
	tick()
	if got := next(2 * time.Second); got != "STATUS=stalled: link rtu:///dev/ttyUSB0: no completed round for 11s" {
		t.Fatalf("hung rtu loop: %q", got)
	}
	tick()
	if got := next(100 * time.Millisecond); got != "" {
		t.Fatalf("hung loop fed the watchdog: %q", got)
	}
	// Removing the hung source (device dropped by a reload) lets pings resume.
	rtu.Close()
	tick()
	if got := next(2 * time.Second); got != "WATCHDOG=1\nSTATUS=running" {
		t.Fatalf("after Close: %q", got)
	}
	var nilSrc *Source
	nilSrc.Progress()
	nilSrc.Close()
}

func TestWatchdogDisabled(t *testing.T) {
	// No interval or no socket: Run returns at once, Progress is harmless.
	for _, w := range []*Watchdog{NewWatchdog(nil, time.Second, nil), NewWatchdog(&Notifier{}, 0, nil)} {
		w.Progress()
		if err := w.Run(t.Context()); err != nil {
			t.Fatalf("disabled Run = %v", err)
		}
	}
	var nilW *Watchdog
	nilW.Progress()
}

func BenchmarkSourceProgress(b *testing.B) {
	w := NewWatchdog(nil, time.Second, nil)
	s := w.Source("link", 0)
	b.ReportAllocs()
	for b.Loop() {
		s.Progress()
	}
}

func BenchmarkWatchdogProgress(b *testing.B) {
	w := NewWatchdog(nil, time.Second, nil)
	b.ReportAllocs()
	for b.Loop() {
		w.Progress()
	}
}

// BenchmarkNotifierWatchdog is one WATCHDOG=1 datagram to a real socket
// (socket, connect, write, close), the cost of every ping.
func BenchmarkNotifierWatchdog(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "n.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	go func() { // drain like systemd does
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	n, _ := NotifierAt(sock)
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Watchdog(); err != nil {
			b.Fatal(err)
		}
	}
}
