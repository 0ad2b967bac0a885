package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestHelperProcessEmberAgent is not a test: it runs ember-agent (agent.Main)
// on CHAOS_CONFIG until killed, for TestChaosT23AgentKilled.
func TestHelperProcessEmberAgent(t *testing.T) {
	if os.Getenv("CHAOS_CHILD") != "ember-agent" {
		t.Skip("helper process for TestChaosT23AgentKilled")
	}
	if err := agent.Main(context.Background(), os.Getenv("CHAOS_CONFIG"), false, testLog(t)); err != nil {
		t.Fatal(err)
	}
}

// TestChaosT23AgentKilled: a real ember-agent process is SIGKILLed. The
// collector, watching heartbeats, must page "silent" within 3 missed
// heartbeats, and clear it when the agent is back. (Design: heartbeat 5 s,
// page <= 20 s; here heartbeat 1 s, timeout 3 s. The collector's own
// logic: collector TestHeartbeatTimeout*.)
func TestChaosT23AgentKilled(t *testing.T) {
	s := testenv.NATS(t)
	cfgFile := filepath.Join(t.TempDir(), "agent.yaml")
	y := fmt.Sprintf(`site: chaos
agent_id: gw-1
heartbeat: 1s
buffer_dir: %s
nats: {servers: [%q], ping_interval: 1s}
devices:
  - id: ups-1
    profile: apc-smart-ups-modbus
    period: 1s
    modbus: {url: "tcp://127.0.0.1:1", unit_id: 1, timeout: 100ms}
`, t.TempDir(), s.ClientURL())
	if err := os.WriteFile(cfgFile, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := collectorConfig("col-1", s.ClientURL(), "")
	cfg.HeartbeatTimeout = "3s"
	c := runCollector(t, cfg)
	noc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer noc.Close()
	var mu sync.Mutex
	var pages []wire.Alert
	var pageAt []time.Time
	noc.Subscribe(wire.Wildcard("chaos", wire.KindAlert), func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil && a.Category == wire.CategoryComms && a.Device == "gw-1" {
			mu.Lock()
			pages, pageAt = append(pages, a), append(pageAt, time.Now())
			mu.Unlock()
		}
	})
	noc.Flush()
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessEmberAgent$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CHAOS_CHILD=ember-agent", "CHAOS_CONFIG="+cfgFile)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd
	}
	heard := func() error {
		for _, a := range c.State().Snapshot(false).Agents {
			if a.Agent == "gw-1" && !a.Silent {
				return nil
			}
		}
		return fmt.Errorf("collector has not heard gw-1")
	}
	// Setup: the agent runs and beats.
	cmd := start()
	testenv.WaitFor(t, 30*time.Second, heard)

	// Inject.
	cmd.Process.Kill()
	cmd.Wait()
	killed := time.Now()
	// WaitPropagate.
	var paged time.Duration
	testenv.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i, a := range pages {
			if a.Stage > wire.StageNormal && pageAt[i].After(killed) {
				paged = pageAt[i].Sub(killed)
				return nil
			}
		}
		return fmt.Errorf("no comms page for gw-1")
	})

	// Recover and WaitRecover.
	start()
	restarted := time.Now()
	var cleared time.Duration
	testenv.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i, a := range pages {
			if a.Stage == wire.StageNormal && pageAt[i].After(restarted) {
				cleared = pageAt[i].Sub(restarted)
				return nil
			}
		}
		return fmt.Errorf("comms page not cleared")
	})
	t.Logf("T23: ember-agent SIGKILLed: collector paged \"silent\" after %v (heartbeat 1s, timeout 3s; criterion <= 20s at 5s heartbeats); restarted agent cleared it after %v",
		paged.Round(time.Millisecond), cleared.Round(time.Millisecond))
	if paged > 10*time.Second {
		t.Errorf("page after %v", paged)
	}
}
