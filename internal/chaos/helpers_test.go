package chaos

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	tpclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// testLog logs warnings and above to the test's output (errors of the
// system under fault are expected and useful when a test fails).
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// toxi starts an in-process Toxiproxy API server on loopback and returns a
// client for it; the server is shut down at the end of the test.
func toxi(t testing.TB) *tpclient.Client {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	go srv.Listen(addr)
	t.Cleanup(func() { srv.Shutdown() })
	c := tpclient.NewClient("http://" + addr)
	testenv.WaitFor(t, 10*time.Second, func() error {
		_, err := c.Version()
		return err
	})
	return c
}

// proxy creates a Toxiproxy proxy on a dynamic loopback port in front of
// upstream (host:port).
func proxy(t testing.TB, c *tpclient.Client, name, upstream string) *tpclient.Proxy {
	t.Helper()
	px, err := c.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatalf("toxiproxy %s -> %s: %v", name, upstream, err)
	}
	return px
}

// hostPort strips a scheme ("nats://", "tcp://") from a URL.
func hostPort(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		return u[i+3:]
	}
	return u
}

// settleGoroutines waits until the goroutine count is at most want, or
// returns the last count after d.
func settleGoroutines(want int, d time.Duration) int {
	deadline := time.Now().Add(d)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// rssBytes is the process's resident set size from /proc (0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}
