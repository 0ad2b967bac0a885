package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// TestIntegrationFallbackFiresOnce: no collector is running, so nobody
// acknowledges the critical alert of a rack in runaway; after the
// deadline the agent runs its local fallback hook, exactly once, with the
// evacuation on stdin and EMBER_* in its environment.
func TestIntegrationFallbackFiresOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a rack to critical, about 30 s")
	}
	s := newSite(t, `
tick: 100ms
devices:
  - id: rack-a1
    profile: sunspec
    listen: tcp://127.0.0.1:0
    unit_id: 1
    rack: {strings: 1, modules: 4, cells: 8, cell_volts: 3.31, cell_celsius: 25}
    scripts:
      - {point: "string[1].module[2].cell[3].temperature.celsius", kind: ramp, value: 25, rate: 0.4, at: 2s, max: 120}
      - {point: "string[1].module[2].cell[3].voltage.volts", kind: ramp, value: 3.31, rate: -0.02, at: 2s, min: 1.5}
`)
	dir := t.TempDir()
	out := filepath.Join(dir, "fired")
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$EMBER_PHASE $EMBER_DOMAIN $EMBER_DRY_RUN\" >> "+out+"\ncat > /dev/null\n"), 0o755)
	cfg := string(s.agentYAML(t, "250ms", "rack-a1")) + fmt.Sprintf(`hooks:
  - {name: local-drain, exec: [%q], timeout: 5s}
fallback: {domain: ups-2, targets: [host-a, host-b], deadline: 2s, quiet: 10m}
`, script)
	s.startAgent(t, []byte(cfg))
	testenv.WaitFor(t, 90*time.Second, func() error {
		b, _ := os.ReadFile(out)
		if len(b) == 0 {
			return fmt.Errorf("fallback hook has not run")
		}
		return nil
	})
	// The rack went through warning: its black box was frozen and stored.
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, func() error {
		st, err := js.Stream(context.Background(), BlackBoxStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 {
			return fmt.Errorf("black box stream is empty")
		}
		m, err := st.GetLastMsgForSubject(context.Background(), BlackBoxSubject("test-site", "gw-1", "rack-a1"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(m.Data), "component=string/1/module/2/cell/3") {
			return fmt.Errorf("black box lacks the hot cell")
		}
		return nil
	})
	time.Sleep(3 * time.Second) // later alerts (emergency) must not fire it again
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "evacuate ups-2") {
		t.Fatalf("hook runs: %q, want exactly one evacuate for ups-2", lines)
	}
}
