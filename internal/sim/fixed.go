package sim

import (
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// NewFixedDevice builds a device from a fixed-address Modbus profile: every
// point's address gets its encoded value. Blocks with count_from take their
// count from counts (by block name), else from the value of the count point
// when it is a point of the profile, else 1. Starting values are plausible
// for each point's name and unit, inside its range.
func NewFixedDevice(id string, unit uint8, prof *profile.Profile, counts map[string]int, log *slog.Logger) (*Device, error) {
	if prof == nil || prof.Modbus == nil && prof.Protocol != "modbus" {
		return nil, fmt.Errorf("device %s: profile is not a Modbus profile", id)
	}
	if prof.SunSpec != nil {
		return nil, fmt.Errorf("device %s: profile %s is a SunSpec profile: give the device a rack shape", id, prof.ID)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := newDevice(id, unit, log)
	sfs := map[int]*point{} // scale-factor points by absolute address
	count := func(b *profile.Block, vars map[string]int, start uint16) (int, error) {
		if b.Fit {
			return 0, fmt.Errorf("fit is for SunSpec models only")
		}
		if n, ok := counts[b.Name]; ok {
			return n, nil
		}
		if p, ok := d.byName[profile.ExpandName(b.CountFrom, vars)]; ok {
			return int(p.value), nil
		}
		return 1, nil
	}
	var regs []*point // register points in address order, for overlap checks
	err := profile.Expand(prof.TopScope(), 0, nil, count, func(in profile.Instance) error {
		pt := in.Point
		if pt.Address == nil {
			return fmt.Errorf("%s:%d: point %s has no address", prof.File, pt.Line, in.Name)
		}
		sp, err := ParseSpace(pt.Space)
		if err != nil {
			return fmt.Errorf("%s:%d: point %s: %w", prof.File, pt.Line, in.Name, err)
		}
		name := in.Name
		if name == "" {
			name = fmt.Sprintf("raw.%s.%d", sp, in.Addr)
		}
		p := &point{name: name, space: sp, addr: in.Addr}
		if sp == Coil || sp == Discrete {
			p.enc = Encoding{Type: "bool"}
		} else {
			scale := 1.0
			if s := pt.Scale; s != nil {
				switch {
				case s.Factor != nil:
					scale = *s.Factor
				case s.Pow10 != nil:
					scale = math.Pow10(*s.Pow10)
				case s.Pow2 != nil:
					scale = math.Ldexp(1, *s.Pow2)
				}
			}
			p.enc, err = encodingFor(pt.Type, pt.Length, prof.EffectiveWordOrder(pt), prof.EffectiveByteOrder(pt),
				scale, pt.Offset, prof.Negate(pt), pt.Invalid)
			if err != nil {
				return fmt.Errorf("%s:%d: point %s: %w", prof.File, pt.Line, name, err)
			}
			if in.SFAddr >= 0 {
				sf := sfs[in.SFAddr]
				if sf == nil {
					sf = &point{name: fmt.Sprintf("sf.%s.%d", pt.Scale.SF, in.SFAddr), space: Holding, addr: uint16(in.SFAddr)}
					sf.enc, _ = encodingFor("s16", 0, "", "", 1, 0, false, nil)
					sfs[in.SFAddr] = sf
					if err := d.add(sf); err != nil {
						return err
					}
					regs = append(regs, sf)
				}
				p.sf = sf
				sf.users = append(sf.users, p)
			}
		}
		p.text = pt.Type == "string"
		p.value = defaultValue(name, pt)
		if p.text {
			p.str = defaultText(name, prof)
			if len(p.str) > 2*p.enc.Regs {
				p.str = p.str[:2*p.enc.Regs]
			}
		}
		if err := d.add(p); err != nil {
			return fmt.Errorf("%s:%d: %w", prof.File, pt.Line, err)
		}
		if sp != Coil && sp != Discrete {
			regs = append(regs, p)
		}
		for _, bit := range sortedBits(in.Bits) {
			q := &point{name: in.Bits[bit], space: sp, addr: in.Addr, parent: p, bit: bit}
			p.bits = append(p.bits, q)
			if err := d.add(q); err != nil {
				return fmt.Errorf("%s:%d: %w", prof.File, pt.Line, err)
			}
		}
		if len(p.bits) > 0 && in.Name == "" {
			p.value = 0
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: profile %s: %w", id, prof.ID, err)
	}
	if err := checkOverlap(regs); err != nil {
		return nil, fmt.Errorf("device %s: profile %s: %w", id, prof.ID, err)
	}
	// A starting value the point cannot carry (a date before its epoch
	// offset, a negative number in an unsigned register) falls back to
	// what raw 0 means.
	buf := make([]uint16, 4)
	for _, p := range d.points {
		if p.sf == nil && !p.text && p.parent == nil && len(p.bits) == 0 && p.enc.Regs > 0 && p.enc.Regs <= 4 {
			if p.enc.Encode(p.value, 0, buf[:p.enc.Regs]) != nil {
				p.value = rawZero(&p.enc)
			}
		}
	}
	for _, sf := range sfs {
		sf.value = float64(chooseSF(sf))
	}
	if err := d.encodeAll(d.points); err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	return d, nil
}

// rawZero is the value a raw 0 decodes to.
func rawZero(e *Encoding) float64 {
	if e.Flip {
		return -e.Offset
	}
	return e.Offset
}

// FillGaps maps the unused registers between two points of a space that
// are at most n registers apart, reading as zero: devices that answer
// whole blocks, undefined registers included (NUT reads the APC map in four
// blocks), rather than "illegal data address" for each hole.
func (d *Device) FillGaps(n int) error {
	if n <= 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var regs []*point
	for _, p := range d.points {
		if p.parent == nil && p.enc.Regs > 0 && (p.space == Holding || p.space == Input) {
			regs = append(regs, p)
		}
	}
	if err := checkOverlap(regs); err != nil {
		return err
	}
	for i := 1; i < len(regs); i++ {
		a, b := regs[i-1], regs[i]
		end := int(a.addr) + a.enc.Regs
		if a.space == b.space && int(b.addr) > end && int(b.addr)-end <= n {
			if err := d.img.Write(a.space, uint16(end), make([]uint16, int(b.addr)-end)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedBits(m map[int]string) []int {
	out := make([]int, 0, len(m))
	for b := range m {
		out = append(out, b)
	}
	sort.Ints(out)
	return out
}

// checkOverlap rejects two points sharing a register in one space: the
// image could not serve both values.
func checkOverlap(regs []*point) error {
	sort.Slice(regs, func(i, j int) bool {
		if regs[i].space != regs[j].space {
			return regs[i].space < regs[j].space
		}
		return regs[i].addr < regs[j].addr
	})
	for i := 1; i < len(regs); i++ {
		a, b := regs[i-1], regs[i]
		if a.space == b.space && int(a.addr)+a.enc.Regs > int(b.addr) {
			return fmt.Errorf("points %s and %s overlap at %s register %d", a.name, b.name, a.space, b.addr)
		}
	}
	return nil
}

// chooseSF picks the finest scale factor (from -3 up) at which every point
// it scales can encode twice its starting value, so that scripts have
// room to move.
func chooseSF(sf *point) int {
	buf := make([]uint16, 4)
	for e := -3; e <= 6; e++ {
		ok := true
		for _, u := range sf.users {
			if u.enc.Regs > len(buf) || u.enc.Encode(2*u.value, e, buf[:u.enc.Regs]) != nil {
				ok = false
				break
			}
		}
		if ok {
			return e
		}
	}
	return 0
}

// defaultValue gives a point a plausible starting value from its name,
// unit, enum and range.
func defaultValue(name string, pt *profile.Point) float64 {
	if len(pt.Enum) > 0 {
		keys := make([]int64, 0, len(pt.Enum))
		for k := range pt.Enum {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		return float64(keys[0])
	}
	n := strings.ToLower(name)
	v := 0.0
	switch {
	case pt.Type == "bool" || len(pt.Bits) > 0 || strings.HasPrefix(pt.Type, "bitfield"):
		v = 0
	case strings.HasSuffix(n, ".celsius"):
		v = 25
	case strings.HasSuffix(n, ".volts") && strings.Contains(n, "cell"):
		v = 3.65
	case strings.HasSuffix(n, ".volts") && (strings.Contains(n, "input") || strings.Contains(n, "output")):
		v = 230
	case strings.HasSuffix(n, ".volts"):
		v = 54
	case strings.HasSuffix(n, ".percent") && strings.Contains(n, "charge"):
		v = 95
	case strings.HasSuffix(n, ".percent") && strings.Contains(n, "health"):
		v = 98
	case strings.HasSuffix(n, ".percent") && strings.Contains(n, "humidity"):
		v = 40
	case strings.HasSuffix(n, ".percent"):
		v = 35
	case strings.HasSuffix(n, ".amps"):
		v = 2
	case strings.HasSuffix(n, ".watts"), strings.HasSuffix(n, ".va"):
		v = 500
	case strings.HasSuffix(n, ".hertz"):
		v = 50
	case strings.HasSuffix(n, ".seconds") && strings.Contains(n, "runtime"):
		v = 1800
	case strings.Contains(n, ".date."):
		v = 1704067200 // 2024-01-01, as Unix seconds
	case strings.HasSuffix(n, ".wh"):
		v = 1000
	case strings.HasSuffix(n, ".ohms"):
		v = 5000
	}
	if r := pt.Range; r != nil && (r.Min != 0 || r.Max != 0) {
		if v < r.Min || v > r.Max {
			v = (r.Min + r.Max) / 2
		}
	}
	return v
}

// defaultText gives a string point a value from the profile's identity.
func defaultText(name string, prof *profile.Profile) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "model"):
		return "SIM " + prof.ID
	case strings.Contains(n, "serial"):
		return "SIM0001"
	case strings.Contains(n, "firmware"), strings.Contains(n, "version"):
		return "SIM 1.0"
	case strings.Contains(n, "vendor"), strings.Contains(n, "manufacturer"):
		return "Emberwatch"
	}
	return "SIM"
}
