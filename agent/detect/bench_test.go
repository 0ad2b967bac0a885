package detect_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// BenchmarkStep512 steps a 512-cell rack (2 strings x 16 modules x 16
// cells, with voltage, temperature and balancing per cell) through recorded
// rounds of a live-noise scenario. The figure that matters is
// cell-samples/s (target >= 1e6 per core) with 0 allocs/op.
func BenchmarkStep512(b *testing.B) {
	s, _ := scenario.Get("normal_imbalance")
	s.Duration = 10 * time.Minute
	run := s.Start(scenario.Options{Period: time.Second, Seed: 1, Rack: scenario.Rack{Strings: 2, Modules: 16, Cells: 16}})
	dev := run.Devices()[0]
	var rounds [][]drivers.Reading
	for run.Next(func(_ string, _ time.Time, rs []drivers.Reading, _ error) {
		rounds = append(rounds, append([]drivers.Reading(nil), rs...))
	}) {
	}
	d := detect.New(detect.DefaultConfig("nmc"), dev.ID, dev.Points)
	at := run.Options.Start
	emit := func(wire.Alert) {}
	// Warm up: fill every ring and baseline so the loop is steady state.
	for i := range rounds {
		d.Step(at, rounds[i], nil, emit)
		at = at.Add(time.Second)
	}
	const cells = 512
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	i := 0
	for b.Loop() {
		d.Step(at, rounds[i%len(rounds)], nil, emit)
		at = at.Add(time.Second)
		i++
	}
	b.ReportMetric(float64(cells)*float64(b.N)/b.Elapsed().Seconds(), "cell-samples/s")
	// The machine is shared: also report per CPU-second of this process,
	// which is what "per core" means when others compete for the cores.
	if cpu := cpuSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cells)*float64(b.N)/cpu, "cell-samples/cpu-s")
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
