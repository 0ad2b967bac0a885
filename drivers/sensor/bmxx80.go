package sensor

import (
	"context"
	"fmt"
	"strings"

	"github.com/emberwatch/emberwatch/drivers"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// Quantities an environmental sensor measures.
const (
	measureTemperature = "temperature"
	measureHumidity    = "humidity"
	measurePressure    = "pressure"
)

// envPoint is one compiled quantity of an environmental sensor.
type envPoint struct {
	idx     int
	measure string
	scale   float64
	offset  float64
}

// env is a Bosch BME280/BMP280 driven by periph's bmxx80 in forced mode:
// one measurement per round, then the chip sleeps (no self-heating).
type env struct {
	g    *guardBus
	addr uint16
	chip string // bme280 or bmp280, as the profile expects
	opts bmxx80.Opts
	dev  *bmxx80.Dev // nil until the chip has been set up
	pts  []envPoint
	e    physic.Env
}

const (
	detailInit     = "sensor setup failed (absent, wrong chip or bus error)"
	detailSkipped  = "measurement skipped: reset value read (chip reset?)"
	detailNoHumid  = "this chip has no humidity sensor"
	bmeDataReg     = 0xF7
	bmeInitBudget  = 8
	bmeSenseBudget = 32
)

func newEnv(g *guardBus, addr uint16, chip string, oversampling int) (*env, error) {
	if chip != "bme280" && chip != "bmp280" {
		return nil, fmt.Errorf("chip must be bme280 or bmp280, got %q", chip)
	}
	if addr != 0x76 && addr != 0x77 {
		return nil, fmt.Errorf("a %s answers at 0x76 or 0x77, not %#x", chip, addr)
	}
	var os bmxx80.Oversampling
	switch oversampling {
	case 0, 1:
		os = bmxx80.O1x
	case 2:
		os = bmxx80.O2x
	case 4:
		os = bmxx80.O4x
	case 8:
		os = bmxx80.O8x
	case 16:
		os = bmxx80.O16x
	default:
		return nil, fmt.Errorf("oversampling must be 1, 2, 4, 8 or 16, got %d", oversampling)
	}
	g.watchReg = bmeDataReg
	// Quantities without a point stay off: the measurement is shorter.
	return &env{g: g, addr: addr, chip: chip, opts: bmxx80.Opts{Temperature: os}}, nil
}

func (s *env) addPoint(p envPoint) error {
	switch p.measure {
	case measureTemperature:
	case measureHumidity:
		s.opts.Humidity = s.opts.Temperature
	case measurePressure:
		s.opts.Pressure = s.opts.Temperature
	default:
		return fmt.Errorf("measure must be temperature, humidity or pressure, got %q", p.measure)
	}
	s.pts = append(s.pts, p)
	return nil
}

func (s *env) fail(out []drivers.Reading, f drivers.Fault, detail string) {
	for _, p := range s.pts {
		out[p.idx].Fault, out[p.idx].Detail = f, detail
	}
}

// poll measures once. A failed round drops the chip's setup so that the next
// round sets it up again (a chip that was power-cycled has lost its config).
func (s *env) poll(ctx context.Context, out []drivers.Reading) error {
	if s.dev == nil {
		s.g.arm(ctx, bmeInitBudget)
		d, err := bmxx80.NewI2C(s.g, s.addr, &s.opts)
		if err != nil {
			s.fail(out, drivers.FaultSensor, detailInit)
			return fmt.Errorf("set up %s at %#x: %w", s.chip, s.addr, err)
		}
		s.dev = d
	}
	s.g.arm(ctx, bmeSenseBudget)
	if err := s.dev.Sense(&s.e); err != nil {
		s.dev = nil
		s.fail(out, drivers.FaultSensor, detailI2C)
		return fmt.Errorf("read %s at %#x: %w", s.chip, s.addr, err)
	}
	// The data registers hold their reset values (0x80000 for temperature
	// and pressure, 0x8000 for humidity) when a quantity was not measured:
	// the chip was reset between its setup and this round.
	b := s.g.last
	tSkipped := s.g.lastN >= 6 && b[3] == 0x80 && b[4] == 0 && b[5]&0xF0 == 0
	hSkipped := s.opts.Humidity != bmxx80.Off && s.g.lastN >= 8 && b[6] == 0x80 && b[7] == 0
	isBME := strings.HasPrefix(s.dev.String(), "BME280")
	for _, p := range s.pts {
		r := &out[p.idx]
		var v float64
		switch {
		case tSkipped:
			r.Fault, r.Detail = drivers.FaultSentinel, detailSkipped
			continue
		case p.measure == measureTemperature:
			v = float64(s.e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius)
		case p.measure == measurePressure:
			v = float64(s.e.Pressure) / float64(physic.Pascal)
		case !isBME:
			r.Fault, r.Detail = drivers.FaultAbsent, detailNoHumid
			continue
		case hSkipped:
			r.Fault, r.Detail = drivers.FaultSentinel, detailSkipped
			continue
		default:
			v = float64(s.e.Humidity) / float64(physic.PercentRH)
		}
		r.Value, r.Fault = v*p.scale+p.offset, drivers.FaultNone
	}
	if tSkipped || (hSkipped && isBME) {
		s.dev = nil
	}
	return nil
}
