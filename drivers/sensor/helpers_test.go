package sensor_test

import (
	"context"
	"io/fs"
	"log/slog"
	"math"
	"testing"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// builtin loads one of the embedded local profiles through the real loader.
func builtin(t testing.TB, id string) *profile.Profile {
	t.Helper()
	data, err := fs.ReadFile(firmwareprofiles.FS, "local/"+id+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse("local/"+id+".yaml", data)
	if err != nil {
		t.Fatalf("parse %s: %v", id, err)
	}
	return p
}

// parse parses a profile written in a test.
func parse(t testing.TB, yaml string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

// pins makes gpiotest pins by name.
func pins(names ...string) map[string]*gpiotest.Pin {
	m := map[string]*gpiotest.Pin{}
	for i, n := range names {
		m[n] = &gpiotest.Pin{N: n, Num: i}
	}
	return m
}

func hardware(bus i2c.Bus, ps map[string]*gpiotest.Pin) sensor.StaticHardware {
	hw := sensor.StaticHardware{Buses: map[string]i2c.Bus{}, Pins: map[string]gpio.PinIO{}}
	if bus != nil {
		hw.Buses["1"] = bus
	}
	for n, p := range ps {
		hw.Pins[n] = p
	}
	return hw
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// poll runs one round and returns the readings by point name.
func poll(t testing.TB, p *sensor.Poller) (map[string]drivers.Reading, error) {
	t.Helper()
	out := make([]drivers.Reading, len(p.Points()))
	err := p.Poll(context.Background(), out)
	m := map[string]drivers.Reading{}
	for i, r := range out {
		if r.Point != p.Points()[i] {
			t.Fatalf("reading %d has point %v, want %v", i, r.Point, p.Points()[i])
		}
		m[r.Point.Name] = r
	}
	return m, err
}

func wantValue(t testing.TB, rs map[string]drivers.Reading, name string, want float64) {
	t.Helper()
	r, ok := rs[name]
	switch {
	case !ok:
		t.Errorf("%s: no reading", name)
	case r.Fault != drivers.FaultNone:
		t.Errorf("%s: fault %s (%s), want %g", name, r.Fault, r.Detail, want)
	case math.Abs(r.Value-want) > 1e-9*math.Max(1, math.Abs(want)):
		t.Errorf("%s = %.12g, want %g", name, r.Value, want)
	}
}

func wantFault(t testing.TB, rs map[string]drivers.Reading, name string, want drivers.Fault) {
	t.Helper()
	r, ok := rs[name]
	switch {
	case !ok:
		t.Errorf("%s: no reading", name)
	case r.Fault != want:
		t.Errorf("%s: fault %q (%s, value %g), want %q", name, r.Fault, r.Detail, r.Value, want)
	case r.Detail == "":
		t.Errorf("%s: fault %s without detail", name, r.Fault)
	}
}

func closePlayback(t testing.TB, b *i2ctest.Playback) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Errorf("playback: %v", err)
	}
}
