package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

func sunspecProfile(t testing.TB) *profile.Profile {
	t.Helper()
	set, err := profile.Load(slog.New(slog.DiscardHandler), firmwareprofiles.FS)
	if err != nil {
		t.Fatalf("load embedded profiles: %v", err)
	}
	p, ok := set.Get("sunspec")
	if !ok {
		t.Fatal("no sunspec profile")
	}
	return p
}

// sunspecRack describes the generated device: strings x modules x cells.
type sunspecRack struct {
	base                 uint16
	strings, mods, cells int
	sf                   int16 // every scale factor register
}

// Model lengths (L, registers after ID and L) from battery-models-layout.md.
func (r sunspecRack) chain() []modelInstance {
	var ms []modelInstance
	add := func(id uint16, l int, vars map[string]int) {
		ms = append(ms, modelInstance{id: id, length: uint16(l), vars: vars})
	}
	add(1, 66, nil)
	add(802, 62, nil)
	add(803, 26+32*r.strings, nil)
	for s := 1; s <= r.strings; s++ {
		add(804, 46+16*r.mods, map[string]int{"string": s})
	}
	for s := 1; s <= r.strings; s++ {
		for m := 1; m <= r.mods; m++ {
			add(805, 42+4*r.cells, map[string]int{"string": s, "module": m})
		}
	}
	a := int(r.base) + 2
	for i := range ms {
		ms[i].addr = uint16(a)
		a += 2 + int(ms[i].length)
	}
	return ms
}

// serveSunSpec writes a SunSpec image generated from the profile (with the
// profile package's own expansion, independent of the driver's builder)
// and returns the expected value of every point, and which points are
// strings.
func serveSunSpec(t testing.TB, srv *modbustest.Server, prof *profile.Profile, r sunspecRack) (map[string]float64, map[string]string) {
	t.Helper()
	want, wantText := map[string]float64{}, map[string]string{}
	chain := r.chain()
	end := int(chain[len(chain)-1].addr) + 2 + int(chain[len(chain)-1].length)
	srv.Set(1, modbustest.Holding, r.base, make([]uint16, end+2-int(r.base))...)
	srv.Set(1, modbustest.Holding, r.base, 0x5375, 0x6E53)
	srv.Set(1, modbustest.Holding, uint16(end), 0xFFFF, 0)
	k := 0
	for _, mi := range chain {
		srv.Set(1, modbustest.Holding, mi.addr, mi.id, mi.length)
		var m *profile.SunSpecModel
		for i := range prof.SunSpec.Models {
			if prof.SunSpec.Models[i].ID == mi.id {
				m = &prof.SunSpec.Models[i]
			}
		}
		if m == nil {
			t.Fatalf("profile has no model %d", mi.id)
		}
		for _, a := range m.ScaleFactors {
			srv.Set(1, modbustest.Holding, mi.addr+a, uint16(r.sf))
		}
		count := func(b *profile.Block, vars map[string]int, start uint16) (int, error) {
			switch {
			case b.Fit:
				return (int(mi.length) + 2 - int(b.Start)) / int(b.Stride), nil
			case b.Name == "string":
				return r.strings, nil
			case b.Name == "module":
				return r.mods, nil
			}
			return 0, fmt.Errorf("unexpected block %s", b.Name)
		}
		scale := math.Pow10(int(r.sf))
		err := profile.Expand(m.Scope(), mi.addr, mi.vars, count, func(in profile.Instance) error {
			pt := in.Point
			k++
			sign := 1.0
			if prof.Negate(pt) {
				sign = -1
			}
			sc := 1.0
			if pt.Scale != nil && pt.Scale.SF != "" {
				sc = scale
			}
			var raw uint64
			var v float64
			switch pt.Type {
			case "u16":
				raw = uint64(1000 + k%3000)
				v = float64(raw)
			case "s16":
				n := -(500 + k%1000)
				if pt.Range != nil && pt.Range.Min >= 0 {
					n = -n
				}
				raw, v = uint64(uint16(int16(n))), float64(n)
			case "u32":
				raw = uint64(70000 + k)
				v = float64(raw)
			case "enum16":
				raw, v = 3, 3
			case "bitfield16", "bitfield32":
				raw, v = 3, 3
			case "string":
				s := fmt.Sprintf("S%d", k)
				srv.Set(1, modbustest.Holding, in.Addr, encodeString(s, pt.Length, false)...)
				wantText[in.Name] = s
				return nil
			default:
				return fmt.Errorf("point %s: type %s not generated", in.Name, pt.Type)
			}
			srv.Set(1, modbustest.Holding, in.Addr, encode(raw, pt.RegCount(), false, false)...)
			if in.Name != "" {
				want[in.Name] = v * sc * sign
			}
			for bit, name := range in.Bits {
				want[name] = float64(raw >> bit & 1)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Structural registers: counts and indices.
		switch mi.id {
		case 803:
			srv.Set(1, modbustest.Holding, mi.addr+2, uint16(r.strings))
			want["bms.strings.count"] = float64(r.strings)
		case 804:
			srv.Set(1, modbustest.Holding, mi.addr+2, uint16(mi.vars["string"]), uint16(r.mods))
			want[fmt.Sprintf("string[%d].modules.count", mi.vars["string"])] = float64(r.mods)
		case 805:
			srv.Set(1, modbustest.Holding, mi.addr+2, uint16(mi.vars["string"]), uint16(mi.vars["module"]), uint16(r.cells))
		}
	}
	return want, wantText
}

func checkValues(t *testing.T, out []drivers.Reading, want map[string]float64, wantText map[string]string) {
	t.Helper()
	got := byName(out)
	if len(got) != len(want)+len(wantText) {
		t.Errorf("%d readings, want %d", len(got), len(want)+len(wantText))
	}
	for name, w := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if !r.OK() || !near(r.Value, w) {
			t.Errorf("%s = %v (fault %v %s), want %v", name, r.Value, r.Fault, r.Detail, w)
		}
	}
	for name, w := range wantText {
		if r := got[name]; !r.OK() || r.Text != w {
			t.Errorf("%s = %q (fault %v), want %q", name, r.Text, r.Fault, w)
		}
	}
}

// TestSunSpecDiscoveryAndValues discovers a generated SunSpec rack (2
// strings x 3 modules x 4 cells) at each base and checks every point of the
// built-in sunspec profile equals the served value after scale factors and
// sign.
func TestSunSpecDiscoveryAndValues(t *testing.T) {
	prof := sunspecProfile(t)
	for _, base := range []uint16{40000, 0, 50000} {
		t.Run(fmt.Sprint(base), func(t *testing.T) {
			srv := modbustest.NewServer(t)
			rack := sunspecRack{base: base, strings: 2, mods: 3, cells: 4, sf: -3}
			want, wantText := serveSunSpec(t, srv, prof, rack)
			p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
			if len(p.Points()) != 0 {
				t.Fatalf("SunSpec points known before discovery")
			}
			out, err := pollOnce(t, p)
			if err != nil {
				t.Fatal(err)
			}
			checkValues(t, out, want, wantText)
			if name := "string[2].module[3].cell[4].voltage.volts"; byName(out)[name].Point == nil {
				t.Errorf("%s not discovered", name)
			}
			id, err := p.Identify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if id.Vendor != wantText["bms.identity.manufacturer"] || id.Serial != wantText["bms.identity.serial"] ||
				id.Extra["sunspec.models"] != "1,802,803,804,804,805,805,805,805,805,805" || id.Extra["sunspec.base"] != fmt.Sprint(base) {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

// TestSunSpecScaleFactorSentinel: a 0x8000 scale factor makes every point
// it scales FaultScale; 0xFFFF in a u16 is a sentinel.
func TestSunSpecScaleFactorSentinel(t *testing.T) {
	prof := sunspecProfile(t)
	srv := modbustest.NewServer(t)
	rack := sunspecRack{base: 40000, strings: 1, mods: 1, cells: 2, sf: -3}
	serveSunSpec(t, srv, prof, rack)
	chain := rack.chain()
	m802 := chain[1].addr
	srv.Set(1, modbustest.Holding, m802+59, 0x8000) // V_SF not implemented
	srv.Set(1, modbustest.Holding, m802+11, 0xFFFF) // SoC not implemented
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(out)
	for _, name := range []string{"battery.voltage.volts", "battery.voltage.max.volts", "battery.voltage.min.volts"} {
		if r := got[name]; r.Fault != drivers.FaultScale {
			t.Errorf("%s: %v, want scale", name, r.Fault)
		}
	}
	if r := got["battery.charge.percent"]; r.Fault != drivers.FaultSentinel {
		t.Errorf("SoC 0xFFFF: %v, want sentinel", r.Fault)
	}
	if r := got["battery.current.amps"]; !r.OK() {
		t.Errorf("current: %v", r.Fault)
	}
}

// TestSunSpecRediscoveryAfterComeback: the device goes away and comes back
// with another module; the poller rediscovers and reports the new layout.
func TestSunSpecRediscoveryAfterComeback(t *testing.T) {
	prof := sunspecProfile(t)
	srv := modbustest.NewServer(t)
	serveSunSpec(t, srv, prof, sunspecRack{base: 40000, strings: 1, mods: 1, cells: 2, sf: -3})
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatal(err)
	}
	before := len(p.Points())
	srv.Stop()
	ctx := context.Background()
	if err := p.Poll(ctx, out); err == nil {
		t.Fatal("no error from a stopped device")
	}
	want, wantText := serveSunSpec(t, srv, prof, sunspecRack{base: 40000, strings: 1, mods: 2, cells: 2, sf: -3})
	srv.Start()
	var changed bool
	for range 100 {
		err := p.Poll(ctx, out)
		if errors.Is(err, ErrLayoutChanged) {
			changed = true
			break
		}
		if err == nil {
			break
		}
		sleepUntil(p)
	}
	if !changed {
		t.Fatal("layout change not reported after rediscovery")
	}
	if len(p.Points()) <= before {
		t.Fatalf("points %d after adding a module, had %d", len(p.Points()), before)
	}
	out = make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		t.Fatal(err)
	}
	checkValues(t, out, want, wantText)
}

// TestNotSunSpec: a device without the marker fails discovery clearly.
func TestNotSunSpec(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.Set(1, modbustest.Holding, 40000, 1, 2)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), sunspecProfile(t))
	if err := p.Prepare(context.Background()); !errors.Is(err, ErrNotSunSpec) {
		t.Errorf("err = %v, want ErrNotSunSpec", err)
	}
}

func sleepUntil(p *Poller) {
	for p.down && timeNow().Before(p.nextTry) {
		sleepShort()
	}
}

// TestPrepareRespectsBackoff: the agent calls Prepare every round while a
// SunSpec device has no layout; a dead device must cost one attempt per
// backoff period, and a prepared device no reads at all.
func TestPrepareRespectsBackoff(t *testing.T) {
	prof := sunspecProfile(t)
	srv := modbustest.NewServer(t)
	serveSunSpec(t, srv, prof, sunspecRack{base: 40000, strings: 1, mods: 1, cells: 2, sf: -3})
	srv.Stop()
	cfg := testConfig(srv.URL, 1)
	cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour
	p := mustPoller(t, NewPool(testLog(t)), cfg, prof)
	ctx := context.Background()
	if err := p.Prepare(ctx); err == nil {
		t.Fatal("Prepare of a stopped device succeeded")
	}
	start := time.Now()
	for range 10 {
		if err := p.Prepare(ctx); err == nil {
			t.Fatal("Prepare succeeded while backing off")
		}
	}
	if el := time.Since(start); el > 20*time.Millisecond {
		t.Errorf("10 Prepare calls while backing off took %v", el)
	}
	srv.Start()
	p.nextTry = time.Now()
	if err := p.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Reads()
	for range 5 {
		if err := p.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(srv.Reads()); n != 0 {
		t.Errorf("Prepare of a prepared device sent %d reads", n)
	}
}

func TestProbe(t *testing.T) {
	prof := sunspecProfile(t)
	srv := modbustest.NewServer(t)
	_, text := serveSunSpec(t, srv, prof, sunspecRack{base: 50000, strings: 1, mods: 1, cells: 2, sf: -3})
	id, err := Probe(context.Background(), testLog(t), testConfig(srv.URL, 1))
	if err != nil {
		t.Fatal(err)
	}
	if id.Vendor != text["bms.identity.manufacturer"] || id.Model != text["bms.identity.model"] ||
		id.Firmware != text["bms.identity.firmware"] || id.Serial != text["bms.identity.serial"] ||
		id.Extra["sunspec.models"] != "1,802,803,804,805" {
		t.Errorf("identity %+v", id)
	}
	plain := modbustest.NewServer(t)
	plain.Set(1, modbustest.Holding, 0, 1, 2, 3)
	if _, err := Probe(context.Background(), testLog(t), testConfig(plain.URL, 1)); !errors.Is(err, ErrNotSunSpec) {
		t.Errorf("plain device: err %v, want ErrNotSunSpec", err)
	}
}
