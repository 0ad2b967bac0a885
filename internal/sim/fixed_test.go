package sim

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

func TestFixedProfilesBuild(t *testing.T) {
	set := builtinProfiles(t)
	n := 0
	for _, p := range set.All() {
		if p.Protocol != "modbus" || p.SunSpec != nil {
			continue
		}
		d, err := NewFixedDevice("d", 1, p, nil, nil)
		if err != nil {
			t.Errorf("profile %s: %v", p.ID, err)
			continue
		}
		if len(d.Points()) == 0 {
			t.Errorf("profile %s: no points", p.ID)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("built %d fixed-address profiles, want at least the APC and Discover ones", n)
	}
}

// TestAPCAndDiscoverOnTheWire serves both vendor profiles on one port with
// two unit ids and decodes chosen registers by hand from the reference
// maps: APC binary fixed point, Discover offsets and sign.
func TestAPCAndDiscoverOnTheWire(t *testing.T) {
	s := startSim(t, `
devices:
  - id: ups-1
    profile: apc-smart-ups-modbus
    listen: tcp://127.0.0.1:0
    values:
      battery.charge.percent: 87.5
      battery.voltage.volts: 54.25
      battery.temperature.celsius: -3.5
      ups.status.on_battery: 1
    texts: {ups.identity.model: "Smart-UPS 3000"}
  - id: rack-d
    profile: discover-aes-rack
    listen: tcp://127.0.0.1:0
    unit_id: 2
    values:
      battery.current.amps: 10.5
      "string[1].cell[*].voltage.volts": 3.301
      "string[1].module[2].cell[3].temperature.celsius": 41
      "string[1].module[3].alarm.fire": 1
    unavailable: [battery.health.percent]
`, builtinProfiles(t))
	apc := client(t, s.Addr("ups-1"), 1, time.Second)
	r := readAll(t, apc, 0, 2)
	if r[0] != 0 || r[1] != 1<<2 {
		t.Errorf("UPS status bits %04X %04X, want on-battery bit 2", r[0], r[1])
	}
	r = append(readAll(t, apc, 130, 2), 0, 0, 0)
	r = append(r, readAll(t, apc, 135, 1)...)
	if r[0] != uint16(87.5*512) {
		t.Errorf("charge raw %d, want %d (bp 9)", r[0], int(87.5*512))
	}
	if int16(r[1]) != int16(54.25*32) {
		t.Errorf("voltage raw %d, want %d (bp 5)", int16(r[1]), int(54.25*32))
	}
	if int16(r[5]) != int16(-3.5*128) {
		t.Errorf("temperature raw %d, want %d (bp 7)", int16(r[5]), int(-3.5*128))
	}
	if got := text(readAll(t, apc, 532, 16)); got != "Smart-UPS 3000" {
		t.Errorf("model %q", got)
	}

	dsc := client(t, s.Addr("rack-d"), 2, time.Second)
	r = readAll(t, dsc, 1001, 4)
	// +10.5 A discharging; the device counts charge positive with an offset
	// of 3200 A in 0.1 A: raw = (-10.5 + 3200) / 0.1.
	if r[1] != 31895 {
		t.Errorf("current raw %d, want 31895", r[1])
	}
	if r[3] != 0xFFFF {
		t.Errorf("unavailable health raw %04X, want FFFF", r[3])
	}
	for i, v := range readAll(t, dsc, 10001, 128) {
		if v != 3301 {
			t.Fatalf("cell %d voltage raw %d, want 3301 mV", i+1, v)
		}
	}
	if r := readAll(t, dsc, 30000+500*1+3, 1); r[0] != 81 {
		t.Errorf("cell temperature raw %d, want 41+40", r[0])
	}
	if r := readAll(t, dsc, 50506, 1); r[0] != 1<<2 {
		t.Errorf("fire bits %04X, want pack 3", r[0])
	}
	// Between windows nothing is mapped.
	if _, err := dsc.ReadRegisters(1040, 10, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("gap read: %v", err)
	}
}

// TestScaleFactorFixed checks a fixed-address profile with {sf: NAME}: the
// scale-factor register is chosen and the value scaled by it.
func TestScaleFactorFixed(t *testing.T) {
	p, err := profile.Parse("sf.yaml", []byte(`
id: sf-test
vendor: test
model: test
firmware: "*"
source: test
protocol: modbus
scale_factors: {V_SF: 10}
points:
  - {name: battery.voltage.volts, address: 0, type: u16, scale: {sf: V_SF}, unit: V}
  - {name: battery.current.amps, address: 1, type: s32, word_order: little, scale: 0.01, unit: A}
  - {name: battery.temperature.celsius, address: 3, type: f32, unit: degC}
`))
	must(t, err)
	d, err := NewFixedDevice("d", 1, p, nil, nil)
	must(t, err)
	must(t, d.Set("battery.voltage.volts", 523.4))
	must(t, d.Set("battery.current.amps", -1234.56))
	must(t, d.Set("battery.temperature.celsius", 31.25))
	regs, ok := d.Image().ReadRegs(Holding, 0, 5, nil)
	if !ok {
		t.Fatal("unmapped")
	}
	sf, _ := d.Image().ReadRegs(Holding, 10, 1, nil)
	if got := float64(regs[0]) * math.Pow10(int(int16(sf[0]))); math.Abs(got-523.4) > 0.05 {
		t.Errorf("voltage %v (raw %d sf %d)", got, regs[0], int16(sf[0]))
	}
	if got := int32(uint32(regs[2])<<16 | uint32(regs[1])); got != -123456 {
		t.Errorf("s32 little word order raw %d, want -123456", got)
	}
	if got := math.Float32frombits(uint32(regs[3])<<16 | uint32(regs[4])); got != 31.25 {
		t.Errorf("f32 %v", got)
	}
	// A value too large for the register is refused, not clamped.
	if err := d.Set("battery.current.amps", 3e7); !errors.Is(err, ErrEncode) {
		t.Errorf("overflow: %v", err)
	}
}

// TestSpaces serves points in the input, coil and discrete spaces and
// refuses writes.
func TestSpaces(t *testing.T) {
	p, err := profile.Parse("spaces.yaml", []byte(`
id: spaces
vendor: test
model: test
firmware: "*"
source: test
protocol: modbus
points:
  - {name: ambient.temperature.celsius, space: input, address: 7, type: s16, scale: 0.1, unit: degC}
  - {name: alarm.smoke, space: discrete, address: 3, type: bool}
  - {name: door.open, space: coil, address: 0, type: bool}
  - {name: epo.active, space: coil, address: 1, type: bool}
`))
	must(t, err)
	set := mapProfiles{"spaces": p}
	s := startSim(t, `
devices:
  - id: io
    profile: spaces
    listen: tcp://127.0.0.1:0
    values: {ambient.temperature.celsius: -12.3, alarm.smoke: 1, epo.active: 1}
`, set)
	c := client(t, s.Addr("io"), 1, time.Second)
	r, err := c.ReadRegisters(7, 1, modbus.INPUT_REGISTER)
	if err != nil || int16(r[0]) != -123 {
		t.Errorf("input register %v %v", r, err)
	}
	if _, err := c.ReadRegisters(7, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("holding 7: %v", err)
	}
	d, err := c.ReadDiscreteInputs(3, 1)
	if err != nil || !d[0] {
		t.Errorf("discrete %v %v", d, err)
	}
	co, err := c.ReadCoils(0, 2)
	if err != nil || co[0] || !co[1] {
		t.Errorf("coils %v %v", co, err)
	}
	if _, err := c.ReadCoils(0, 3); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("coil 2: %v", err)
	}
	if err := c.WriteCoil(0, true); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Errorf("write coil: %v", err)
	}
	if err := c.WriteRegister(7, 1); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Errorf("write register: %v", err)
	}
}

type mapProfiles map[string]*profile.Profile

func (m mapProfiles) Get(id string) (*profile.Profile, bool) {
	p, ok := m[id]
	return p, ok
}

func TestFillGaps(t *testing.T) {
	s := startSim(t, `
devices:
  - {id: ups, profile: apc-smart-ups-modbus, listen: "tcp://127.0.0.1:0", fill_gaps: 8}
`, builtinProfiles(t))
	c := client(t, s.Addr("ups"), 1, time.Second)
	// The status block and the dynamic block up to its last point read whole.
	for _, blk := range [][2]uint16{{0, 25}, {128, 31}} {
		if _, err := c.ReadRegisters(blk[0], blk[1], modbus.HOLDING_REGISTER); err != nil {
			t.Errorf("block %d+%d: %v", blk[0], blk[1], err)
		}
	}
	if r := readAll(t, c, 132, 1); r[0] != 0 {
		t.Errorf("hole reads %d, want 0", r[0])
	}
	// Far from any point: still unmapped.
	if _, err := c.ReadRegisters(300, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("register 300: %v", err)
	}
}
