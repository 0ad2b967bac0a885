package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// BenchmarkAgentProcess20Devices runs the real ember-agent binary against
// 20 simulated SunSpec racks (1 string x 4 modules x 16 cells each, served
// by the real ember-sim binary) sampled every 100 ms, and reports the
// agent's resident memory and CPU once it is in steady state. b.N is
// ignored: the figure is one 10 s run.
func BenchmarkAgentProcess20Devices(b *testing.B) {
	dir := b.TempDir()
	for _, c := range []string{"ember-agent", "ember-sim"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c).CombinedOutput()
		if err != nil {
			b.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	ports := testenv.FreePorts(b, 20)
	var sim, agt strings.Builder
	ns := testenv.NATS(b)
	sim.WriteString("tick: 100ms\ndevices:\n")
	fmt.Fprintf(&agt, "site: bench\nagent_id: gw-1\nbuffer_dir: %s\nnats: {servers: [%q]}\ndevices:\n", dir, ns.ClientURL())
	for i, p := range ports {
		fmt.Fprintf(&sim, "  - {id: rack-%02d, profile: sunspec, listen: \"tcp://127.0.0.1:%d\", unit_id: 1, rack: {strings: 1, modules: 4, cells: 16}}\n", i, p)
		fmt.Fprintf(&agt, "  - {id: rack-%02d, profile: sunspec, period: 100ms, modbus: {url: \"tcp://127.0.0.1:%d\", unit_id: 1}}\n", i, p)
	}
	os.WriteFile(filepath.Join(dir, "sim.yaml"), []byte(sim.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(agt.String()), 0o644)
	start := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(dir, name), args...)
		cmd.Stderr = os.Stderr
		cmd.Env = append(os.Environ(), "GOGC="+os.Getenv("BENCH_GOGC"))
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	start("ember-sim", "-config", filepath.Join(dir, "sim.yaml"), "-log-level", "error")
	time.Sleep(500 * time.Millisecond)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	msgs := 0
	sub, _ := nc.Subscribe("ember.bench.telemetry.>", func(*nats.Msg) { msgs++ })
	defer sub.Unsubscribe()
	agent := start("ember-agent", "-config", filepath.Join(dir, "agent.yaml"), "-log-level", "error")
	time.Sleep(3 * time.Second) // discovery and warm-up
	cpu0 := cpuTicks(b, agent.Process.Pid)
	time.Sleep(10 * time.Second)
	cpu1 := cpuTicks(b, agent.Process.Pid)
	rss := statusKB(b, agent.Process.Pid, "VmRSS:")
	b.ReportMetric(float64(rss)/1024, "agent-RSS-MiB")
	b.ReportMetric(float64(cpu1-cpu0)/100/10*100, "agent-CPU-%")
	b.ReportMetric(float64(msgs)/13, "msgs/s")
}

func statusKB(b *testing.B, pid int, key string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			var kb int
			fmt.Sscan(strings.TrimPrefix(sc.Text(), key), &kb)
			return kb
		}
	}
	b.Fatalf("%s not in /proc/%d/status", key, pid)
	return 0
}

// cpuTicks is utime+stime of a process in clock ticks (1/100 s).
func cpuTicks(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var u, s int
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}
