package snmp_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/sim/snmpsim"
)

const recordings = "../../internal/sim/snmpsim/testdata"

// serveRecording replays a real agent walk on loopback.
func serveRecording(t testing.TB, file string) *snmpsim.Agent {
	t.Helper()
	vars, err := snmpsim.LoadFile(filepath.Join(recordings, file))
	if err != nil {
		t.Fatal(err)
	}
	a, err := snmpsim.Serve(t.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func simConfig(a *snmpsim.Agent, version string) snmp.Config {
	return snmp.Config{Target: "udp://127.0.0.1:" + strconv.Itoa(a.Addr().Port), Version: version,
		Community: "public", Timeout: time.Second, Name: "rec"}
}

// TestReplayRecordings polls every real recording with every SNMP profile:
// nothing may crash or fail the round, and every reading is either a value
// or a marked fault.
func TestReplayRecordings(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(recordings, "*.snmprec"))
	if len(files) != 8 {
		t.Fatalf("found %d recordings, want 8", len(files))
	}
	for _, f := range files {
		for _, id := range []string{"ups-mib", "eaton-xups", "apc-powernet", "liebert-gp"} {
			t.Run(filepath.Base(f)+"/"+id, func(t *testing.T) {
				a := serveRecording(t, filepath.Base(f))
				p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, id), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				out := make([]drivers.Reading, len(p.Points()))
				for range 2 {
					if err := p.Poll(t.Context(), out); err != nil {
						t.Fatalf("poll: %v", err)
					}
				}
				for _, r := range out {
					if r.Fault == drivers.FaultTimeout || r.Fault == drivers.FaultComms {
						t.Errorf("%s: %s (%s)", r.Point.Name, r.Fault, r.Detail)
					}
				}
			})
		}
	}
}

func TestReplayQuirks(t *testing.T) {
	t.Run("huawei -1 sentinels", func(t *testing.T) {
		a := serveRecording(t, "huawei-gse200m.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m := pollOnce(t, p)
		wantFault(t, m, "battery.charge.percent", drivers.FaultSentinel)
		wantFault(t, m, "battery.runtime.seconds", drivers.FaultSentinel)
		wantFault(t, m, "battery.temperature.celsius", drivers.FaultSentinel)
	})
	t.Run("eaton 93e three MIBs", func(t *testing.T) {
		a := serveRecording(t, "eaton-93e-80.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := pollOnce(t, p)
		p.Close()
		wantValue(t, m, "battery.voltage.volts", 521) // 5210 x 0.1 V
		wantValue(t, m, "battery.runtime.seconds", 1092*60)
		wantValue(t, m, "ups.output[3].voltage.volts", 220)
		// XUPS: 65535 runtime in both XUPS and the MGE fallback.
		p, err = snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "eaton-xups"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m = pollOnce(t, p)
		wantFault(t, m, "battery.runtime.seconds", drivers.FaultSentinel)
		wantValue(t, m, "battery.voltage.volts", 521)
		wantValue(t, m, "battery.charge.percent", 100)
		wantValue(t, m, "ups.input[2].voltage.volts", 227)
		wantValue(t, m, "ups.output[1].power.watts", 5100)
		wantValue(t, m, "ups.output.frequency.hertz", 49)
		if r := m["ups.identity.model"]; r.Text != "EATON 93E 80" {
			t.Errorf("model = %q (hex-encoded in the recording)", r.Text)
		}
		id, err := p.Identify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ok, err := snmp.MatchProfile(loadProfile(t, "eaton-xups").Match, id)
		if !ok || err != nil {
			t.Errorf("eaton-xups does not match %+v (%v)", id, err)
		}
		if ok, _ := snmp.MatchProfile(loadProfile(t, "apc-powernet").Match, id); ok {
			t.Error("apc-powernet matches an Eaton")
		}
	})
	t.Run("santak timeticks for integers", func(t *testing.T) {
		a := serveRecording(t, "ingrasys-power-switch.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m := pollOnce(t, p)
		for _, n := range []string{"battery.runtime.seconds", "battery.current.amps"} {
			if r := m[n]; r.Fault != drivers.FaultNone && r.Fault != drivers.FaultSentinel {
				t.Errorf("%s: %s (%s): a TimeTicks-encoded INTEGER must decode", n, r.Fault, r.Detail)
			}
		}
	})
	t.Run("emerson without UPS-MIB", func(t *testing.T) {
		a := serveRecording(t, "emerson-network-power.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m := pollOnce(t, p)
		wantFault(t, m, "battery.charge.percent", drivers.FaultAbsent)
		// Absent objects are remembered: the next round asks nothing.
		before := a.Requests()
		pollOnce(t, p)
		if n := a.Requests() - before; n != 0 {
			t.Errorf("second round sent %d requests for a device without any profile object", n)
		}
	})
	t.Run("v1 noSuchName", func(t *testing.T) {
		a := serveRecording(t, "eastpower-istars-swv053.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "1"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m := pollOnce(t, p)
		wantFault(t, m, "battery.runtime.seconds", drivers.FaultSentinel) // 0 while on line
		if r := m["ups.identity.manufacturer"]; r.Text != "EAST" {
			t.Errorf("manufacturer = %q, want trailing spaces trimmed", r.Text)
		}
		// Rows indexed "1.0", "2.0", "3.0" are lines 1..3.
		wantValue(t, m, "ups.input[3].voltage.volts", 234)
	})
	t.Run("v1 noSuchName drops objects", func(t *testing.T) {
		a := serveRecording(t, "emerson-network-power.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "1"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		m := pollOnce(t, p)
		wantFault(t, m, "battery.voltage.volts", drivers.FaultAbsent)
		if r := m["ups.identity.model"]; r.Fault != drivers.FaultAbsent {
			t.Errorf("model: %s", r.Fault)
		}
	})
	t.Run("liebert cooling unit is not a UPS", func(t *testing.T) {
		a := serveRecording(t, "vertiv-power.snmprec")
		p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), loadProfile(t, "ups-mib"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		id, err := p.Identify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := snmp.MatchProfile(loadProfile(t, "liebert-gp").Match, id); ok {
			t.Errorf("liebert-gp matches the PEX cooling unit %+v", id)
		}
	})
}

// TestLazyDiscovery: a UPS that is down when the agent starts is polled
// once it answers; the round that discovers the tables reports the layout
// change and the next one reads everything.
func TestLazyDiscovery(t *testing.T) {
	a := serveRecording(t, "eaton-93e-80.snmprec")
	a.SetSilent(true)
	cfg := simConfig(a, "2c")
	cfg.Timeout, cfg.Retries = 50*time.Millisecond, new(int)
	p, err := snmp.NewPoller(cfg, loadProfile(t, "ups-mib"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Points()) != 0 {
		t.Fatal("points before discovery")
	}
	if err := p.Prepare(t.Context()); err == nil {
		t.Fatal("Prepare succeeded against a silent agent")
	}
	// Backoff: a second Prepare right away does not touch the network.
	before := p.Requests()
	p.Prepare(t.Context())
	if p.Requests() != before {
		t.Error("Prepare retried inside its backoff")
	}
	a.SetSilent(false)
	time.Sleep(1100 * time.Millisecond)
	var out []drivers.Reading
	if err := p.Poll(t.Context(), out); !errors.Is(err, snmp.ErrLayoutChanged) {
		t.Fatalf("first answered Poll: %v, want ErrLayoutChanged", err)
	}
	out = make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	m := map[string]drivers.Reading{}
	for _, r := range out {
		m[r.Point.Name] = r
	}
	wantValue(t, m, "ups.output[3].voltage.volts", 220)
}
