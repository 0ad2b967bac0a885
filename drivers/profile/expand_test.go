package profile_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

func TestExpandName(t *testing.T) {
	vars := map[string]int{"string": 2, "module": 14, "cell": 7}
	for _, tc := range []struct{ in, want string }{
		{"string[{string}].module[{module}].cell[{cell}].voltage.volts", "string[2].module[14].cell[7].voltage.volts"},
		{"battery.voltage.volts", "battery.voltage.volts"},
		{"x[{unbound}].y", "x[{unbound}].y"},
		{"x[{cell.y", "x[{cell.y"},
		{"{cell}{cell}", "77"},
	} {
		if got := profile.ExpandName(tc.in, vars); got != tc.want {
			t.Errorf("ExpandName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := profile.Placeholders("a[{s}].b[{m}].c"); !slices.Equal(got, []string{"s", "m"}) {
		t.Errorf("Placeholders = %v", got)
	}
}

func TestPointHelpers(t *testing.T) {
	for typ, want := range map[string]int{"u16": 1, "s16": 1, "enum16": 1, "bitfield16": 1, "bool": 1,
		"u32": 2, "s32": 2, "f32": 2, "enum32": 2, "bitfield32": 2, "u64": 4, "s64": 4, "f64": 4, "nope": 0} {
		pt := profile.Point{Type: typ}
		if got := pt.RegCount(); got != want {
			t.Errorf("RegCount(%s) = %d, want %d", typ, got, want)
		}
	}
	if got := (&profile.Point{Type: "string", ModbusAddr: profile.ModbusAddr{Length: 8}}).RegCount(); got != 8 {
		t.Errorf("RegCount(string/8) = %d", got)
	}
	p := &profile.Profile{Modbus: &profile.ModbusOptions{WordOrder: "little"}, CurrentSign: "charge_positive"}
	pt := &profile.Point{Sign: "battery"}
	if p.EffectiveWordOrder(pt) != "little" || p.EffectiveByteOrder(pt) != "big" || !p.Negate(pt) {
		t.Errorf("orders %s %s, negate %v", p.EffectiveWordOrder(pt), p.EffectiveByteOrder(pt), p.Negate(pt))
	}
	pt.WordOrder = "big"
	if p.EffectiveWordOrder(pt) != "big" {
		t.Error("point word order does not override")
	}
	p.CurrentSign = "discharge_positive"
	if p.Negate(pt) || !p.Negate(&profile.Point{Sign: "invert"}) || p.Negate(&profile.Point{}) {
		t.Error("Negate")
	}
	if r, ok := profile.SunSpecSentinel("s16"); !ok || r != 0x8000 {
		t.Errorf("sentinel s16 = %x %v", r, ok)
	}
	if _, ok := profile.SunSpecSentinel("string"); ok {
		t.Error("string has no numeric sentinel")
	}
	ten, m9 := -1, -9
	for _, tc := range []struct {
		s    *profile.Scale
		want float64
		ok   bool
	}{
		{nil, 1, true},
		{&profile.Scale{Pow10: &ten}, 0.1, true},
		{&profile.Scale{Pow2: &m9}, 1.0 / 512, true},
		{&profile.Scale{SF: "V_SF"}, 0, false},
	} {
		got, ok := tc.s.Const()
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s.Const() = %v %v, want %v %v", tc.s, got, ok, tc.want, tc.ok)
		}
	}
}

// TestExpandSunSpec805 expands the cell block of model 805 as a driver
// would after discovery: model at 40100, L = 42 + 4 x 3 (three cells).
func TestExpandSunSpec805(t *testing.T) {
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Get("sunspec")
	var m *profile.SunSpecModel
	for i := range p.SunSpec.Models {
		if p.SunSpec.Models[i].ID == 805 {
			m = &p.SunSpec.Models[i]
		}
	}
	const base, L = 40100, 42 + 4*3
	count := func(b *profile.Block, vars map[string]int, start uint16) (int, error) {
		if !b.Fit {
			return 0, errors.New("unexpected count_from")
		}
		return (base + 2 + L - int(start)) / int(b.Stride), nil
	}
	var got []string
	err = profile.Expand(m.Scope(), base, map[string]int{"string": 2, "module": 5}, count, func(in profile.Instance) error {
		if strings.Contains(in.Name, "cell[") {
			got = append(got, in.Name+"@"+itoa(int(in.Addr))+"/sf"+itoa(in.SFAddr))
			for bit, n := range in.Bits {
				got = append(got, itoa(bit)+":"+n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"string[2].module[5].cell[1].voltage.volts@40144/sf40142",
		"string[2].module[5].cell[1].temperature.celsius@40145/sf40143",
		"string[2].module[5].cell[1].status@40146/sf-1",
		"0:string[2].module[5].cell[1].balancing",
		"string[2].module[5].cell[2].voltage.volts@40148/sf40142",
		"string[2].module[5].cell[2].temperature.celsius@40149/sf40143",
		"string[2].module[5].cell[2].status@40150/sf-1",
		"0:string[2].module[5].cell[2].balancing",
		"string[2].module[5].cell[3].voltage.volts@40152/sf40142",
		"string[2].module[5].cell[3].temperature.celsius@40153/sf40143",
		"string[2].module[5].cell[3].status@40154/sf-1",
		"0:string[2].module[5].cell[3].balancing",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A count above max_count is refused, not trusted.
	err = profile.Expand(m.Scope(), base, nil, func(*profile.Block, map[string]int, uint16) (int, error) { return 100000, nil },
		func(profile.Instance) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "exceeds max_count") {
		t.Errorf("garbage count: %v", err)
	}
	// Without a CountFunc, dynamic blocks are an error.
	if err := profile.Expand(m.Scope(), base, nil, nil, func(profile.Instance) error { return nil }); err == nil {
		t.Error("nil CountFunc accepted")
	}
}

// TestExpandDiscover checks nested fixed blocks and absolute addresses.
func TestExpandDiscover(t *testing.T) {
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Get("discover-aes-rack")
	addr := map[string]uint16{}
	err = profile.Expand(p.TopScope(), 0, nil, nil, func(in profile.Instance) error {
		if in.Name != "" {
			addr[in.Name] = in.Addr
		}
		for _, n := range in.Bits {
			addr[n] = in.Addr
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint16{
		"battery.current.amps":                             1002,
		"string[1].current.amps":                           1302,
		"string[1].energy.discharged.wh":                   1330,
		"string[1].cell[1].voltage.volts":                  10001,
		"string[1].cell[128].voltage.volts":                10128,
		"string[1].module[1].cell[1].temperature.celsius":  30001,
		"string[1].module[8].cell[16].temperature.celsius": 33516,
		"string[1].module[3].alarm.fire":                   50506,
	} {
		if got, ok := addr[name]; !ok || got != want {
			t.Errorf("%s at %d (found %v), want %d", name, got, ok, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestScaleYAMLRoundTrip checks that a scale marshals back in the form it
// was written in, so tools that rewrite profiles keep them valid.
func TestScaleYAMLRoundTrip(t *testing.T) {
	for _, in := range []string{"0.1", "{pow10: -2}", "{pow2: -9}", "{sf: V_SF}", "{factor: 2.5}"} {
		var pt struct {
			Scale *profile.Scale `yaml:"scale"`
		}
		if err := yaml.Unmarshal([]byte("scale: "+in), &pt); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := yaml.Marshal(pt)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			Scale *profile.Scale `yaml:"scale"`
		}
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatalf("%s -> %s: %v", in, out, err)
		}
		if pt.Scale.String() != back.Scale.String() {
			t.Errorf("%s -> %q -> %s", in, out, back.Scale)
		}
	}
	var bad struct {
		Scale *profile.Scale `yaml:"scale"`
	}
	err := yaml.Unmarshal([]byte("scale: [1, 2]"), &bad)
	if err == nil || !strings.Contains(err.Error(), "must be a number or a mapping") {
		t.Errorf("sequence scale: %v", err)
	}
}
