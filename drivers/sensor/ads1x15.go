package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"periph.io/x/conn/v3/i2c"
)

// ADS1x15 registers and config bits (TI ADS111x datasheet SBAS444, 9.6;
// ADS1015 SBAS473 has the same map). The config word for a single-shot
// read is the one periph's devices/v3/ads1x15 builds; this file talks to
// the chip itself because that driver allocates a buffer per read and sleeps
// without checking the conversion finished.
const (
	adsRegConversion = 0x00
	adsRegConfig     = 0x01

	adsOS         = 0x8000 // write: start a conversion; read: 1 = idle
	adsMuxSingle0 = 0x4000 // MUX 100: AIN0 against GND; +0x1000 per channel
	adsModeSingle = 0x0100 // single-shot, power down after
	adsCompOff    = 0x0003 // comparator disabled, ALERT/RDY high-Z
)

// adsPGA returns the PGA bits for a full-scale range in volts.
func adsPGA(fsr float64) (uint16, bool) {
	switch fsr {
	case 6.144:
		return 0x0000, true
	case 4.096:
		return 0x0200, true
	case 2.048:
		return 0x0400, true
	case 1.024:
		return 0x0600, true
	case 0.512:
		return 0x0800, true
	case 0.256:
		return 0x0A00, true
	}
	return 0, false
}

// adsRate returns the DR bits for a chip's data rate in samples per second
// (the codes run 000..111 in the order of the rates).
func adsRate(chip string, rate int) (uint16, bool) {
	var rates []int
	switch chip {
	case "ads1115":
		rates = []int{8, 16, 32, 64, 128, 250, 475, 860}
	case "ads1015":
		rates = []int{128, 250, 490, 920, 1600, 2400, 3300}
	}
	for i, r := range rates {
		if r == rate {
			return uint16(i) << 5, true
		}
	}
	return 0, false
}

// adcChannel is one compiled analog point.
type adcChannel struct {
	idx    int    // index in Points
	config uint16 // config word without OS
	fsr    float64
	shunt  float64 // ohms; 0 = the point reads volts
	curve  curve
	scale  float64
	offset float64
	below  float64 // fault thresholds on the input; NaN = none
	above  float64
}

// adc is an ADS1015/ADS1115 read in single-shot mode, one channel after
// the other.
type adc struct {
	g        *guardBus
	dev      i2c.Dev
	wait     time.Duration // one conversion plus margin
	satHi    int16         // conversion codes at or beyond which the input is saturated
	satLo    int16
	chans    []adcChannel
	w        [3]byte
	ptr      [1]byte
	r        [2]byte
	notReady int    // polls of the OS bit before giving up
	rateBits uint16 // DR bits of the config word
}

const (
	detailI2C      = "i2c transaction failed"
	detailNotReady = "conversion did not finish"
	detailReadback = "config readback mismatch (chip reset or wrong chip at this address)"
	detailSat      = "ADC input saturated (beyond full scale)"
	detailBelow    = "input below fault threshold (open loop or transmitter fault)"
	detailAbove    = "input above fault threshold (transmitter fault)"
	detailRange    = "value outside the point's range"
)

func newADC(g *guardBus, addr uint16, chip string, rate int) (*adc, error) {
	if chip != "ads1115" && chip != "ads1015" {
		return nil, fmt.Errorf("chip must be ads1115 or ads1015, got %q", chip)
	}
	if rate == 0 {
		rate = 860
		if chip == "ads1015" {
			rate = 3300
		}
	}
	bits, ok := adsRate(chip, rate)
	if !ok {
		return nil, fmt.Errorf("data_rate %d is not one of the %s rates", rate, chip)
	}
	a := &adc{g: g, dev: i2c.Dev{Bus: g, Addr: addr}, notReady: 4}
	// The datasheet's conversion time is 1/DR with an oscillator accurate to
	// 10%; wait a little longer so that the OS bit is normally set.
	a.wait = time.Second/time.Duration(rate) + time.Second/time.Duration(rate)/8 + 50*time.Microsecond
	a.satHi, a.satLo = math.MaxInt16, math.MinInt16
	if chip == "ads1015" { // 12-bit result, left-aligned
		a.satHi, a.satLo = 0x7FF0, math.MinInt16
	}
	a.rateBits = bits
	return a, nil
}

// addChannel compiles an analog point on channel ch (0..3).
func (a *adc) addChannel(c adcChannel, ch int, fsr float64) error {
	if ch < 0 || ch > 3 {
		return fmt.Errorf("channel must be 0..3, got %d", ch)
	}
	pga, ok := adsPGA(fsr)
	if !ok {
		return fmt.Errorf("full_scale must be one of 6.144 4.096 2.048 1.024 0.512 0.256, got %g", fsr)
	}
	c.fsr = fsr
	c.config = adsMuxSingle0 + uint16(ch)<<12 | pga | adsModeSingle | a.rateBits | adsCompOff
	a.chans = append(a.chans, c)
	return nil
}

// convert runs one single-shot conversion with config word cfg and returns
// the conversion code. A fault with a nil error is the chip misbehaving; an
// error is the bus (or ctx) failing.
func (a *adc) convert(cfg uint16) (int16, drivers.Fault, string, error) {
	a.w[0] = adsRegConfig
	binary.BigEndian.PutUint16(a.w[1:], cfg|adsOS)
	if err := a.dev.Tx(a.w[:], nil); err != nil {
		return 0, drivers.FaultSensor, detailI2C, err
	}
	time.Sleep(a.wait)
	a.ptr[0] = adsRegConfig
	for try := 0; ; try++ {
		if err := a.dev.Tx(a.ptr[:], a.r[:]); err != nil {
			return 0, drivers.FaultSensor, detailI2C, err
		}
		got := binary.BigEndian.Uint16(a.r[:])
		// Every bit but OS reads back as written; anything else means the
		// chip lost its config or is not an ADS1x15.
		if got&^adsOS != cfg {
			return 0, drivers.FaultSensor, detailReadback, nil
		}
		if got&adsOS != 0 {
			break
		}
		if try == a.notReady {
			return 0, drivers.FaultSensor, detailNotReady, nil
		}
		time.Sleep(a.wait / 4)
	}
	a.ptr[0] = adsRegConversion
	if err := a.dev.Tx(a.ptr[:], a.r[:]); err != nil {
		return 0, drivers.FaultSensor, detailI2C, err
	}
	return int16(binary.BigEndian.Uint16(a.r[:])), drivers.FaultNone, "", nil
}

// poll reads every channel into out. It returns the first bus error; the
// points of that and later channels are marked.
func (a *adc) poll(ctx context.Context, out []drivers.Reading) error {
	a.g.arm(ctx, 8*len(a.chans))
	for i := range a.chans {
		c := &a.chans[i]
		r := &out[c.idx]
		raw, f, detail, err := a.convert(c.config)
		if err != nil {
			for j := i; j < len(a.chans); j++ {
				out[a.chans[j].idx].Fault, out[a.chans[j].idx].Detail = drivers.FaultSensor, detailI2C
			}
			return err
		}
		if f != drivers.FaultNone {
			r.Fault, r.Detail = f, detail
			continue
		}
		if raw >= a.satHi || raw <= a.satLo {
			r.Fault, r.Detail = drivers.FaultRange, detailSat
			continue
		}
		x := float64(raw) * c.fsr / 32768
		if c.shunt > 0 {
			x = x / c.shunt * 1000 // milliamps through the shunt
		}
		switch {
		case x <= c.below:
			r.Fault, r.Detail = drivers.FaultSensor, detailBelow
			continue
		case x >= c.above:
			r.Fault, r.Detail = drivers.FaultSensor, detailAbove
			continue
		}
		if c.curve != nil {
			r.Value = c.curve.at(x)
		} else {
			r.Value = x*c.scale + c.offset
		}
		r.Fault = drivers.FaultNone
	}
	return nil
}
