package main

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// BenchmarkAgentProcess20Devices runs the real ember-agent binary against
// 20 simulated SunSpec racks (1 string x 4 modules x 16 cells each, served
// by the real ember-sim binary) sampled every 100 ms, and reports the
// agent's resident memory and CPU once it is in steady state. b.N is
// ignored: the figure is one 10 s run after BENCH_WARMUP (default 30 s,
// so that the black boxes have allocated what their window needs). The
// telemetry streams exist, as a collector would have made them, so the
// spool drains as in production.
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
	mport := testenv.FreePorts(b, 1)[0]
	fmt.Fprintf(&agt, "site: bench\nagent_id: gw-1\nbuffer_dir: %s\nblack_box: %s\nmetrics_listen: 127.0.0.1:%d\nnats: {servers: [%q]}\ndevices:\n",
		dir, cmp.Or(os.Getenv("BENCH_BLACK_BOX"), "10m"), mport, ns.ClientURL())
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
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []string{wire.KindTelemetry, wire.KindAlert, wire.KindHeartbeat} {
		if _, err := js.CreateOrUpdateStream(b.Context(), jetstream.StreamConfig{Name: "BENCH_" + strings.ToUpper(k),
			Subjects: []string{wire.Wildcard("bench", k)}, MaxAge: time.Minute, Duplicates: 30 * time.Second}); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	msgs := 0
	var lat []time.Duration
	stamps := map[string][]int64{}
	measure := false
	sub, _ := nc.Subscribe("ember.bench.telemetry.>", func(m *nats.Msg) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		msgs++
		if !measure {
			return
		}
		// The line's timestamp is when the round's register reads began.
		i := bytes.LastIndexByte(m.Data[:len(m.Data)-1], ' ')
		ns, _ := strconv.ParseInt(string(m.Data[i+1:len(m.Data)-1]), 10, 64)
		lat = append(lat, now.Sub(time.Unix(0, ns)))
		stamps[m.Subject] = append(stamps[m.Subject], ns)
	})
	defer sub.Unsubscribe()
	agent := start("ember-agent", "-config", filepath.Join(dir, "agent.yaml"), "-log-level", "error")
	warmup := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BENCH_WARMUP")); err == nil {
		warmup = d
	}
	time.Sleep(warmup) // discovery, warm-up, black boxes filling
	mu.Lock()
	measure = true
	mu.Unlock()
	cpu0 := cpuTicks(b, agent.Process.Pid)
	time.Sleep(10 * time.Second)
	cpu1 := cpuTicks(b, agent.Process.Pid)
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(pct(lat, 0.50), "read-to-NATS-p50-µs")
	b.ReportMetric(pct(lat, 0.99), "read-to-NATS-p99-µs")
	b.ReportMetric(pct(jitter(stamps, int64(100*time.Millisecond)), 0.99), "jitter-p99-µs")
	// The agent's own path excludes the simulated devices' answer time.
	sum, count := scrape(b, mport, "ember_poll_duration_seconds_sum"), scrape(b, mport, "ember_poll_duration_seconds_count")
	if count > 0 {
		b.ReportMetric(sum/count*1e6, "poll-mean-µs")
	}
	rss := statusKB(b, agent.Process.Pid, "VmRSS:")
	b.ReportMetric(float64(rss)/1024, "agent-RSS-MiB")
	b.ReportMetric(scrape(b, mport, "go_memstats_heap_inuse_bytes")/(1<<20), "heap-inuse-MiB")
	b.ReportMetric(scrape(b, mport, "ember_buffer_depth"), "spool-depth")
	b.ReportMetric(float64(cpu1-cpu0)/100/10*100, "agent-CPU-%")
	b.ReportMetric(float64(msgs)/(warmup+10*time.Second).Seconds(), "msgs/s")
}

// jitter estimates each round's start lateness from its timestamps alone:
// deadlines are start+k*period, never early, so a device's earliest phase
// within the period is its deadline phase.
func jitter(stamps map[string][]int64, period int64) []time.Duration {
	var out []time.Duration
	for _, ts := range stamps {
		phase := int64(math.MaxInt64)
		for _, t := range ts {
			phase = min(phase, t%period)
		}
		for _, t := range ts {
			out = append(out, time.Duration((t-phase)%period))
		}
	}
	return out
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds())
}

// scrape sums a metric's samples over all label sets from /metrics.
func scrape(b *testing.B, port int, name string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
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
