package snmp_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

func loadProfile(t testing.TB, id string) *profile.Profile {
	t.Helper()
	p, err := profile.LoadFile("../../firmware-profiles/snmp/" + id + ".yaml")
	if err != nil {
		t.Fatalf("load profile %s: %v", id, err)
	}
	return p
}

func v2c(s *testenv.SNMPD) snmp.Config {
	return snmp.Config{Target: "udp://" + s.Addr(), Version: "2c", Community: s.Community, Timeout: time.Second, Name: "ups-test"}
}

func v3(s *testenv.SNMPD) snmp.Config {
	return snmp.Config{Target: "udp://" + s.Addr(), Version: "3", Timeout: time.Second, Name: "ups-test",
		V3: &snmp.V3{User: s.User, AuthProtocol: s.AuthProto, AuthPassphrase: s.AuthPass,
			PrivProtocol: s.PrivProto, PrivPassphrase: s.PrivPass}}
}

// byName polls once and indexes the readings by point name.
func pollOnce(t testing.TB, p *snmp.Poller) map[string]drivers.Reading {
	t.Helper()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(t.Context(), out); err != nil {
		t.Fatalf("poll: %v", err)
	}
	m := map[string]drivers.Reading{}
	for _, r := range out {
		m[r.Point.Name] = r
	}
	return m
}

func wantValue(t testing.TB, m map[string]drivers.Reading, name string, want float64) {
	t.Helper()
	r, ok := m[name]
	switch {
	case !ok:
		t.Errorf("%s: no such point", name)
	case r.Fault != drivers.FaultNone:
		t.Errorf("%s: fault %s (%s), want %g", name, r.Fault, r.Detail, want)
	case r.Value < want-1e-9 || r.Value > want+1e-9:
		t.Errorf("%s = %g, want %g", name, r.Value, want)
	}
}

func wantFault(t testing.TB, m map[string]drivers.Reading, name string, want drivers.Fault) {
	t.Helper()
	r, ok := m[name]
	if !ok {
		t.Errorf("%s: no such point", name)
	} else if r.Fault != want {
		t.Errorf("%s: fault %q (value %g), want %q", name, r.Fault, r.Value, want)
	}
}

func TestUPSMIBAgainstSNMPD(t *testing.T) {
	s := testenv.StartSNMPD(t, testenv.SNMPDOptions{})
	prof := loadProfile(t, "ups-mib")
	for _, tc := range []struct {
		name string
		cfg  snmp.Config
	}{{"v2c", v2c(s)}, {"v3-authPriv-" + s.AuthProto, v3(s)}} {
		t.Run(tc.name, func(t *testing.T) {
			s.SetState(map[string]any{})
			p, err := snmp.NewPollerContext(t.Context(), tc.cfg, prof, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			m := pollOnce(t, p)
			// Values served by upspass's defaults, decoded with the MIB's units.
			wantValue(t, m, "battery.charge.percent", 97)
			wantValue(t, m, "battery.voltage.volts", 54.5)
			wantValue(t, m, "battery.current.amps", -1.2)
			wantValue(t, m, "battery.temperature.celsius", 27)
			wantValue(t, m, "battery.runtime.seconds", 42*60)
			wantValue(t, m, "ups.input[1].frequency.hertz", 50)
			wantValue(t, m, "ups.input[1].voltage.volts", 230)
			wantValue(t, m, "ups.input[1].current.amps", 8.7)
			wantValue(t, m, "ups.output[1].load.percent", 61)
			wantValue(t, m, "ups.output[1].current.amps", 7.8)
			wantValue(t, m, "ups.status.on_battery", 0)
			if r := m["battery.status"]; r.Text != "normal" || r.Value != 2 {
				t.Errorf("battery.status = %g %q, want 2 normal", r.Value, r.Text)
			}
			if r := m["ups.identity.model"]; r.Text != "UPS-3000 Li-ion" {
				t.Errorf("ups.identity.model = %q", r.Text)
			}
			// Objects upspass lacks (bypass, config ratings, test result...)
			// are absent, not numbers, and not asked again next round.
			wantFault(t, m, "ups.bypass.frequency.hertz", drivers.FaultAbsent)
			before := p.Requests()
			m = pollOnce(t, p)
			wantFault(t, m, "ups.bypass.frequency.hertz", drivers.FaultAbsent)
			if _, ok := m["ups.bypass[1].voltage.volts"]; ok {
				t.Error("bypass table has no rows on this agent but got points")
			}
			if n := p.Requests() - before; n > 3 {
				t.Errorf("second round took %d requests, want <= 3 (1 Get + 2 table walks)", n)
			}

			// A fault scenario: on battery, low, Huawei-style -1 sentinels.
			s.SetState(map[string]any{"2.1.0": 3, "2.4.0": -1, "2.3.0": 0, "2.7.0": -1, "4.1.0": 5, "2.6.0": 153})
			m = pollOnce(t, p)
			wantValue(t, m, "ups.status.on_battery", 1)
			wantValue(t, m, "battery.low", 1)
			wantValue(t, m, "battery.current.amps", 15.3)
			wantFault(t, m, "battery.charge.percent", drivers.FaultSentinel)
			wantFault(t, m, "battery.runtime.seconds", drivers.FaultSentinel)
			wantFault(t, m, "battery.temperature.celsius", drivers.FaultSentinel)

			// Wrong ASN.1 type (TimeTicks for an INTEGER) is decoded by meaning;
			// an out-of-range value is a range fault.
			s.SetState(map[string]any{"2.3.0": map[string]any{"type": "timeticks", "value": 17}, "2.4.0": 250})
			m = pollOnce(t, p)
			wantValue(t, m, "battery.runtime.seconds", 17*60)
			wantFault(t, m, "battery.charge.percent", drivers.FaultRange)

			id, err := p.Identify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if id.Vendor != "Emberwatch Test" || id.Model != "UPS-3000 Li-ion" || id.Extra["sysObjectID"] == "" {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

func TestWrongV3PasswordNamesDevice(t *testing.T) {
	s := testenv.StartSNMPD(t, testenv.SNMPDOptions{})
	cfg := v3(s)
	cfg.Name = "ups-b7"
	cfg.V3.AuthPassphrase = "not-the-password"
	prof := loadProfile(t, "ups-mib")
	// NewPoller does no I/O: the agent starts even with a wrong password.
	p, err := snmp.NewPoller(cfg, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Poll(t.Context(), nil)
	if !errors.Is(err, snmp.ErrAuth) || !strings.Contains(err.Error(), "ups-b7") || !strings.Contains(err.Error(), `"upsadmin"`) {
		t.Fatalf("Poll error = %v, want ErrAuth naming ups-b7 and its user", err)
	}
	if len(p.Points()) != 0 {
		t.Error("points known before the tables were discovered")
	}
	// The same through NewPollerContext (emberctl probe).
	if _, err := snmp.NewPollerContext(t.Context(), cfg, prof, nil); !errors.Is(err, snmp.ErrAuth) {
		t.Fatalf("NewPollerContext error = %v, want ErrAuth", err)
	}
}

func TestTimeoutIsFault(t *testing.T) {
	// A socket that never answers: every request times out.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	port := silent.LocalAddr().(*net.UDPAddr).Port
	prof := loadProfile(t, "ups-mib")
	prof.Blocks = nil // no discovery walk
	cfg := snmp.Config{Target: "udp://127.0.0.1:" + strconv.Itoa(port), Timeout: 100 * time.Millisecond, Retries: new(int), Name: "dead-ups"}
	p, err := snmp.NewPollerContext(t.Context(), cfg, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, len(p.Points()))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = p.Poll(ctx, out)
	if err == nil || !strings.Contains(err.Error(), "dead-ups") {
		t.Fatalf("Poll error = %v, want an error naming dead-ups", err)
	}
	for _, r := range out {
		if r.Fault != drivers.FaultTimeout {
			t.Fatalf("%s: fault %q, want timeout", r.Point.Name, r.Fault)
		}
	}
}
