package sensor_test

import (
	"context"
	"encoding/binary"
	"testing"
	"testing/synctest"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"
)

// ADS1115 config words for single-shot reads at +-4.096 V, 860 SPS,
// comparator off (SBAS444 9.6.3): OS=1, MUX=1xx (AINx vs GND), PGA=001,
// MODE=1, DR=111, COMP_QUE=11.
var adsCfg = [4]uint16{0xC3E3, 0xD3E3, 0xE3E3, 0xF3E3}

// adsRead is the traffic of one channel: config write, config read with the
// OS bit set (conversion done), conversion read.
func adsRead(addr uint16, ch int, code int16) []i2ctest.IO {
	cfg := adsCfg[ch]
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x01, byte(cfg >> 8), byte(cfg)}},
		{Addr: addr, W: []byte{0x01}, R: be16(cfg)},
		{Addr: addr, W: []byte{0x00}, R: be16(uint16(code))},
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// code is the ADS1115 code for volts at +-4.096 V full scale.
func code(volts float64) int16 { return int16(volts / 4.096 * 32768) }

func ops(parts ...[]i2ctest.IO) []i2ctest.IO {
	var all []i2ctest.IO
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

func offgas(t *testing.T, bus *i2ctest.Playback, cfg sensor.Config) *sensor.Poller {
	t.Helper()
	p, err := sensor.NewPoller(cfg, builtin(t, "offgas-ads1115"), hardware(bus, nil), discard())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestADS1115Offgas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: ops(
			adsRead(0x48, 0, code(1.2)), // 12 mA: mid-scale, 500 ppm H2
			adsRead(0x48, 1, code(0.8)), // 8 mA: 125 ppm CO
			adsRead(0x48, 2, code(1.6)), // 1.6 V: between the curve's 1.2 V/50 and 2.0 V/100 points
		)}
		p := offgas(t, bus, sensor.Config{Bus: "i2c", Name: "1"})
		if s := p.String(); s != `local ads1115 i2c bus="1" addr=0x48` {
			t.Errorf("String() = %q", s)
		}
		rs, err := poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "gas.h2.ppm", 500)
		wantValue(t, rs, "gas.co.ppm", 125)
		wantValue(t, rs, "gas.voc.ppm", 75)
		if u := rs["gas.h2.ppm"].Point.Unit; u != "ppm" {
			t.Errorf("unit %q", u)
		}
		closePlayback(t, bus)
	})
}

func TestADS1115Faults(t *testing.T) {
	notReady := adsRead(0x4A, 0, code(0.4)) // 4 mA: 0 ppm, after one "busy" config read
	notReady = append(notReady[:1], append([]i2ctest.IO{{Addr: 0x4A, W: []byte{0x01}, R: be16(adsCfg[0] &^ 0x8000)}}, notReady[1:]...)...)
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want map[string]drivers.Fault // absent: FaultNone
		vals map[string]float64
	}{
		{"open loop and over-range", ops(
			adsRead(0x4A, 0, code(0.0)),  // 0 mA: loop open
			adsRead(0x4A, 1, code(0.34)), // 3.4 mA: below NE 43's 3.6 mA
			adsRead(0x4A, 2, 32767),      // saturated
		), map[string]drivers.Fault{"gas.h2.ppm": drivers.FaultSensor, "gas.co.ppm": drivers.FaultSensor, "gas.voc.ppm": drivers.FaultRange}, nil},
		{"transmitter signals fault high", ops(
			adsRead(0x4A, 0, code(2.15)), // 21.5 mA
			adsRead(0x4A, 1, code(2.05)), // 20.5 mA: still a value, extrapolated
			adsRead(0x4A, 2, code(0.38)), // 0.38 V: slightly under range, extrapolated
		), map[string]drivers.Fault{"gas.h2.ppm": drivers.FaultSensor}, map[string]float64{"gas.co.ppm": 515.625, "gas.voc.ppm": -1.25}},
		{"conversion not finished at first look", ops(
			notReady,
			adsRead(0x4A, 1, code(2.0)),
			adsRead(0x4A, 2, code(2.0)),
		), nil, map[string]float64{"gas.h2.ppm": 0, "gas.co.ppm": 500, "gas.voc.ppm": 100}},
		{"chip reset: config reads back as the power-on default", ops(
			adsRead(0x4A, 0, code(1.2))[:1],
			[]i2ctest.IO{{Addr: 0x4A, W: []byte{0x01}, R: be16(0x8583)}},
			adsRead(0x4A, 1, code(1.2)),
			adsRead(0x4A, 2, code(1.2)),
		), map[string]drivers.Fault{"gas.h2.ppm": drivers.FaultSensor}, map[string]float64{"gas.co.ppm": 250, "gas.voc.ppm": 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus := &i2ctest.Playback{Ops: tc.ops}
				p := offgas(t, bus, sensor.Config{Bus: "i2c", Name: "1", Address: 0x4A})
				rs, err := poll(t, p)
				if err != nil {
					t.Fatal(err)
				}
				for name, r := range rs {
					if f, ok := tc.want[name]; ok {
						wantFault(t, rs, name, f)
					} else if v, ok := tc.vals[name]; ok {
						wantValue(t, rs, name, v)
					} else if r.Fault != drivers.FaultNone {
						t.Errorf("%s: unexpected fault %s", name, r.Fault)
					}
				}
				closePlayback(t, bus)
			})
		})
	}
}

func TestADS1115BusError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The chip answers channel 0, then the bus fails (NACK): the
		// playback runs out and returns an error instead of panicking.
		bus := &i2ctest.Playback{DontPanic: true, Ops: adsRead(0x48, 0, code(1.2))}
		p := offgas(t, bus, sensor.Config{Bus: "i2c", Name: "1"})
		rs, err := poll(t, p)
		if err == nil {
			t.Fatal("bus failure: Poll returned no error (no contacts on this device)")
		}
		wantValue(t, rs, "gas.h2.ppm", 500)
		wantFault(t, rs, "gas.co.ppm", drivers.FaultSensor)
		wantFault(t, rs, "gas.voc.ppm", drivers.FaultSensor)
		closePlayback(t, bus)

		// The bus comes back: the next round reads again.
		bus.Ops = append(bus.Ops, ops(adsRead(0x48, 0, code(0.4)), adsRead(0x48, 1, code(0.4)), adsRead(0x48, 2, code(0.4)))...)
		rs, err = poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"gas.h2.ppm", "gas.co.ppm", "gas.voc.ppm"} {
			wantValue(t, rs, n, 0)
		}
		closePlayback(t, bus)
	})
}

func TestADS1115CtxDone(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true}
	p := offgas(t, bus, sensor.Config{Bus: "i2c", Name: "1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err == nil {
		t.Fatal("cancelled ctx: no error")
	}
	for _, r := range out {
		if r.OK() || r.Point == nil {
			t.Errorf("%v: not marked after a cancelled poll", r.Point)
		}
	}
	closePlayback(t, bus) // nothing was sent
}

// TestADS1115ConfigMatchesPeriph checks that the config word written for a
// channel is the one periph's own ads1x15 driver writes for the same
// channel, range and rate, by recording that driver's traffic.
func TestADS1115ConfigMatchesPeriph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for ch, pc := range []ads1x15.Channel{ads1x15.Channel0, ads1x15.Channel1, ads1x15.Channel2, ads1x15.Channel3} {
			rec := &i2ctest.Record{Bus: &i2ctest.Playback{Ops: []i2ctest.IO{
				{Addr: 0x48, W: []byte{0x01, byte(adsCfg[ch] >> 8), byte(adsCfg[ch])}},
				{Addr: 0x48, W: []byte{0x00}, R: be16(uint16(code(1.2)))},
			}}}
			adc, err := ads1x15.NewADS1115(rec, &ads1x15.DefaultOpts)
			if err != nil {
				t.Fatal(err)
			}
			pin, err := adc.PinForChannel(pc, 4096*physic.MilliVolt, 860*physic.Hertz, ads1x15.SaveEnergy)
			if err != nil {
				t.Fatal(err)
			}
			s, err := pin.Read()
			if err != nil {
				t.Fatal(err)
			}
			if s.Raw != int32(code(1.2)) {
				t.Errorf("periph read raw %d", s.Raw)
			}
			if got := binary.BigEndian.Uint16(rec.Ops[0].W[1:]); got != adsCfg[ch] {
				t.Errorf("channel %d: periph writes config %#04x, we write %#04x", ch, got, adsCfg[ch])
			}
		}
	})
}
