package sim

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestEncode(t *testing.T) {
	cases := []struct {
		enc  Encoding
		v    float64
		sf   int
		want []uint16
	}{
		{Encoding{Type: "u16", Regs: 1, Scale: 0.1}, 53.2, 0, []uint16{532}},
		{Encoding{Type: "u16", Regs: 1}, 3.912, -3, []uint16{3912}},
		{Encoding{Type: "s16", Regs: 1}, -5.3, -1, []uint16{0xFFCB}},
		{Encoding{Type: "s16", Regs: 1, Flip: true}, 12.5, -1, []uint16{0xFF83}}, // -125
		{Encoding{Type: "u16", Regs: 1, Scale: 0.1, Offset: -3200, Flip: true}, 10.5, 0, []uint16{31895}},
		{Encoding{Type: "u16", Regs: 1, Offset: -40}, 41, 0, []uint16{81}},
		{Encoding{Type: "u16", Regs: 1, Scale: 1.0 / 512}, 87.5, 0, []uint16{44800}},
		{Encoding{Type: "u32", Regs: 2}, 0x12345678, 0, []uint16{0x1234, 0x5678}},
		{Encoding{Type: "u32", Regs: 2, WordLittle: true}, 0x12345678, 0, []uint16{0x5678, 0x1234}},
		{Encoding{Type: "u32", Regs: 2, ByteLittle: true}, 0x12345678, 0, []uint16{0x3412, 0x7856}},
		{Encoding{Type: "s32", Regs: 2}, -2, 0, []uint16{0xFFFF, 0xFFFE}},
		{Encoding{Type: "u64", Regs: 4}, 1 << 40, 0, []uint16{0, 0x0100, 0, 0}},
		{Encoding{Type: "s64", Regs: 4, WordLittle: true}, -1, 0, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}},
		{Encoding{Type: "f32", Regs: 2}, 31.25, 0, []uint16{0x41FA, 0x0000}},
		{Encoding{Type: "f64", Regs: 4}, 1, 0, []uint16{0x3FF0, 0, 0, 0}},
		{Encoding{Type: "enum16", Regs: 1}, 4, 0, []uint16{4}},
		{Encoding{Type: "bitfield32", Regs: 2}, 3, 0, []uint16{0, 3}},
		{Encoding{Type: "u16", Regs: 1, Scale: 1000}, 5000, 0, []uint16{5}},
		{Encoding{Type: "u16", Regs: 1}, 94720, 1, []uint16{9472}},
	}
	for _, c := range cases {
		got := make([]uint16, c.enc.Regs)
		if err := c.enc.Encode(c.v, c.sf, got); err != nil {
			t.Errorf("%+v %v sf %d: %v", c.enc, c.v, c.sf, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%+v %v sf %d: % 04X, want % 04X", c.enc, c.v, c.sf, got, c.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		enc Encoding
		v   float64
	}{
		{Encoding{Type: "u16", Regs: 1}, -1},
		{Encoding{Type: "u16", Regs: 1}, 65536},
		{Encoding{Type: "s16", Regs: 1}, 40000},
		{Encoding{Type: "u16", Regs: 1, Scale: 0.001}, 70},
		{Encoding{Type: "u16", Regs: 1}, math.NaN()},
		{Encoding{Type: "x99", Regs: 1}, 1},
		{Encoding{Type: "u32", Regs: 1}, 1},
	}
	for _, c := range cases {
		if err := c.enc.Encode(c.v, 0, make([]uint16, 1)); !errors.Is(err, ErrEncode) {
			t.Errorf("%+v %v: err %v, want ErrEncode", c.enc, c.v, err)
		}
	}
}

func TestSentinelsAndStrings(t *testing.T) {
	for _, c := range []struct {
		enc  Encoding
		want []uint16
	}{
		{Encoding{Type: "u16", Regs: 1}, []uint16{0xFFFF}},
		{Encoding{Type: "s16", Regs: 1}, []uint16{0x8000}},
		{Encoding{Type: "s32", Regs: 2}, []uint16{0x8000, 0}},
		{Encoding{Type: "s32", Regs: 2, WordLittle: true}, []uint16{0, 0x8000}},
		{Encoding{Type: "u32", Regs: 2}, []uint16{0xFFFF, 0xFFFF}},
		{Encoding{Type: "f32", Regs: 2}, []uint16{0x7FC0, 0}},
		{Encoding{Type: "s16", Regs: 1, Invalid: []int64{-1}}, []uint16{0xFFFF}},
		{Encoding{Type: "string", Regs: 2}, []uint16{0, 0}},
	} {
		got := make([]uint16, c.enc.Regs)
		got[0] = 0x1111
		c.enc.Sentinel(got)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%+v: % 04X, want % 04X", c.enc, got, c.want)
		}
	}
	e := Encoding{Type: "string", Regs: 3}
	got := make([]uint16, 3)
	must(t, e.EncodeString("SunS", got))
	if got[0] != 0x5375 || got[1] != 0x6E53 || got[2] != 0 {
		t.Errorf("SunS % 04X", got)
	}
	if err := e.EncodeString("1234567", got); !errors.Is(err, ErrEncode) {
		t.Errorf("too long: %v", err)
	}
	e.ByteLittle = true
	must(t, e.EncodeString("ab", got))
	if got[0] != 0x6261 {
		t.Errorf("little byte order %04X", got[0])
	}
}

func BenchmarkEncode(b *testing.B) {
	e := Encoding{Type: "s16", Regs: 1, Flip: true}
	buf := make([]uint16, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Encode(-12.5, -1, buf); err != nil {
			b.Fatal(err)
		}
	}
}
