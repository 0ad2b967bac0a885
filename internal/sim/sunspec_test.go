package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// model is one entry of a SunSpec chain read off the wire.
type model struct {
	id    uint16
	start uint16 // address of the ID register
	regs  []uint16
}

// walkChain reads the chain from base by hand: "SunS", then ID/L pairs up
// to the 0xFFFF end marker.
func walkChain(t *testing.T, c *modbus.ModbusClient, base uint16) []model {
	t.Helper()
	hdr := readAll(t, c, base, 2)
	if hdr[0] != 0x5375 || hdr[1] != 0x6E53 {
		t.Fatalf("no SunS marker at %d: %04X %04X", base, hdr[0], hdr[1])
	}
	var out []model
	addr := base + 2
	for range 1000 {
		h := readAll(t, c, addr, 2)
		if h[0] == 0xFFFF {
			if h[1] != 0 {
				t.Fatalf("end marker length %d, want 0", h[1])
			}
			return out
		}
		out = append(out, model{id: h[0], start: addr, regs: append(h, readAll(t, c, addr+2, int(h[1]))...)})
		addr += 2 + h[1]
	}
	t.Fatal("chain does not end")
	return nil
}

// scaled decodes register off of m with the int16 scale factor at sfOff.
func scaled(m model, off, sfOff int, signed bool) float64 {
	raw := float64(m.regs[off])
	if signed {
		raw = float64(int16(m.regs[off]))
	}
	return raw * math.Pow10(int(int16(m.regs[sfOff])))
}

func text(regs []uint16) string {
	var b strings.Builder
	for _, r := range regs {
		b.WriteByte(byte(r >> 8))
		b.WriteByte(byte(r))
	}
	return strings.TrimRight(b.String(), "\x00")
}

func TestSunSpecRackChain(t *testing.T) {
	const S, M, K = 2, 3, 4
	clock := newFakeClock()
	s := startSim(t, fmt.Sprintf(`
devices:
  - id: rack-a1
    profile: sunspec
    listen: tcp://127.0.0.1:0
    unit_id: 3
    rack: {strings: %d, modules: %d, cells: %d}
`, S, M, K), builtinProfiles(t), WithClock(clock))
	c := client(t, s.Addr("rack-a1"), 3, time.Second)

	// Change a few primary values first: a hot, high cell and a negative
	// temperature elsewhere, and a known discharge current.
	must(t, s.Set("rack-a1", "string[2].module[3].cell[4].voltage.volts", 3.912))
	must(t, s.Set("rack-a1", "string[2].module[3].cell[4].temperature.celsius", 61.4))
	must(t, s.Set("rack-a1", "string[1].module[1].cell[2].temperature.celsius", -5.3))
	must(t, s.Set("rack-a1", "string[1].current.amps", 12.5))
	must(t, s.Set("rack-a1", "string[2].current.amps", -3))
	s.Update(clock.Advance(time.Second))

	chain := walkChain(t, c, 40000)
	var ids []uint16
	for _, m := range chain {
		ids = append(ids, m.id)
	}
	want := []uint16{1, 802, 803, 804, 804, 805, 805, 805, 805, 805, 805}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("chain %v, want %v", ids, want)
	}
	lens := map[uint16]int{1: 66, 802: 62, 803: 26 + 32*S, 804: 46 + 16*M, 805: 42 + 4*K}
	for _, m := range chain {
		if len(m.regs)-2 != lens[m.id] {
			t.Errorf("model %d at %d: L = %d, want %d", m.id, m.start, len(m.regs)-2, lens[m.id])
		}
	}

	common := chain[0]
	if got := text(common.regs[2:18]); got != "Emberwatch" {
		t.Errorf("manufacturer %q", got)
	}
	if got := text(common.regs[50:66]); got != "RACK-A1" {
		t.Errorf("serial %q", got)
	}
	if common.regs[66] != 3 {
		t.Errorf("device address %d, want unit id 3", common.regs[66])
	}

	// Every cell of every 805 decodes to the simulated value.
	seen := 0
	for _, m := range chain {
		if m.id != 805 {
			continue
		}
		si, mj, n := int(m.regs[2]), int(m.regs[3]), int(m.regs[4])
		if n != K || (len(m.regs)-44)/4 != K {
			t.Fatalf("805 s%d m%d: NCell %d, cells fitting L %d, want %d", si, mj, n, (len(m.regs)-44)/4, K)
		}
		for k := 1; k <= K; k++ {
			off := 44 + 4*(k-1)
			cell := fmt.Sprintf("string[%d].module[%d].cell[%d]", si, mj, k)
			v, _, err := s.Value("rack-a1", cell+".voltage.volts")
			must(t, err)
			if got := scaled(m, off, 42, false); math.Abs(got-v) > 0.0005 {
				t.Errorf("%s voltage %v on the wire, simulated %v", cell, got, v)
			}
			tv, _, err := s.Value("rack-a1", cell+".temperature.celsius")
			must(t, err)
			if got := scaled(m, off+1, 43, true); math.Abs(got-tv) > 0.05 {
				t.Errorf("%s temperature %v on the wire, simulated %v", cell, got, tv)
			}
			seen++
		}
		if si == 2 && mj == 3 {
			if m.regs[44+4*3] != 3912 || int16(m.regs[42]) != -3 {
				t.Errorf("cell 4 raw %d sf %d, want 3912 at -3", m.regs[44+12], int16(m.regs[42]))
			}
			if got := scaled(m, 11, 42, false); got != 3.912 || m.regs[12] != 4 {
				t.Errorf("805 CellVMax %v at cell %d, want 3.912 at 4", got, m.regs[12])
			}
			if got := scaled(m, 16, 43, true); math.Abs(got-61.4) > 1e-9 || m.regs[17] != 4 {
				t.Errorf("805 CellTmpMax %v at cell %d, want 61.4 at 4", got, m.regs[17])
			}
			// Module voltage = sum of its cells.
			sum := 0.0
			for k := range K {
				sum += scaled(m, 44+4*k, 42, false)
			}
			if got := scaled(m, 10, 41, false); math.Abs(got-sum) > 0.01 {
				t.Errorf("805 V %v, sum of cells %v", got, sum)
			}
		}
		if si == 1 && mj == 1 && m.regs[44+4+1] != uint16(0xFFCB) {
			t.Errorf("-5.3 degC raw %04X, want FFCB (-53)", m.regs[49])
		}
	}
	if seen != S*M*K {
		t.Fatalf("checked %d cells, want %d", seen, S*M*K)
	}

	// Bank and string aggregates.
	b802, b803 := chain[1], chain[2]
	if got := scaled(b802, 37, 60, false); got != 3.912 || b802.regs[38] != 2 || b802.regs[39] != 3 {
		t.Errorf("802 CellVMax %v at string %d module %d, want 3.912 at 2/3", got, b802.regs[38], b802.regs[39])
	}
	// + = discharge in the simulator; the device counts charge positive.
	if got := scaled(b802, 44, 61, true); math.Abs(got-(-9.5)) > 1e-9 {
		t.Errorf("802 A on the wire %v, want -9.5 (charge positive)", got)
	}
	if got := scaled(b803, 28+6, 24, true); math.Abs(got-(-12.5)) > 1e-9 {
		t.Errorf("803 string 1 StrA %v, want -12.5", got)
	}
	if b803.regs[2] != S {
		t.Errorf("803 NStr %d", b803.regs[2])
	}
	if b802.regs[21] != 4 {
		t.Errorf("802 Typ %d, want 4 (Li-ion)", b802.regs[21])
	}
	for i, m := range chain[3:5] {
		if m.regs[2] != uint16(i+1) || m.regs[3] != M {
			t.Errorf("804 #%d: Idx %d NMod %d", i, m.regs[2], m.regs[3])
		}
		v, _, _ := s.Value("rack-a1", fmt.Sprintf("string[%d].voltage.volts", i+1))
		if got := scaled(m, 14, 42, false); math.Abs(got-v) > 0.05 || v < 40 {
			t.Errorf("804 V %v, simulated %v", got, v)
		}
	}

	// Unavailable: the temperature sentinel, and aggregates skip it.
	must(t, s.SetUnavailable("rack-a1", "string[2].module[3].cell[4].temperature.celsius", true))
	chain = walkChain(t, c, 40000)
	m := chain[len(chain)-1]
	if m.regs[44+12+1] != 0x8000 {
		t.Errorf("unavailable s16 raw %04X, want 8000", m.regs[57])
	}
	if got := scaled(m, 16, 43, true); got > 30 {
		t.Errorf("CellTmpMax %v still counts the unavailable cell", got)
	}

	// Unmapped addresses answer illegal data address.
	if _, err := c.ReadRegisters(39990, 5, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("below the map: %v", err)
	}
	if _, err := c.ReadRegisters(0, 1, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("input space: %v", err)
	}
}

// TestSunSpecProfileNames checks that every point the sunspec profile maps
// over the chain is a point of the simulator, so scripts and Set can use the
// profile's names.
func TestSunSpecProfileNames(t *testing.T) {
	set := builtinProfiles(t)
	prof, ok := set.Get("sunspec")
	if !ok {
		t.Fatal("no sunspec profile")
	}
	d, err := NewSunSpecRack("r", RackOpts{Strings: 1, Modules: 2, Cells: 3}, prof, nil)
	must(t, err)
	for _, name := range []string{
		"battery.charge.percent", "string[1].current.amps", "string[1].module[2].cell[3].balancing",
		"string[1].module[2].cell[3].temperature.celsius", "string[1].module[2].voltage.volts",
		"bms.cells.balancing.count", "string[1].contactor.closed",
		"sunspec.802.V_SF", "sunspec.805.s1.m2.CellVMaxCell", "sunspec.804.s1.ModTmpMinMod", "bms.module.temperature.max.string",
	} {
		if _, _, ok := d.Value(name); !ok {
			t.Errorf("point %s missing", name)
		}
	}
	// Balancing bits count up the aggregates.
	must(t, d.Set("string[1].module[*].cell[2].balancing", 1))
	if v, _, _ := d.Value("bms.cells.balancing.count"); v != 2 {
		t.Errorf("balancing count %v, want 2", v)
	}
}

func TestRackShapeErrors(t *testing.T) {
	for _, o := range []RackOpts{
		{Strings: 0, Modules: 1, Cells: 1},
		{Strings: 1, Modules: 65, Cells: 1},
		{Strings: 64, Modules: 64, Cells: 16},
	} {
		if _, err := NewSunSpecRack("r", o, nil, nil); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestSharedListenerUnits(t *testing.T) {
	port := testenv.FreePorts(t, 1)[0]
	s := startSim(t, fmt.Sprintf(`
devices:
  - {id: r1, profile: sunspec, listen: "tcp://127.0.0.1:%d", unit_id: 1, rack: {strings: 1, modules: 1, cells: 2}}
  - {id: r2, profile: sunspec, listen: "tcp://127.0.0.1:%d", unit_id: 2, rack: {strings: 1, modules: 1, cells: 5}}
`, port, port), builtinProfiles(t))
	if s.Addr("r1") != s.Addr("r2") {
		t.Fatalf("addresses differ: %s %s", s.Addr("r1"), s.Addr("r2"))
	}
	c := client(t, s.Addr("r1"), 1, time.Second)
	for unit, cells := range map[uint8]int{1: 2, 2: 5} {
		c.SetUnitId(unit)
		ch := walkChain(t, c, 40000)
		if got := ch[len(ch)-1].regs[4]; int(got) != cells {
			t.Errorf("unit %d: NCell %d, want %d", unit, got, cells)
		}
	}
	c.SetUnitId(9)
	if _, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrGWTargetFailedToRespond) {
		t.Errorf("unknown unit: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConfigInCode builds a simulation without YAML, as the demo does.
func TestConfigInCode(t *testing.T) {
	dir := t.TempDir()
	csv := dir + "/r.csv"
	must(t, writeFile(csv, "t,battery.charge.percent\n0,80\n10,70\n"))
	cfg := Config{File: dir + "/in-code", Devices: []DeviceConfig{{
		ID: "r", Profile: "sunspec", Listen: "tcp://127.0.0.1:0",
		Rack:    &RackShape{Strings: 1, Modules: 2, Cells: 2},
		Scripts: []Script{{Point: "battery.charge.percent", Kind: "csv", File: "r.csv"}},
	}}}
	clock := newFakeClock()
	s, err := New(cfg, builtinProfiles(t), nil, WithClock(clock))
	must(t, err)
	if cfg.Devices[0].UnitID != 0 || cfg.Devices[0].Scripts[0].Replay != nil {
		t.Error("New changed the caller's config")
	}
	s.Update(clock.Advance(5 * time.Second))
	if v, _, _ := s.Value("r", "battery.charge.percent"); v != 75 {
		t.Errorf("charge %v, want 75", v)
	}
	if v, _, _ := s.Value("r", "string[1].module[2].charge.percent"); v != 75 {
		t.Errorf("module charge %v follows the bank: want 75", v)
	}
	if _, err := New(Config{Devices: []DeviceConfig{{ID: "X"}}}, builtinProfiles(t), nil); err == nil ||
		!strings.Contains(err.Error(), `devices[0].id: "X" must match`) {
		t.Errorf("bad in-code config: %v", err)
	}
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o644) }

// TestChargeCounting: the bank's charge follows the current.
func TestChargeCounting(t *testing.T) {
	d, err := NewSunSpecRack("r", RackOpts{Strings: 2, Modules: 1, Cells: 1, CapacityAh: 50, Charge: 80}, nil, nil)
	must(t, err)
	must(t, d.Set("string[*].current.amps", 25)) // 50 A out of a 100 Ah bank
	t0 := newFakeClock().Now()
	d.Update(t0)
	d.Update(t0.Add(6 * time.Minute)) // 5 Ah = 5 %
	if v, _, _ := d.Value("battery.charge.percent"); math.Abs(v-75) > 1e-9 {
		t.Errorf("charge %v after 6 min at 50 A, want 75", v)
	}
	if v, _, _ := d.Value("string[2].charge.percent"); math.Abs(v-75) > 1e-9 {
		t.Errorf("string charge %v", v)
	}
	if v, _, _ := d.Value("battery.charger.state"); v != 3 {
		t.Errorf("charger state %v, want 3 (discharging)", v)
	}
	must(t, d.Set("battery.charge.percent", 60)) // pinned: no longer counted
	d.Update(t0.Add(time.Hour))
	if v, _, _ := d.Value("battery.charge.percent"); v != 60 {
		t.Errorf("pinned charge moved to %v", v)
	}
}

// TestBigRackFits: a large rack's voltages, power and ratings fit their
// registers because the size-dependent scale factors adapt.
func TestBigRackFits(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := NewSunSpecRack("r", RackOpts{Strings: 2, Modules: 12, Cells: 150, CellVolts: 4.1, StringAmps: 150}, nil, log)
	must(t, err)
	d.Update(time.Now())
	if logged.Len() > 0 {
		t.Fatalf("encoding problems:\n%s", logged.String())
	}
	if v, _, _ := d.Value("battery.voltage.volts"); v < 7000 {
		t.Errorf("bank voltage %v", v)
	}
	if got := fitSF(9840, math.MaxUint16, -1); got != 0 {
		t.Errorf("fitSF(9840) = %d, want 0", got)
	}
}
