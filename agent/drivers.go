package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"github.com/emberwatch/emberwatch/drivers/snmp"
)

// DriverSet opens pollers with the real drivers. Modbus devices behind one
// URL share a client; local sensors share the host's buses.
type DriverSet struct {
	log    *slog.Logger
	modbus *modbus.Pool

	mu  sync.Mutex
	hw  sensor.Hardware
	hwc interface{ Close() error }
}

// NewDriverSet returns the production PollerFactory. hw may be nil: the
// host's periph registries are opened on first use of a local device.
func NewDriverSet(log *slog.Logger, hw sensor.Hardware) *DriverSet {
	return &DriverSet{log: log, modbus: modbus.NewPool(log), hw: hw}
}

// NewPoller implements PollerFactory.
func (s *DriverSet) NewPoller(dev *DeviceConfig, prof *profile.Profile) (drivers.Poller, string, error) {
	switch {
	case dev.Modbus != nil:
		if prof.Protocol != "modbus" {
			return nil, "", fmt.Errorf("profile %q speaks %s, not modbus", prof.ID, prof.Protocol)
		}
		p, err := s.modbus.NewPoller(*dev.Modbus, prof)
		if err != nil {
			return nil, "", fmt.Errorf("modbus: %w", err)
		}
		return p, p.Link(), nil
	case dev.SNMP != nil:
		if prof.Protocol != "snmp" {
			return nil, "", fmt.Errorf("profile %q speaks %s, not snmp", prof.ID, prof.Protocol)
		}
		p, err := snmp.NewPoller(*dev.SNMP, prof, s.log.With("device", dev.ID))
		if err != nil {
			return nil, "", fmt.Errorf("snmp: %w", err)
		}
		return p, p.Link(), nil
	case dev.Local != nil:
		if prof.Protocol != "local" {
			return nil, "", fmt.Errorf("profile %q speaks %s, not local", prof.ID, prof.Protocol)
		}
		hw, err := s.hardware()
		if err != nil {
			return nil, "", err
		}
		p, err := sensor.NewPoller(*dev.Local, prof, hw, s.log.With("device", dev.ID))
		if err != nil {
			return nil, "", fmt.Errorf("local: %w", err)
		}
		return p, "local:" + dev.ID, nil
	}
	return nil, "", errors.New("no modbus, snmp or local section")
}

func (s *DriverSet) hardware() (sensor.Hardware, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hw != nil {
		return s.hw, nil
	}
	h, err := sensor.NewHost()
	if err != nil {
		return nil, fmt.Errorf("open local hardware: %w", err)
	}
	s.hw, s.hwc = h, h
	return h, nil
}

// Close releases shared links.
func (s *DriverSet) Close() error {
	var errs []error
	if s.hwc != nil {
		errs = append(errs, s.hwc.Close())
	}
	return errors.Join(errs...)
}
