package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
)

const benchRack = `
devices:
  - {id: r, profile: sunspec, listen: "%s", rack: {strings: 2, modules: 8, cells: 16}}
`

func benchRead(b *testing.B, listen string) {
	s := startSim(b, fmt.Sprintf(benchRack, listen), builtinProfiles(b))
	c := client(b, s.Addr("r"), 1, time.Second)
	// The cells of the first 805 instance and beyond: 125 mapped registers.
	const addr = 40000 + 2 + 68 + 64 + 28 + 64 + 2*(48+16*8)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ReadRegisters(addr, 125, modbus.HOLDING_REGISTER); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeRead125TCP is the round trip of a 125-register read over
// Modbus TCP on loopback (client included).
func BenchmarkServeRead125TCP(b *testing.B) { benchRead(b, "tcp://127.0.0.1:0") }

// BenchmarkServeRead125RTUOverTCP is the same with RTU framing over TCP.
func BenchmarkServeRead125RTUOverTCP(b *testing.B) { benchRead(b, "rtuovertcp://127.0.0.1:0") }

// BenchmarkHandler125 is the server side alone: fault gate and image copy.
func BenchmarkHandler125(b *testing.B) {
	d, err := NewSunSpecRack("r", RackOpts{Strings: 2, Modules: 8, Cells: 16}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := &handler{units: map[uint8]*Device{1: d}}
	req := &modbus.HoldingRegistersRequest{UnitId: 1, Addr: 40000, Quantity: 125}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.HandleHoldingRegisters(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRackTick is one tick of a 2 x 8 x 16 rack with a script on
// every cell: evaluate, derive aggregates, encode 1,500 points.
func BenchmarkRackTick(b *testing.B) {
	d, err := NewSunSpecRack("r", RackOpts{Strings: 2, Modules: 8, Cells: 16}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := d.SetScript(Script{Point: "*.cell[*].temperature.celsius", Kind: "ramp", Rate: 0.01}, t0); err != nil {
		b.Fatal(err)
	}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		d.Update(now)
	}
}
