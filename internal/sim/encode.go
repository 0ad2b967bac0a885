package sim

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Encoding says how one point's value becomes raw registers: the raw type,
// word and byte order, scale (a constant times 10^sf when the point has a
// SunSpec scale-factor register), offset and sign. It is the inverse of what
// the driver decodes (value = raw * scale * 10^sf + offset, then flipped),
// written independently of the driver so that tests cross-check the two.
type Encoding struct {
	Type       string  // u16 s16 u32 s32 u64 s64 f32 f64 string bitfield16 bitfield32 enum16 enum32 bool
	Regs       int     // registers taken (string: Length; bool: 0, it is a coil or discrete input)
	WordLittle bool    // low word first
	ByteLittle bool    // low byte first inside each register
	Scale      float64 // constant factor; 0 means 1
	Offset     float64
	Flip       bool    // the device's sign is the opposite of the vocabulary's
	Invalid    []int64 // the point's own "not available" raw values; the first is served when unavailable
}

// regsOf returns how many registers a raw type takes, 0 for bool and -1 for
// an unknown type. Strings take their configured length.
func regsOf(typ string, length int) int {
	switch typ {
	case "u16", "s16", "bitfield16", "enum16":
		return 1
	case "u32", "s32", "f32", "bitfield32", "enum32":
		return 2
	case "u64", "s64", "f64":
		return 4
	case "string":
		return length
	case "bool":
		return 0
	}
	return -1
}

// ErrEncode is wrapped by every encoding failure: a value that does not fit
// the raw type after scaling, or a bad type.
var ErrEncode = errors.New("sim: cannot encode")

// Encode writes v, scaled by 10^sf on top of the constant scale, into dst
// (len(dst) == e.Regs).
func (e *Encoding) Encode(v float64, sf int, dst []uint16) error {
	if len(dst) != e.Regs {
		return fmt.Errorf("%w: %s needs %d registers, got %d", ErrEncode, e.Type, e.Regs, len(dst))
	}
	if n := regsOf(e.Type, e.Regs); n != e.Regs || n <= 0 {
		return fmt.Errorf("%w: type %q does not take %d registers", ErrEncode, e.Type, e.Regs)
	}
	if e.Flip {
		v = -v
	}
	scale := e.Scale
	if scale == 0 {
		scale = 1
	}
	if sf != 0 {
		scale *= math.Pow10(sf)
	}
	x := (v - e.Offset) / scale
	if math.IsNaN(x) || math.IsInf(x, 0) {
		if e.Type != "f32" && e.Type != "f64" {
			return fmt.Errorf("%w: %v as %s", ErrEncode, v, e.Type)
		}
	}
	var raw uint64
	switch e.Type {
	case "f32":
		if !math.IsNaN(x) && !math.IsInf(x, 0) && math.Abs(x) > math.MaxFloat32 {
			return fmt.Errorf("%w: %v overflows f32", ErrEncode, v)
		}
		raw = uint64(math.Float32bits(float32(x)))
	case "f64":
		raw = math.Float64bits(x)
	default:
		r := math.Round(x)
		lo, hi, signed, ok := intRange(e.Type)
		if !ok {
			return fmt.Errorf("%w: unknown type %q", ErrEncode, e.Type)
		}
		if r < lo || r > hi {
			return fmt.Errorf("%w: %v is raw %v, outside %s [%v, %v] at scale %g", ErrEncode, v, r, e.Type, lo, hi, scale)
		}
		if signed {
			raw = uint64(int64(r))
		} else {
			raw = uint64(r)
		}
	}
	e.put(raw, dst)
	return nil
}

// intRange gives the raw range of an integer type. Ranges are exact in
// float64 up to 2^53; 64-bit extremes are only approximately checked, which
// is fine for simulated values.
func intRange(typ string) (lo, hi float64, signed, ok bool) {
	switch typ {
	case "u16", "bitfield16", "enum16":
		return 0, math.MaxUint16, false, true
	case "s16":
		return math.MinInt16, math.MaxInt16, true, true
	case "u32", "bitfield32", "enum32":
		return 0, math.MaxUint32, false, true
	case "s32":
		return math.MinInt32, math.MaxInt32, true, true
	case "u64":
		return 0, math.MaxUint64, false, true
	case "s64":
		return math.MinInt64, math.MaxInt64, true, true
	}
	return 0, 0, false, false
}

// put spreads raw over dst, most significant register first unless the word
// order is little, and swaps bytes when the byte order is little.
func (e *Encoding) put(raw uint64, dst []uint16) {
	n := len(dst)
	for i := range n {
		w := uint16(raw >> (16 * (n - 1 - i)))
		if e.ByteLittle {
			w = w>>8 | w<<8
		}
		if e.WordLittle {
			dst[n-1-i] = w
		} else {
			dst[i] = w
		}
	}
}

// EncodeString writes s as 2 ASCII bytes per register, high byte first (low
// first when the byte order is little), NUL padded.
func (e *Encoding) EncodeString(s string, dst []uint16) error {
	if len(s) > 2*len(dst) {
		return fmt.Errorf("%w: string %q longer than %d registers", ErrEncode, s, len(dst))
	}
	for i := range dst {
		var hi, lo byte
		if 2*i < len(s) {
			hi = s[2*i]
		}
		if 2*i+1 < len(s) {
			lo = s[2*i+1]
		}
		if e.ByteLittle {
			hi, lo = lo, hi
		}
		dst[i] = uint16(hi)<<8 | uint16(lo)
	}
	return nil
}

// Sentinel writes the raw "not available" value: the point's first Invalid
// value when it has one, else SunSpec's not-implemented value for the type.
func (e *Encoding) Sentinel(dst []uint16) {
	if e.Type == "string" {
		clear(dst)
		return
	}
	if len(e.Invalid) > 0 {
		e.put(uint64(e.Invalid[0]), dst)
		return
	}
	var raw uint64
	switch e.Type {
	case "s16":
		raw = 0x8000
	case "s32":
		raw = 0x80000000
	case "s64":
		raw = 1 << 63
	case "f32":
		raw = 0x7FC00000
	case "f64":
		raw = 0x7FF8000000000000
	default: // unsigned, enum and bitfield types: all ones
		raw = math.MaxUint64
	}
	e.put(raw, dst)
}

// encodingFor builds the encoding of a profile point with the profile's
// defaults. flip is decided by the caller (it needs the profile's
// current_sign).
func encodingFor(typ string, length int, wordOrder, byteOrder string, scale float64, offset float64, flip bool, invalid []int64) (Encoding, error) {
	n := regsOf(typ, length)
	if n < 0 {
		return Encoding{}, fmt.Errorf("unknown type %q", typ)
	}
	if typ == "string" && n == 0 {
		return Encoding{}, errors.New("string without length")
	}
	return Encoding{
		Type: typ, Regs: n,
		WordLittle: strings.EqualFold(wordOrder, "little"),
		ByteLittle: strings.EqualFold(byteOrder, "little"),
		Scale:      scale, Offset: offset, Flip: flip, Invalid: invalid,
	}, nil
}
