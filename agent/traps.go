package agent

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// trapStage maps a trap's severity to an alert stage. A UPS trap is a
// power or battery event, not a runaway precursor on its own: it never
// goes above warning, so it cannot cause an evacuation without the
// detector's corroborated evidence.
func trapStage(sev string) wire.Stage {
	switch sev {
	case snmp.SeverityCritical:
		return wire.StageWarning
	case snmp.SeverityClear:
		return wire.StageNormal
	default:
		return wire.StageWatch
	}
}

// trapDevices maps each SNMP device's target address to its id, for traps
// whose source the config does not map explicitly.
func (c *Config) trapDevices() map[string]string {
	m := map[string]string{}
	for _, d := range c.Devices {
		if d.SNMP == nil {
			continue
		}
		u, err := url.Parse(d.SNMP.Target)
		if err != nil || u.Hostname() == "" {
			continue
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
			m[ip.String()] = d.ID
		}
	}
	for k, v := range c.Traps.Devices {
		m[k] = v
	}
	return m
}

// runTraps receives SNMP traps: each becomes an immediate alert and an
// out-of-turn poll of its device, without waiting for the next round.
func (a *Agent) runTraps(ctx context.Context) error {
	tc := *a.cfg.Traps
	tc.Devices = a.cfg.trapDevices()
	events := make(chan snmp.TrapEvent, 64)
	rx, err := snmp.NewTrapReceiver(tc, func(ev snmp.TrapEvent) {
		select {
		case events <- ev:
		default: // a trap storm: the next poll still sees the state
			a.log.Warn("trap dropped: queue full", "trap", ev.Name, "source", ev.Source)
		}
	}, a.log.With("part", "traps"))
	if err != nil {
		return fmt.Errorf("traps: %w", err)
	}
	go func() {
		if err := rx.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("trap receiver stopped", "err", err)
		}
	}()
	prev := map[string]wire.Stage{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			a.handleTrap(ctx, ev, prev)
		}
	}
}

func (a *Agent) handleTrap(ctx context.Context, ev snmp.TrapEvent, prev map[string]wire.Stage) {
	dev := ev.Device
	if dev == "" {
		dev = "unknown-" + strings.NewReplacer(".", "-", ":", "-").Replace(ev.Source.String())
	}
	name := ev.Name
	if ev.Alarm != "" {
		name = ev.Alarm
	}
	if name == "" {
		name = "trap-" + ev.OID
	}
	cat := wire.CategoryElectrical
	if strings.Contains(strings.ToLower(name), "temp") {
		cat = wire.CategoryThermal
	}
	comp := "trap/" + name
	key := dev + "|" + comp
	st := trapStage(ev.Severity)
	al := wire.Alert{Device: dev, Component: comp, Category: cat, Stage: st, PreviousStage: prev[key],
		Signatures: []wire.Signature{{Kind: "snmp_trap_" + ev.Severity, Value: 1, Threshold: 1}},
		SampleTime: ev.Time.UTC(), Time: a.now().UTC(),
		Summary: fmt.Sprintf("SNMP trap %s (%s) from %s", name, ev.Severity, ev.Source)}
	prev[key] = st
	d := a.deviceByID(ev.Device)
	if d == nil {
		d = &device{id: dev}
	}
	a.publishAlert(ctx, d, al)
	if ev.Device != "" {
		a.PollNow(ev.Device)
	}
}

func (a *Agent) deviceByID(id string) *device {
	for _, d := range a.devices {
		if d.id == id {
			return d
		}
	}
	return nil
}
