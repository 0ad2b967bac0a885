package agent

import (
	"fmt"
	"os"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// detectorAdapter gives the agent its view of a detect.Detector.
type detectorAdapter struct{ *detect.Detector }

// Stage is the highest stage among the categories that ask for burst
// sampling: a sensor fault or a lost link does not.
func (a detectorAdapter) Stage() wire.Stage {
	return a.MaxStage(wire.CategoryThermal, wire.CategoryGas, wire.CategoryElectrical, wire.CategoryEnvironment)
}

// LoadDetection reads the detection overrides file named by
// detection_file (nil when none).
func LoadDetection(cfg *Config) (*detect.Overrides, error) {
	if cfg.DetectionFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(cfg.DetectionFile)
	if err != nil {
		return nil, fmt.Errorf("detection_file: %w", err)
	}
	return detect.LoadOverrides(cfg.DetectionFile, data)
}

// DefaultDetector builds each device's detector from the built-in
// defaults for its chemistry, with the site's overrides on top.
func DefaultDetector(ov *detect.Overrides) func(*DeviceConfig, *profile.Profile, []*drivers.Point) Detector {
	return func(dev *DeviceConfig, prof *profile.Profile, pts []*drivers.Point) Detector {
		chem := dev.Chemistry
		if chem == "" {
			chem = prof.Chemistry
		}
		cfg := detect.DefaultConfig(chem)
		if ov != nil {
			c, err := ov.Config(chem, prof.ID)
			if err == nil {
				cfg = c
			}
		}
		return detectorAdapter{detect.New(cfg, dev.ID, pts)}
	}
}

// checkDetection resolves every device's detection config once at start,
// so that a bad override stops the agent instead of silently falling back
// to the defaults.
func checkDetection(cfg *Config, profiles *profile.Set, ov *detect.Overrides) error {
	if ov == nil {
		return nil
	}
	for _, dev := range cfg.Devices {
		prof, ok := profiles.Get(dev.Profile)
		if !ok {
			continue
		}
		chem := dev.Chemistry
		if chem == "" {
			chem = prof.Chemistry
		}
		if _, err := ov.Config(chem, prof.ID); err != nil {
			return fmt.Errorf("detection_file for device %s: %w", dev.ID, err)
		}
	}
	return nil
}
