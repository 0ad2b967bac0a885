package selfmon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/selfmon"
)

// Example wires selfmon into a daemon the way ember-agent does: readiness
// after start-up, the watchdog fed by completed sampling rounds, metrics
// per device, STOPPING on shutdown. A unixgram socket stands in for systemd.
func Example() {
	// --- what systemd provides (Type=notify, WatchdogSec=) ---
	dir, _ := os.MkdirTemp("", "selfmon-example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	systemd, _ := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	defer systemd.Close()
	os.Setenv("NOTIFY_SOCKET", sock)
	os.Setenv("WATCHDOG_USEC", "40000") // 40 ms, so the example is quick
	os.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	defer func() {
		for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
			os.Unsetenv(k)
		}
	}()

	// --- in main ---
	log := slog.New(slog.DiscardHandler)
	n, err := selfmon.NewNotifier()
	if err != nil {
		fmt.Println(err)
		return
	}
	interval, err := selfmon.WatchdogInterval()
	if err != nil {
		fmt.Println(err)
		return
	}
	m := selfmon.NewMetrics("1.0.0")
	http.Handle("/metrics", m.Handler()) // on the daemon's own mux in real code
	wd := selfmon.NewWatchdog(n, interval, log)
	wd.OnStall = m.WatchdogStalled
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wd.Run(ctx); close(done) }()

	_ = n.Ready("polling 1 device")
	fmt.Println(next(systemd))

	// --- the sampling loop of one device ---
	dev := m.Device("rack-a1")
	pinged := make(chan string, 1)
	go func() {
		for {
			if s := next(systemd); strings.HasPrefix(s, "WATCHDOG=1") {
				pinged <- "WATCHDOG=1" // may carry STATUS=running after a stall
				return
			}
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case s := <-pinged:
			fmt.Println(s)
			waiting = false
		case <-tick.C:
			start := time.Now()
			// ... poll the device, publish the round ...
			dev.PollDuration.Observe(time.Since(start).Seconds())
			dev.Rounds.Inc()
			wd.Progress() // a completed round feeds the watchdog
		}
	}
	tick.Stop()

	// --- shutdown ---
	cancel()
	<-done
	_ = n.Stopping("flushing buffer")
	for s := next(systemd); ; s = next(systemd) {
		if strings.HasPrefix(s, "STOPPING=1") {
			fmt.Println(strings.ReplaceAll(s, "\n", " | "))
			break
		}
	}
	// Output:
	// READY=1
	// STATUS=polling 1 device
	// WATCHDOG=1
	// STOPPING=1 | STATUS=flushing buffer
}

// next reads one notification, as systemd would.
func next(c *net.UnixConn) string {
	buf := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := c.Read(buf)
	if err != nil {
		return err.Error()
	}
	return string(buf[:k])
}
