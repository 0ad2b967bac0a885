package sim

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// testDevice is a fixed-address device with a few plain points.
func testDevice(t *testing.T) *Device {
	t.Helper()
	p, err := profile.Parse("t.yaml", []byte(`
id: t
vendor: test
model: test
firmware: "*"
source: test
protocol: modbus
points:
  - {name: "cell[1].temperature.celsius", address: 0, type: s16, scale: 0.1, unit: degC}
  - {name: "cell[2].temperature.celsius", address: 1, type: s16, scale: 0.1, unit: degC}
  - {name: "cell[1].voltage.volts", address: 2, type: u16, scale: 0.001, unit: V}
  - {name: "cell[2].voltage.volts", address: 3, type: u16, scale: 0.001, unit: V}
  - {name: gas.h2.ppm, address: 4, type: u16, unit: ppm}
`))
	must(t, err)
	d, err := NewFixedDevice("t", 1, p, nil, nil)
	must(t, err)
	return d
}

func val(t *testing.T, d *Device, name string) (float64, bool) {
	t.Helper()
	v, un, ok := d.Value(name)
	if !ok {
		t.Fatalf("no point %s", name)
	}
	return v, un
}

func fptr(v float64) *float64 { return &v }

func TestScriptsOverFakeTime(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	d := testDevice(t)
	must(t, d.SetScript(Script{Point: "cell[*].temperature.celsius", Kind: "ramp", Value: fptr(25), Rate: 0.5, At: 10 * time.Second, Max: fptr(60)}, t0))
	must(t, d.SetScript(Script{Point: "cell[1].voltage.volts", Kind: "step", Value: fptr(3.6), At: 30 * time.Second, To: 2.9}, t0))
	must(t, d.SetScript(Script{Point: "cell[2].voltage.volts", Kind: "sine", Value: fptr(3.6), Amplitude: 0.05, Period: 40 * time.Second}, t0))
	must(t, d.SetScript(Script{Point: "gas.h2.ppm", Kind: "unavailable", At: 20 * time.Second}, t0))

	cases := []struct {
		at            time.Duration
		temp, v1, v2  float64
		h2Unavailable bool
	}{
		{0, 25, 3.6, 3.6, false},
		{10 * time.Second, 25, 3.6, 3.65, false},
		{20 * time.Second, 30, 3.6, 3.6, true},
		{30 * time.Second, 35, 2.9, 3.55, true},
		{200 * time.Second, 60, 2.9, 3.6, true}, // ramp capped at max
	}
	for _, c := range cases {
		d.Update(t0.Add(c.at))
		for _, n := range []string{"cell[1].temperature.celsius", "cell[2].temperature.celsius"} {
			if v, _ := val(t, d, n); math.Abs(v-c.temp) > 1e-9 {
				t.Errorf("t=%v %s = %v, want %v", c.at, n, v, c.temp)
			}
		}
		if v, _ := val(t, d, "cell[1].voltage.volts"); math.Abs(v-c.v1) > 1e-9 {
			t.Errorf("t=%v step = %v, want %v", c.at, v, c.v1)
		}
		if v, _ := val(t, d, "cell[2].voltage.volts"); math.Abs(v-c.v2) > 1e-9 {
			t.Errorf("t=%v sine = %v, want %v", c.at, v, c.v2)
		}
		if _, un := val(t, d, "gas.h2.ppm"); un != c.h2Unavailable {
			t.Errorf("t=%v h2 unavailable = %v", c.at, un)
		}
	}
	// The image follows: 60.0 degC is raw 600, the step 2.9 V is 2900 mV,
	// and the unavailable u16 is 0xFFFF.
	regs, _ := d.Image().ReadRegs(Holding, 0, 5, nil)
	if regs[0] != 600 || regs[2] != 2900 || regs[4] != 0xFFFF {
		t.Errorf("image %v", regs)
	}
}

func TestNoiseIsSeeded(t *testing.T) {
	t0 := newFakeClock().Now()
	run := func(seed uint64) []float64 {
		d := testDevice(t)
		must(t, d.SetScript(Script{Point: "cell[*].temperature.celsius", Kind: "noise", Value: fptr(25), Sigma: 0.2, Seed: seed}, t0))
		var out []float64
		for i := range 200 {
			d.Update(t0.Add(time.Duration(i) * 100 * time.Millisecond))
			a, _ := val(t, d, "cell[1].temperature.celsius")
			b, _ := val(t, d, "cell[2].temperature.celsius")
			out = append(out, a, b)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	sum, sq, differ := 0.0, 0.0, false
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, sample %d differs: %v %v", i, a[i], b[i])
		}
		if a[i] != c[i] {
			differ = true
		}
		sum += a[i]
		sq += (a[i] - 25) * (a[i] - 25)
	}
	if !differ {
		t.Error("different seeds gave the same noise")
	}
	if a[0] == a[1] {
		t.Error("two cells got the same noise stream")
	}
	mean, sd := sum/float64(len(a)), math.Sqrt(sq/float64(len(a)))
	if math.Abs(mean-25) > 0.05 || sd < 0.15 || sd > 0.25 {
		t.Errorf("noise mean %v sd %v, want about 25 and 0.2", mean, sd)
	}
}

func TestCSVReplay(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "thermal.csv")
	must(t, os.WriteFile(file, []byte(`# a hot cell
t,cell[1].temperature.celsius,cell[1].voltage.volts,gas.h2.ppm
0,25,3.600,0
60,31,3.590,
120,55,3.500,40
`), 0o644))
	sc := Script{Point: "*", Kind: "csv", File: "thermal.csv"}
	must(t, sc.Validate(dir))
	clock := newFakeClock()
	t0 := clock.Now()
	d := testDevice(t)
	must(t, d.SetScript(sc, t0))
	check := func(at time.Duration, temp, volts float64, h2 float64, h2Un bool) {
		t.Helper()
		d.Update(t0.Add(at))
		if v, _ := val(t, d, "cell[1].temperature.celsius"); math.Abs(v-temp) > 1e-9 {
			t.Errorf("t=%v temp %v, want %v", at, v, temp)
		}
		if v, _ := val(t, d, "cell[1].voltage.volts"); math.Abs(v-volts) > 1e-9 {
			t.Errorf("t=%v volts %v, want %v", at, v, volts)
		}
		v, un := val(t, d, "gas.h2.ppm")
		if un != h2Un || !un && v != h2 {
			t.Errorf("t=%v h2 %v unavailable %v, want %v %v", at, v, un, h2, h2Un)
		}
	}
	check(0, 25, 3.6, 0, false)
	check(30*time.Second, 28, 3.595, 0, true) // next to an empty cell: unavailable
	check(90*time.Second, 43, 3.545, 0, true)
	check(120*time.Second, 55, 3.5, 40, false)
	check(500*time.Second, 55, 3.5, 40, false) // holds after the end
	// cell[2] has no column: untouched.
	if v, _ := val(t, d, "cell[2].temperature.celsius"); v != 25 {
		t.Errorf("cell[2] changed to %v", v)
	}
}

func TestReplayErrors(t *testing.T) {
	for _, c := range []struct{ name, csv, want string }{
		{"header", "t\n", "r.csv:1: header needs"},
		{"time", "t,a\n0,1\nx,2\n", "r.csv:3: t: time offset \"x\""},
		{"order", "t,a\n0,1\n5,2\n5,3\n", "r.csv:4: t: time 5 does not increase"},
		{"value", "t,a\n0,abc\n", "r.csv:2: a: \"abc\" is not a number"},
		{"empty", "t,a\n", "no rows"},
	} {
		_, err := ParseReplay("r.csv", strings.NewReader(c.csv))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"string[1].module[*].cell[7].voltage.volts", "string[1].module[12].cell[7].voltage.volts", true},
		{"string[1].module[*].cell[7].voltage.volts", "string[2].module[12].cell[7].voltage.volts", false},
		{"*.temperature.celsius", "string[1].module[1].cell[1].temperature.celsius", true},
		{"cell[?].x", "cell[3].x", true},
		{"cell[?].x", "cell[13].x", false},
		{"*", "", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
	} {
		if got := globMatch(c.pat, c.name); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.pat, c.name, got)
		}
	}
}

// TestTickLoop runs the real loop with a fake clock: values follow the
// clock, not the wall.
func TestTickLoop(t *testing.T) {
	clock := newFakeClock()
	s := startSim(t, `
tick: 5ms
devices:
  - id: r
    profile: sunspec
    listen: tcp://127.0.0.1:0
    rack: {strings: 1, modules: 1, cells: 2}
    scripts:
      - {point: "string[1].module[1].cell[1].temperature.celsius", kind: ramp, value: 30, rate: 1}
`, builtinProfiles(t), WithClock(clock))
	clock.Advance(90 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _, err := s.Value("r", "string[1].module[1].cell[1].temperature.celsius")
		must(t, err)
		if v == 120 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ramp at %v after 90 fake seconds, want 120", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The module aggregate follows its cells.
	v, _, _ := s.Value("r", "string[1].module[1].cell.temperature.max.celsius")
	if v != 120 {
		t.Errorf("module max %v", v)
	}
}
