package sensor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// A gas detector with its two alarm relays on GPIO beside its analog
// outputs on an ADS1115: the contacts+ADC device of the benchmark.
const gasWithRelays = `
id: gas-relays
vendor: test
model: gas transmitter with alarm relays
firmware: "*"
source: test
protocol: local
local: {driver: ads1x15, default_address: 0x48, debounce: 100ms}
points:
  - {name: alarm.smoke, type: bool, pin: GPIO5}
  - {name: alarm.fire_panel, type: bool, pin: GPIO6, active_low: true}
  - {name: gas.h2.ppm, type: float, unit: ppm, channel: 0, full_scale: 4.096, input: current, shunt_ohms: 100, curve: [[4, 0], [20, 1000]], fault_below: 3.6, fault_above: 21}
  - {name: gas.voc.ppm, type: float, unit: ppm, channel: 2, full_scale: 4.096, curve: [[0.4, 0], [1.2, 50], [2.0, 100]], fault_below: 0.36, fault_above: 2.1}
`

func gasRound() []i2ctest.IO {
	return ops(adsRead(0x48, 0, code(0.5)), adsRead(0x48, 2, code(1.0)))
}

func newGas(tb testing.TB) (*sensor.Poller, *i2ctest.Playback) {
	tb.Helper()
	bus := &i2ctest.Playback{Ops: gasRound()}
	ps := pins("GPIO5", "GPIO6")
	p, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, parse(tb, gasWithRelays), hardware(bus, ps), discard())
	if err != nil {
		tb.Fatal(err)
	}
	ps["GPIO5"].Out(gpio.Low)
	ps["GPIO6"].Out(gpio.High)
	return p, bus
}

func TestGasWithRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, bus := newGas(t)
		rs, err := poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "alarm.smoke", 0)
		wantValue(t, rs, "alarm.fire_panel", 0)
		wantValue(t, rs, "gas.h2.ppm", 62.5)
		wantValue(t, rs, "gas.voc.ppm", 37.5)
		closePlayback(t, bus)

		// The ADC disappears: its points are faulted, the relays are still
		// reported and Poll does not fail the whole device.
		bus.DontPanic = true
		rs, err = poll(t, p)
		if err != nil {
			t.Fatalf("chip failure beside contacts: %v", err)
		}
		wantValue(t, rs, "alarm.smoke", 0)
		wantFault(t, rs, "gas.h2.ppm", drivers.FaultSensor)
		wantFault(t, rs, "gas.voc.ppm", drivers.FaultSensor)
	})
}

func TestPollDoesNotAllocate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, bus := newGas(t)
		out := make([]drivers.Reading, len(p.Points()))
		ctx := context.Background()
		allocs := testing.AllocsPerRun(50, func() {
			bus.Count = 0
			if err := p.Poll(ctx, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Poll allocates %v times per round", allocs)
		}
		for _, r := range out {
			if !r.OK() {
				t.Errorf("%s: %s", r.Point.Name, r.Fault)
			}
		}
	})
}

// BenchmarkPollContactsADC polls two contacts and two ADC channels. Each
// round includes the ADS1115's real conversion time at 860 SPS (2 x
// 1.2 ms of sleep), which dominates.
func BenchmarkPollContactsADC(b *testing.B) {
	p, bus := newGas(b)
	out := make([]drivers.Reading, len(p.Points()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		bus.Count = 0 // replay the same round
		if err := p.Poll(ctx, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollContacts polls the five points of the gpio-contacts profile.
func BenchmarkPollContacts(b *testing.B) {
	p, err := sensor.NewPoller(sensor.Config{Bus: "gpio"}, builtin(b, "gpio-contacts"),
		hardware(nil, pins("GPIO17", "GPIO27", "GPIO22", "GPIO23")), discard())
	if err != nil {
		b.Fatal(err)
	}
	out := make([]drivers.Reading, len(p.Points()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Poll(ctx, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollBME280 measures one forced-mode round of the BME280 (the
// chip's measurement time, 5.5 ms at x1, is slept for real).
func BenchmarkPollBME280(b *testing.B) {
	bus := &i2ctest.Playback{Ops: ops(bmeSetup(0x76, 0x60), bmeSense(0x76, bmeData, 0))}
	p, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, builtin(b, "bme280"), hardware(bus, nil), discard())
	if err != nil {
		b.Fatal(err)
	}
	out := make([]drivers.Reading, len(p.Points()))
	ctx := context.Background()
	if err := p.Poll(ctx, out); err != nil { // set up
		b.Fatal(err)
	}
	round := bmeSense(0x76, bmeData, 0)
	b.ReportAllocs()
	for b.Loop() {
		bus.Ops, bus.Count = round, 0
		if err := p.Poll(ctx, out); err != nil {
			b.Fatal(err)
		}
	}
}
