package sensor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Config is a device's `local:` section in the agent config: where the
// profile's chip and contacts are wired on this edge box.
//
//	local:
//	  bus: i2c            # i2c (a chip, maybe plus contacts) or gpio (contacts only)
//	  name: "1"           # I2C bus: "1" is /dev/i2c-1
//	  address: 0x48       # 7-bit I2C address; defaults to the profile's
//	  pins:               # point name -> host pin, overriding the profile's pin
//	    alarm.fire_panel: GPIO5
//	  beacon: {pin: GPIO24}
type Config struct {
	// Bus is i2c or gpio.
	Bus string `yaml:"bus"`
	// Name is the I2C bus name as periph knows it ("1" for /dev/i2c-1);
	// "" opens the first bus. Unused for gpio.
	Name string `yaml:"name,omitempty"`
	// Address is the chip's 7-bit I2C address (0x08-0x77). Defaults to the
	// profile's default_address.
	Address uint16 `yaml:"address,omitempty"`
	// Pins maps a point name to the host pin it is wired to, overriding the
	// pin the profile names.
	Pins map[string]string `yaml:"pins,omitempty"`
	// Beacon is an optional output driving a local alarm beacon or sounder.
	Beacon *BeaconConfig `yaml:"beacon,omitempty"`
}

// BeaconConfig names the beacon's output pin.
type BeaconConfig struct {
	Pin string `yaml:"pin"`
	// ActiveLow drives the pin low to turn the beacon on (relay boards with
	// inverting drivers).
	ActiveLow bool `yaml:"active_low,omitempty"`
}

// Validate reports every problem, each as "key: what is wrong" so that the
// config loader can prefix the file and line.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Bus {
	case "i2c":
		// 0x00-0x07 and 0x78-0x7F are reserved by the I2C specification.
		if c.Address != 0 && (c.Address < 0x08 || c.Address > 0x77) {
			add("address", "must be a 7-bit address 0x08-0x77, got %#x", c.Address)
		}
	case "gpio":
		if c.Address != 0 {
			add("address", "only for bus i2c (bus is gpio)")
		}
		if c.Name != "" {
			add("name", "only for bus i2c (bus is gpio)")
		}
	case "":
		add("bus", "missing: i2c or gpio")
	default:
		add("bus", "must be i2c or gpio, got %q", c.Bus)
	}
	used := map[string]string{}
	for _, point := range slices.Sorted(maps.Keys(c.Pins)) {
		pin := c.Pins[point]
		switch {
		case point == "":
			add("pins", "empty point name")
		case strings.TrimSpace(pin) == "":
			add("pins."+point, "empty pin name")
		case used[pin] == "":
			// Several points may read one pin (its level and its changes).
			used[pin] = point
		}
	}
	if c.Beacon != nil {
		switch {
		case strings.TrimSpace(c.Beacon.Pin) == "":
			add("beacon.pin", "missing")
		case used[c.Beacon.Pin] != "":
			add("beacon.pin", "pin %s is an input of %s", c.Beacon.Pin, used[c.Beacon.Pin])
		}
	}
	return errors.Join(errs...)
}
