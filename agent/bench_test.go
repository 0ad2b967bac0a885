package agent

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// manyRacks is a sim config of n SunSpec racks, each on its own listener.
func manyRacks(n int) string {
	var b strings.Builder
	b.WriteString("tick: 100ms\ndevices:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {id: rack-%02d, profile: sunspec, listen: \"tcp://127.0.0.1:0\", unit_id: 1, rack: {strings: 1, modules: 4, cells: 16}}\n", i)
	}
	return b.String()
}

func (s *site) agentYAMLRacks(n int, period string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "site: test-site\nagent_id: gw-1\nheartbeat: 1s\nnats: {servers: [%q]}\ndevices:\n", s.nc.ConnectedUrl())
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("rack-%02d", i)
		fmt.Fprintf(&b, "  - {id: %s, profile: sunspec, period: %s, modbus: {url: %q, unit_id: 1, timeout: 200ms}}\n", id, period, s.sim.Addr(id))
	}
	return []byte(b.String())
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkSampleToNATS measures, for 1 and 20 racks sampled every 100 ms
// on loopback, the time from the start of a round's register reads to its
// message arriving at a NATS subscriber, and the sampling jitter (start
// lateness against the drift-free deadline). b.N is the number of rounds
// observed. The simulated racks, NATS and the agent share this process.
func BenchmarkSampleToNATS(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("racks=%d", n), func(b *testing.B) { benchSampleToNATS(b, n) })
	}
}

func benchSampleToNATS(b *testing.B, racks int) {
	s := newSite(b, manyRacks(racks))
	var mu sync.Mutex
	var lat []time.Duration
	got := 0
	done := make(chan struct{})
	sub, err := s.nc.Subscribe("ember.test-site.telemetry.>", func(m *nats.Msg) {
		now := time.Now()
		i := strings.LastIndexByte(string(m.Data[:len(m.Data)-1]), ' ')
		var ns int64
		fmt.Sscan(string(m.Data[i+1:len(m.Data)-1]), &ns)
		mu.Lock()
		defer mu.Unlock()
		if got < 2*racks+10 { // warm-up: connection set-up and SunSpec discovery
			got++
			return
		}
		lat = append(lat, now.Sub(time.Unix(0, ns)))
		if len(lat) == b.N {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	a := s.startAgent(b, s.agentYAMLRacks(racks, "100ms"))
	b.ResetTimer()
	<-done
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	var late []time.Duration
	var overruns uint64
	for _, st := range a.Stats() {
		late = append(late, st.Lateness...)
		overruns += st.Overruns
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds()), "p50-read-to-nats-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-read-to-nats-µs")
	b.ReportMetric(float64(percentile(late, 0.99).Microseconds()), "p99-jitter-µs")
	b.ReportMetric(float64(overruns), "overruns")
}
