package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"periph.io/x/conn/v3/gpio"
)

// Poller reads one local device: GPIO contacts and, on bus i2c, one chip
// (an ADS1x15 ADC, a BME280/BMP280, an AHT20 or an INA219). It implements drivers.Poller and is
// owned by one goroutine; only SetBeacon may be called from others.
type Poller struct {
	log    *slog.Logger
	desc   string
	points []*drivers.Point

	inputs   []*input
	contacts []contactPoint
	adc      *adc
	env      *env
	power    *power
	humid    *humid
	beacon   *Beacon
	negate   []int // float points whose sign is flipped (sign: invert, or battery with charge_positive)

	failing bool // the last round failed as a whole (logged once)
}

// contactPoint is a point read from an input.
type contactPoint struct {
	idx     int
	in      *input
	counter bool // the count of changes rather than the level
}

// NewPoller compiles prof for the device wired as cfg says, and sets up its
// pins through hw. Problems with the profile or config are errors here; a
// chip that does not answer is not: its points are faulted each round until
// it does.
func NewPoller(cfg Config, prof *profile.Profile, hw Hardware, log *slog.Logger) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if prof == nil {
		return nil, errors.New("sensor: no profile")
	}
	if prof.Protocol != "local" {
		return nil, fmt.Errorf("profile %s: protocol is %q, not local", prof.ID, prof.Protocol)
	}
	if err := profile.ValidateLocal(prof); err != nil {
		return nil, fmt.Errorf("profile %s: %w", prof.ID, err)
	}
	if hw == nil {
		return nil, errors.New("sensor: no hardware")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := prof.Local
	p := &Poller{}
	onI2C := o.Driver != "gpio-contacts"
	switch {
	case onI2C && cfg.Bus != "i2c":
		return nil, fmt.Errorf("bus: profile %s (driver %s) needs bus i2c, not %s", prof.ID, o.Driver, cfg.Bus)
	case !onI2C && cfg.Bus != "gpio":
		return nil, fmt.Errorf("bus: profile %s (driver %s) needs bus gpio, not %s", prof.ID, o.Driver, cfg.Bus)
	}

	var g *guardBus
	if onI2C {
		addr := cfg.Address
		if addr == 0 {
			addr = o.Address
		}
		if addr == 0 {
			return nil, fmt.Errorf("address: required (profile %s has no default_address)", prof.ID)
		}
		bus, err := hw.I2C(cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		g = &guardBus{bus: bus}
		chip := o.LocalChip()
		switch o.Driver {
		case "ads1x15":
			if p.adc, err = newADC(g, addr, chip, o.DataRate); err != nil {
				return nil, fmt.Errorf("profile %s: %w", prof.ID, err)
			}
		case "bmxx80":
			if p.env, err = newEnv(g, addr, chip, o.Oversampling); err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
		case "ina219":
			if p.power, err = newPower(g, addr, o.ShuntOhms, o.MaxCurrent); err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
		case "aht20":
			if p.humid, err = newHumid(g, addr); err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
		}
		p.desc = fmt.Sprintf("local %s i2c bus=%q addr=%#x", chip, cfg.Name, addr)
	} else {
		p.desc = "local gpio"
	}

	byPin := map[string]*input{}
	known := map[string]string{} // point name -> type
	for i := range prof.Points {
		pt := &prof.Points[i]
		known[pt.Name] = pt.Type
		where := func(err error) error {
			if pt.Line == 0 { // a profile built in code
				return fmt.Errorf("profile %s: points[%d] (%s): %w", prof.ID, i, pt.Name, err)
			}
			return fmt.Errorf("%s:%d: points[%d] (%s): %w", prof.File, pt.Line, i, pt.Name, err)
		}
		idx := len(p.points)
		switch pt.Type {
		case "bool", "counter":
			in, err := p.openInput(hw, cfg, o, pt, byPin)
			if err != nil {
				return nil, where(err)
			}
			p.contacts = append(p.contacts, contactPoint{idx: idx, in: in, counter: pt.Type == "counter"})
			kind := drivers.KindBool
			if pt.Type == "counter" {
				kind = drivers.KindNumber
			}
			p.points = append(p.points, drivers.NewPoint(pt.Name, pt.Unit, kind))
		case "float":
			scale := 1.0
			if pt.Scale != nil {
				scale, _ = pt.Scale.Const()
			}
			var err error
			switch {
			case p.adc != nil:
				err = p.addADC(idx, pt, scale)
			case p.env != nil:
				err = p.env.addPoint(envPoint{idx: idx, measure: pt.Measure, scale: scale, offset: pt.Offset})
			case p.power != nil:
				err = p.power.addPoint(envPoint{idx: idx, measure: pt.Measure, scale: scale, offset: pt.Offset})
			case p.humid != nil:
				err = p.humid.addPoint(envPoint{idx: idx, measure: pt.Measure, scale: scale, offset: pt.Offset})
			default:
				err = errors.New("float point without a chip")
			}
			if err != nil {
				return nil, where(err)
			}
			dp := drivers.NewPoint(pt.Name, pt.Unit, drivers.KindNumber)
			if pt.Range != nil {
				dp.Min, dp.Max = pt.Range.Min, pt.Range.Max
			}
			// The project's convention is + = discharging; a shunt wired
			// the other way round is declared by the profile.
			if pt.Sign == "invert" || (pt.Sign == "battery" && prof.CurrentSign == "charge_positive") {
				p.negate = append(p.negate, idx)
			}
			p.points = append(p.points, dp)
		default:
			return nil, where(fmt.Errorf("type %q is not bool, counter or float", pt.Type))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pins)) {
		switch t, ok := known[name]; {
		case !ok:
			return nil, fmt.Errorf("pins.%s: profile %s has no such point", name, prof.ID)
		case t == "float":
			return nil, fmt.Errorf("pins.%s: not a contact point (type float)", name)
		}
	}
	if cfg.Beacon != nil {
		if in := byPin[cfg.Beacon.Pin]; in != nil {
			return nil, fmt.Errorf("beacon.pin: %s is an input of this device", cfg.Beacon.Pin)
		}
		pin, err := hw.GPIO(cfg.Beacon.Pin)
		if err != nil {
			return nil, fmt.Errorf("beacon.pin: %w", err)
		}
		if p.beacon, err = NewBeacon(pin, cfg.Beacon.ActiveLow); err != nil {
			return nil, fmt.Errorf("beacon.pin: %w", err)
		}
	}
	p.log = log.With("sensor", p.desc, "profile", prof.ID)
	return p, nil
}

// openInput sets up (once per pin) the input a contact point reads.
func (p *Poller) openInput(hw Hardware, cfg Config, o *profile.LocalOptions, pt *profile.Point, byPin map[string]*input) (*input, error) {
	name := pt.Pin
	if n, ok := cfg.Pins[pt.Name]; ok {
		name = n
	}
	if name == "" {
		return nil, errors.New("no pin: give one in the profile or in the config's pins")
	}
	deb := o.Debounce
	if pt.Debounce != nil {
		deb = *pt.Debounce
	}
	if in, ok := byPin[name]; ok {
		if in.activeLow != pt.ActiveLow || in.debounce != deb {
			return nil, fmt.Errorf("pin %s is read by another point with a different active_low or debounce", name)
		}
		return in, nil
	}
	pin, err := hw.GPIO(name)
	if err != nil {
		return nil, err
	}
	pull := gpio.PullUp // dry contacts to ground need a bias; up is the usual
	switch pt.Pull {
	case "down":
		pull = gpio.PullDown
	case "none":
		pull = gpio.Float
	}
	if err := pin.In(pull, gpio.NoEdge); err != nil {
		return nil, fmt.Errorf("set pin %s as input: %w", name, err)
	}
	in := &input{pin: pin, activeLow: pt.ActiveLow, debounce: deb}
	byPin[name] = in
	p.inputs = append(p.inputs, in)
	return in, nil
}

// addADC compiles an analog point.
func (p *Poller) addADC(idx int, pt *profile.Point, scale float64) error {
	c := adcChannel{idx: idx, scale: scale, offset: pt.Offset, below: math.Inf(-1), above: math.Inf(1)}
	if pt.Input == "current" {
		c.shunt = pt.ShuntOhms
	}
	if pt.FaultBelow != nil {
		c.below = *pt.FaultBelow
	}
	if pt.FaultAbove != nil {
		c.above = *pt.FaultAbove
	}
	if len(pt.Curve) > 0 {
		cv, err := newCurve(pt.Curve)
		if err != nil {
			return fmt.Errorf("curve: %w", err)
		}
		c.curve = cv
	}
	fsr := pt.FullScale
	if fsr == 0 {
		fsr = 2.048
	}
	return p.adc.addChannel(c, *pt.Channel, fsr)
}

// Points implements drivers.Poller.
func (p *Poller) Points() []*drivers.Point { return p.points }

// String implements drivers.Poller.
func (p *Poller) String() string { return p.desc }

// Poll implements drivers.Poller: it samples every contact, then reads the
// chip once. It returns an error only when nothing could be read: with
// contacts beside a failed chip, the chip's points are marked FaultSensor and
// the contacts are reported.
func (p *Poller) Poll(ctx context.Context, out []drivers.Reading) error {
	if len(out) != len(p.points) {
		return fmt.Errorf("sensor: %d readings for %d points", len(out), len(p.points))
	}
	if err := ctx.Err(); err != nil {
		p.mark(out, drivers.FaultComms, "poll cancelled")
		return err
	}
	now := time.Now()
	for i := range out {
		out[i] = drivers.Reading{Point: p.points[i], At: now}
	}
	for _, in := range p.inputs {
		in.sample(now)
	}
	for _, c := range p.contacts {
		r := &out[c.idx]
		switch {
		case c.counter:
			r.Value = float64(c.in.changes)
		case c.in.active():
			r.Value = 1
		}
	}
	var err error
	switch {
	case p.adc != nil:
		err = p.adc.poll(ctx, out)
	case p.env != nil:
		err = p.env.poll(ctx, out)
	case p.power != nil:
		err = p.power.poll(ctx, out)
	case p.humid != nil:
		err = p.humid.poll(ctx, out)
	}
	for _, i := range p.negate {
		if v := out[i].Value; v != 0 { // no -0 in telemetry
			out[i].Value = -v
		}
	}
	for i := range out {
		r := &out[i]
		if r.Fault == drivers.FaultNone && r.Point.Min != r.Point.Max && (r.Value < r.Point.Min || r.Value > r.Point.Max) {
			r.Fault, r.Detail = drivers.FaultRange, detailRange
		}
	}
	// Log state changes, not every failed round.
	switch {
	case err != nil && !p.failing:
		p.failing = true
		p.log.Warn("local sensor failing", "err", err)
	case err == nil && p.failing:
		p.failing = false
		p.log.Info("local sensor back")
	}
	// The round failed as a whole only if nothing was read: contacts that
	// were read stay good when the chip beside them fails, and a fire-panel
	// contact must not be dropped because an ADC is unplugged.
	if err != nil && len(p.contacts) == 0 {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	return nil
}

func (p *Poller) mark(out []drivers.Reading, f drivers.Fault, detail string) {
	for i := range out {
		out[i] = drivers.Reading{Point: p.points[i], Fault: f, Detail: detail, At: time.Now()}
	}
}

// SetBeacon switches the configured alarm beacon. It may be called from
// any goroutine.
func (p *Poller) SetBeacon(on bool) error {
	if p.beacon == nil {
		return errors.New("sensor: no beacon configured for " + p.desc)
	}
	return p.beacon.Set(on)
}

// Changes returns the count of debounced level changes of the contact point
// named name, and whether there is such a point. Like Poll, it belongs to
// the polling goroutine.
func (p *Poller) Changes(name string) (uint64, bool) {
	for _, c := range p.contacts {
		if p.points[c.idx].Name == name {
			return c.in.changes, true
		}
	}
	return 0, false
}

// Close implements drivers.Poller. Buses and pins belong to the Hardware;
// the beacon is switched off.
func (p *Poller) Close() error {
	if p.beacon != nil {
		return p.beacon.Set(false)
	}
	return nil
}

var _ drivers.Poller = (*Poller)(nil)
