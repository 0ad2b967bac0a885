package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// TestMainSelfMonitoring runs ember-agent's Main as systemd would start
// it: READY=1 once sampling, WATCHDOG=1 only while rounds complete, and
// Prometheus metrics on metrics_listen.
func TestMainSelfMonitoring(t *testing.T) {
	s := newSite(t, twoRacksAndUPS)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	port := testenv.FreePorts(t, 1)[0]
	// The collector owns the streams; here the test plays its part.
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "TEL", Subjects: []string{"ember.*.telemetry.>", "ember.*.alert.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(s.agentYAML(t, "100ms", "rack-a1")) + fmt.Sprintf("metrics_listen: 127.0.0.1:%d\nbuffer_dir: %s\n", port, filepath.Join(dir, "spool"))
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte(cfg), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Main(ctx, file, false, s.log) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	}()
	got := map[string]bool{}
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !(got["READY=1"] && got["WATCHDOG=1"]) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v (got %v)", err, got)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			got[l] = true
		}
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`ember_rounds_total{device="rack-a1"}`, `ember_poll_duration_seconds_bucket{device="rack-a1"`, `ember_build_info`, `ember_buffer_depth{kind="telemetry"}`} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("metrics lack %s", want)
			}
		}
		return nil
	})
	// Telemetry went through the disk spool into JetStream.
	testenv.WaitFor(t, 5*time.Second, func() error {
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs < 5 {
			return fmt.Errorf("%d messages in the stream", info.State.Msgs)
		}
		return nil
	})
}
