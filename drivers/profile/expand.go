package profile

import (
	"fmt"
	"strconv"
	"strings"
)

// Modbus point types and the registers each occupies (string: Length).
var modbusTypeRegs = map[string]int{
	"u16": 1, "s16": 1, "bitfield16": 1, "enum16": 1,
	"u32": 2, "s32": 2, "f32": 2, "bitfield32": 2, "enum32": 2,
	"u64": 4, "s64": 4, "f64": 4,
	"string": 0,
	"bool":   1,
}

// RegCount returns how many registers (or coils, for bool) the point's
// Modbus type occupies: strings occupy Length. Unknown types give 0.
func (pt *Point) RegCount() int {
	if pt.Type == "string" {
		return pt.Length
	}
	return modbusTypeRegs[pt.Type]
}

// TypeBits reports the value width in bits of a Modbus integer type (16, 32,
// 64), or 0 for string, bool and unknown types.
func TypeBits(typ string) int {
	if typ == "string" || typ == "bool" {
		return 0
	}
	return 16 * modbusTypeRegs[typ]
}

// Signed reports whether a Modbus type is a two's complement integer.
func TypeSigned(typ string) bool {
	return typ == "s16" || typ == "s32" || typ == "s64"
}

// SpaceOf returns the point's register space, defaulting to "holding".
func (pt *Point) SpaceOf() string {
	if pt.Space == "" {
		return "holding"
	}
	return pt.Space
}

// EffectiveWordOrder returns "big" or "little": the point's own word order,
// else the profile's, else big (high word first).
func (p *Profile) EffectiveWordOrder(pt *Point) string {
	if pt.WordOrder != "" {
		return pt.WordOrder
	}
	if p.Modbus != nil && p.Modbus.WordOrder != "" {
		return p.Modbus.WordOrder
	}
	return "big"
}

// EffectiveByteOrder returns "big" or "little" like EffectiveWordOrder.
func (p *Profile) EffectiveByteOrder(pt *Point) string {
	if pt.ByteOrder != "" {
		return pt.ByteOrder
	}
	if p.Modbus != nil && p.Modbus.ByteOrder != "" {
		return p.Modbus.ByteOrder
	}
	return "big"
}

// Negate reports whether the point's scaled value must be negated to follow
// the project's convention (battery current and power + = discharge): sign
// "invert" always, sign "battery" when the device counts charge positive.
func (p *Profile) Negate(pt *Point) bool {
	switch pt.Sign {
	case "invert":
		return true
	case "battery":
		return p.CurrentSign == "charge_positive"
	}
	return false
}

// UsesSunSpecSentinels reports whether SunSpec's not-implemented values
// apply to every point (modbus.sentinels: sunspec).
func (p *Profile) UsesSunSpecSentinels() bool {
	return p.Modbus != nil && p.Modbus.Sentinels == "sunspec"
}

// SunSpecSentinel returns the raw not-implemented value of a Modbus type in
// SunSpec (pysunspec2 mb.py): s16 0x8000, u16/enum16/bitfield16 0xFFFF, and
// so on; as a raw bit pattern of the type's width. ok is false for types
// without one (string: first char NUL, bool, f32/f64: NaN, checked by the
// codec).
func SunSpecSentinel(typ string) (raw uint64, ok bool) {
	switch typ {
	case "s16":
		return 0x8000, true
	case "u16", "enum16", "bitfield16":
		return 0xFFFF, true
	case "s32":
		return 0x80000000, true
	case "u32", "enum32", "bitfield32":
		return 0xFFFFFFFF, true
	case "s64":
		return 0x8000000000000000, true
	case "u64":
		return 0xFFFFFFFFFFFFFFFF, true
	}
	return 0, false
}

// SunSpecSFInvalid is the raw value of a SunSpec scale-factor register that
// is not implemented; every point it scales is then FaultScale.
const SunSpecSFInvalid = 0x8000

// ExpandName replaces each {name} in tmpl with vars[name] in decimal.
// Placeholders without a value are left as they are.
func ExpandName(tmpl string, vars map[string]int) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	b.Grow(len(tmpl) + 8)
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			break
		}
		name := tmpl[i+1 : i+j]
		b.WriteString(tmpl[:i])
		if v, ok := vars[name]; ok {
			b.WriteString(strconv.Itoa(v))
		} else {
			b.WriteString(tmpl[i : i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
	return b.String()
}

// Placeholders returns the {names} used in tmpl, in order.
func Placeholders(tmpl string) []string {
	var out []string
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, tmpl[i+1:i+j])
		tmpl = tmpl[i+j+1:]
	}
}

// Scope is what the profile's top level, a SunSpec model and a block have in
// common: scale factors, points and nested blocks, addressed relative to the
// scope's base.
type Scope struct {
	ScaleFactors map[string]uint16
	Points       []Point
	Blocks       []Block
}

// TopScope returns the profile's top-level scope (absolute addresses).
func (p *Profile) TopScope() Scope {
	return Scope{ScaleFactors: p.ScaleFactors, Points: p.Points, Blocks: p.Blocks}
}

// Scope returns the model's scope (addresses relative to its ID register).
func (m *SunSpecModel) Scope() Scope {
	return Scope{ScaleFactors: m.ScaleFactors, Points: m.Points, Blocks: m.Blocks}
}

// Scope returns the block's per-instance scope.
func (b *Block) Scope() Scope {
	return Scope{ScaleFactors: b.ScaleFactors, Points: b.Points, Blocks: b.Blocks}
}

// IndexOf returns the index of the block's instance k (0-based):
// IndexBase + k, IndexBase defaulting to 1.
func (b *Block) IndexOf(k int) int {
	if b.IndexBase != nil {
		return *b.IndexBase + k
	}
	return 1 + k
}

// Instance is one point of an expanded scope.
type Instance struct {
	Point *Point
	// Name is the point's expanded name; "" when the point only carries
	// bits.
	Name string
	// Bits maps bit numbers to expanded boolean point names (nil if none).
	Bits map[int]string
	// Addr is the absolute address of the point's first register.
	Addr uint16
	// SFAddr is the absolute address of the scale-factor register for
	// {sf: NAME} scales, or -1.
	SFAddr int
	// Vars holds the index of every enclosing block (and SunSpec model
	// index); do not modify it.
	Vars map[string]int
}

// CountFunc returns how many instances block b has when its first instance
// starts at absolute address start; vars holds the enclosing indices. It is
// called for blocks with count_from or fit; fixed counts are used directly.
// For count_from, the count is the value of the point named
// ExpandName(b.CountFrom, vars).
type CountFunc func(b *Block, vars map[string]int, start uint16) (int, error)

type sfScope struct {
	sfs    map[string]uint16
	base   uint16
	parent *sfScope
}

func (s *sfScope) lookup(name string) (int, bool) {
	for ; s != nil; s = s.parent {
		if a, ok := s.sfs[name]; ok {
			return int(s.base) + int(a), true
		}
	}
	return -1, false
}

// Expand calls yield for every point of scope s based at absolute address
// base, expanding blocks (count from count, which may be nil when every block
// has a fixed count). vars are the enclosing indices (SunSpec model indices);
// it is not modified. Expansion stops at the first error.
func Expand(s Scope, base uint16, vars map[string]int, count CountFunc, yield func(Instance) error) error {
	if vars == nil {
		vars = map[string]int{}
	}
	return expandScope(s, base, vars, &sfScope{sfs: s.ScaleFactors, base: base}, count, yield)
}

func expandScope(s Scope, base uint16, vars map[string]int, sf *sfScope, count CountFunc, yield func(Instance) error) error {
	for i := range s.Points {
		pt := &s.Points[i]
		in := Instance{Point: pt, SFAddr: -1, Vars: vars}
		if pt.Name != "" {
			in.Name = ExpandName(pt.Name, vars)
		}
		if pt.Address != nil {
			in.Addr = base + *pt.Address
		}
		if len(pt.Bits) > 0 {
			in.Bits = make(map[int]string, len(pt.Bits))
			for bit, n := range pt.Bits {
				in.Bits[bit] = ExpandName(n, vars)
			}
		}
		if pt.Scale != nil && pt.Scale.SF != "" {
			a, ok := sf.lookup(pt.Scale.SF)
			if !ok {
				return fmt.Errorf("point %s: scale factor %q is not defined", in.Name, pt.Scale.SF)
			}
			in.SFAddr = a
		}
		if err := yield(in); err != nil {
			return err
		}
	}
	for bi := range s.Blocks {
		b := &s.Blocks[bi]
		start := base + b.Start
		n := b.Count
		if b.CountFrom != "" || b.Fit {
			if count == nil {
				return fmt.Errorf("block %s: count is read from the device but no CountFunc was given", b.Name)
			}
			c, err := count(b, vars, start)
			if err != nil {
				return fmt.Errorf("block %s: count: %w", b.Name, err)
			}
			n = c
			if b.MaxCount > 0 && n > b.MaxCount {
				return fmt.Errorf("block %s: count %d exceeds max_count %d", b.Name, n, b.MaxCount)
			}
			if n < 0 {
				return fmt.Errorf("block %s: negative count %d", b.Name, n)
			}
		}
		for k := 0; k < n; k++ {
			iv := make(map[string]int, len(vars)+1)
			for kk, vv := range vars {
				iv[kk] = vv
			}
			iv[b.Name] = b.IndexOf(k)
			ib := start + uint16(k)*b.Stride
			child := &sfScope{sfs: b.ScaleFactors, base: ib, parent: sf}
			if err := expandScope(b.Scope(), ib, iv, child, count, yield); err != nil {
				return err
			}
		}
	}
	return nil
}
