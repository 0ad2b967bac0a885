package sensor_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/gpio"
)

func TestContactsBuiltinProfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := pins("GPIO17", "GPIO27", "GPIO5", "GPIO23", "GPIO24")
		cfg := sensor.Config{Bus: "gpio", Pins: map[string]string{
			// Moved off GPIO22 by this site's wiring; the counter reads the
			// same contact.
			"door.open": "GPIO5", "door.changes.count": "GPIO5",
		}, Beacon: &sensor.BeaconConfig{Pin: "GPIO24"}}
		p, err := sensor.NewPoller(cfg, builtin(t, "gpio-contacts"), hardware(nil, ps), discard())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		// Inputs were set up pulled up; every contact is closed to GND in the
		// normal state.
		for _, n := range []string{"GPIO17", "GPIO27", "GPIO5", "GPIO23"} {
			if ps[n].P != gpio.PullUp {
				t.Errorf("%s pull = %v, want up", n, ps[n].P)
			}
			ps[n].Out(gpio.Low)
		}
		rs, err := poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"alarm.fire_panel", "alarm.smoke", "door.open", "epo.active", "door.changes.count"} {
			wantValue(t, rs, n, 0)
		}
		if k := rs["alarm.fire_panel"].Point.Kind; k != drivers.KindBool {
			t.Errorf("alarm.fire_panel kind %v, want bool", k)
		}

		// The fire panel's relay opens: taken after 100 ms held.
		ps["GPIO17"].Out(gpio.High)
		rs, _ = poll(t, p)
		wantValue(t, rs, "alarm.fire_panel", 0)
		time.Sleep(100 * time.Millisecond)
		rs, _ = poll(t, p)
		wantValue(t, rs, "alarm.fire_panel", 1)

		// The door opens and closes twice, each held 600 ms (> 500 ms).
		for range 2 {
			for _, l := range []gpio.Level{gpio.High, gpio.Low} {
				ps["GPIO5"].Out(l)
				poll(t, p)
				time.Sleep(600 * time.Millisecond)
				rs, _ = poll(t, p)
				wantValue(t, rs, "door.open", map[gpio.Level]float64{gpio.High: 1, gpio.Low: 0}[l])
			}
		}
		wantValue(t, rs, "door.changes.count", 4)
		if n, ok := p.Changes("door.open"); !ok || n != 4 {
			t.Errorf("Changes(door.open) = %d, %v; want 4", n, ok)
		}

		if err := p.SetBeacon(true); err != nil {
			t.Fatal(err)
		}
		if ps["GPIO24"].Read() != gpio.High {
			t.Error("beacon on, pin low")
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if ps["GPIO24"].Read() != gpio.Low {
			t.Error("beacon left on by Close")
		}
	})
}

func TestContactDebounce(t *testing.T) {
	const prof = `
id: one-contact
vendor: test
model: one contact
firmware: "*"
source: test
protocol: local
local: {driver: gpio-contacts}
points:
  - {name: alarm.smoke, type: bool, pin: GPIO4, debounce: 200ms}
  - {name: smoke.changes.count, type: counter, pin: GPIO4, debounce: 200ms}
`
	type step struct {
		after time.Duration // sleep before sampling
		level gpio.Level
		want  float64 // alarm.smoke after the sample
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		changes float64
	}{
		{"glitch shorter than debounce is ignored", []step{
			{0, gpio.Low, 0}, {time.Second, gpio.High, 0}, {150 * time.Millisecond, gpio.Low, 0},
			{150 * time.Millisecond, gpio.Low, 0}, {time.Second, gpio.Low, 0},
		}, 0},
		{"held change is taken", []step{
			{0, gpio.Low, 0}, {time.Second, gpio.High, 0}, {100 * time.Millisecond, gpio.High, 0},
			{100 * time.Millisecond, gpio.High, 1}, {time.Second, gpio.High, 1},
		}, 1},
		{"flapping restarts the debounce time", []step{
			{0, gpio.Low, 0}, {0, gpio.High, 0}, {150 * time.Millisecond, gpio.Low, 0},
			{10 * time.Millisecond, gpio.High, 0}, {150 * time.Millisecond, gpio.High, 0},
			{50 * time.Millisecond, gpio.High, 1},
		}, 1},
		{"alarm present at start is reported at once", []step{
			{0, gpio.High, 1}, {time.Second, gpio.High, 1},
		}, 0},
		{"clear is debounced too", []step{
			{0, gpio.High, 1}, {time.Second, gpio.Low, 1}, {199 * time.Millisecond, gpio.Low, 1},
			{time.Millisecond, gpio.Low, 0},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := pins("GPIO4")
				p, err := sensor.NewPoller(sensor.Config{Bus: "gpio"}, parse(t, prof), hardware(nil, ps), discard())
				if err != nil {
					t.Fatal(err)
				}
				var rs map[string]drivers.Reading
				for i, s := range tc.steps {
					time.Sleep(s.after)
					ps["GPIO4"].Out(s.level)
					rs, err = poll(t, p)
					if err != nil {
						t.Fatal(err)
					}
					if got := rs["alarm.smoke"].Value; got != s.want {
						t.Fatalf("step %d (+%v, %v): alarm.smoke = %g, want %g", i, s.after, s.level, got, s.want)
					}
				}
				wantValue(t, rs, "smoke.changes.count", tc.changes)
			})
		})
	}
}

func TestContactActiveLowAndPull(t *testing.T) {
	const prof = `
id: no-contacts
vendor: test
model: normally-open contacts
firmware: "*"
source: test
protocol: local
local: {driver: gpio-contacts}
points:
  - {name: epo.active, type: bool, pin: GPIO6, active_low: true}
  - {name: door.open, type: bool, pin: GPIO7, pull: down}
  - {name: alarm.smoke, type: bool, pin: GPIO8, pull: none, active_low: true}
`
	ps := pins("GPIO6", "GPIO7", "GPIO8", "GPIO9")
	p, err := sensor.NewPoller(sensor.Config{Bus: "gpio", Beacon: &sensor.BeaconConfig{Pin: "GPIO9", ActiveLow: true}},
		parse(t, prof), hardware(nil, ps), discard())
	if err != nil {
		t.Fatal(err)
	}
	if ps["GPIO6"].P != gpio.PullUp || ps["GPIO7"].P != gpio.PullDown || ps["GPIO8"].P != gpio.Float {
		t.Errorf("pulls = %v %v %v, want up down float", ps["GPIO6"].P, ps["GPIO7"].P, ps["GPIO8"].P)
	}
	// Active-low beacon: off means high.
	if ps["GPIO9"].Read() != gpio.High {
		t.Error("active-low beacon not off (high) after setup")
	}
	ps["GPIO6"].Out(gpio.Low) // NO contact closed to GND: EPO pressed
	ps["GPIO7"].Out(gpio.Low)
	ps["GPIO8"].Out(gpio.High)
	rs, err := poll(t, p)
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, rs, "epo.active", 1)
	wantValue(t, rs, "door.open", 0)
	wantValue(t, rs, "alarm.smoke", 0)
	if err := p.SetBeacon(true); err != nil {
		t.Fatal(err)
	}
	if ps["GPIO9"].Read() != gpio.Low {
		t.Error("active-low beacon on, pin not low")
	}
}

func TestSetBeaconWithoutBeacon(t *testing.T) {
	ps := pins("GPIO17", "GPIO27", "GPIO22", "GPIO23")
	p, err := sensor.NewPoller(sensor.Config{Bus: "gpio"}, builtin(t, "gpio-contacts"), hardware(nil, ps), discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetBeacon(true); err == nil {
		t.Error("SetBeacon without a beacon pin: no error")
	}
}

func TestPollWrongLength(t *testing.T) {
	p, err := sensor.NewPoller(sensor.Config{Bus: "gpio"}, builtin(t, "gpio-contacts"),
		hardware(nil, pins("GPIO17", "GPIO27", "GPIO22", "GPIO23")), discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(t.Context(), make([]drivers.Reading, 2)); err == nil || err.Error() != "sensor: 2 readings for 5 points" {
		t.Errorf("got %v", err)
	}
}
