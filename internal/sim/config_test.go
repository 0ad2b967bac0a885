package sim

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yml string
		want      []string
	}{
		{"unknown key", `
devices:
  - id: a
    profile: sunspec
    listen: tcp://127.0.0.1:0
    colour: red
`, []string{`sim.yaml:6: devices[0].colour: unknown key "colour"`}},
		{"missing fields", `
tick: 100ms
devices:
  - unit_id: 300
`, []string{"sim.yaml:4: devices[0].unit_id"}},
		{"bad values", `
tick: 10us
devices:
  - id: Rack_1
    profile: sunspec
    listen: udp://127.0.0.1:5
    rack: {strings: 0, modules: 2, cells: 2}
    scripts:
      - {point: "x", kind: wobble}
      - {point: "y", kind: ramp}
      - {point: "z", kind: csv, file: missing.csv}
  - id: b
    profile: sunspec
    listen: "tcp://127.0.0.1"
`, []string{
			"sim.yaml:2: tick: must be at least 1ms",
			`sim.yaml:4: devices[0].id: "Rack_1" must match [a-z0-9-]+`,
			"sim.yaml:6: devices[0].listen: listen URL \"udp://127.0.0.1:5\": scheme must be",
			"sim.yaml:7: devices[0].rack.strings: 0, want 1..64",
			`sim.yaml:9: devices[0].scripts[0].kind: unknown "wobble"`,
			"sim.yaml:10: devices[0].scripts[1].rate: missing or zero for a ramp",
			"sim.yaml:11: devices[0].scripts[2].file: open replay",
			"sim.yaml:14: devices[1].listen: listen URL \"tcp://127.0.0.1\" needs host:port",
		}},
		{"duplicate id", `
devices:
  - {id: a, profile: sunspec, listen: "tcp://127.0.0.1:0"}
  - {id: a, profile: sunspec, listen: "tcp://127.0.0.1:0"}
`, []string{"sim.yaml:4: devices[1].id: \"a\" is also devices[0]"}},
		{"bad value type", `
devices:
  - id: a
    profile: sunspec
    listen: tcp://127.0.0.1:0
    values: {battery.charge.percent: lots}
`, []string{`sim.yaml:6: devices[0].values`, `"lots" is not a number`}},
		{"no devices", `tick: 1s`, []string{"devices: at least one device is needed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(filepath.Join(t.TempDir(), "sim.yaml"), []byte(c.yml))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\nlacks %q", msg, w)
				}
			}
		})
	}
}

// TestNewErrors covers what only the profiles can tell: unknown profiles,
// points that match nothing, unit id clashes.
func TestNewErrors(t *testing.T) {
	yml := `
devices:
  - id: a
    profile: nope
    listen: tcp://127.0.0.1:15999
  - id: b
    profile: sunspec
    listen: tcp://127.0.0.1:15999
    values: {no.such.point: 1}
  - id: c
    profile: sunspec
    listen: tcp://127.0.0.1:15999
    rack: {strings: 1, modules: 1, cells: 1}
  - id: d
    profile: sunspec
    listen: tcp://127.0.0.1:15999
    rack: {strings: 1, modules: 1, cells: 1}
  - id: e
    profile: apc-smart-ups-modbus
    listen: tcp://127.0.0.1:16000
    rack: {strings: 1, modules: 1, cells: 1}
`
	cfg, err := ParseConfig("sim.yaml", []byte(yml))
	must(t, err)
	_, err = New(cfg, builtinProfiles(t), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		`sim.yaml:4: devices[0]: profile "nope" not found`,
		`sim.yaml:9: devices[1].values.no.such.point: device b: no point matches "no.such.point"`,
		`sim.yaml:16: devices[3].listen: unit id 1 is already served by device c`,
		`sim.yaml:19: devices[4]: profile apc-smart-ups-modbus is not a SunSpec profile: rack does not apply`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\nlacks %q", err, w)
		}
	}
}

func TestDeployConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "sim", "*.yaml"))
	must(t, err)
	if len(files) < 2 {
		t.Fatalf("found %d configs in deploy/sim", len(files))
	}
	for _, file := range files {
		cfg, err := LoadConfig(file)
		must(t, err)
		s, err := New(cfg, builtinProfiles(t), nil)
		must(t, err)
		if strings.HasSuffix(file, "demo-site.yaml") {
			if got := strings.Join(s.Devices(), " "); got != "rack-a1 ups-2 rack-b2" {
				t.Errorf("demo devices %q", got)
			}
			d, _ := s.Device("rack-a1")
			if n := len(d.Points()); n < 2*8*16*3 {
				t.Errorf("demo rack has %d points", n)
			}
		}
	}
}

func TestFaultConfigErrors(t *testing.T) {
	_, err := ParseConfig("sim.yaml", []byte(`
devices:
  - id: a
    profile: sunspec
    listen: tcp://127.0.0.1:0
    faults:
      - {at: 1s, mode: explode}
      - {at: 1s, mode: exception, code: 99}
`))
	for _, w := range []string{
		`sim.yaml:7: devices[0].faults[0].mode: unknown "explode"`,
		`sim.yaml:8: devices[0].faults[1].code: 99: exception codes are 1..11`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}
