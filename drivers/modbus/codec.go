package modbus

import (
	"fmt"
	"math"
	"slices"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// valueType is a point's raw Modbus type, resolved once at compile time so
// that decoding never compares strings.
type valueType uint8

const (
	tU16 valueType = iota
	tS16
	tU32
	tS32
	tU64
	tS64
	tF32
	tF64
	tString
	tBitfield16
	tBitfield32
	tEnum16
	tEnum32
	tBool
)

var typeNames = map[string]valueType{
	"u16": tU16, "s16": tS16, "u32": tU32, "s32": tS32, "u64": tU64, "s64": tS64,
	"f32": tF32, "f64": tF64, "string": tString,
	"bitfield16": tBitfield16, "bitfield32": tBitfield32,
	"enum16": tEnum16, "enum32": tEnum32, "bool": tBool,
}

// regCount is how many registers (or bits, for bool) a type occupies.
func (t valueType) regCount(strLen int) int {
	switch t {
	case tU32, tS32, tF32, tBitfield32, tEnum32:
		return 2
	case tU64, tS64, tF64:
		return 4
	case tString:
		return strLen
	default:
		return 1
	}
}

func (t valueType) signed() bool { return t == tS16 || t == tS32 || t == tS64 }

// sunspecSentinel is SunSpec's "not implemented" raw pattern per type
// (pysunspec2 sunspec2/mb.py); ok is false for types without one.
func (t valueType) sunspecSentinel() (raw uint64, ok bool) {
	switch t {
	case tU16, tEnum16, tBitfield16:
		return 0xFFFF, true
	case tS16:
		return 0x8000, true
	case tU32, tEnum32, tBitfield32:
		return 0xFFFFFFFF, true
	case tS32:
		return 0x80000000, true
	case tU64:
		return math.MaxUint64, true
	case tS64:
		return 1 << 63, true
	}
	return 0, false
}

// pow10 holds 10^sf for the SunSpec scale-factor range -10..10, so that
// applying a scale factor is a table lookup.
var pow10 = [21]float64{1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1,
	1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

type enumEntry struct {
	code int64
	name string
}

type bitOut struct {
	bit uint8
	out int // index of the bit's reading relative to the decoder's first output
}

// Fault details. Constant strings, so a steady fault never allocates.
const (
	detailSentinel   = "device reports value not available"
	detailNaN        = "not a number"
	detailInf        = "value is infinite"
	detailRange      = "value outside plausible range"
	detailScale      = "scale factor not available"
	detailScaleRead  = "scale factor register not read"
	detailShort      = "short register data"
	detailInvalidTxt = "device reports text not available"
)

// Decoder turns one point's raw registers into readings. It is compiled once
// from a profile point and holds no maps, so that Decode does not allocate.
// A Decoder keeps the last string it produced (to reuse it when the text did
// not change) and is therefore owned by one poller.
type Decoder struct {
	typ       valueType
	n         int  // registers
	wordSwap  bool // low word first
	byteSwap  bool // low byte first within each register
	factor    float64
	div       float64 // exact integer divisor for scales below 1 (1000 for 0.001)
	offset    float64
	sign      float64
	useSF     bool
	sentinels []uint64 // raw patterns meaning "not available", masked to the type's width
	sunspec   bool     // SunSpec sentinels (NaN, first NUL) on top of sentinels
	hasRange  bool
	min, max  float64
	enum      []enumEntry // sorted by code
	invalidTx []string
	main      bool // the point's own value is published
	bits      []bitOut
	last      string // last decoded string, reused while unchanged
}

// Outputs is how many readings the decoder fills: the point itself (unless
// it only carries bits) plus one per named bit.
func (d *Decoder) Outputs() int {
	n := len(d.bits)
	if d.main {
		n++
	}
	return n
}

// Registers is how many registers (bits for coils/discrete inputs) the point
// occupies on the wire.
func (d *Decoder) Registers() int { return d.n }

// HasScaleFactor reports whether Decode expects a SunSpec-style scale factor
// register value.
func (d *Decoder) HasScaleFactor() bool { return d.useSF }

// DecodeOptions carries what a point's decoding depends on beyond the point
// itself: the profile's defaults and conventions.
type DecodeOptions struct {
	WordOrder   string // profile default: "big" (default) or "little"
	ByteOrder   string // profile default: "big" (default) or "little"
	Sentinels   string // "sunspec" adds SunSpec's not-implemented values
	CurrentSign string // "charge_positive" flips points marked sign: battery
}

// optionsOf extracts a profile's decode defaults.
func optionsOf(p *profile.Profile) DecodeOptions {
	o := DecodeOptions{CurrentSign: p.CurrentSign}
	if p.Modbus != nil {
		o.WordOrder, o.ByteOrder, o.Sentinels = p.Modbus.WordOrder, p.Modbus.ByteOrder, p.Modbus.Sentinels
	}
	return o
}

// NewDecoder compiles a profile point. Bit names are not expanded here: the
// caller names the readings.
func NewDecoder(pt *profile.Point, o DecodeOptions) (*Decoder, error) {
	typ, ok := typeNames[pt.Type]
	if !ok {
		return nil, fmt.Errorf("type: unknown modbus type %q", pt.Type)
	}
	d := &Decoder{typ: typ, factor: 1, div: 1, offset: pt.Offset, sign: 1, sunspec: o.Sentinels == "sunspec"}
	d.n = typ.regCount(pt.Length)
	if typ == tString && d.n <= 0 {
		return nil, fmt.Errorf("length: a string needs a length in registers")
	}
	var err error
	if d.wordSwap, err = orderIsLittle(pt.WordOrder, o.WordOrder); err != nil {
		return nil, fmt.Errorf("word_order: %w", err)
	}
	if d.byteSwap, err = orderIsLittle(pt.ByteOrder, o.ByteOrder); err != nil {
		return nil, fmt.Errorf("byte_order: %w", err)
	}
	if s := pt.Scale; s != nil {
		switch {
		case s.Factor != nil:
			d.factor = *s.Factor
		case s.Pow10 != nil:
			d.factor = math.Pow10(*s.Pow10)
		case s.Pow2 != nil:
			d.factor = math.Ldexp(1, *s.Pow2)
		case s.SF != "":
			d.useSF = true
		}
		if d.factor == 0 || math.IsInf(d.factor, 0) || math.IsNaN(d.factor) {
			return nil, fmt.Errorf("scale: factor must be finite and non-zero")
		}
		// Dividing by an exact integer (1000) rounds correctly where
		// multiplying by its inexact inverse (0.001) does not: 3187 mV
		// decodes as 3.187, not 3.1870000000000003.
		if inv := 1 / d.factor; d.factor < 1 && inv == math.Round(inv) {
			d.div, d.factor = inv, 1
		}
	}
	switch pt.Sign {
	case "":
	case "invert":
		d.sign = -1
	case "battery":
		if o.CurrentSign == "charge_positive" {
			d.sign = -1
		}
	default:
		return nil, fmt.Errorf("sign: %q is not battery or invert", pt.Sign)
	}
	width := uint(16 * d.n)
	if width > 64 || typ == tString || typ == tBool {
		width = 64
	}
	mask := uint64(math.MaxUint64)
	if width < 64 {
		mask = 1<<width - 1
	}
	for _, v := range pt.Invalid {
		d.sentinels = append(d.sentinels, uint64(v)&mask)
	}
	if d.sunspec {
		if raw, ok := typ.sunspecSentinel(); ok {
			d.sentinels = append(d.sentinels, raw)
		}
	}
	if r := pt.Range; r != nil {
		if !(r.Min <= r.Max) {
			return nil, fmt.Errorf("range: min %g is above max %g", r.Min, r.Max)
		}
		d.hasRange, d.min, d.max = true, r.Min, r.Max
	}
	for code, name := range pt.Enum {
		d.enum = append(d.enum, enumEntry{code, name})
	}
	slices.SortFunc(d.enum, func(a, b enumEntry) int {
		switch {
		case a.code < b.code:
			return -1
		case a.code > b.code:
			return 1
		}
		return 0
	})
	d.invalidTx = pt.InvalidText
	d.main = pt.Name != "" || len(pt.Bits) == 0
	bitNums := make([]int, 0, len(pt.Bits))
	for b := range pt.Bits {
		bitNums = append(bitNums, b)
	}
	slices.Sort(bitNums)
	first := 0
	if d.main {
		first = 1
	}
	for i, b := range bitNums {
		if b < 0 || b >= 16*d.n || b > 63 {
			return nil, fmt.Errorf("bits: bit %d outside a %d-register value", b, d.n)
		}
		d.bits = append(d.bits, bitOut{bit: uint8(b), out: first + i})
	}
	return d, nil
}

func orderIsLittle(pt, def string) (bool, error) {
	s := pt
	if s == "" {
		s = def
	}
	switch s {
	case "", "big":
		return false, nil
	case "little":
		return true, nil
	}
	return false, fmt.Errorf("%q is not big or little", s)
}

// kind is the drivers.Kind of the point's own reading.
func (d *Decoder) kind() drivers.Kind {
	switch d.typ {
	case tString:
		return drivers.KindString
	case tBool:
		return drivers.KindBool
	case tEnum16, tEnum32:
		return drivers.KindEnum
	}
	return drivers.KindNumber
}

// word returns register i after byte swapping.
func (d *Decoder) word(regs []uint16, i int) uint64 {
	w := regs[i]
	if d.byteSwap {
		w = w<<8 | w>>8
	}
	return uint64(w)
}

// rawBits combines the registers into one value, most significant word
// first unless the word order is little.
func (d *Decoder) rawBits(regs []uint16) uint64 {
	var v uint64
	for i := 0; i < d.n; i++ {
		j := i
		if d.wordSwap {
			j = d.n - 1 - i
		}
		v = v<<16 | d.word(regs, j)
	}
	return v
}

// Decode fills out[0:d.Outputs()] from regs (len >= d.Registers()). sf is
// the raw scale-factor register when HasScaleFactor; sfOK false means it
// could not be read. at is stamped on every reading.
func (d *Decoder) Decode(regs []uint16, sf uint16, sfOK bool, out []drivers.Reading) {
	if len(regs) < d.n {
		d.fail(out, drivers.FaultMalformed, detailShort)
		return
	}
	if d.typ == tString {
		d.decodeString(regs, &out[0])
		return
	}
	raw := d.rawBits(regs)
	if d.typ == tBool {
		raw = 0
		if regs[0] != 0 {
			raw = 1
		}
	}
	for _, s := range d.sentinels {
		if raw == s {
			d.fail(out, drivers.FaultSentinel, detailSentinel)
			return
		}
	}
	for _, b := range d.bits {
		r := &out[b.out]
		r.Value, r.Text, r.Fault, r.Detail = float64(raw>>b.bit&1), "", drivers.FaultNone, ""
	}
	if !d.main {
		return
	}
	r := &out[0]
	r.Text = ""
	var v float64
	switch d.typ {
	case tS16:
		v = float64(int16(raw))
	case tS32:
		v = float64(int32(raw))
	case tS64:
		v = float64(int64(raw))
	case tF32:
		v = float64(math.Float32frombits(uint32(raw)))
	case tF64:
		v = math.Float64frombits(raw)
	default:
		v = float64(raw)
	}
	if math.IsNaN(v) {
		setFault(r, drivers.FaultSentinel, detailNaN)
		return
	}
	if d.typ == tEnum16 || d.typ == tEnum32 {
		r.Text = d.enumName(int64(raw))
	}
	if d.useSF {
		if !sfOK {
			setFault(r, drivers.FaultScale, detailScaleRead)
			return
		}
		s := int16(sf)
		if s < -10 || s > 10 { // 0x8000 (not implemented) and garbage alike
			setFault(r, drivers.FaultScale, detailScale)
			return
		}
		if s < 0 {
			v /= pow10[10-s] // see div: exact divisors round correctly
		} else {
			v *= pow10[s+10]
		}
	}
	v = (v/d.div*d.factor + d.offset) * d.sign
	if math.IsInf(v, 0) || math.IsNaN(v) {
		setFault(r, drivers.FaultRange, detailInf)
		return
	}
	if d.hasRange && (v < d.min || v > d.max) {
		r.Value = v
		setFault(r, drivers.FaultRange, detailRange)
		return
	}
	r.Value, r.Fault, r.Detail = v, drivers.FaultNone, ""
}

func (d *Decoder) enumName(code int64) string {
	i, ok := slices.BinarySearchFunc(d.enum, code, func(e enumEntry, c int64) int {
		switch {
		case e.code < c:
			return -1
		case e.code > c:
			return 1
		}
		return 0
	})
	if ok {
		return d.enum[i].name
	}
	return ""
}

// decodeString reads 2 characters per register (high byte first unless the
// byte order is little). Leading NUL registers are skipped unless SunSpec
// sentinels apply (there a first NUL means "not implemented"); the text ends
// at the next NUL; trailing spaces are trimmed and non-printable bytes read
// as '?'. A new string is allocated only when the text changed.
func (d *Decoder) decodeString(regs []uint16, r *drivers.Reading) {
	nb := 2 * d.n
	at := func(i int) byte {
		w := uint16(d.word(regs, i/2))
		if i%2 == 0 {
			return byte(w >> 8)
		}
		return byte(w)
	}
	start := 0
	if !d.sunspec {
		for start < nb && at(start) == 0 {
			start++
		}
	}
	end := start
	for end < nb && at(end) != 0 {
		end++
	}
	for end > start && at(end-1) == ' ' {
		end--
	}
	if end == start && (d.sunspec || start == nb) {
		setFault(r, drivers.FaultSentinel, detailSentinel)
		return
	}
	same := len(d.last) == end-start
	for i := 0; same && i < end-start; i++ {
		same = d.last[i] == printable(at(start+i))
	}
	if !same {
		b := make([]byte, end-start)
		for i := range b {
			b[i] = printable(at(start + i))
		}
		d.last = string(b)
	}
	for _, s := range d.invalidTx {
		if s == d.last {
			setFault(r, drivers.FaultSentinel, detailInvalidTxt)
			return
		}
	}
	r.Value, r.Text, r.Fault, r.Detail = 0, d.last, drivers.FaultNone, ""
}

func printable(c byte) byte {
	if c < 0x20 || c > 0x7E {
		return '?'
	}
	return c
}

// fail marks every output of the decoder.
func (d *Decoder) fail(out []drivers.Reading, f drivers.Fault, detail string) {
	n := d.Outputs()
	for i := 0; i < n; i++ {
		setFault(&out[i], f, detail)
	}
}

func setFault(r *drivers.Reading, f drivers.Fault, detail string) {
	r.Value, r.Text, r.Fault, r.Detail = 0, "", f, detail
}
