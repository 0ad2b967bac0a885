package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/emberwatch/emberwatch/drivers"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ina219"
)

// INA219 registers (TI SBOS448): the bus voltage register carries the
// overflow flag in bit 0; the calibration register reads 0 after a
// power-on reset.
const (
	inaRegBus = 0x02
	inaRegCal = 0x05
	inaOVF    = 0x0001
)

const (
	detailOverflow = "current or power out of range (INA219 math overflow)"
	detailCalLost  = "calibration lost: chip reset"
	inaInitBudget  = 4
	inaSenseBudget = 8
)

// power is a TI INA219 high-side monitor read through periph's ina219: bus
// voltage, shunt voltage, current and power of a DC circuit (at most 26 V).
type power struct {
	g    *guardBus
	addr uint16
	opts ina219.Opts
	dev  *ina219.Dev // nil until calibrated
	pts  []envPoint
	cal  i2c.Dev
	w    [1]byte
	r    [2]byte
}

func newPower(g *guardBus, addr uint16, shuntOhms, maxAmps float64) (*power, error) {
	if addr < 0x40 || addr > 0x4F {
		return nil, fmt.Errorf("an ina219 answers at 0x40-0x4f, not %#x", addr)
	}
	if shuntOhms == 0 {
		shuntOhms = 0.1
	}
	if maxAmps == 0 {
		maxAmps = 3.2
	}
	g.watchReg = inaRegBus
	return &power{
		g: g, addr: addr, cal: i2c.Dev{Bus: g, Addr: addr},
		opts: ina219.Opts{
			Address:       int(addr),
			SenseResistor: physic.ElectricResistance(math.Round(shuntOhms * float64(physic.Ohm))),
			MaxCurrent:    physic.ElectricCurrent(math.Round(maxAmps * float64(physic.Ampere))),
		},
	}, nil
}

func (s *power) addPoint(p envPoint) error {
	switch p.measure {
	case "voltage", "current", "power", "shunt":
	default:
		return fmt.Errorf("measure must be voltage, current, power or shunt, got %q", p.measure)
	}
	s.pts = append(s.pts, p)
	return nil
}

func (s *power) fail(out []drivers.Reading, f drivers.Fault, detail string) {
	for _, p := range s.pts {
		out[p.idx].Fault, out[p.idx].Detail = f, detail
	}
}

// poll reads the four measurements, then checks that the chip still holds
// its calibration: after a brown-out it reads current and power as 0, which
// must not pass for "no current".
func (s *power) poll(ctx context.Context, out []drivers.Reading) error {
	if s.dev == nil {
		s.g.arm(ctx, inaInitBudget)
		d, err := ina219.New(s.g, &s.opts)
		if err != nil {
			s.fail(out, drivers.FaultSensor, detailInit)
			return fmt.Errorf("set up ina219 at %#x: %w", s.addr, err)
		}
		s.dev = d
	}
	s.g.arm(ctx, inaSenseBudget)
	pm, err := s.dev.Sense()
	// periph stops at an overflow after reading the bus voltage, which is
	// still good; the raw register tells the two cases apart.
	bus := binary.BigEndian.Uint16(s.g.last[:2])
	overflow := err != nil && s.g.lastN == 2 && bus&inaOVF != 0
	if err != nil && !overflow {
		s.dev = nil
		s.fail(out, drivers.FaultSensor, detailI2C)
		return fmt.Errorf("read ina219 at %#x: %w", s.addr, err)
	}
	calLost := false
	if !overflow {
		s.w[0] = inaRegCal
		if err := s.cal.Tx(s.w[:], s.r[:]); err != nil {
			s.dev = nil
			s.fail(out, drivers.FaultSensor, detailI2C)
			return fmt.Errorf("read ina219 at %#x: %w", s.addr, err)
		}
		calLost = binary.BigEndian.Uint16(s.r[:]) == 0
	}
	for _, p := range s.pts {
		r := &out[p.idx]
		var v float64
		switch {
		case p.measure == "voltage":
			v = float64(bus>>3) * 0.004 // 4 mV per LSB, bits 15..3
		case overflow:
			r.Fault, r.Detail = drivers.FaultRange, detailOverflow
			continue
		case p.measure == "shunt":
			v = float64(pm.Shunt) / float64(physic.Volt)
		case calLost:
			r.Fault, r.Detail = drivers.FaultSentinel, detailCalLost
			continue
		case p.measure == "current":
			v = float64(pm.Current) / float64(physic.Ampere)
		default:
			v = float64(pm.Power) / float64(physic.Watt)
		}
		r.Value, r.Fault = v*p.scale+p.offset, drivers.FaultNone
	}
	if calLost {
		s.dev = nil // calibrate again next round
	}
	return nil
}
