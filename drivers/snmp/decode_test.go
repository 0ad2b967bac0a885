package snmp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"github.com/emberwatch/emberwatch/internal/sim/snmpsim"
	"github.com/gosnmp/gosnmp"
)

const quirkProfile = `
id: quirks
vendor: test
model: test
firmware: "*"
source: test
protocol: snmp
current_sign: charge_positive
points:
  - {name: ups.input.bad.rate.count, oid: 1.3.6.1.4.1.9.1.0, type: counter32, rate: true, unit: count}
  - {name: ups.output.energy.rate.wh, oid: 1.3.6.1.4.1.9.2.0, type: counter64, rate: true, unit: Wh}
  - {name: battery.current.amps, oid: 1.3.6.1.4.1.9.3.0, type: int, scale: 0.1, unit: A, sign: battery}
  - oid: 1.3.6.1.4.1.9.4.0
    type: flags
    invalid_text: [UNKNOWN, NOT SUPPORTED]
    bits: {1: ups.alarm.abnormal, 3: battery.low}
  - name: battery.voltage.volts
    oid: 1.3.6.1.4.1.9.5.0
    type: int
    scale: 0.1
    unit: V
    invalid: [-1]
    fallback: [{oid: 1.3.6.1.4.1.9.6.0}]
  - {name: battery.charge.percent, oid: 1.3.6.1.4.1.9.7.0, type: gauge, unit: "%"}
  - oid: 1.3.6.1.4.1.9.8.0
    type: int
    bits: {0: ups.status.on_battery, 2: ups.status.on_bypass}
`

func TestDecodeQuirks(t *testing.T) {
	prof, err := profile.Parse("quirks.yaml", []byte(quirkProfile))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := snmpsim.NewStore(
		snmpsim.Var{OID: "1.3.6.1.4.1.9.1.0", Type: gosnmp.Counter32, Value: uint32(4294967290)},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.2.0", Type: gosnmp.Counter64, Value: uint64(1000)},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.3.0", Type: gosnmp.Integer, Value: 25},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.4.0", Type: gosnmp.OctetString, Value: []byte("1010")},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.5.0", Type: gosnmp.Integer, Value: -1},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.6.0", Type: gosnmp.Integer, Value: 52},
		// A gauge sent as a numeric string: decoded by meaning.
		snmpsim.Var{OID: "1.3.6.1.4.1.9.7.0", Type: gosnmp.OctetString, Value: []byte("88 ")},
		snmpsim.Var{OID: "1.3.6.1.4.1.9.8.0", Type: gosnmp.Integer, Value: 5},
	)
	a := snmpsim.NewAgent(st, snmpsim.Options{}, nil)
	if err := a.Listen(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	p, err := snmp.NewPollerContext(t.Context(), simConfig(a, "2c"), prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := pollOnce(t, p)
	wantFault(t, m, "ups.input.bad.rate.count", drivers.FaultSentinel) // no previous sample yet
	wantValue(t, m, "battery.current.amps", -2.5)                      // charge_positive flipped
	wantValue(t, m, "ups.alarm.abnormal", 1)
	wantValue(t, m, "battery.low", 1)
	wantValue(t, m, "battery.voltage.volts", 52) // -1 sentinel -> fallback, its own scale
	wantValue(t, m, "battery.charge.percent", 88)
	wantValue(t, m, "ups.status.on_battery", 1)
	wantValue(t, m, "ups.status.on_bypass", 1)

	time.Sleep(50 * time.Millisecond)
	st.Set(snmpsim.Var{OID: "1.3.6.1.4.1.9.1.0", Type: gosnmp.Counter32, Value: uint32(4)}) // wrapped: +10
	st.Set(snmpsim.Var{OID: "1.3.6.1.4.1.9.2.0", Type: gosnmp.Counter64, Value: uint64(1100)})
	st.Set(snmpsim.Var{OID: "1.3.6.1.4.1.9.4.0", Type: gosnmp.OctetString, Value: []byte("NOT SUPPORTED")})
	st.Delete("1.3.6.1.4.1.9.6.0")
	m = pollOnce(t, p)
	r := m["ups.input.bad.rate.count"]
	if !r.OK() || r.Value < 10/0.5 || r.Value > 10/0.04 {
		t.Errorf("counter32 wrap rate = %g (%s), want 10 per ~0.05 s", r.Value, r.Fault)
	}
	if r := m["ups.output.energy.rate.wh"]; !r.OK() || r.Value <= 0 {
		t.Errorf("counter64 rate = %g (%s)", r.Value, r.Fault)
	}
	wantFault(t, m, "battery.low", drivers.FaultSentinel)
	wantFault(t, m, "battery.voltage.volts", drivers.FaultSentinel) // primary sentinel, fallback gone

	// An agent failing a whole Get for one object (genErr): only that
	// point is marked, the others are read.
	a.SetError("1.3.6.1.4.1.9.7.0", gosnmp.GenErr)
	m = pollOnce(t, p)
	wantFault(t, m, "battery.charge.percent", drivers.FaultException)
	wantValue(t, m, "battery.current.amps", -2.5)
	a.SetError("1.3.6.1.4.1.9.7.0", gosnmp.NoError)

	// A counter going back far from its top is an agent reset, not a wrap.
	st.Set(snmpsim.Var{OID: "1.3.6.1.4.1.9.2.0", Type: gosnmp.Counter64, Value: uint64(3)})
	m = pollOnce(t, p)
	wantFault(t, m, "ups.output.energy.rate.wh", drivers.FaultSentinel)

	// A silent device: a round error naming it, every point timed out.
	a.SetSilent(true)
	cfg := simConfig(a, "2c")
	cfg.Timeout, cfg.Retries = 100*time.Millisecond, new(int)
	p2, err := snmp.NewPollerContext(t.Context(), cfg, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	out := make([]drivers.Reading, len(p2.Points()))
	if err := p2.Poll(t.Context(), out); err == nil || !strings.Contains(err.Error(), "rec") {
		t.Errorf("silent device: err = %v", err)
	}
	for _, r := range out {
		if r.Fault != drivers.FaultTimeout {
			t.Errorf("%s: %s, want timeout", r.Point.Name, r.Fault)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	two := 2
	good := snmp.V3{User: "u", AuthProtocol: "SHA256", AuthPassphrase: "authpass123", PrivProtocol: "AES", PrivPassphrase: "privpass123"}
	for _, tc := range []struct {
		name string
		cfg  snmp.Config
		want string // "" = valid
	}{
		{"v2c", snmp.Config{Target: "udp://10.0.0.9:161", Version: "2c", Community: "public"}, ""},
		{"default port and version", snmp.Config{Target: "10.0.0.9"}, ""},
		{"v3 authPriv", snmp.Config{Target: "udp://h", Version: "3", V3: &good, Retries: &two}, ""},
		{"no target", snmp.Config{}, "snmp.target: required"},
		{"bad scheme", snmp.Config{Target: "http://h"}, "snmp.target"},
		{"bad version", snmp.Config{Target: "h", Version: "2"}, "snmp.version"},
		{"v3 without user", snmp.Config{Target: "h", Version: "3"}, "snmp.v3.user: required"},
		{"v3 authNoPriv refused", snmp.Config{Target: "h", Version: "3", V3: &snmp.V3{User: "u", AuthProtocol: "SHA", AuthPassphrase: "authpass123", SecurityLevel: "authNoPriv"}}, "allow_insecure"},
		{"v3 authNoPriv allowed", snmp.Config{Target: "h", Version: "3", AllowInsecure: true, V3: &snmp.V3{User: "u", AuthProtocol: "SHA", AuthPassphrase: "authpass123", SecurityLevel: "authNoPriv"}}, ""},
		{"bad auth protocol", snmp.Config{Target: "h", Version: "3", V3: &snmp.V3{User: "u", AuthProtocol: "SHA3", AuthPassphrase: "authpass123", PrivProtocol: "AES", PrivPassphrase: "privpass123"}}, "snmp.v3.auth_protocol"},
		{"short passphrase", snmp.Config{Target: "h", Version: "3", V3: &snmp.V3{User: "u", AuthProtocol: "SHA", AuthPassphrase: "short", PrivProtocol: "AES", PrivPassphrase: "privpass123"}}, "snmp.v3.auth_passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestEmbeddedSNMPProfiles loads the built-in profiles as the agent does.
func TestEmbeddedSNMPProfiles(t *testing.T) {
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ups-mib", "apc-powernet", "eaton-xups", "liebert-gp"} {
		p, ok := set.Get(id)
		if !ok || p.Protocol != "snmp" || p.Source == "" {
			t.Errorf("built-in profile %s missing or incomplete", id)
		}
	}
}

func TestBadSNMPProfiles(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"points: [{name: battery.voltage.volts, oid: 1.3.x, type: int, unit: V}]", "points[0].oid"},
		{"points: [{name: battery.voltage.volts, oid: 1.3.6.1.0, type: float, unit: V}]", "points[0].type"},
		{"points: [{name: battery.voltage.volts, oid: 1.3.6.1.0, type: int, unit: V, rate: true}]", "points[0].rate"},
		{"points: [{oid: 1.3.6.1.0, type: flags}]", "points[0].bits"},
		{"blocks: [{name: line, points: [{name: 'a[{line}].voltage.volts', oid: 1.3.6.1, type: int, unit: V}]}]", "blocks[0].table"},
		{"blocks: [{name: s, table: 1.3.6.1.1, blocks: [{name: m, table: 1.3.6.1.2, points: [{name: 's[{s}].m[{m}].voltage.volts', oid: 1.3.6.1.2.1, type: int, unit: V}]}]}]", "blocks[0].blocks[0].parent_column"},
	} {
		src := "id: bad\nvendor: v\nmodel: m\nfirmware: '*'\nsource: s\nprotocol: snmp\n" + tc.yaml + "\n"
		_, err := profile.Parse("bad.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.yaml:") {
			t.Errorf("%s: error %v, want bad.yaml:line: %s", tc.yaml, err, tc.want)
		}
	}
}
