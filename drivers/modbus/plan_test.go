package modbus

import (
	"fmt"
	"log/slog"
	"math"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// rackYAML is a 1,054-register rack: 30 registers of bank data and
// 2 strings x 8 modules x 16 cells x 4 registers (voltage, temperature,
// 32-bit status), contiguous from address 0.
const rackYAML = `
id: test-rack
vendor: Test
model: Rack 1054
firmware: "*"
source: test fixture
protocol: modbus
current_sign: charge_positive
points:
  - {name: battery.voltage.volts, address: 0, type: u16, scale: {factor: 0.1}, unit: V}
  - {name: battery.current.amps, address: 1, type: s16, scale: {factor: 0.1}, unit: A, sign: battery}
  - {name: battery.charge.percent, address: 2, type: u16, unit: "%", range: {min: 0, max: 100}}
  - {name: battery.temperature.celsius, address: 3, type: s16, scale: {factor: 0.1}, unit: degC}
  - name: bms.alarms
    address: 4
    type: bitfield32
    bits: {0: alarm.smoke, 1: bms.alarm.over_temp}
  - {name: battery.cycles.count, address: 6, type: u32, unit: count}
  - {name: bms.serial, address: 8, type: string, length: 22}
blocks:
  - name: string
    count: 2
    start: 30
    stride: 512
    blocks:
      - name: module
        count: 8
        start: 0
        stride: 64
        blocks:
          - name: cell
            count: 16
            start: 0
            stride: 4
            points:
              - {name: "string[{string}].module[{module}].cell[{cell}].voltage.volts", address: 0, type: u16, scale: {factor: 0.001}, unit: V, range: {min: 0, max: 6}}
              - {name: "string[{string}].module[{module}].cell[{cell}].temperature.celsius", address: 1, type: s16, scale: {factor: 0.1}, unit: degC}
              - name: "string[{string}].module[{module}].cell[{cell}].status"
                address: 2
                type: bitfield32
                bits: {0: "string[{string}].module[{module}].cell[{cell}].balancing"}
`

func rackProfile(t testing.TB) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("rack.yaml", []byte(rackYAML))
	if err != nil {
		t.Fatalf("parse rack profile: %v", err)
	}
	return p
}

// serveRack fills srv with rack values and returns the expected reading per
// point name.
func serveRack(srv *modbustest.Server, unit uint8, seed int) map[string]float64 {
	want := map[string]float64{}
	regs := make([]uint16, 1054)
	regs[0], want["battery.voltage.volts"] = uint16(5120+seed), float64(5120+seed)*0.1
	regs[1], want["battery.current.amps"] = 0xFF06, 25 // charge_positive raw -25 A = discharging 25 A
	regs[2], want["battery.charge.percent"] = 87, 87
	regs[3], want["battery.temperature.celsius"] = 251, 25.1
	regs[4], regs[5] = 0, 0b10
	want["bms.alarms"], want["alarm.smoke"], want["bms.alarm.over_temp"] = 2, 0, 1
	regs[6], regs[7], want["battery.cycles.count"] = 1, 0x86A0, 100000
	copy(regs[8:], encodeString("RACK-0001", 22, false))
	for s := range 2 {
		for m := range 8 {
			for c := range 16 {
				a := 30 + s*512 + m*64 + c*4
				prefix := fmt.Sprintf("string[%d].module[%d].cell[%d]", s+1, m+1, c+1)
				mv := 3300 + s*100 + m*10 + c + seed
				regs[a], want[prefix+".voltage.volts"] = uint16(mv), float64(mv)*0.001
				t := -50 + c*10 + m
				regs[a+1], want[prefix+".temperature.celsius"] = uint16(int16(t)), float64(t)*0.1
				bal := (s + m + c) % 2
				regs[a+2], regs[a+3] = 0, uint16(bal)
				want[prefix+".status"], want[prefix+".balancing"] = float64(bal), float64(bal)
			}
		}
	}
	srv.Set(unit, modbustest.Holding, 0, regs...)
	return want
}

// TestPlanRackMinimal: the 1,054-register rack must be read in
// ceil(1054/125) = 9 requests, and every value must arrive intact.
func TestPlanRackMinimal(t *testing.T) {
	srv := modbustest.NewServer(t)
	want := serveRack(srv, 1, 0)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), rackProfile(t))
	if n := len(p.Points()); n != 9+2*8*16*4 {
		t.Fatalf("points = %d", n)
	}
	if got, min := p.Requests(), (1054+124)/125; got != min {
		t.Errorf("requests = %d, want the minimum %d", got, min)
	}
	srv.Reads()
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(out)
	for name, w := range want {
		r, ok := got[name]
		if !ok || !r.OK() || !near(r.Value, w) {
			t.Errorf("%s = %v (fault %v %s), want %v", name, r.Value, r.Fault, r.Detail, w)
		}
	}
	if r := got["bms.serial"]; r.Text != "RACK-0001" {
		t.Errorf("serial = %q", r.Text)
	}
	reads := srv.Reads()
	if len(reads) != 9 {
		t.Errorf("server saw %d reads, want 9", len(reads))
	}
	for _, rd := range reads {
		if rd.Qty > 125 || rd.Write {
			t.Errorf("bad request %+v", rd)
		}
	}
}

// TestPlan1000Registers: 1,000 single-register points over 1,000
// contiguous registers take exactly ceil(1000/125) = 8 reads.
func TestPlan1000Registers(t *testing.T) {
	for _, n := range []int{1, 124, 125, 126, 1000} {
		slots := make([]slot, n)
		for i := range slots {
			slots[i] = slot{sp: spInput, addr: uint16(1000 + i), n: 1}
		}
		reqs, size, err := plan(slots, planLimits{maxRegs: 125, maxGap: 16})
		if err != nil {
			t.Fatal(err)
		}
		if want := (n + 124) / 125; len(reqs) != want || size != n {
			t.Errorf("n=%d: %d reads of %d registers, want %d of %d", n, len(reqs), size, want, n)
		}
	}
}

func TestPlanConstraints(t *testing.T) {
	u16 := func(sp space, a uint16) slot { return slot{sp: sp, addr: a, n: 1} }
	tests := []struct {
		name  string
		slots []slot
		lim   planLimits
		want  []request
	}{
		{"gap within max_gap merges", []slot{u16(spHolding, 0), u16(spHolding, 10)}, planLimits{maxRegs: 125, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 11}}},
		{"gap beyond max_gap splits", []slot{u16(spHolding, 0), u16(spHolding, 20)}, planLimits{maxRegs: 125, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 1}, {sp: spHolding, addr: 20, qty: 1}}},
		{"max_gap 0 merges only neighbours", []slot{u16(spHolding, 0), u16(spHolding, 1), u16(spHolding, 3)}, planLimits{maxRegs: 125, maxGap: 0},
			[]request{{sp: spHolding, addr: 0, qty: 2}, {sp: spHolding, addr: 3, qty: 1}}},
		{"spaces never mix", []slot{u16(spHolding, 5), u16(spInput, 6)}, planLimits{maxRegs: 125, maxGap: 16},
			[]request{{sp: spHolding, addr: 5, qty: 1}, {sp: spInput, addr: 6, qty: 1}}},
		{"unreadable never spanned", []slot{u16(spHolding, 0), u16(spHolding, 10)},
			planLimits{maxRegs: 125, maxGap: 16, unreadable: []profile.AddrRange{{Space: "holding", From: 4, To: 5}}},
			[]request{{sp: spHolding, addr: 0, qty: 1}, {sp: spHolding, addr: 10, qty: 1}}},
		{"unreadable in another space is ignored", []slot{u16(spHolding, 0), u16(spHolding, 10)},
			planLimits{maxRegs: 125, maxGap: 16, unreadable: []profile.AddrRange{{Space: "input", From: 4, To: 5}}},
			[]request{{sp: spHolding, addr: 0, qty: 11}}},
		{"max_registers quirk", []slot{u16(spHolding, 0), u16(spHolding, 1), u16(spHolding, 2), u16(spHolding, 3), u16(spHolding, 4)}, planLimits{maxRegs: 2, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 2}, {sp: spHolding, addr: 2, qty: 2}, {sp: spHolding, addr: 4, qty: 1}}},
		{"coils read as bits up to 2000", []slot{u16(spCoil, 0), u16(spCoil, 1500)}, planLimits{maxRegs: 125, maxGap: 2000},
			[]request{{sp: spCoil, addr: 0, qty: 1501}}},
		{"32-bit point is never split", []slot{u16(spHolding, 0), {sp: spHolding, addr: 1, n: 2}}, planLimits{maxRegs: 2, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 1}, {sp: spHolding, addr: 1, qty: 2}}},
		{"scale factor joins its point's read", []slot{{sp: spHolding, addr: 0, n: 1, hasSF: true, sfAddr: 60}}, planLimits{maxRegs: 125, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 61}}},
		{"scale factor too far: own read", []slot{{sp: spHolding, addr: 0, n: 1, hasSF: true, sfAddr: 300}}, planLimits{maxRegs: 125, maxGap: 16},
			[]request{{sp: spHolding, addr: 0, qty: 1}, {sp: spHolding, addr: 300, qty: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, _, err := plan(tc.slots, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			if len(reqs) != len(tc.want) {
				t.Fatalf("plan = %+v, want %+v", reqs, tc.want)
			}
			for i := range reqs {
				r, w := reqs[i], tc.want[i]
				if r.sp != w.sp || r.addr != w.addr || r.qty != w.qty {
					t.Errorf("read %d = %v %d+%d, want %v %d+%d", i, r.sp, r.addr, r.qty, w.sp, w.addr, w.qty)
				}
			}
			for i, s := range tc.slots {
				got := tc.slots[i]
				if got.req < 0 || (s.hasSF && got.sfReq < 0) {
					t.Errorf("slot %d not located: %+v", i, got)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	_, _, err := plan([]slot{{sp: spHolding, addr: 4, n: 1}}, planLimits{maxRegs: 125,
		unreadable: []profile.AddrRange{{Space: "holding", From: 4, To: 4}}})
	if err == nil || err.Error() != "point at holding 4 lies in unreadable range 4-4" {
		t.Errorf("err = %v", err)
	}
	_, _, err = plan([]slot{{sp: spHolding, addr: 0, n: 8}}, planLimits{maxRegs: 4})
	if err == nil || err.Error() != "point at holding 0: 8 registers do not fit one read of 4" {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkPlanRack compiles and plans the 1,054-register rack and a
// 1,000-register map; requests per plan are reported.
func BenchmarkPlanRack(b *testing.B) {
	prof := rackProfile(b)
	log := slog.New(slog.DiscardHandler)
	var reqs int
	b.ReportAllocs()
	for b.Loop() {
		bl := newBuilder(log, optionsOf(prof), nil)
		c, err := compileProfile(bl, prof, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, _, err := plan(c.slots, planLimits{maxRegs: 125, maxGap: 16})
		if err != nil {
			b.Fatal(err)
		}
		reqs = len(r)
	}
	b.ReportMetric(float64(reqs), "requests")
}

func BenchmarkPlan1000(b *testing.B) {
	slots := make([]slot, 1000)
	for i := range slots {
		slots[i] = slot{sp: spHolding, addr: uint16(i), n: 1}
	}
	var reqs int
	b.ReportAllocs()
	for b.Loop() {
		r, _, err := plan(slots, planLimits{maxRegs: 125, maxGap: 16})
		if err != nil {
			b.Fatal(err)
		}
		reqs = len(r)
	}
	b.ReportMetric(float64(reqs), "requests")
	if reqs != int(math.Ceil(1000.0/125)) {
		b.Fatalf("requests = %d", reqs)
	}
}

// FuzzPlan checks the planner's invariants on random layouts: every read
// fits the limit and one space, never crosses an unreadable range, and
// every point (and scale factor) lies inside the read it was assigned.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 5, 2, 1, 200}, uint8(125), uint8(16), uint16(3), uint16(4))
	f.Add([]byte{0xFF, 0xF0, 4, 0, 0, 10, 1, 0, 1, 0, 2, 3}, uint8(2), uint8(0), uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, maxRegs, maxGap uint8, unFrom, unLen uint16) {
		lim := planLimits{maxRegs: max(1, int(maxRegs)%126), maxGap: int(maxGap) % 126}
		if unLen > 0 {
			lim.unreadable = []profile.AddrRange{{Space: "holding", From: unFrom, To: unFrom + min(unLen-1, 0xFFFF-unFrom)}}
		}
		var slots []slot
		for i := 0; i+4 <= len(data) && len(slots) < 300; i += 4 {
			s := slot{sp: space(data[i] % 4), addr: uint16(data[i+1])<<8 | uint16(data[i+2]), n: uint16(1 + data[i+3]%4)}
			if s.sp.bits() {
				s.n = 1
			}
			if int(s.addr)+int(s.n) > 1<<16 {
				continue
			}
			if data[i+3]&0x80 != 0 && !s.sp.bits() && s.addr > 0 {
				s.hasSF, s.sfAddr = true, s.addr-1
			}
			slots = append(slots, s)
		}
		reqs, size, err := plan(slots, lim)
		if err != nil {
			return // points that cannot be planned are reported, not planned
		}
		total := 0
		for _, r := range reqs {
			limit := lim.maxRegs
			if r.sp.bits() {
				limit = maxBitsPerRead
			}
			if r.qty == 0 || int(r.qty) > limit {
				t.Fatalf("read %+v breaks the limit %d", r, limit)
			}
			if _, bad := hitsUnreadable(lim.unreadable, r.sp, int(r.addr), int(r.addr)+int(r.qty)); bad {
				t.Fatalf("read %+v crosses unreadable %+v", r, lim.unreadable)
			}
			if r.off != total {
				t.Fatalf("read %+v at buffer %d, want %d", r, r.off, total)
			}
			total += int(r.qty)
		}
		if total != size {
			t.Fatalf("size %d, reads hold %d", size, total)
		}
		in := func(ri int, sp space, a, n int) bool {
			r := reqs[ri]
			return r.sp == sp && int(r.addr) <= a && a+n <= int(r.addr)+int(r.qty)
		}
		for _, s := range slots {
			if s.req < 0 || !in(s.req, s.sp, int(s.addr), int(s.n)) || s.bufOff != reqs[s.req].off+int(s.addr)-int(reqs[s.req].addr) {
				t.Fatalf("slot %+v not placed in its read", s)
			}
			if s.hasSF && (s.sfReq < 0 || !in(s.sfReq, s.sp, int(s.sfAddr), 1)) {
				t.Fatalf("slot %+v: scale factor not placed", s)
			}
		}
	})
}
