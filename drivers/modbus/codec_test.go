package modbus

import (
	"fmt"
	"math"
	"testing"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// codecCase is one point served by a real server and the value the driver
// must decode from it.
type codecCase struct {
	name       string
	typ        string
	raw        uint64 // raw bits, most significant word first
	word, byte string
	scale      *profile.Scale
	offset     float64
	sign       string
	sf         int16 // scale-factor register value when scale.sf is set
	want       float64
	wantText   string
}

func codecCases() []codecCase {
	var cs []codecCase
	neg := func(v int64) uint64 { return uint64(v) }
	base := []codecCase{
		{typ: "u16", raw: 54321, want: 54321},
		{typ: "s16", raw: neg(-1234) & 0xFFFF, want: -1234},
		{typ: "u32", raw: 3_000_000_000, want: 3e9},
		{typ: "s32", raw: neg(-123456789) & 0xFFFFFFFF, want: -123456789},
		{typ: "u64", raw: 1<<52 + 12345, want: 1<<52 + 12345},
		{typ: "s64", raw: neg(-(1 << 50) - 7), want: -(1 << 50) - 7},
		{typ: "f32", raw: uint64(math.Float32bits(-12.5)), want: -12.5},
		{typ: "f64", raw: math.Float64bits(3.14159), want: 3.14159},
		{typ: "enum16", raw: 3, want: 3, wantText: "three"},
		{typ: "enum32", raw: 70000, want: 70000, wantText: "seventy-thousand"},
		{typ: "bitfield16", raw: 0b1010, want: 10},
		{typ: "bitfield32", raw: 1<<20 | 1, want: 1<<20 | 1},
	}
	orders := [][2]string{{"big", "big"}, {"little", "big"}, {"big", "little"}, {"little", "little"}}
	for _, b := range base {
		for _, o := range orders {
			c := b
			c.word, c.byte = o[0], o[1]
			c.name = fmt.Sprintf("%s/%s-word/%s-byte", c.typ, c.word, c.byte)
			cs = append(cs, c)
		}
	}
	p10, p2 := -2, -9
	scaled := []codecCase{
		{name: "u16 factor 0.1", typ: "u16", raw: 2345, scale: &profile.Scale{Factor: f64(0.1)}, want: 234.5},
		{name: "u16 pow10 -2", typ: "u16", raw: 2345, scale: &profile.Scale{Pow10: &p10}, want: 23.45},
		{name: "s16 pow2 -9", typ: "s16", raw: neg(-1024) & 0xFFFF, scale: &profile.Scale{Pow2: &p2}, want: -2},
		{name: "u16 sf -3", typ: "u16", raw: 3912, scale: &profile.Scale{SF: "V_SF"}, sf: -3, want: 3.912},
		{name: "s16 sf 2", typ: "s16", raw: neg(-15) & 0xFFFF, scale: &profile.Scale{SF: "V_SF"}, sf: 2, want: -1500},
		{name: "u16 offset -40", typ: "u16", raw: 65, offset: -40, want: 25},
		{name: "u16 factor offset", typ: "u16", raw: 32150, scale: &profile.Scale{Factor: f64(0.1)}, offset: -3200, want: 15},
		{name: "s16 invert", typ: "s16", raw: 50, sign: "invert", want: -50},
		{name: "s16 battery charge_positive", typ: "s16", raw: neg(-300) & 0xFFFF, scale: &profile.Scale{Factor: f64(0.1)}, sign: "battery", want: 30},
		{name: "s32 little words sf", typ: "s32", raw: neg(-70000) & 0xFFFFFFFF, word: "little", scale: &profile.Scale{SF: "V_SF"}, sf: -1, want: -7000},
	}
	return append(cs, scaled...)
}

// TestDecodeServedValues serves every type in every word and byte order
// (and every scale form) from a real Modbus server and checks the polled
// value equals the served one.
func TestDecodeServedValues(t *testing.T) {
	srv := modbustest.NewServer(t)
	cases := codecCases()
	prof := &profile.Profile{ID: "codec", Protocol: "modbus", CurrentSign: "charge_positive",
		ScaleFactors: map[string]uint16{}}
	next := uint16(100)
	// Define the whole window (a device that answers zeros between points),
	// so the planner's merged reads are accepted.
	srv.Set(1, modbustest.Holding, 0, make([]uint16, 600)...)
	type bitWant struct {
		name string
		want float64
	}
	var bitWants []bitWant
	for i, c := range cases {
		pt := profile.Point{Name: fmt.Sprintf("p%d.value", i), Type: c.typ, Scale: c.scale, Offset: c.offset, Sign: c.sign}
		pt.Address = addr(next)
		pt.WordOrder, pt.ByteOrder = c.word, c.byte
		n := tU16.regCount(0)
		if vt, ok := typeNames[c.typ]; ok {
			n = vt.regCount(0)
		}
		switch c.typ {
		case "enum16":
			pt.Enum = map[int64]string{3: "three", 4: "four"}
		case "enum32":
			pt.Enum = map[int64]string{70000: "seventy-thousand"}
		case "bitfield16":
			pt.Bits = map[int]string{0: fmt.Sprintf("p%d.b0", i), 1: fmt.Sprintf("p%d.b1", i), 3: fmt.Sprintf("p%d.b3", i)}
			bitWants = append(bitWants, bitWant{fmt.Sprintf("p%d.b0", i), 0}, bitWant{fmt.Sprintf("p%d.b1", i), 1}, bitWant{fmt.Sprintf("p%d.b3", i), 1})
		case "bitfield32":
			pt.Bits = map[int]string{0: fmt.Sprintf("p%d.b0", i), 20: fmt.Sprintf("p%d.b20", i), 31: fmt.Sprintf("p%d.b31", i)}
			bitWants = append(bitWants, bitWant{fmt.Sprintf("p%d.b0", i), 1}, bitWant{fmt.Sprintf("p%d.b20", i), 1}, bitWant{fmt.Sprintf("p%d.b31", i), 0})
		}
		srv.Set(1, modbustest.Holding, next, encode(c.raw, n, c.word == "little", c.byte == "little")...)
		if c.scale != nil && c.scale.SF != "" {
			sfName := fmt.Sprintf("SF%d", i)
			pt.Scale = &profile.Scale{SF: sfName}
			prof.ScaleFactors[sfName] = next + uint16(n)
			srv.Set(1, modbustest.Holding, next+uint16(n), uint16(c.sf))
			n++
		}
		prof.Points = append(prof.Points, pt)
		next += uint16(n) + 3 // gaps the planner merges across
	}
	// Strings, coils and discrete inputs.
	prof.Points = append(prof.Points,
		profile.Point{Name: "ident.serial", Type: "string", ModbusAddr: profile.ModbusAddr{Address: addr(next), Length: 6}},
		profile.Point{Name: "ident.model", Type: "string", ModbusAddr: profile.ModbusAddr{Address: addr(next + 6), Length: 4, ByteOrder: "little"}},
		profile.Point{Name: "door.open", Type: "bool", ModbusAddr: profile.ModbusAddr{Address: addr(7), Space: "coil"}},
		profile.Point{Name: "epo.active", Type: "bool", ModbusAddr: profile.ModbusAddr{Address: addr(9), Space: "discrete"}},
		profile.Point{Name: "alarm.smoke", Type: "bool", ModbusAddr: profile.ModbusAddr{Address: addr(3), Space: "input"}},
	)
	srv.Set(1, modbustest.Holding, next, encodeString("EMBER-01  ", 6, false)...)
	srv.Set(1, modbustest.Holding, next+6, encodeString("SRT5K", 4, true)...)
	srv.Set(1, modbustest.Coil, 7, 1)
	srv.Set(1, modbustest.Discrete, 9, 0)
	srv.Set(1, modbustest.Input, 3, 1)

	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
	srv.Reads()
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	got := byName(out)
	for i, c := range cases {
		r, ok := got[fmt.Sprintf("p%d.value", i)]
		if !ok {
			t.Errorf("%s: no reading", c.name)
			continue
		}
		if !r.OK() {
			t.Errorf("%s: fault %v (%s)", c.name, r.Fault, r.Detail)
			continue
		}
		if !near(r.Value, c.want) || r.Text != c.wantText {
			t.Errorf("%s: got %v %q, want %v %q", c.name, r.Value, r.Text, c.want, c.wantText)
		}
	}
	for _, bw := range bitWants {
		r := got[bw.name]
		if !r.OK() || r.Value != bw.want || r.Point.Kind != drivers.KindBool {
			t.Errorf("bit %s: got %v fault %v kind %v, want %v", bw.name, r.Value, r.Fault, r.Point.Kind, bw.want)
		}
	}
	for name, want := range map[string]string{"ident.serial": "EMBER-01", "ident.model": "SRT5K"} {
		if r := got[name]; !r.OK() || r.Text != want {
			t.Errorf("%s: got %q fault %v, want %q", name, r.Text, r.Fault, want)
		}
	}
	for name, want := range map[string]float64{"door.open": 1, "epo.active": 0, "alarm.smoke": 1} {
		if r := got[name]; !r.OK() || r.Value != want {
			t.Errorf("%s: got %v fault %v, want %v", name, r.Value, r.Fault, want)
		}
	}
	reads := srv.Reads()
	for _, rd := range reads {
		if rd.Write {
			t.Errorf("driver sent a write: %+v", rd)
		}
	}
	if len(reads) != p.Requests() {
		t.Errorf("server saw %d requests, plan has %d", len(reads), p.Requests())
	}
	// Holding points span ~%d registers with gaps of 3: they must come in
	// as few reads as 125-register windows allow.
	holding := 0
	for _, rd := range reads {
		if rd.Space == modbustest.Holding {
			holding++
		}
	}
	span := int(next) + 10 - 100
	if min := (span + 124) / 125; holding > min+1 {
		t.Errorf("holding reads = %d for a %d-register span, want about %d", holding, span, min)
	}
}

func TestDecoderSentinelsAndFaults(t *testing.T) {
	sunspec := DecodeOptions{Sentinels: "sunspec"}
	tests := []struct {
		name   string
		pt     profile.Point
		opts   DecodeOptions
		regs   []uint16
		sf     uint16
		sfOK   bool
		fault  drivers.Fault
		value  float64
		nOut   int
		bitVal []float64
	}{
		{name: "s16 0x8000 sunspec", pt: profile.Point{Name: "a", Type: "s16"}, opts: sunspec, regs: []uint16{0x8000}, fault: drivers.FaultSentinel},
		{name: "s16 0x8000 plain is a number", pt: profile.Point{Name: "a", Type: "s16"}, regs: []uint16{0x8000}, value: -32768},
		{name: "u16 0xFFFF sunspec", pt: profile.Point{Name: "a", Type: "u16"}, opts: sunspec, regs: []uint16{0xFFFF}, fault: drivers.FaultSentinel},
		{name: "enum16 0xFFFF sunspec", pt: profile.Point{Name: "a", Type: "enum16"}, opts: sunspec, regs: []uint16{0xFFFF}, fault: drivers.FaultSentinel},
		{name: "bitfield16 0xFFFF sunspec marks bits", pt: profile.Point{Type: "bitfield16", Bits: map[int]string{0: "x", 1: "y"}}, opts: sunspec, regs: []uint16{0xFFFF}, fault: drivers.FaultSentinel, nOut: 2},
		{name: "s32 0x80000000 sunspec", pt: profile.Point{Name: "a", Type: "s32"}, opts: sunspec, regs: []uint16{0x8000, 0}, fault: drivers.FaultSentinel},
		{name: "u32 0xFFFFFFFF sunspec", pt: profile.Point{Name: "a", Type: "u32"}, opts: sunspec, regs: []uint16{0xFFFF, 0xFFFF}, fault: drivers.FaultSentinel},
		{name: "enum32 all ones sunspec", pt: profile.Point{Name: "a", Type: "enum32"}, opts: sunspec, regs: []uint16{0xFFFF, 0xFFFF}, fault: drivers.FaultSentinel},
		{name: "u64 all ones sunspec", pt: profile.Point{Name: "a", Type: "u64"}, opts: sunspec, regs: []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, fault: drivers.FaultSentinel},
		{name: "f32 NaN", pt: profile.Point{Name: "a", Type: "f32"}, regs: []uint16{0x7FC0, 0}, fault: drivers.FaultSentinel},
		{name: "f32 +Inf", pt: profile.Point{Name: "a", Type: "f32"}, regs: []uint16{0x7F80, 0}, fault: drivers.FaultRange},
		{name: "f64 NaN", pt: profile.Point{Name: "a", Type: "f64"}, regs: []uint16{0x7FF8, 0, 0, 1}, fault: drivers.FaultSentinel},
		{name: "string first NUL sunspec", pt: profile.Point{Name: "a", Type: "string", ModbusAddr: profile.ModbusAddr{Length: 2}}, opts: sunspec, regs: []uint16{0x0041, 0x4200}, fault: drivers.FaultSentinel},
		{name: "string all NUL plain", pt: profile.Point{Name: "a", Type: "string", ModbusAddr: profile.ModbusAddr{Length: 2}}, regs: []uint16{0, 0}, fault: drivers.FaultSentinel},
		{name: "invalid_text", pt: profile.Point{Name: "a", Type: "string", InvalidText: []string{"N/A"}, ModbusAddr: profile.ModbusAddr{Length: 2}}, regs: encodeString("N/A", 2, false), fault: drivers.FaultSentinel},
		{name: "invalid list signed form", pt: profile.Point{Name: "a", Type: "s16", Invalid: []int64{-1}}, regs: []uint16{0xFFFF}, fault: drivers.FaultSentinel},
		{name: "invalid list hex form on u32", pt: profile.Point{Name: "a", Type: "u32", Invalid: []int64{0x7FFFFFFF}}, regs: []uint16{0x7FFF, 0xFFFF}, fault: drivers.FaultSentinel},
		{name: "sf 0x8000 makes scale fault", pt: profile.Point{Name: "a", Type: "u16", Scale: &profile.Scale{SF: "X"}}, regs: []uint16{100}, sf: 0x8000, sfOK: true, fault: drivers.FaultScale},
		{name: "sf garbage 50", pt: profile.Point{Name: "a", Type: "u16", Scale: &profile.Scale{SF: "X"}}, regs: []uint16{100}, sf: 50, sfOK: true, fault: drivers.FaultScale},
		{name: "sf not read", pt: profile.Point{Name: "a", Type: "u16", Scale: &profile.Scale{SF: "X"}}, regs: []uint16{100}, sfOK: false, fault: drivers.FaultScale},
		{name: "range above", pt: profile.Point{Name: "a", Type: "u16", Range: &profile.Range{Min: 0, Max: 100}}, regs: []uint16{101}, fault: drivers.FaultRange},
		{name: "range inside", pt: profile.Point{Name: "a", Type: "u16", Range: &profile.Range{Min: 0, Max: 100}}, regs: []uint16{100}, value: 100},
		{name: "short data", pt: profile.Point{Name: "a", Type: "u32"}, regs: []uint16{1}, fault: drivers.FaultMalformed},
		{name: "named bitfield plus bits", pt: profile.Point{Name: "st", Type: "bitfield16", Bits: map[int]string{2: "b2"}}, regs: []uint16{4}, value: 4, nOut: 2, bitVal: []float64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(&tc.pt, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			n := tc.nOut
			if n == 0 {
				n = 1
			}
			if d.Outputs() != n {
				t.Fatalf("Outputs = %d, want %d", d.Outputs(), n)
			}
			out := make([]drivers.Reading, n)
			d.Decode(tc.regs, tc.sf, tc.sfOK, out)
			for i := range out {
				if i > 0 && tc.fault == drivers.FaultNone {
					break
				}
				if out[i].Fault != tc.fault {
					t.Errorf("out[%d].Fault = %v (%s), want %v", i, out[i].Fault, out[i].Detail, tc.fault)
				}
				if tc.fault != drivers.FaultNone && out[i].Detail == "" {
					t.Errorf("out[%d]: fault without detail", i)
				}
			}
			if tc.fault == drivers.FaultNone && out[0].Value != tc.value {
				t.Errorf("value = %v, want %v", out[0].Value, tc.value)
			}
			for i, v := range tc.bitVal {
				if out[1+i].Value != v || !out[1+i].OK() {
					t.Errorf("bit reading %d = %v (%v), want %v", i, out[1+i].Value, out[1+i].Fault, v)
				}
			}
		})
	}
}

func TestStringReusedWhileUnchanged(t *testing.T) {
	d, err := NewDecoder(&profile.Point{Name: "s", Type: "string", ModbusAddr: profile.ModbusAddr{Length: 4}}, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	regs := encodeString("ABC\x01", 4, false)
	out := make([]drivers.Reading, 1)
	d.Decode(regs, 0, true, out)
	if out[0].Text != "ABC?" {
		t.Fatalf("text = %q, want non-printable as '?'", out[0].Text)
	}
	allocs := testing.AllocsPerRun(100, func() { d.Decode(regs, 0, true, out) })
	if allocs != 0 {
		t.Errorf("unchanged string: %v allocs per decode, want 0", allocs)
	}
	d.Decode(encodeString("XYZ", 4, false), 0, true, out)
	if out[0].Text != "XYZ" {
		t.Errorf("changed text = %q", out[0].Text)
	}
}

func TestNewDecoderErrors(t *testing.T) {
	tests := []struct {
		pt   profile.Point
		want string
	}{
		{profile.Point{Type: "u17"}, `type: unknown modbus type "u17"`},
		{profile.Point{Type: "string"}, "length: a string needs a length in registers"},
		{profile.Point{Type: "u16", ModbusAddr: profile.ModbusAddr{WordOrder: "middle"}}, `word_order: "middle" is not big or little`},
		{profile.Point{Type: "u16", Sign: "up"}, `sign: "up" is not battery or invert`},
		{profile.Point{Type: "u16", Scale: &profile.Scale{Factor: f64(0)}}, "scale: factor must be finite and non-zero"},
		{profile.Point{Type: "u16", Range: &profile.Range{Min: 2, Max: 1}}, "range: min 2 is above max 1"},
		{profile.Point{Type: "u16", Bits: map[int]string{16: "x"}}, "bits: bit 16 outside a 1-register value"},
	}
	for _, tc := range tests {
		_, err := NewDecoder(&tc.pt, DecodeOptions{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: err = %v, want %q", tc.pt, err, tc.want)
		}
	}
}

// FuzzDecode feeds random register words, types, orders and scale factors:
// decoding must never panic and never report a good NaN or Inf.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x7F, 0xC0, 0, 0}, uint8(6), uint8(0), int16(0))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(4), uint8(3), int16(10))
	f.Add([]byte{0x80, 0x00}, uint8(1), uint8(1), int16(-32768))
	f.Add([]byte{0x7F, 0xF0, 0, 0, 0, 0, 0, 0}, uint8(7), uint8(2), int16(3))
	f.Add([]byte("EMBER\x00\x01"), uint8(8), uint8(1), int16(0))
	types := []string{"u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "string", "bitfield16", "bitfield32", "enum16", "enum32", "bool"}
	f.Fuzz(func(t *testing.T, data []byte, typ, flags uint8, sf int16) {
		regs := make([]uint16, len(data)/2)
		for i := range regs {
			regs[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		pt := profile.Point{Name: "x", Type: types[int(typ)%len(types)], Enum: map[int64]string{1: "one"}}
		pt.Length = max(1, len(regs))
		if flags&1 != 0 {
			pt.WordOrder = "little"
		}
		if flags&2 != 0 {
			pt.ByteOrder = "little"
		}
		if flags&4 != 0 {
			pt.Scale = &profile.Scale{SF: "S"}
		} else if flags&8 != 0 {
			pt.Scale = &profile.Scale{Factor: f64(1e300)}
		}
		if flags&16 != 0 {
			pt.Offset = -1e308
		}
		if flags&32 != 0 && (pt.Type == "bitfield16" || pt.Type == "bitfield32") {
			pt.Bits = map[int]string{0: "b0", 15: "b15"}
		}
		opts := DecodeOptions{}
		if flags&64 != 0 {
			opts.Sentinels = "sunspec"
		}
		d, err := NewDecoder(&pt, opts)
		if err != nil {
			t.Fatalf("NewDecoder(%+v): %v", pt, err)
		}
		out := make([]drivers.Reading, d.Outputs())
		d.Decode(regs, uint16(sf), flags&128 == 0, out)
		for _, r := range out {
			if r.Fault == drivers.FaultNone && (math.IsNaN(r.Value) || math.IsInf(r.Value, 0)) {
				t.Fatalf("good reading with value %v from %x (%s)", r.Value, regs, pt.Type)
			}
			if r.Fault != drivers.FaultNone && r.Detail == "" {
				t.Fatalf("fault %v without detail", r.Fault)
			}
		}
	})
}

// benchDecoders compiles 100 points of mixed types as a device would have.
func benchDecoders(tb testing.TB) ([]*Decoder, []uint16) {
	types := []string{"u16", "s16", "u32", "s32", "f32", "enum16", "bitfield32", "u16", "s16", "u16"}
	var decs []*Decoder
	var regs []uint16
	for i := range 100 {
		pt := profile.Point{Name: "p", Type: types[i%len(types)], Scale: &profile.Scale{Factor: f64(0.1)},
			Range: &profile.Range{Min: -1e9, Max: 1e9}, Enum: map[int64]string{1: "a", 2: "b", 3: "c"}}
		if pt.Type == "bitfield32" {
			pt.Scale, pt.Bits = nil, map[int]string{0: "b0", 1: "b1"}
		}
		if i%5 == 0 {
			pt.Scale = &profile.Scale{SF: "S"}
		}
		d, err := NewDecoder(&pt, DecodeOptions{Sentinels: "sunspec"})
		if err != nil {
			tb.Fatal(err)
		}
		decs = append(decs, d)
		for k := range d.n {
			regs = append(regs, uint16(i*7+k))
		}
	}
	return decs, regs
}

// BenchmarkDecode100 decodes 100 points (target < 20 µs, 0 allocs).
func BenchmarkDecode100(b *testing.B) {
	decs, regs := benchDecoders(b)
	out := make([]drivers.Reading, 200)
	b.ReportAllocs()
	for b.Loop() {
		off, o := 0, 0
		for _, d := range decs {
			d.Decode(regs[off:off+d.n], 0xFFFE, true, out[o:o+d.Outputs()])
			off += d.n
			o += d.Outputs()
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	decs, regs := benchDecoders(t)
	out := make([]drivers.Reading, 200)
	allocs := testing.AllocsPerRun(200, func() {
		off, o := 0, 0
		for _, d := range decs {
			d.Decode(regs[off:off+d.n], 0xFFFE, true, out[o:o+d.Outputs()])
			off += d.n
			o += d.Outputs()
		}
	})
	if allocs != 0 {
		t.Errorf("decoding 100 points: %v allocs, want 0", allocs)
	}
}
