package sensor

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
)

// Hardware gives the poller its buses and pins by name. The real one is
// Host (periph's registries); tests pass periph's own doubles through
// StaticHardware. Buses and pins stay owned by the Hardware: a poller never
// closes them, since several devices share one I2C bus.
type Hardware interface {
	// I2C returns the I2C bus named name ("1" for /dev/i2c-1; "" for the
	// first bus found).
	I2C(name string) (i2c.Bus, error)
	// GPIO returns the pin named name ("GPIO17", "P1_11").
	GPIO(name string) (gpio.PinIO, error)
}

// StaticHardware is a fixed set of buses and pins, for tests, simulators and
// boards whose pins are wired up by hand.
type StaticHardware struct {
	Buses map[string]i2c.Bus
	Pins  map[string]gpio.PinIO
}

// I2C implements Hardware.
func (h StaticHardware) I2C(name string) (i2c.Bus, error) {
	if b, ok := h.Buses[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no I2C bus %q", name)
}

// GPIO implements Hardware.
func (h StaticHardware) GPIO(name string) (gpio.PinIO, error) {
	if p, ok := h.Pins[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no GPIO pin %q", name)
}

var _ Hardware = StaticHardware{}
