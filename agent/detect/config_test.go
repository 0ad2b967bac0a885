package detect_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
)

func TestDefaultsValid(t *testing.T) {
	for _, chem := range []string{"nmc", "lfp", "", "lead_acid"} {
		c := detect.DefaultConfig(chem)
		if err := c.Validate(); err != nil {
			t.Errorf("defaults for %q invalid: %v", chem, err)
		}
	}
	if v := detect.DefaultConfig("lfp").Electrical.VMax; v != 3.65 {
		t.Errorf("LFP VMax %g, want 3.65", v)
	}
	if v := detect.DefaultConfig("nmc").Electrical.VMax; v != 4.20 {
		t.Errorf("NMC VMax %g, want 4.20", v)
	}
}

func TestOverridesPrecedence(t *testing.T) {
	doc := `
site:
  thermal: {delta_warn: 4.5, warn_for: 90s}
  gas: {warn_above: 8}
chemistry:
  lfp:
    electrical: {v_max: 3.60}
    thermal: {delta_warn: 4.2}
profiles:
  ups-mib:
    thermal: {delta_warn: 4.0}
    hygiene: {stuck_after: 10m}
`
	o, err := detect.LoadOverrides("ov.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.Config("nmc", "sunspec")
	if err != nil {
		t.Fatal(err)
	}
	if c.Thermal.DeltaWarn != 4.5 || time.Duration(c.Thermal.WarnFor) != 90*time.Second || c.Gas.WarnAbove != 8 || c.Electrical.VMax != 4.20 {
		t.Fatalf("site layer: %+v %+v", c.Thermal, c.Electrical.VMax)
	}
	// Untouched keys keep their defaults.
	if c.Thermal.RateWarn != 0.2 || c.Thermal.DeltaWatch != 3 {
		t.Fatalf("defaults lost: %+v", c.Thermal)
	}
	c, _ = o.Config("lfp", "sunspec")
	if c.Electrical.VMax != 3.60 || c.Thermal.DeltaWarn != 4.2 {
		t.Fatalf("chemistry layer: vmax %g delta_warn %g", c.Electrical.VMax, c.Thermal.DeltaWarn)
	}
	c, _ = o.Config("lfp", "ups-mib")
	if c.Thermal.DeltaWarn != 4.0 || time.Duration(c.Hygiene.StuckAfter) != 10*time.Minute {
		t.Fatalf("profile layer: %+v", c.Thermal.DeltaWarn)
	}
	var nilO *detect.Overrides
	if c, err := nilO.Config("nmc", ""); err != nil || c.Thermal.DeltaWarn != 5 {
		t.Fatalf("nil overrides: %v %v", c.Thermal.DeltaWarn, err)
	}
}

func TestOverridesErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "site:\n  thermal:\n    delta_wran: 4\n", "ov.yaml:3: site.thermal.delta_wran: unknown key"},
		{"unknown section", "sites:\n  thermal: {}\n", "ov.yaml:1: sites: unknown key"},
		{"bad type", "site:\n  thermal:\n    delta_warn: lots\n", "ov.yaml:3: site.thermal.delta_warn: cannot unmarshal"},
		{"bad duration", "site:\n  thermal:\n    warn_for: soon\n", "ov.yaml:3: site.thermal.warn_for: want a duration"},
		{"not a mapping", "profiles: [a, b]\n", "ov.yaml:1: profiles: want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := detect.LoadOverrides("ov.yaml", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	// A value that parses but cannot work is blamed on its line.
	o, err := detect.LoadOverrides("ov.yaml", []byte("chemistry:\n  lfp:\n    thermal:\n      delta_warn: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Config("lfp", ""); err == nil || !strings.Contains(err.Error(), "ov.yaml:4: chemistry.lfp.thermal.delta_warn: want delta_watch < delta_warn") {
		t.Fatalf("invalid value: %v", err)
	}
}

func TestConfigYAMLRoundTrip(t *testing.T) {
	c := detect.DefaultConfig("nmc")
	doc := "site:\n" + indent(string(c.YAML()))
	o, err := detect.LoadOverrides("dump.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("the dumped defaults do not load: %v\n%s", err, doc)
	}
	got, err := o.Config("nmc", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.YAML()) != string(c.YAML()) {
		t.Fatalf("round trip changed the config:\n%s\nvs\n%s", got.YAML(), c.YAML())
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
