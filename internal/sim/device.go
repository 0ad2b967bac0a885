package sim

import (
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"
)

// point is one simulated quantity and where it lives in the image.
type point struct {
	name    string
	aliases []string // other names for the same register (the profile's)
	space   Space
	addr    uint16
	enc     Encoding
	text    bool   // a string point: str is served
	sf      *point // SunSpec scale-factor point; its value is the exponent
	users   []*point
	parent  *point // a bit of a bitfield point
	bit     int
	bits    []*point

	value       float64
	str         string
	unavailable bool
	derived     bool // computed from other points each tick unless pinned
	pinned      bool // set or scripted explicitly: derive leaves it alone
	script      *scriptRun
	warned      bool // an encoding failure was logged
	buf         []uint16
}

// Device is one simulated Modbus device: its points, register image and
// injected fault. Values change under mu; the image has its own lock so
// that serving never waits for a tick to finish encoding.
type Device struct {
	id   string
	unit uint8
	img  *Image
	log  *slog.Logger

	mu     sync.Mutex
	points []*point
	byName map[string]*point
	rack   *rack // SunSpec rack state, nil for fixed-address devices
	start  time.Time

	faultMu sync.Mutex
	fault   Fault
	faultCh chan struct{} // closed and replaced when the fault changes
}

func newDevice(id string, unit uint8, log *slog.Logger) *Device {
	return &Device{id: id, unit: unit, img: NewImage(), log: log,
		byName: map[string]*point{}, faultCh: make(chan struct{})}
}

// ID returns the device's id.
func (d *Device) ID() string { return d.id }

// Image returns the device's register image.
func (d *Device) Image() *Image { return d.img }

func (d *Device) add(p *point) error {
	for _, n := range append([]string{p.name}, p.aliases...) {
		if _, dup := d.byName[n]; dup {
			return fmt.Errorf("point %q defined twice", n)
		}
	}
	d.points = append(d.points, p)
	d.byName[p.name] = p
	for _, a := range p.aliases {
		d.byName[a] = p
	}
	return nil
}

// alias adds name as another name of p, unless it is taken.
func (d *Device) alias(p *point, name string) {
	if name == "" || name == p.name {
		return
	}
	if _, dup := d.byName[name]; dup {
		return
	}
	p.aliases = append(p.aliases, name)
	d.byName[name] = p
}

// match returns the points whose name or alias matches the glob pattern.
func (d *Device) match(pattern string) []*point {
	if p, ok := d.byName[pattern]; ok {
		return []*point{p}
	}
	var out []*point
	for _, p := range d.points {
		if globMatch(pattern, p.name) {
			out = append(out, p)
			continue
		}
		for _, a := range p.aliases {
			if globMatch(pattern, a) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Points lists the device's point names, sorted.
func (d *Device) Points() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.points))
	for _, p := range d.points {
		out = append(out, p.name)
	}
	sort.Strings(out)
	return out
}

// Value returns a point's current value, whether it is served as
// unavailable, and whether the point exists.
func (d *Device) Value(name string) (v float64, unavailable, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.byName[name]
	if !ok {
		return 0, false, false
	}
	return p.value, p.unavailable, true
}

// Text returns a string point's value.
func (d *Device) Text(name string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.byName[name]
	if !ok || !p.text {
		return "", false
	}
	return p.str, true
}

// Set pins every point matching pattern to v (removing any script) and
// re-encodes them at once.
func (d *Device) Set(pattern string, v float64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.match(pattern)
	if len(ps) == 0 {
		return fmt.Errorf("device %s: no point matches %q", d.id, pattern)
	}
	for _, p := range ps {
		if p.text && len(ps) == 1 {
			return fmt.Errorf("device %s: point %s is a string: set it as text", d.id, p.name)
		}
		p.value, p.unavailable, p.script, p.pinned = v, false, nil, true
		for _, b := range p.bits { // a whole bitfield sets its bits
			b.value = float64(uint64(max(v, 0)) >> b.bit & 1)
		}
	}
	return d.changed(ps)
}

// SetText sets string points.
func (d *Device) SetText(pattern, s string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.match(pattern)
	if len(ps) == 0 {
		return fmt.Errorf("device %s: no point matches %q", d.id, pattern)
	}
	for _, p := range ps {
		if !p.text {
			return fmt.Errorf("device %s: point %s is not a string", d.id, p.name)
		}
		p.str, p.unavailable, p.pinned = s, false, true
	}
	return d.changed(ps)
}

// SetUnavailable serves the "not available" sentinel for matching points
// (on=false serves their value again).
func (d *Device) SetUnavailable(pattern string, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.match(pattern)
	if len(ps) == 0 {
		return fmt.Errorf("device %s: no point matches %q", d.id, pattern)
	}
	for _, p := range ps {
		p.unavailable, p.script = on, nil
		p.pinned = true
	}
	return d.changed(ps)
}

// SetScript attaches sc to every point its pattern matches, starting at now.
func (d *Device) SetScript(sc Script, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.match(sc.Point)
	if len(ps) == 0 {
		return fmt.Errorf("device %s: script: no point matches %q", d.id, sc.Point)
	}
	if sc.Kind == "csv" && sc.Replay == nil {
		return fmt.Errorf("device %s: csv script for %q: replay not loaded (validate the script first)", d.id, sc.Point)
	}
	n := 0
	for _, p := range ps {
		col := sc.Column
		if sc.Kind == "csv" && col == "" {
			// Replay the column named like the point (or one of its
			// aliases); points without one are left alone.
			for _, name := range append([]string{p.name}, p.aliases...) {
				if sc.Replay != nil && sc.Replay.Column(name) != nil {
					col = name
					break
				}
			}
			if col == "" {
				continue
			}
		}
		run, err := newScriptRun(sc, p.name, col, p.value, now)
		if err != nil {
			return fmt.Errorf("device %s: script for %s: %w", d.id, p.name, err)
		}
		p.script, p.pinned = run, true
		n++
	}
	if n == 0 {
		return fmt.Errorf("device %s: script: no point matching %q has a column in %s", d.id, sc.Point, sc.Replay.File)
	}
	d.updateLocked(now)
	return nil
}

// Update evaluates scripts at now, derives aggregates and re-encodes.
func (d *Device) Update(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.updateLocked(now)
}

func (d *Device) updateLocked(now time.Time) {
	var changed []*point
	for _, p := range d.points {
		if p.script == nil {
			continue
		}
		v, unavailable := p.script.at(now)
		if v != p.value || unavailable != p.unavailable || math.IsNaN(v) {
			p.value, p.unavailable = v, unavailable
			changed = append(changed, p)
		}
	}
	if d.rack != nil {
		d.rack.tick(now)
		d.deriveLocked()
		changed = d.points // aggregates may have moved anywhere
	}
	_ = d.encodeAll(changed) // failures are logged once per point
}

// changed re-encodes ps after a change, and on a rack every aggregate
// that follows from them. It returns ps's first encoding error.
func (d *Device) changed(ps []*point) error {
	err := d.encodeAll(ps)
	if d.rack != nil {
		d.rack.derive()
		_ = d.encodeAll(d.points) // failures are logged once per point
	}
	return err
}

func (d *Device) deriveLocked() {
	if d.rack != nil {
		d.rack.derive()
	}
}

// encodeAll writes ps and everything depending on them into the image,
// returning the first error; a point that fails keeps its previous raw value
// and is logged once.
func (d *Device) encodeAll(ps []*point) error {
	var first error
	for _, p := range ps {
		if err := d.encode(p); err != nil {
			if first == nil {
				first = err
			}
			if !p.warned {
				p.warned = true
				d.log.Warn("cannot encode point", "device", d.id, "point", p.name, "err", err)
			}
		}
	}
	return first
}

func (d *Device) encode(p *point) error {
	if p.parent != nil {
		return d.encode(p.parent)
	}
	if p.space == Coil || p.space == Discrete {
		var r uint16
		if p.value != 0 && !p.unavailable {
			r = 1
		}
		return d.img.Write(p.space, p.addr, []uint16{r})
	}
	if cap(p.buf) < p.enc.Regs {
		p.buf = make([]uint16, p.enc.Regs)
	}
	buf := p.buf[:p.enc.Regs]
	var err error
	switch {
	case p.unavailable:
		p.enc.Sentinel(buf)
	case p.text:
		err = p.enc.EncodeString(p.str, buf)
	case len(p.bits) > 0:
		raw := uint64(0)
		if p.value > 0 {
			raw = uint64(p.value)
		}
		for _, b := range p.bits {
			if b.value != 0 {
				raw |= 1 << b.bit
			} else {
				raw &^= 1 << b.bit
			}
		}
		p.value = float64(raw) // the register as a whole, bits included
		p.enc.put(raw, buf)
	default:
		sf := 0
		if p.sf != nil && !p.sf.unavailable {
			sf = int(p.sf.value)
		}
		err = p.enc.Encode(p.value, sf, buf)
	}
	if err != nil {
		return fmt.Errorf("point %s: %w", p.name, err)
	}
	if err := d.img.Write(p.space, p.addr, buf); err != nil {
		return err
	}
	for _, u := range p.users {
		if err := d.encode(u); err != nil {
			return err
		}
	}
	return nil
}
