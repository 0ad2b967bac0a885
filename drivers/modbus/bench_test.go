package modbus

import (
	"context"
	"io"
	"log"
	"log/slog"
	"syscall"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPollRound polls the 1,054-register rack over loopback TCP: wall
// time, process CPU per round (client and in-process server together) and
// allocations per round (simonvetter client and server; the driver adds
// none, see TestPollAddsNoAllocations).
func BenchmarkPollRound(b *testing.B) {
	srv := modbustest.NewServer(b)
	serveRack(srv, 1, 0)
	srv.Quiet()
	p := mustPoller(b, NewPool(slog.New(slog.DiscardHandler)), testConfig(srv.URL, 1), rackProfile(b))
	ctx := context.Background()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if err := p.Poll(ctx, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/round")
	b.ReportMetric(float64(p.Requests()), "requests/round")
}

// TestPollAddsNoAllocations compares a steady-state Poll round with the
// same reads made directly with a simonvetter client against the same
// server: the driver's own code (planning, decoding, faults) must add no
// allocation to what the library and the in-process server make.
func TestPollAddsNoAllocations(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveRack(srv, 1, 0)
	srv.Quiet()
	p := mustPoller(t, NewPool(slog.New(slog.DiscardHandler)), testConfig(srv.URL, 1), rackProfile(t))
	ctx := context.Background()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		t.Fatal(err)
	}
	poll := testing.AllocsPerRun(50, func() {
		if err := p.Poll(ctx, out); err != nil {
			t.Fatal(err)
		}
	})
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: srv.URL, Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := testing.AllocsPerRun(50, func() {
		for _, r := range p.reqs {
			if _, err := c.ReadRawBytes(r.addr, 2*r.qty, mb.HOLDING_REGISTER); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("allocs per round: Poll %.1f, the same %d raw reads %.1f", poll, len(p.reqs), raw)
	if poll > raw+0.5 {
		t.Errorf("Poll allocates %.1f per round, the library alone %.1f: the driver adds allocations", poll, raw)
	}
	// Backing off must not allocate at all.
	srv.Stop()
	p.Poll(ctx, out)
	if !p.down {
		t.Fatal("device not down after stop")
	}
	p.nextTry = time.Now().Add(time.Hour)
	if a := testing.AllocsPerRun(50, func() { p.Poll(ctx, out) }); a != 0 {
		t.Errorf("Poll while backing off: %.1f allocs, want 0", a)
	}
}
