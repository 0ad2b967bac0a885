package modbus

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// space is a Modbus address space.
type space uint8

const (
	spHolding space = iota
	spInput
	spCoil
	spDiscrete
	numSpaces
)

var spaceNames = [...]string{"holding", "input", "coil", "discrete"}

func (s space) String() string { return spaceNames[s] }

func (s space) bits() bool { return s == spCoil || s == spDiscrete }

func parseSpace(s string) (space, error) {
	switch s {
	case "", "holding":
		return spHolding, nil
	case "input":
		return spInput, nil
	case "coil":
		return spCoil, nil
	case "discrete":
		return spDiscrete, nil
	}
	return 0, fmt.Errorf("space: %q is not holding, input, coil or discrete", s)
}

// slot is one compiled point at its absolute address.
type slot struct {
	sp     space
	addr   uint16
	n      uint16
	dec    *Decoder
	out    int // index of the first reading the slot fills
	hasSF  bool
	sfAddr uint16
	// absent and sfAbsent are learned when a device answers "illegal data
	// address" to the point (or its scale factor) alone; absent slots are
	// no longer read.
	absent, sfAbsent bool
	// fault is set by probing for the current round only (a point that
	// answered an exception when read alone).
	fault  drivers.Fault
	detail string
	// Set by the planner.
	req, bufOff     int
	sfReq, sfBufOff int
}

// compiled is a device's points and the slots that fill them.
type compiled struct {
	points []*drivers.Point
	slots  []slot
}

// errNeedsIO is returned by a compile without a reader when the profile's
// layout depends on the device (SunSpec chain, count_from).
var errNeedsIO = errors.New("modbus: layout must be read from the device")

// readFunc reads n registers (or bits) of a space into dst.
type readFunc func(sp space, addr uint16, dst []uint16) error

// scope is one level of the profile's nesting: the top level, a SunSpec
// model instance or a block instance.
type scope struct {
	parent   *scope
	base     int
	sfs      map[string]uint16
	points   []profile.Point
	vars     map[string]int
	modelLen int // registers of the enclosing SunSpec model incl. ID and L; 0 outside models
}

func (sc *scope) lookupSF(name string) (int, bool) {
	for s := sc; s != nil; s = s.parent {
		if a, ok := s.sfs[name]; ok {
			return s.base + int(a), true
		}
	}
	return 0, false
}

// builder compiles a profile into slots.
type builder struct {
	log   *slog.Logger
	opts  DecodeOptions
	read  readFunc // nil: compiling without the device
	out   compiled
	names map[string]bool
}

func newBuilder(log *slog.Logger, opts DecodeOptions, read readFunc) *builder {
	return &builder{log: log, opts: opts, read: read, names: map[string]bool{}}
}

// modelInstance is one SunSpec model found in a device's chain.
type modelInstance struct {
	id, addr, length uint16 // length is L (registers after ID and L)
	vars             map[string]int
}

// compileProfile compiles a profile's top-level points and blocks and, for
// SunSpec, the discovered model instances.
func compileProfile(b *builder, p *profile.Profile, models []modelInstance) (*compiled, error) {
	top := &scope{sfs: p.ScaleFactors, points: p.Points, vars: map[string]int{}}
	if err := b.addPoints(top, p.Points, "points"); err != nil {
		return nil, err
	}
	if err := b.addBlocks(top, p.Blocks, "blocks"); err != nil {
		return nil, err
	}
	if p.SunSpec != nil {
		for _, mi := range models {
			for k := range p.SunSpec.Models {
				m := &p.SunSpec.Models[k]
				if m.ID != mi.id {
					continue
				}
				sc := &scope{parent: top, base: int(mi.addr), sfs: m.ScaleFactors, points: m.Points,
					vars: mi.vars, modelLen: int(mi.length) + 2}
				key := fmt.Sprintf("sunspec.models[%d]", k)
				if err := b.addPoints(sc, m.Points, key+".points"); err != nil {
					return nil, err
				}
				if err := b.addBlocks(sc, m.Blocks, key+".blocks"); err != nil {
					return nil, err
				}
			}
		}
	}
	return &b.out, nil
}

func (b *builder) addPoints(sc *scope, pts []profile.Point, key string) error {
	for i := range pts {
		if err := b.addPoint(sc, &pts[i], key, i); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) addPoint(sc *scope, pt *profile.Point, keyPrefix string, idx int) error {
	// The key is built only for messages: compiling a large rack stays cheap.
	key := func() string { return fmt.Sprintf("%s[%d]", keyPrefix, idx) }
	perr := func(format string, args ...any) error {
		return fmt.Errorf("%s (%q, line %d): %s", key(), pt.Name, pt.Line, fmt.Sprintf(format, args...))
	}
	if pt.Address == nil {
		return perr("address: missing")
	}
	sp, err := parseSpace(pt.Space)
	if err != nil {
		return perr("%v", err)
	}
	dec, err := NewDecoder(pt, b.opts)
	if err != nil {
		return perr("%v", err)
	}
	if sp.bits() && dec.typ != tBool {
		return perr("type: %s points must be bool", sp)
	}
	rel := int(*pt.Address)
	if sc.modelLen > 0 && rel+dec.n > sc.modelLen {
		// The device's model is shorter than the profile's (older model
		// revision): the point does not exist there.
		b.log.Debug("point beyond the device's model length; skipped", "point", pt.Name, "offset", rel, "model_len", sc.modelLen)
		return nil
	}
	abs := sc.base + rel
	if abs+dec.n > 1<<16 {
		return perr("address: %d+%d registers is past 65535", abs, dec.n)
	}
	s := slot{sp: sp, addr: uint16(abs), n: uint16(dec.n), dec: dec, out: len(b.out.points)}
	if dec.useSF {
		a, ok := sc.lookupSF(pt.Scale.SF)
		if !ok {
			return perr("scale.sf: %q is not in scale_factors", pt.Scale.SF)
		}
		if a >= 1<<16 {
			return perr("scale.sf: register %d is past 65535", a)
		}
		s.hasSF, s.sfAddr = true, uint16(a)
	}
	var pts []*drivers.Point
	if dec.main {
		name := expandName(pt.Name, sc)
		p := drivers.NewPoint(name, pt.Unit, dec.kind())
		if pt.Range != nil {
			p.Min, p.Max = pt.Range.Min, pt.Range.Max
		}
		pts = append(pts, p)
	}
	for _, bo := range dec.bits {
		pts = append(pts, drivers.NewPoint(expandName(pt.Bits[int(bo.bit)], sc), "", drivers.KindBool))
	}
	for _, p := range pts {
		if b.names[p.Name] {
			// Devices can report the same index twice (two strings
			// claiming index 1); keep the first.
			b.log.Warn("duplicate point name; later one skipped", "point", p.Name, "key", key())
			return nil
		}
	}
	for _, p := range pts {
		b.names[p.Name] = true
	}
	b.out.points = append(b.out.points, pts...)
	b.out.slots = append(b.out.slots, s)
	return nil
}

// maxInstances bounds a block whose count is read from the device and that
// has no max_count.
const maxInstances = 4096

func (b *builder) addBlocks(sc *scope, blks []profile.Block, key string) error {
	for i := range blks {
		blk := &blks[i]
		bkey := fmt.Sprintf("%s[%d]", key, i)
		n, err := b.blockCount(sc, blk, bkey)
		if err != nil {
			return err
		}
		if blk.Stride == 0 && n > 1 {
			return fmt.Errorf("%s (%q, line %d): stride: must not be 0", bkey, blk.Name, blk.Line)
		}
		ib := 1
		if blk.IndexBase != nil {
			ib = *blk.IndexBase
		}
		for k := 0; k < n; k++ {
			vars := make(map[string]int, len(sc.vars)+1)
			for kk, v := range sc.vars {
				vars[kk] = v
			}
			vars[blk.Name] = ib + k
			inst := &scope{parent: sc, base: sc.base + int(blk.Start) + k*int(blk.Stride),
				sfs: blk.ScaleFactors, points: blk.Points, vars: vars, modelLen: 0}
			if sc.modelLen > 0 {
				// Keep points of model blocks inside the model.
				inst.modelLen = sc.modelLen - int(blk.Start) - k*int(blk.Stride)
				if inst.modelLen <= 0 {
					break
				}
			}
			if err := b.addPoints(inst, blk.Points, bkey+".points"); err != nil {
				return err
			}
			if err := b.addBlocks(inst, blk.Blocks, bkey+".blocks"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) blockCount(sc *scope, blk *profile.Block, key string) (int, error) {
	bound := func(n int) int {
		limit := blk.MaxCount
		if limit <= 0 {
			limit = maxInstances
		}
		if n > limit {
			b.log.Warn("block count above its bound; clamped", "block", blk.Name, "count", n, "max", limit)
			return limit
		}
		return max(n, 0)
	}
	switch {
	case blk.Count > 0:
		return blk.Count, nil
	case blk.Fit:
		if sc.modelLen == 0 {
			return 0, fmt.Errorf("%s (%q, line %d): fit: only inside a SunSpec model", key, blk.Name, blk.Line)
		}
		if blk.Stride == 0 {
			return 0, fmt.Errorf("%s (%q, line %d): stride: must not be 0", key, blk.Name, blk.Line)
		}
		return bound((sc.modelLen - int(blk.Start)) / int(blk.Stride)), nil
	case blk.CountFrom != "":
		if b.read == nil {
			return 0, errNeedsIO
		}
		v, err := b.readCount(sc, blk.CountFrom)
		if err != nil {
			return 0, fmt.Errorf("%s (%q, line %d): count_from %q: %w", key, blk.Name, blk.Line, blk.CountFrom, err)
		}
		return bound(v), nil
	}
	return 0, nil
}

// readCount reads the point a block's count_from names, searching the
// enclosing scopes from the innermost out.
func (b *builder) readCount(sc *scope, name string) (int, error) {
	want := expandName(name, sc)
	for s := sc; s != nil; s = s.parent {
		for i := range s.points {
			pt := &s.points[i]
			if pt.Name != name && expandName(pt.Name, s) != want {
				continue
			}
			if pt.Address == nil {
				return 0, fmt.Errorf("point has no address")
			}
			sp, err := parseSpace(pt.Space)
			if err != nil {
				return 0, err
			}
			dec, err := NewDecoder(pt, DecodeOptions{WordOrder: b.opts.WordOrder, ByteOrder: b.opts.ByteOrder, Sentinels: b.opts.Sentinels})
			if err != nil {
				return 0, err
			}
			regs := make([]uint16, dec.n)
			if err := b.read(sp, uint16(s.base+int(*pt.Address)), regs); err != nil {
				return 0, err
			}
			var sfRaw uint16
			if dec.useSF {
				a, ok := s.lookupSF(pt.Scale.SF)
				if !ok {
					return 0, fmt.Errorf("scale factor %q not found", pt.Scale.SF)
				}
				sfr := make([]uint16, 1)
				if err := b.read(sp, uint16(a), sfr); err != nil {
					return 0, err
				}
				sfRaw = sfr[0]
			}
			out := make([]drivers.Reading, dec.Outputs())
			dec.main = true
			dec.Decode(regs, sfRaw, true, out)
			if out[0].Fault != drivers.FaultNone {
				// "Not implemented" counts mean no instances.
				return 0, nil
			}
			v := out[0].Value
			if math.IsNaN(v) || v < 0 {
				return 0, nil
			}
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("no such point in an enclosing scope")
}

// expandName replaces {var} placeholders with the scope's index values.
// Unknown placeholders are kept as written (profile validation reports them).
func expandName(tmpl string, sc *scope) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var vars map[string]int
	if sc != nil {
		vars = sc.vars
	}
	return profile.ExpandName(tmpl, vars)
}
