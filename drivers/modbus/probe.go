package modbus

import (
	"context"
	"log/slog"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// Probe reads a device's identity without a profile: it looks for a
// SunSpec chain at the usual bases and reads the common model (vendor,
// model, firmware, serial; Extra["sunspec.models"] lists the chain, for
// matching profiles by their sunspec_models). A device without SunSpec
// gives an error wrapping ErrNotSunSpec. The link is opened for the probe
// and closed afterwards.
func Probe(ctx context.Context, log *slog.Logger, cfg Config) (drivers.Identity, error) {
	prof := &profile.Profile{ID: "sunspec-probe", Protocol: "modbus",
		SunSpec: &profile.SunSpec{Bases: defaultSunSpecBases}}
	p, err := NewPool(log).NewPoller(cfg, prof)
	if err != nil {
		return drivers.Identity{}, err
	}
	defer p.Close()
	id, err := p.Identify(ctx)
	delete(id.Extra, "profile")
	return id, err
}
