package profile_test

import (
	"log/slog"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

// TestEmbeddedProfilesLoad loads every built-in profile (all engineers'),
// and checks that the Modbus ones expand with lines set.
func TestEmbeddedProfilesLoad(t *testing.T) {
	set, err := profile.Load(slog.New(slog.DiscardHandler), firmwareprofiles.FS)
	if err != nil {
		t.Fatalf("embedded profiles:\n%v", err)
	}
	for _, id := range []string{"sunspec", "apc-smart-ups-modbus", "discover-aes-rack"} {
		p, ok := set.Get(id)
		if !ok {
			t.Errorf("built-in profile %q is missing", id)
			continue
		}
		if p.Protocol != "modbus" || p.Source == "" || p.File == "" {
			t.Errorf("%s: protocol %q, source %q, file %q", id, p.Protocol, p.Source, p.File)
		}
		count := func(b *profile.Block, _ map[string]int, _ uint16) (int, error) { return 2, nil }
		n := 0
		check := func(in profile.Instance) error {
			if in.Point.Line == 0 {
				t.Errorf("%s: %s has no line", id, in.Name)
			}
			n++
			return nil
		}
		if err := profile.Expand(p.TopScope(), 0, nil, count, check); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if p.SunSpec != nil {
			for i := range p.SunSpec.Models {
				m := &p.SunSpec.Models[i]
				if m.Line == 0 {
					t.Errorf("%s: model %d has no line", id, m.ID)
				}
				if err := profile.Expand(m.Scope(), 40002, map[string]int{"string": 1, "module": 1}, count, check); err != nil {
					t.Errorf("%s: model %d: %v", id, m.ID, err)
				}
			}
		}
		if n < 50 {
			t.Errorf("%s: only %d points expanded", id, n)
		}
	}
}

// TestVendorProfilesSpotCheck pins the entries that matter most for
// detection and the encodings that are easy to get wrong, as the reference
// tables give them (modbus-maps/apc-smart-ups-modbus.md,
// discover-aes-cabinet-bau-bcu.md).
func TestVendorProfilesSpotCheck(t *testing.T) {
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		addr   uint16
		typ    string
		scale  float64
		offset float64
		negate bool
	}
	for id, points := range map[string]map[string]want{
		"apc-smart-ups-modbus": {
			"battery.runtime.seconds":                  {128, "u32", 1, 0, false},
			"battery.charge.percent":                   {130, "u16", 1.0 / 512, 0, false},
			"battery.voltage.volts":                    {131, "s16", 1.0 / 32, 0, false},
			"battery.temperature.celsius":              {135, "s16", 1.0 / 128, 0, false},
			"ups.output.voltage.volts":                 {142, "u16", 1.0 / 64, 0, false},
			"ups.input.voltage.volts":                  {151, "u16", 1.0 / 64, 0, false},
			"battery.date.installed":                   {595, "u16", 86400, 946684800, false},
			"ups.identity.model":                       {532, "string", 1, 0, false},
			"ups.status.on_battery":                    {0, "bitfield32", 1, 0, false},
			"battery.replace_needed":                   {22, "bitfield16", 1, 0, false},
			"ups.outlet_group[2].on":                   {9, "bitfield32", 1, 0, false},
			"ups.outlet_group[3].timer.reboot.seconds": {169, "s32", 1, 0, false},
		},
		"discover-aes-rack": {
			"battery.current.amps":                            {1002, "u16", 0.1, -3200, true},
			"string[1].current.amps":                          {1302, "u16", 0.1, -3200, true},
			"string[1].cell.temperature.max.celsius":          {1315, "u16", 1, -40, false},
			"string[1].energy.charged.wh":                     {1328, "u32", 100, 0, false},
			"string[1].cell[5].voltage.volts":                 {10005, "u16", 0.001, 0, false},
			"string[1].module[2].cell[1].temperature.celsius": {30501, "u16", 1, -40, false},
			"string[1].module[1].alarm.fire":                  {50506, "bitfield16", 1, 0, false},
		},
	} {
		p, _ := set.Get(id)
		got := map[string]profile.Instance{}
		err := profile.Expand(p.TopScope(), 0, nil, nil, func(in profile.Instance) error {
			got[in.Name] = in
			for _, b := range in.Bits {
				got[b] = in
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range points {
			in, ok := got[name]
			if !ok {
				t.Errorf("%s: no point %s", id, name)
				continue
			}
			sc, _ := in.Point.Scale.Const()
			if in.Addr != w.addr || in.Point.Type != w.typ || sc != w.scale || in.Point.Offset != w.offset || p.Negate(in.Point) != w.negate {
				t.Errorf("%s: %s = @%d %s x%g %+g negate %v, want %+v", id, name, in.Addr, in.Point.Type, sc, in.Point.Offset, p.Negate(in.Point), w)
			}
		}
	}
}
