package sensor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/aht20"
)

const (
	detailCRC         = "CRC mismatch on the measurement"
	detailNotCal      = "sensor lost its calibration (reset)"
	detailReadTimeout = "measurement not ready in time"
	ahtInitBudget     = 4
	ahtSenseBudget    = 24
)

// humid is an Aosong AHT20 (fixed address 0x38) driven by periph's aht20:
// one triggered measurement per round (80 ms), CRC-checked.
type humid struct {
	g   *guardBus
	dev *aht20.Dev // nil until the chip has answered
	pts []envPoint
	e   physic.Env
}

func newHumid(g *guardBus, addr uint16) (*humid, error) {
	if addr != 0x38 {
		return nil, fmt.Errorf("an aht20 answers at 0x38 only, not %#x", addr)
	}
	return &humid{g: g}, nil
}

func (s *humid) addPoint(p envPoint) error {
	if p.measure != measureTemperature && p.measure != measureHumidity {
		return fmt.Errorf("measure must be temperature or humidity, got %q", p.measure)
	}
	s.pts = append(s.pts, p)
	return nil
}

func (s *humid) fail(out []drivers.Reading, f drivers.Fault, detail string) {
	for _, p := range s.pts {
		out[p.idx].Fault, out[p.idx].Detail = f, detail
	}
}

func (s *humid) poll(ctx context.Context, out []drivers.Reading) error {
	if s.dev == nil {
		s.g.arm(ctx, ahtInitBudget)
		d, err := aht20.NewI2C(s.g, &aht20.Opts{
			MeasurementReadTimeout:  150 * time.Millisecond,
			MeasurementWaitInterval: 10 * time.Millisecond,
			ValidateData:            true,
		})
		if err != nil {
			s.fail(out, drivers.FaultSensor, detailInit)
			return fmt.Errorf("set up aht20: %w", err)
		}
		s.dev = d
	}
	s.g.arm(ctx, ahtSenseBudget)
	if err := s.dev.Sense(&s.e); err != nil {
		var crc *aht20.DataCorruptionError
		var notInit *aht20.NotInitializedError
		var timeout *aht20.ReadTimeoutError
		switch {
		case errors.As(err, &crc):
			s.fail(out, drivers.FaultMalformed, detailCRC)
		case errors.As(err, &notInit):
			s.dev = nil // initialise again next round
			s.fail(out, drivers.FaultSensor, detailNotCal)
		case errors.As(err, &timeout):
			s.fail(out, drivers.FaultTimeout, detailReadTimeout)
		default:
			s.dev = nil
			s.fail(out, drivers.FaultSensor, detailI2C)
		}
		return fmt.Errorf("read aht20: %w", err)
	}
	for _, p := range s.pts {
		v := float64(s.e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius)
		if p.measure == measureHumidity {
			v = float64(s.e.Humidity) / float64(physic.PercentRH)
		}
		out[p.idx].Value, out[p.idx].Fault = v*p.scale+p.offset, drivers.FaultNone
	}
	return nil
}
