package sensor

import (
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// Host is the edge box's real hardware, found through periph's registries.
// It opens each I2C bus once and shares it between devices; Close closes
// them. Safe for concurrent use.
type Host struct {
	mu    sync.Mutex
	buses map[string]i2c.BusCloser
}

// NewHost loads periph's host drivers (sysfs, /dev/gpiochip, bcm283x, ...).
func NewHost() (*Host, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("load periph host drivers: %w", err)
	}
	return &Host{buses: map[string]i2c.BusCloser{}}, nil
}

// I2C implements Hardware.
func (h *Host) I2C(name string) (i2c.Bus, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buses == nil {
		return nil, errors.New("host is closed")
	}
	if b, ok := h.buses[name]; ok {
		return b, nil
	}
	b, err := i2creg.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open I2C bus %q: %w", name, err)
	}
	h.buses[name] = b
	return b, nil
}

// GPIO implements Hardware.
func (h *Host) GPIO(name string) (gpio.PinIO, error) {
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("no GPIO pin %q on this host", name)
	}
	return p, nil
}

// Close closes the buses opened through h.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for name, b := range h.buses {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close I2C bus %q: %w", name, err))
		}
	}
	h.buses = nil
	return errors.Join(errs...)
}

var _ Hardware = (*Host)(nil)
