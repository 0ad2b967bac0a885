package agent

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// TestIntegrationRTULineTwoUnits: two racks behind one RS-485 line (a PTY
// pair from socat; the simulator is the slave on one end, the agent the
// master on the other). Both unit ids are polled over the shared line by
// one goroutine, one request at a time, and their values are right.
func TestIntegrationRTULineTwoUnits(t *testing.T) {
	slave, master := testenv.StartPTYPair(t)
	s := newSite(t, fmt.Sprintf(`
tick: 100ms
devices:
  - id: rack-a1
    profile: sunspec
    listen: "rtu:%[1]s"
    speed: 115200
    unit_id: 3
    rack: {strings: 1, modules: 2, cells: 4}
    values: {"string[1].module[2].cell[3].temperature.celsius": 33.5}
  - id: rack-a2
    profile: sunspec
    listen: "rtu:%[1]s"
    speed: 115200
    unit_id: 4
    rack: {strings: 1, modules: 2, cells: 4}
    values: {"string[1].module[1].cell[1].temperature.celsius": 21.5}
`, slave))
	c := s.collect(t)
	cfg := fmt.Sprintf("site: test-site\nagent_id: gw-1\nheartbeat: 1s\nnats: {servers: [%q]}\ndevices:\n", s.nc.ConnectedUrl())
	for _, d := range []struct {
		id   string
		unit int
	}{{"rack-a1", 3}, {"rack-a2", 4}} {
		cfg += fmt.Sprintf("  - {id: %s, profile: sunspec, period: 1s, modbus: {url: \"rtu://%s\", unit_id: %d, speed: 115200, timeout: 1s}}\n", d.id, master, d.unit)
	}
	a := s.startAgent(t, []byte(cfg))
	if len(a.links) != 1 {
		t.Fatalf("two units on one serial line must share one link goroutine, got %d links", len(a.links))
	}
	want := map[string]struct {
		comp string
		v    float64
	}{"rack-a1": {"string/1/module/2/cell/3", 33.5}, "rack-a2": {"string/1/module/1/cell/1", 21.5}}
	for dev, w := range want {
		testenv.WaitFor(t, 60*time.Second, func() error {
			for _, l := range c.last(dev) {
				if l.Tags["component"] == w.comp {
					if got := l.Fields["temperature.celsius"]; math.Abs(got-w.v) > 1e-9 {
						return fmt.Errorf("%s %s = %v, want %v (%v)", dev, w.comp, got, w.v, l.Strings)
					}
					return nil
				}
			}
			return fmt.Errorf("no reading of %s %s yet", dev, w.comp)
		})
	}
}
