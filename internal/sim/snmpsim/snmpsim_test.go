package snmpsim_test

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/sim/snmpsim"
	"github.com/gosnmp/gosnmp"
)

func load(t *testing.T, id string) *profile.Profile {
	t.Helper()
	p, err := profile.LoadFile("../../../firmware-profiles/snmp/" + id + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func poll(t *testing.T, a *snmpsim.Agent, prof *profile.Profile) map[string]drivers.Reading {
	t.Helper()
	cfg := snmp.Config{Target: "udp://127.0.0.1:" + strconv.Itoa(a.Addr().Port), Version: "2c", Timeout: time.Second}
	p, err := snmp.NewPollerContext(t.Context(), cfg, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	m := map[string]drivers.Reading{}
	for _, r := range out {
		m[r.Point.Name] = r
	}
	return m
}

// TestProfileRoundTrip serves each SNMP profile with chosen values and
// reads them back through the driver: the simulator encodes exactly what
// the driver decodes (scales, signs, fallbacks, tables, selects, nesting).
func TestProfileRoundTrip(t *testing.T) {
	cases := []struct {
		id     string
		values map[string]float64
		rows   map[string]int
		want   map[string]float64
		count  int // points expected
	}{
		{id: "ups-mib",
			values: map[string]float64{"battery.voltage.volts": 54.3, "battery.current.amps": -3.5, "battery.runtime.seconds": 1200,
				"ups.input[2].frequency.hertz": 49.9, "ups.status.on_battery": 1},
			rows: map[string]int{"line": 3},
			want: map[string]float64{"battery.voltage.volts": 54.3, "battery.current.amps": -3.5, "battery.runtime.seconds": 1200,
				"ups.input[2].frequency.hertz": 49.9, "ups.status.on_battery": 1, "ups.output[3].load.percent": 100}},
		{id: "apc-powernet",
			values: map[string]float64{"battery.charge.percent": 87.5, "battery.runtime.seconds": 3723.5, "battery.cell.voltage.max.volts": 4.105,
				"string[2].module[3].cell[4].temperature.celsius": 41.3, "string[1].current.amps": 12.5, "battery.low": 1, "epo.active": 0},
			rows: map[string]int{"cabinet": 1, "string": 2, "module": 3, "cell": 4},
			want: map[string]float64{"battery.charge.percent": 87.5, "battery.runtime.seconds": 3723.5, "battery.cell.voltage.max.volts": 4.105,
				"string[2].module[3].cell[4].temperature.celsius": 41.3, "string[1].current.amps": 12.5, "battery.low": 1, "epo.active": 0,
				"string[2].module[3].cell[1].temperature.celsius": 55}},
		{id: "eaton-xups",
			values: map[string]float64{"battery.voltage.volts": 410, "battery.current.amps": 22, "ups.input[3].voltage.volts": 231},
			rows:   map[string]int{"phase": 3},
			want:   map[string]float64{"battery.voltage.volts": 410, "battery.current.amps": 22, "ups.input[3].voltage.volts": 231}},
		{id: "liebert-gp",
			values: map[string]float64{"battery.voltage.volts": 480, "battery.current.amps": -15, "ups.output[2].load.percent": 44, "ups.input.frequency.hertz": 50},
			rows:   map[string]int{"line": 3},
			want: map[string]float64{"battery.voltage.volts": 480, "battery.current.amps": -15, "ups.output[2].load.percent": 44,
				"ups.input.frequency.hertz": 50, "ups.bypass[3].voltage.volts": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			prof := load(t, tc.id)
			vars, err := snmpsim.FromProfile(prof, snmpsim.ProfileOptions{Values: tc.values, Rows: tc.rows})
			if err != nil {
				t.Fatal(err)
			}
			a, err := snmpsim.Serve(t.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if tc.id == "ups-mib" {
				// A scenario tick: the battery heats up.
				tc.values["battery.temperature.celsius"] = 61
				if err := a.Update(prof, snmpsim.ProfileOptions{Values: tc.values, Rows: tc.rows}); err != nil {
					t.Fatal(err)
				}
				tc.want["battery.temperature.celsius"] = 61
			}
			m := poll(t, a, prof)
			for name, want := range tc.want {
				r, ok := m[name]
				if !ok {
					t.Errorf("%s: missing", name)
					continue
				}
				if !r.OK() || math.Abs(r.Value-want) > 1e-6 {
					t.Errorf("%s = %g (%s %s), want %g", name, r.Value, r.Fault, r.Detail, want)
				}
			}
			for name, r := range m {
				if r.Fault != drivers.FaultNone && r.Fault != drivers.FaultSentinel {
					t.Errorf("%s: %s (%s)", name, r.Fault, r.Detail)
				}
			}
		})
	}
	t.Run("apc hierarchy size", func(t *testing.T) {
		prof := load(t, "apc-powernet")
		vars, _ := snmpsim.FromProfile(prof, snmpsim.ProfileOptions{Rows: map[string]int{"string": 2, "module": 3, "cell": 4}})
		a, err := snmpsim.Serve(t.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		m := poll(t, a, prof)
		cells := 0
		for name := range m {
			if strings.HasSuffix(name, ".temperature.celsius") && strings.Contains(name, ".cell[") {
				cells++
			}
		}
		if cells != 2*3*4 {
			t.Errorf("%d cell temperatures, want 24", cells)
		}
	})
}

func TestParseSnmprec(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.snmprec")
	total := 0
	for _, f := range files {
		vars, err := snmpsim.LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(vars)
	}
	if total < 4900 {
		t.Errorf("parsed %d varbinds from %d files", total, len(files))
	}
	for _, bad := range []string{"1.3.6|2", "1.3.x|2|1", "1.3.6|2|abc", "1.3.6|4x|zz", "1.3.6|99|1"} {
		_, err := snmpsim.ParseSnmprec("bad.snmprec", strings.NewReader("# c\n"+bad+"\n"))
		if err == nil || !strings.HasPrefix(err.Error(), "bad.snmprec:2:") {
			t.Errorf("%q: error %v, want bad.snmprec:2: ...", bad, err)
		}
	}
}

// TestAgentProtocol checks GetBulk/GetNext ends and v1 errors with gosnmp.
func TestAgentProtocol(t *testing.T) {
	st, _ := snmpsim.NewStore(
		snmpsim.Var{OID: "1.3.6.1.2.1.1.1.0", Type: gosnmp.OctetString, Value: []byte("x")},
		snmpsim.Var{OID: "1.3.6.1.2.1.33.1.2.4.0", Type: gosnmp.Integer, Value: 97},
	)
	a := snmpsim.NewAgent(st, snmpsim.Options{}, nil)
	if err := a.Listen(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(a.Addr().Port), Community: "public", Version: gosnmp.Version2c, Timeout: time.Second}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	var got []string
	if err := g.BulkWalk(".1.3.6.1", func(v gosnmp.SnmpPDU) error { got = append(got, v.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("walk = %v", got)
	}
	res, err := g.Get([]string{".1.3.6.1.2.1.33.1.2.5.0"})
	if err != nil || res.Variables[0].Type != gosnmp.NoSuchInstance {
		t.Errorf("v2c missing object: %v %v", res, err)
	}
	st.Set(snmpsim.Var{OID: "1.3.6.1.2.1.33.1.2.5.0", Type: gosnmp.Integer, Value: 545})
	res, err = g.Get([]string{".1.3.6.1.2.1.33.1.2.5.0"})
	if err != nil || res.Variables[0].Value != 545 {
		t.Errorf("after Set: %v %v", res, err)
	}
	g.Version = gosnmp.Version1
	res, err = g.Get([]string{".1.3.6.1.2.1.33.1.2.4.0", ".1.3.6.1.2.1.33.1.2.9.0"})
	if err != nil || res.Error != gosnmp.NoSuchName || res.ErrorIndex != 2 {
		t.Errorf("v1 missing object: %+v %v", res, err)
	}
	a.SetSilent(true)
	g.Timeout, g.Retries = 100*time.Millisecond, 0
	if _, err := g.Get([]string{".1.3.6.1.2.1.1.1.0"}); err == nil {
		t.Error("silent agent answered")
	}
}
