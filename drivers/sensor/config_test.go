package sensor_test

import (
	"bytes"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/sensor"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"gopkg.in/yaml.v3"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestConfigYAML(t *testing.T) {
	const doc = `
bus: i2c
name: "1"
address: 0x48
pins: {alarm.smoke: GPIO5}
beacon: {pin: GPIO24, active_low: true}
`
	var c sensor.Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Bus != "i2c" || c.Name != "1" || c.Address != 0x48 || c.Pins["alarm.smoke"] != "GPIO5" ||
		c.Beacon == nil || c.Beacon.Pin != "GPIO24" || !c.Beacon.ActiveLow {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sensor.Config
		want []string // one line each, in order
	}{
		{"no bus", sensor.Config{}, []string{"bus: missing: i2c or gpio"}},
		{"bad bus", sensor.Config{Bus: "spi"}, []string{`bus: must be i2c or gpio, got "spi"`}},
		{"reserved address", sensor.Config{Bus: "i2c", Address: 0x78}, []string{"address: must be a 7-bit address 0x08-0x77, got 0x78"}},
		{"i2c keys on gpio", sensor.Config{Bus: "gpio", Name: "1", Address: 0x48}, []string{
			"address: only for bus i2c (bus is gpio)", "name: only for bus i2c (bus is gpio)"}},
		{"pins", sensor.Config{Bus: "gpio", Pins: map[string]string{"door.open": " ", "epo.active": "GPIO4"},
			Beacon: &sensor.BeaconConfig{Pin: "GPIO4"}}, []string{
			"pins.door.open: empty pin name", "beacon.pin: pin GPIO4 is an input of epo.active"}},
		{"beacon without pin", sensor.Config{Bus: "gpio", Beacon: &sensor.BeaconConfig{}}, []string{"beacon.pin: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestNewPollerErrors(t *testing.T) {
	contacts := pins("GPIO17", "GPIO27", "GPIO22", "GPIO23")
	for _, tc := range []struct {
		name string
		cfg  sensor.Config
		prof string // builtin id
		hw   sensor.Hardware
		want string
	}{
		{"chip on gpio bus", sensor.Config{Bus: "gpio"}, "offgas-ads1115", hardware(nil, nil),
			"bus: profile offgas-ads1115 (driver ads1x15) needs bus i2c, not gpio"},
		{"contacts on i2c bus", sensor.Config{Bus: "i2c"}, "gpio-contacts", hardware(nil, contacts),
			"bus: profile gpio-contacts (driver gpio-contacts) needs bus gpio, not i2c"},
		{"unknown bus", sensor.Config{Bus: "i2c", Name: "7"}, "offgas-ads1115", hardware(&i2ctest.Playback{}, nil),
			`name: no I2C bus "7"`},
		{"bme280 address", sensor.Config{Bus: "i2c", Name: "1", Address: 0x48}, "bme280", hardware(&i2ctest.Playback{}, nil),
			"address: a bme280 answers at 0x76 or 0x77, not 0x48"},
		{"typo in pins", sensor.Config{Bus: "gpio", Pins: map[string]string{"door.opn": "GPIO5"}}, "gpio-contacts", hardware(nil, contacts),
			"pins.door.opn: profile gpio-contacts has no such point"},
		{"missing pin", sensor.Config{Bus: "gpio"}, "gpio-contacts", hardware(nil, pins("GPIO17")),
			`local/gpio-contacts.yaml:26: points[1] (alarm.smoke): no GPIO pin "GPIO27"`},
		{"pin for an ADC point", sensor.Config{Bus: "i2c", Name: "1", Pins: map[string]string{"gas.h2.ppm": "GPIO5"}}, "offgas-ads1115",
			hardware(&i2ctest.Playback{}, pins("GPIO5")), "pins.gas.h2.ppm: not a contact point (type float)"},
		{"ina219 address", sensor.Config{Bus: "i2c", Name: "1", Address: 0x76}, "ina219-12v", hardware(&i2ctest.Playback{}, nil),
			"address: an ina219 answers at 0x40-0x4f, not 0x76"},
		{"beacon on an input", sensor.Config{Bus: "gpio", Beacon: &sensor.BeaconConfig{Pin: "GPIO17"}}, "gpio-contacts", hardware(nil, contacts),
			"beacon.pin: GPIO17 is an input of this device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sensor.NewPoller(tc.cfg, builtin(t, tc.prof), tc.hw, discard())
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestNewPollerBadProfile(t *testing.T) {
	p := builtin(t, "offgas-ads1115")
	ch := 5
	p.Points[1].Channel = &ch
	_, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, p, hardware(&i2ctest.Playback{}, nil), discard())
	const want = "profile offgas-ads1115: local/offgas-ads1115.yaml:"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "points[1].channel: 5 is not an ADC input 0..3") {
		t.Errorf("got %v", err)
	}
}

// TestBuiltinProfilesCompile sets every embedded local profile up on
// test hardware: a profile that lints but that the driver refuses fails here.
func TestBuiltinProfilesCompile(t *testing.T) {
	files, err := fs.Glob(firmwareprofiles.FS, "local/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("local profiles: %v %v", files, err)
	}
	for _, f := range files {
		id := strings.TrimSuffix(path.Base(f), ".yaml")
		t.Run(id, func(t *testing.T) {
			prof := builtin(t, id)
			var names []string
			for _, pt := range prof.Points {
				if pt.Pin != "" {
					names = append(names, pt.Pin)
				}
			}
			cfg := sensor.Config{Bus: "gpio"}
			var bus *i2ctest.Playback
			if prof.Local.Driver != "gpio-contacts" {
				cfg = sensor.Config{Bus: "i2c", Name: "1"}
				bus = &i2ctest.Playback{}
			}
			p, err := sensor.NewPoller(cfg, prof, hardware(bus, pins(names...)), discard())
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Points()) != len(prof.Points) {
				t.Errorf("%d points, profile has %d", len(p.Points()), len(prof.Points))
			}
			for i, dp := range p.Points() {
				if dp.Name != prof.Points[i].Name || dp.Unit != prof.Points[i].Unit {
					t.Errorf("point %d = %s %q, want %s %q", i, dp.Name, dp.Unit, prof.Points[i].Name, prof.Points[i].Unit)
				}
			}
			if bus != nil {
				closePlayback(t, bus) // setting up sends nothing
			}
		})
	}
}
