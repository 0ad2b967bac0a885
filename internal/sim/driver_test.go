package sim

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus"
)

// TestDriverReadsSimulatedValues polls simulated devices with the real
// driver (drivers/modbus) and checks that every point it decodes equals the
// simulated value within the register's resolution: the simulator's
// encoder and the driver's decoder, written apart, must agree.
func TestDriverReadsSimulatedValues(t *testing.T) {
	if testing.Short() {
		t.Skip("integration with drivers/modbus")
	}
	set := builtinProfiles(t)
	s := startSim(t, `
devices:
  - id: rack
    profile: sunspec
    listen: tcp://127.0.0.1:0
    rack: {strings: 2, modules: 3, cells: 5}
    values:
      "string[1].current.amps": 21.7
      "string[2].current.amps": -4.2
      "string[2].module[3].cell[5].temperature.celsius": -7.4
      "string[1].module[2].cell[4].balancing": 1
      "bms.warning.over_temp": 1
    unavailable: ["string[1].module[1].cell[1].temperature.celsius", battery.health.percent, sunspec.802.V_SF]
    scripts:
      - {point: "*.cell[*].voltage.volts", kind: noise, sigma: 0.003, seed: 5}
  - id: ups
    profile: apc-smart-ups-modbus
    listen: tcp://127.0.0.1:0
    values: {battery.charge.percent: 66.6, battery.temperature.celsius: 31.3, ups.status.on_battery: 1}
  - id: bms
    profile: discover-aes-rack
    listen: tcp://127.0.0.1:0
    values: {battery.current.amps: -15.3, "string[1].cell[7].voltage.volts": 3.412}
`, set)
	s.Update(time.Now())
	pool := modbus.NewPool(nil)
	for _, id := range []string{"rack", "ups", "bms"} {
		t.Run(id, func(t *testing.T) {
			d, _ := s.Device(id)
			profID := map[string]string{"rack": "sunspec", "ups": "apc-smart-ups-modbus", "bms": "discover-aes-rack"}[id]
			prof, _ := set.Get(profID)
			po, err := pool.NewPoller(modbus.Config{URL: s.Addr(id), UnitID: int(s.UnitID(id)), Timeout: time.Second}, prof)
			must(t, err)
			defer po.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			must(t, po.Prepare(ctx))
			pts := po.Points()
			out := make([]drivers.Reading, len(pts))
			must(t, po.Poll(ctx, out))
			checked, scaleFaults := 0, 0
			d.mu.Lock()
			defer d.mu.Unlock()
			for i, r := range out {
				name := pts[i].Name
				p, ok := d.byName[name]
				if !ok {
					t.Errorf("driver point %s is not simulated", name)
					continue
				}
				switch {
				case p.sf != nil && p.sf.unavailable:
					scaleFaults++
					if r.Fault != drivers.FaultScale {
						t.Errorf("%s: scale factor unavailable in the sim, driver read %v fault %q", name, r.Value, r.Fault)
					}
				case p.unavailable || p.parent != nil && p.parent.unavailable:
					if r.Fault != drivers.FaultSentinel {
						t.Errorf("%s: unavailable in the sim, driver read %v fault %q", name, r.Value, r.Fault)
					}
				case r.Fault != drivers.FaultNone:
					t.Errorf("%s: fault %s (%s), simulated %v", name, r.Fault, r.Detail, p.value)
				case p.text:
					if r.Text != p.str {
						t.Errorf("%s: text %q, simulated %q", name, r.Text, p.str)
					}
				default:
					tol := 1e-9
					if p.parent == nil && !p.text {
						res := p.enc.Scale
						if res == 0 {
							res = 1
						}
						if p.sf != nil {
							res *= math.Pow10(int(p.sf.value))
						}
						tol += res / 2
					}
					if math.Abs(r.Value-p.value) > tol {
						t.Errorf("%s: driver %v, simulated %v (tolerance %g)", name, r.Value, p.value, tol)
					}
				}
				checked++
			}
			if id == "rack" && scaleFaults < 3 {
				t.Errorf("%d points scaled by an unavailable V_SF, want the bank voltages", scaleFaults)
			}
			if checked < 20 {
				t.Fatalf("only %d points checked", checked)
			}
			t.Logf("%s: %d points agree", id, checked)
		})
	}
}
