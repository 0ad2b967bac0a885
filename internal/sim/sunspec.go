package sim

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// RackOpts shapes a simulated SunSpec Li-ion rack: Strings strings of
// Modules modules of Cells cells, served as the model chain 1, 802, 803,
// Strings x 804, Strings*Modules x 805 and the end marker.
type RackOpts struct {
	Strings, Modules, Cells int
	// Base is the address of "SunS" (default 40000).
	Base uint16
	// UnitID is written to model 1's device address.
	UnitID uint8
	// CellVolts, CellCelsius, StringAmps and Charge are the starting values
	// (defaults 3.65 V, 25 °C, 5 A discharging, 95 %). Cells get a small
	// fixed spread around them so that max and min differ.
	CellVolts, CellCelsius, StringAmps, Charge float64
	// CapacityAh is each string's capacity (default 100 Ah): the bank's
	// charge follows the current over time unless it is pinned.
	CapacityAh float64
	// ChargePositive encodes battery current and power with + = charge, as
	// most SunSpec batteries do (default from the profile's current_sign,
	// else true). Values given to the simulator are always + = discharge.
	ChargePositive                       *bool
	Manufacturer, Model, Serial, Version string
}

// Limits that keep the chain inside the 16-bit address space.
const (
	maxRackStrings = 64
	maxRackModules = 64
	maxRackCells   = 256
)

func (o *RackOpts) defaults() error {
	if o.Strings < 1 || o.Strings > maxRackStrings {
		return fmt.Errorf("strings: %d, want 1..%d", o.Strings, maxRackStrings)
	}
	if o.Modules < 1 || o.Modules > maxRackModules {
		return fmt.Errorf("modules: %d, want 1..%d", o.Modules, maxRackModules)
	}
	if o.Cells < 1 || o.Cells > maxRackCells {
		return fmt.Errorf("cells: %d, want 1..%d", o.Cells, maxRackCells)
	}
	if o.Base == 0 {
		o.Base = 40000
	}
	if o.UnitID == 0 {
		o.UnitID = 1
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.CellVolts, 3.65)
	def(&o.CellCelsius, 25)
	def(&o.StringAmps, 5)
	def(&o.Charge, 95)
	def(&o.CapacityAh, 100)
	defs := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defs(&o.Manufacturer, "Emberwatch")
	defs(&o.Model, fmt.Sprintf("SimRack %dS%dM%dC", o.Strings, o.Modules, o.Cells))
	defs(&o.Serial, "SIM-0001")
	defs(&o.Version, "1.0.0")
	size := 2 + 68 + 64 + 28 + 32*o.Strings + o.Strings*(48+16*o.Modules) +
		o.Strings*o.Modules*(44+4*o.Cells) + 2
	if int(o.Base)+size > 1<<16 {
		return fmt.Errorf("a %d x %d x %d rack needs %d registers from %d: past address 65535", o.Strings, o.Modules, o.Cells, size, o.Base)
	}
	return nil
}

// Fixed scale factors: cells in mV, temperatures, currents and
// percentages in tenths.
const (
	sfCellV  = -3
	sfTmp    = -1
	sfA      = -1
	sfPct    = -1
	sfAMax   = -1
	sfDisCha = -1
)

// rackSFs are the scale factors that depend on the rack's size, chosen as
// the finest that still fits the largest plausible value (cells up to
// 4.5 V, currents up to 200 A a string, ratings plus 20 %).
type rackSFs struct{ modV, strV, w, wh, wMax, ah int }

func sizeSFs(o *RackOpts) rackSFs {
	modV := float64(o.Cells) * 4.5
	strV := modV * float64(o.Modules)
	nomV := o.CellVolts * float64(o.Modules*o.Cells)
	ah := o.CapacityAh * float64(o.Strings)
	return rackSFs{
		modV: fitSF(modV, math.MaxUint16, -2),
		strV: fitSF(strV, math.MaxUint16, -1),
		w:    fitSF(strV*200*float64(o.Strings), math.MaxInt16, 0),
		wh:   fitSF(1.2*ah*nomV, math.MaxUint16, 0),
		wMax: fitSF(1.2*100*nomV*float64(o.Strings), math.MaxUint16, 0),
		ah:   fitSF(1.2*ah, math.MaxUint16, 0),
	}
}

// fitSF returns the smallest exponent from finest up at which v fits
// under limit.
func fitSF(v, limit float64, finest int) int {
	e := finest
	for e < 10 && v/math.Pow10(e) > limit {
		e++
	}
	return e
}

// aggregate holds the points of one max/min/avg summary with the index of
// the max and min member.
type aggregate struct {
	max, maxAt, min, minAt, avg *point
}

func (a *aggregate) all() []*point { return []*point{a.max, a.maxAt, a.min, a.minAt, a.avg} }

type rackCell struct{ v, t, bal *point }

type rackModule struct {
	cells []rackCell
	// 805 fixed block
	v, soc, dod, soh, nbal *point
	cellV, cellT           aggregate
	// 804 module group (mirrors of the 805 values)
	gSoc, gSoh *point
	gCellV     aggregate
	gCellT     aggregate
}

type rackString struct {
	mods []*rackModule
	// 803 string group (primary current)
	a, soc, soh   *point
	gCellV, gModT aggregate
	// 804 fixed block
	v, a804, soc804, soh804, dod, nbal *point
	cellV, modT                        aggregate
}

// rack is a simulated SunSpec rack's state: cell values are primary, every
// aggregate is derived from them each tick unless pinned.
type rack struct {
	opts    RackOpts
	strs    []*rackString
	hb      *point
	bankSoC *point // 802 SoC, primary
	bankSoH *point
	last    time.Time // last tick, for charge counting
	// 802 derived
	v, vmax, vmin, a, w, chaSt, dod *point
	cellV                           aggregate
	cellVStr, cellVMod              [2]*point // string/module of max, min
	// 803 derived
	modT    aggregate
	modTMod [2]*point
	strV    aggregate
	strA    aggregate
	nbal    *point
}

// builder lays out one model at a time.
type builder struct {
	d    *Device
	base uint16 // the model's ID register
	pfx  string // internal name prefix: "sunspec.805.s1.m2."
	err  error
	at   map[uint16]*point
	flip bool
}

func (b *builder) static(off uint16, vals ...uint16) {
	if b.err == nil {
		b.err = b.d.img.Write(Holding, b.base+off, vals)
	}
}

// reg adds a register point at off; name "" takes the internal name
// pfx+sun.
func (b *builder) reg(off uint16, typ, sun, name string, sf *point, v float64) *point {
	if name == "" {
		name = b.pfx + sun
	}
	p := &point{name: name, space: Holding, addr: b.base + off, value: v, sf: sf}
	p.enc, _ = encodingFor(typ, 0, "", "", 1, 0, false, nil)
	if sf != nil {
		sf.users = append(sf.users, p)
	}
	if b.err == nil {
		if err := b.d.add(p); err != nil {
			b.err = err
		}
	}
	b.at[p.addr] = p
	return p
}

// signed adds a battery current or power register, encoded in the device's
// sign convention.
func (b *builder) signed(off uint16, sun, name string, sf *point, v float64) *point {
	p := b.reg(off, "s16", sun, name, sf, v)
	p.enc.Flip = b.flip
	return p
}

func (b *builder) str(off uint16, n int, sun, name, s string) *point {
	p := b.reg(off, "u16", sun, name, nil, 0)
	p.enc, _ = encodingFor("string", n, "", "", 1, 0, false, nil)
	p.text, p.str = true, s
	return p
}

func (b *builder) sf(off uint16, sun string, v int) *point {
	return b.reg(off, "s16", sun, "", nil, float64(v))
}

func (b *builder) derived(ps ...*point) {
	for _, p := range ps {
		p.derived = true
	}
}

// agg adds a max/where/min/where/avg group; at is the SunSpec suffix of
// the "where" points (Str, Mod, Cell).
func (b *builder) agg(maxOff, maxAtOff, minOff, minAtOff, avgOff uint16, typ, sun, at, name, unit string, sf *point) aggregate {
	a := aggregate{
		max:   b.reg(maxOff, typ, sun+"Max", nameOr(name, "max", unit), sf, 0),
		maxAt: b.reg(maxAtOff, "u16", sun+"Max"+at, "", nil, 1),
		min:   b.reg(minOff, typ, sun+"Min", nameOr(name, "min", unit), sf, 0),
		minAt: b.reg(minAtOff, "u16", sun+"Min"+at, "", nil, 1),
		avg:   b.reg(avgOff, typ, sun+"Avg", nameOr(name, "avg", unit), sf, 0),
	}
	b.derived(a.all()...)
	return a
}

// nameOr builds "<name>.<which>.<unit>" or "" (internal) when name is "".
func nameOr(name, which, unit string) string {
	if name == "" {
		return ""
	}
	return name + "." + which + "." + unit
}

// NewSunSpecRack builds a device serving a full SunSpec Li-ion rack. prof
// (the sunspec profile, may be nil) names the registers it maps, so that
// Set and scripts accept the profile's point names, and gives the sign
// convention.
func NewSunSpecRack(id string, opts RackOpts, prof *profile.Profile, log *slog.Logger) (*Device, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("rack %s: %w", id, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	flip := true
	if opts.ChargePositive != nil {
		flip = *opts.ChargePositive
	} else if prof != nil && prof.CurrentSign != "" {
		flip = prof.CurrentSign == "charge_positive"
	}
	d := newDevice(id, opts.UnitID, log)
	r := &rack{opts: opts}
	d.rack = r
	b := &builder{d: d, at: map[uint16]*point{}, flip: flip}
	o := opts
	b.base = o.Base
	b.static(0, 0x5375, 0x6E53) // "SunS"
	addr := int(o.Base) + 2

	// Model 1: common.
	b.base, b.pfx = uint16(addr), "sunspec.1."
	b.static(0, 1, 66)
	b.str(2, 16, "Mn", "bms.identity.manufacturer", o.Manufacturer)
	b.str(18, 16, "Md", "bms.identity.model", o.Model)
	b.str(34, 8, "Opt", "bms.identity.options", "Li-ion")
	b.str(42, 8, "Vr", "bms.identity.firmware", o.Version)
	b.str(50, 16, "SN", "bms.identity.serial", o.Serial)
	b.reg(66, "u16", "DA", "bms.identity.device_address", nil, float64(o.UnitID))
	b.static(67, 0)
	addr += 68

	// Model 802: battery base.
	b.base, b.pfx = uint16(addr), "sunspec.802."
	b.static(0, 802, 62)
	sfs := sizeSFs(&o)
	ahSF, whSF, wmSF := b.sf(52, "AHRtg_SF", sfs.ah), b.sf(53, "WHRtg_SF", sfs.wh), b.sf(54, "WChaDisChaMax_SF", sfs.wMax)
	dcSF, socSF, dodSF, sohSF := b.sf(55, "DisChaRte_SF", sfDisCha), b.sf(56, "SoC_SF", sfPct), b.sf(57, "DoD_SF", sfPct), b.sf(58, "SoH_SF", sfPct)
	vSF, cvSF, aSF, amSF, wSF := b.sf(59, "V_SF", sfs.strV), b.sf(60, "CellV_SF", sfCellV), b.sf(61, "A_SF", sfA), b.sf(62, "AMax_SF", sfAMax), b.sf(63, "W_SF", sfs.w)
	nomV := o.CellVolts * float64(o.Modules*o.Cells)
	ah := o.CapacityAh * float64(o.Strings)
	b.reg(2, "u16", "AHRtg", "battery.rating.capacity.ah", ahSF, ah)
	b.reg(3, "u16", "WHRtg", "battery.rating.energy.wh", whSF, math.Round(ah*nomV/10)*10)
	b.reg(4, "u16", "WChaRteMax", "battery.rating.charge_power.watts", wmSF, math.Round(nomV*50*float64(o.Strings)/10)*10)
	b.reg(5, "u16", "WDisChaRteMax", "battery.rating.discharge_power.watts", wmSF, math.Round(nomV*100*float64(o.Strings)/10)*10)
	b.reg(6, "u16", "DisChaRte", "battery.self_discharge.percent", dcSF, 0.1)
	b.reg(7, "u16", "SoCMax", "battery.rating.charge.max.percent", socSF, 100)
	b.reg(8, "u16", "SoCMin", "battery.rating.charge.min.percent", socSF, 5)
	b.reg(9, "u16", "SocRsvMax", "battery.reserve.max.percent", socSF, 95)
	b.reg(10, "u16", "SoCRsvMin", "battery.reserve.min.percent", socSF, 20)
	r.bankSoC = b.reg(11, "u16", "SoC", "battery.charge.percent", socSF, o.Charge)
	r.dod = b.reg(12, "u16", "DoD", "battery.depth_of_discharge.percent", dodSF, 100-o.Charge)
	r.bankSoH = b.reg(13, "u16", "SoH", "battery.health.percent", sohSF, 98)
	b.reg(14, "u32", "NCyc", "battery.cycles.count", nil, 120)
	r.chaSt = b.reg(16, "enum16", "ChaSt", "battery.charger.state", nil, 3)
	b.reg(17, "enum16", "LocRemCtl", "bms.control_mode", nil, 0)
	r.hb = b.reg(18, "u16", "Hb", "bms.heartbeat.count", nil, 0)
	b.reg(19, "u16", "CtrlHb", "", nil, 0)
	b.reg(20, "u16", "AlmRst", "", nil, 0)
	b.reg(21, "enum16", "Typ", "battery.chemistry", nil, 4)
	b.reg(22, "enum16", "State", "bms.state", nil, 3)
	b.reg(23, "enum16", "StateVnd", "bms.state.vendor", nil, 0)
	b.reg(24, "u32", "WarrDt", "battery.date.warranty", nil, 0)
	b.reg(26, "bitfield32", "Evt1", "bms.events.evt1", nil, 0)
	b.reg(28, "bitfield32", "Evt2", "bms.events.evt2", nil, 0)
	b.reg(30, "bitfield32", "EvtVnd1", "bms.events.vendor1", nil, 0)
	b.reg(32, "bitfield32", "EvtVnd2", "bms.events.vendor2", nil, 0)
	r.v = b.reg(34, "u16", "V", "battery.voltage.volts", vSF, 0)
	r.vmax = b.reg(35, "u16", "VMax", "battery.voltage.max.volts", vSF, 0)
	r.vmin = b.reg(36, "u16", "VMin", "battery.voltage.min.volts", vSF, 0)
	r.cellV = aggregate{
		max: b.reg(37, "u16", "CellVMax", "battery.cell.voltage.max.volts", cvSF, 0),
		min: b.reg(40, "u16", "CellVMin", "battery.cell.voltage.min.volts", cvSF, 0),
		avg: b.reg(43, "u16", "CellVAvg", "battery.cell.voltage.avg.volts", cvSF, 0),
	}
	r.cellVStr = [2]*point{b.reg(38, "u16", "CellVMaxStr", "battery.cell.voltage.max.string", nil, 1), b.reg(41, "u16", "CellVMinStr", "battery.cell.voltage.min.string", nil, 1)}
	r.cellVMod = [2]*point{b.reg(39, "u16", "CellVMaxMod", "battery.cell.voltage.max.module", nil, 1), b.reg(42, "u16", "CellVMinMod", "battery.cell.voltage.min.module", nil, 1)}
	r.a = b.signed(44, "A", "battery.current.amps", aSF, 0)
	b.reg(45, "u16", "AChaMax", "battery.charge_limit.amps", amSF, 50*float64(o.Strings))
	b.reg(46, "u16", "ADisChaMax", "battery.discharge_limit.amps", amSF, 100*float64(o.Strings))
	r.w = b.signed(47, "W", "battery.power.watts", wSF, 0)
	b.reg(48, "enum16", "ReqInvState", "bms.inverter_request", nil, 0)
	b.signed(49, "ReqW", "bms.power_request.watts", wSF, 0)
	b.reg(50, "enum16", "SetOp", "", nil, 1)
	b.reg(51, "enum16", "SetInvState", "", nil, 3)
	b.derived(r.v, r.vmax, r.vmin, r.a, r.w, r.chaSt, r.dod, r.cellV.max, r.cellV.min, r.cellV.avg,
		r.cellVStr[0], r.cellVStr[1], r.cellVMod[0], r.cellVMod[1])
	addr += 64

	// Model 803: bank, with one 32-register group per string.
	b.base, b.pfx = uint16(addr), "sunspec.803."
	b.static(0, 803, uint16(26+32*o.Strings))
	b.reg(2, "u16", "NStr", "bms.strings.count", nil, float64(o.Strings))
	b.reg(3, "u16", "NStrCon", "bms.strings.connected.count", nil, float64(o.Strings))
	cvSF, mtSF, aSF := b.sf(22, "CellV_SF", sfCellV), b.sf(23, "ModTmp_SF", sfTmp), b.sf(24, "A_SF", sfA)
	sohSF, socSF, vSF = b.sf(25, "SoH_SF", sfPct), b.sf(26, "SoC_SF", sfPct), b.sf(27, "V_SF", sfs.strV)
	r.modT = b.agg(4, 5, 7, 8, 10, "s16", "ModTmp", "Str", "bms.module.temperature", "celsius", mtSF)
	r.modT.maxAt.name, r.modT.minAt.name = "bms.module.temperature.max.string", "bms.module.temperature.min.string"
	r.modTMod = [2]*point{b.reg(6, "u16", "ModTmpMaxMod", "bms.module.temperature.max.module", nil, 1), b.reg(9, "u16", "ModTmpMinMod", "bms.module.temperature.min.module", nil, 1)}
	b.derived(r.modTMod[0], r.modTMod[1])
	r.strV = b.agg(11, 12, 13, 14, 15, "u16", "StrV", "Str", "bms.string.voltage", "volts", vSF)
	r.strV.maxAt.name, r.strV.minAt.name = "bms.string.voltage.max.string", "bms.string.voltage.min.string"
	r.strA = aggregate{
		max: b.signed(16, "StrAMax", "", aSF, 0), maxAt: b.reg(17, "u16", "StrAMaxStr", "", nil, 1),
		min: b.signed(18, "StrAMin", "", aSF, 0), minAt: b.reg(19, "u16", "StrAMinStr", "", nil, 1),
		avg: b.signed(20, "StrAAvg", "bms.string.current.avg.amps", aSF, 0),
	}
	b.derived(r.strA.all()...)
	r.nbal = b.reg(21, "u16", "NCellBal", "bms.cells.balancing.count", nil, 0)
	b.derived(r.nbal)
	// The index points were named above before registration; re-index.
	b.rename(r.modT.maxAt, r.modT.minAt, r.strV.maxAt, r.strV.minAt)
	bank := b.base
	for i := range o.Strings {
		s := &rackString{}
		r.strs = append(r.strs, s)
		si := i + 1
		sn := fmt.Sprintf("string[%d]", si)
		b.base, b.pfx = bank+28+uint16(32*i), fmt.Sprintf("sunspec.803.s%d.", si)
		b.static(0, uint16(o.Modules))
		st := b.reg(1, "bitfield32", "StrSt", sn+".status", nil, 0)
		b.bits(st, map[int]string{0: sn + ".enabled", 1: sn + ".contactor.closed"}, 1)
		b.reg(3, "enum16", "StrConFail", sn+".connection_failure", nil, 0)
		s.soc = b.reg(4, "u16", "StrSoC", sn+".charge.percent", socSF, o.Charge)
		s.soh = b.reg(5, "u16", "StrSoH", sn+".health.percent", sohSF, 98)
		s.a = b.signed(6, "StrA", sn+".current.amps", aSF, o.StringAmps)
		s.gCellV = aggregate{
			max: b.reg(7, "u16", "StrCellVMax", sn+".cell.voltage.max.volts", cvSF, 0), maxAt: b.reg(8, "u16", "StrCellVMaxMod", sn+".cell.voltage.max.module", nil, 1),
			min: b.reg(9, "u16", "StrCellVMin", sn+".cell.voltage.min.volts", cvSF, 0), minAt: b.reg(10, "u16", "StrCellVMinMod", sn+".cell.voltage.min.module", nil, 1),
			avg: b.reg(11, "u16", "StrCellVAvg", sn+".cell.voltage.avg.volts", cvSF, 0),
		}
		s.gModT = aggregate{
			max: b.reg(12, "s16", "StrModTmpMax", sn+".module.temperature.max.celsius", mtSF, 0), maxAt: b.reg(13, "u16", "StrModTmpMaxMod", sn+".module.temperature.max.module", nil, 1),
			min: b.reg(14, "s16", "StrModTmpMin", sn+".module.temperature.min.celsius", mtSF, 0), minAt: b.reg(15, "u16", "StrModTmpMinMod", sn+".module.temperature.min.module", nil, 1),
			avg: b.reg(16, "s16", "StrModTmpAvg", sn+".module.temperature.avg.celsius", mtSF, 0),
		}
		b.derived(s.soc, s.soh)
		b.derived(s.gCellV.all()...)
		b.derived(s.gModT.all()...)
		b.reg(17, "enum16", "StrDisRsn", sn+".disabled_reason", nil, 0)
		b.reg(18, "bitfield32", "StrConSt", sn+".contactors", nil, 3)
		b.reg(20, "bitfield32", "StrEvt1", sn+".events.evt1", nil, 0)
		b.reg(22, "bitfield32", "StrEvt2", sn+".events.evt2", nil, 0)
		b.reg(24, "bitfield32", "StrEvtVnd1", sn+".events.vendor1", nil, 0)
		b.reg(26, "bitfield32", "StrEvtVnd2", sn+".events.vendor2", nil, 0)
		b.reg(28, "enum16", "StrSetEna", "", nil, 1)
		b.reg(29, "enum16", "StrSetCon", "", nil, 1)
		b.static(30, 0, 0)
	}
	addr += 28 + 32*o.Strings

	// Model 804 per string.
	for i, s := range r.strs {
		si := i + 1
		sn := fmt.Sprintf("string[%d]", si)
		b.base, b.pfx = uint16(addr), fmt.Sprintf("sunspec.804.s%d.", si)
		b.static(0, 804, uint16(46+16*o.Modules), uint16(si), uint16(o.Modules))
		socSF, sohSF, dodSF, aSF := b.sf(38, "SoC_SF", sfPct), b.sf(39, "SoH_SF", sfPct), b.sf(40, "DoD_SF", sfPct), b.sf(41, "A_SF", sfA)
		vSF, cvSF, mtSF := b.sf(42, "V_SF", sfs.strV), b.sf(43, "CellV_SF", sfCellV), b.sf(44, "ModTmp_SF", sfTmp)
		b.reg(3, "u16", "NMod", sn+".modules.count", nil, float64(o.Modules))
		b.reg(4, "bitfield32", "St", "", nil, 3)
		b.reg(6, "enum16", "ConFail", "", nil, 0)
		s.nbal = b.reg(7, "u16", "NCellBal", sn+".cells.balancing.count", nil, 0)
		s.soc804 = b.reg(8, "u16", "SoC", "", socSF, o.Charge)
		s.dod = b.reg(9, "u16", "DoD", sn+".depth_of_discharge.percent", dodSF, 100-o.Charge)
		b.reg(10, "u32", "NCyc", sn+".cycles.count", nil, 120)
		s.soh804 = b.reg(12, "u16", "SoH", "", sohSF, 98)
		s.a804 = b.signed(13, "A", "", aSF, 0)
		s.v = b.reg(14, "u16", "V", sn+".voltage.volts", vSF, 0)
		s.cellV = b.agg(15, 16, 17, 18, 19, "u16", "CellV", "Mod", "", "", cvSF)
		s.modT = b.agg(20, 21, 22, 23, 24, "s16", "ModTmp", "Mod", "", "", mtSF)
		b.static(25, 0)
		b.reg(26, "bitfield32", "ConSt", "", nil, 3)
		b.reg(28, "bitfield32", "Evt1", "", nil, 0)
		b.reg(30, "bitfield32", "Evt2", "", nil, 0)
		b.reg(32, "bitfield32", "EvtVnd1", "", nil, 0)
		b.reg(34, "bitfield32", "EvtVnd2", "", nil, 0)
		b.reg(36, "enum16", "SetEna", "", nil, 1)
		b.reg(37, "enum16", "SetCon", "", nil, 1)
		b.static(45, 0, 0, 0)
		b.derived(s.nbal, s.soc804, s.dod, s.soh804, s.a804, s.v)
		group := b.base + 48
		for j := range o.Modules {
			m := &rackModule{}
			s.mods = append(s.mods, m)
			mn := fmt.Sprintf("%s.module[%d]", sn, j+1)
			b.base, b.pfx = group+uint16(16*j), fmt.Sprintf("sunspec.804.s%d.m%d.", si, j+1)
			b.reg(0, "u16", "ModNCell", mn+".cells.count", nil, float64(o.Cells))
			m.gSoc = b.reg(1, "u16", "ModSoC", mn+".charge.percent", socSF, o.Charge)
			m.gSoh = b.reg(2, "u16", "ModSoH", mn+".health.percent", sohSF, 98)
			m.gCellV = aggregate{
				max: b.reg(3, "u16", "ModCellVMax", mn+".cell.voltage.max.volts", cvSF, 0), maxAt: b.reg(4, "u16", "ModCellVMaxCell", mn+".cell.voltage.max.cell", nil, 1),
				min: b.reg(5, "u16", "ModCellVMin", mn+".cell.voltage.min.volts", cvSF, 0), minAt: b.reg(6, "u16", "ModCellVMinCell", mn+".cell.voltage.min.cell", nil, 1),
				avg: b.reg(7, "u16", "ModCellVAvg", mn+".cell.voltage.avg.volts", cvSF, 0),
			}
			m.gCellT = aggregate{
				max: b.reg(8, "s16", "ModCellTmpMax", mn+".cell.temperature.max.celsius", mtSF, 0), maxAt: b.reg(9, "u16", "ModCellTmpMaxCell", mn+".cell.temperature.max.cell", nil, 1),
				min: b.reg(10, "s16", "ModCellTmpMin", mn+".cell.temperature.min.celsius", mtSF, 0), minAt: b.reg(11, "u16", "ModCellTmpMinCell", mn+".cell.temperature.min.cell", nil, 1),
				avg: b.reg(12, "s16", "ModCellTmpAvg", mn+".cell.temperature.avg.celsius", mtSF, 0),
			}
			b.static(13, 0, 0, 0)
			b.derived(m.gSoc, m.gSoh)
			b.derived(m.gCellV.all()...)
			b.derived(m.gCellT.all()...)
		}
		addr += 48 + 16*o.Modules
	}

	// Model 805 per module.
	for i, s := range r.strs {
		for j, m := range s.mods {
			si, mj := i+1, j+1
			mn := fmt.Sprintf("string[%d].module[%d]", si, mj)
			b.base, b.pfx = uint16(addr), fmt.Sprintf("sunspec.805.s%d.m%d.", si, mj)
			b.static(0, 805, uint16(42+4*o.Cells), uint16(si), uint16(mj), uint16(o.Cells))
			socSF, sohSF, dodSF := b.sf(38, "SoC_SF", sfPct), b.sf(39, "SoH_SF", sfPct), b.sf(40, "DoD_SF", sfPct)
			vSF, cvSF, tSF := b.sf(41, "V_SF", sfs.modV), b.sf(42, "CellV_SF", sfCellV), b.sf(43, "Tmp_SF", sfTmp)
			m.soc = b.reg(5, "u16", "SoC", "", socSF, o.Charge)
			m.dod = b.reg(6, "u16", "DoD", mn+".depth_of_discharge.percent", dodSF, 100-o.Charge)
			m.soh = b.reg(7, "u16", "SoH", "", sohSF, 98)
			b.reg(8, "u32", "NCyc", mn+".cycles.count", nil, 120)
			m.v = b.reg(10, "u16", "V", mn+".voltage.volts", vSF, 0)
			m.cellV = b.agg(11, 12, 13, 14, 15, "u16", "CellV", "Cell", "", "", cvSF)
			m.cellT = b.agg(16, 17, 18, 19, 20, "s16", "CellTmp", "Cell", "", "", tSF)
			m.nbal = b.reg(21, "u16", "NCellBal", mn+".cells.balancing.count", nil, 0)
			b.str(22, 16, "SN", mn+".serial", fmt.Sprintf("%s-S%02dM%02d", o.Serial, si, mj))
			b.derived(m.soc, m.dod, m.soh, m.v, m.nbal)
			cells := b.base + 44
			for k := range o.Cells {
				ck := k + 1
				cn := fmt.Sprintf("%s.cell[%d]", mn, ck)
				b.base, b.pfx = cells+uint16(4*k), fmt.Sprintf("sunspec.805.s%d.m%d.c%d.", si, mj, ck)
				// A fixed, reproducible spread: ±5 mV and ±0.3 °C.
				spread := float64((si*31+mj*7+ck*13)%11 - 5)
				c := rackCell{
					v: b.reg(0, "u16", "CellV", cn+".voltage.volts", cvSF, math.Round((o.CellVolts+0.001*spread)*1000)/1000),
					t: b.reg(1, "s16", "CellTmp", cn+".temperature.celsius", tSF, math.Round((o.CellCelsius+0.06*spread)*10)/10),
				}
				st := b.reg(2, "bitfield32", "CellSt", cn+".status", nil, 0)
				c.bal = b.bits(st, map[int]string{0: cn + ".balancing"}, 0)
				m.cells = append(m.cells, c)
			}
			addr += 44 + 4*o.Cells
		}
	}
	b.base = uint16(addr)
	b.static(0, 0xFFFF, 0)
	if b.err != nil {
		return nil, fmt.Errorf("rack %s: %w", id, b.err)
	}
	if prof != nil {
		if err := aliasSunSpec(d, prof, b.at, o.Base); err != nil {
			return nil, fmt.Errorf("rack %s: profile %s: %w", id, prof.ID, err)
		}
	}
	r.derive()
	if err := d.encodeAll(d.points); err != nil {
		return nil, fmt.Errorf("rack %s: %w", id, err)
	}
	return d, nil
}

// rename re-registers points whose name was changed after add.
func (b *builder) rename(ps ...*point) {
	for n, p := range b.d.byName {
		for _, q := range ps {
			if p == q && n != q.name {
				delete(b.d.byName, n)
				b.d.byName[q.name] = q
			}
		}
	}
}

// bits adds boolean points for bits of bitfield p and returns the one for
// bit 0 (nil if none). set is the initial mask.
func (b *builder) bits(p *point, names map[int]string, set uint64) *point {
	var first *point
	for bit, n := range names {
		q := &point{name: n, space: p.space, addr: p.addr, parent: p, bit: bit, value: float64(set >> bit & 1)}
		p.bits = append(p.bits, q)
		if b.err == nil {
			if err := b.d.add(q); err != nil {
				b.err = err
			}
		}
		if bit == 0 {
			first = q
		}
	}
	return first
}

// aliasSunSpec walks the profile's SunSpec models over the built chain and
// names each mapped register with the profile's point name, so that the
// profile's vocabulary reaches the simulator even where it differs from the
// simulator's own names. Points the profile maps where the chain has no
// register are reported.
func aliasSunSpec(d *Device, prof *profile.Profile, at map[uint16]*point, base uint16) error {
	if prof.SunSpec == nil {
		return nil
	}
	// Walk the chain from the image: model id, start, length.
	addr := int(base) + 2
	for addr < 1<<16-1 {
		hdr, ok := d.img.ReadRegs(Holding, uint16(addr), 2, nil)
		if !ok || hdr[0] == 0xFFFF {
			break
		}
		id, l := hdr[0], int(hdr[1])
		for mi := range prof.SunSpec.Models {
			m := &prof.SunSpec.Models[mi]
			if m.ID != id {
				continue
			}
			vars := map[string]int{}
			for name, off := range m.Index {
				v, ok := d.img.ReadRegs(Holding, uint16(addr)+off, 1, nil)
				if !ok {
					return fmt.Errorf("model %d index %s: offset %d not in the chain", id, name, off)
				}
				vars[name] = int(v[0])
			}
			start, end := addr, addr+2+l
			count := func(bl *profile.Block, vars map[string]int, first uint16) (int, error) {
				if bl.Fit {
					if bl.Stride == 0 {
						return 0, fmt.Errorf("block %s: fit with stride 0", bl.Name)
					}
					return (end - int(first)) / int(bl.Stride), nil
				}
				name := profile.ExpandName(bl.CountFrom, vars)
				p, ok := d.byName[name]
				if !ok {
					return 0, fmt.Errorf("count_from %s: no such point", name)
				}
				return int(p.value), nil
			}
			err := profile.Expand(m.Scope(), uint16(start), vars, count, func(in profile.Instance) error {
				p := at[in.Addr]
				if p == nil {
					if in.Name != "" && !strings.Contains(in.Name, "{") {
						d.log.Debug("profile point has no simulated register", "point", in.Name, "addr", in.Addr)
					}
					return nil
				}
				if p.parent == nil && in.Point.RegCount() != p.enc.Regs && p.enc.Regs > 0 {
					return fmt.Errorf("point %s at %d: profile says %s (%d registers), the chain has %s", in.Name, in.Addr, in.Point.Type, in.Point.RegCount(), p.enc.Type)
				}
				d.alias(p, in.Name)
				for _, bit := range sortedBits(in.Bits) {
					n := in.Bits[bit]
					var found bool
					for _, q := range p.bits {
						if q.bit == bit {
							d.alias(q, n)
							found = true
						}
					}
					if !found && strings.HasPrefix(p.enc.Type, "bitfield") {
						// A bit the chain did not name: a point of its own.
						q := &point{name: n, space: p.space, addr: p.addr, parent: p, bit: bit}
						if err := d.add(q); err != nil {
							return err
						}
						p.bits = append(p.bits, q)
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("model %d at %d: %w", id, addr, err)
			}
		}
		addr += 2 + l
	}
	return nil
}

// setD sets a derived point unless it is pinned by Set or a script.
func setD(p *point, v float64) {
	if p != nil && !p.pinned {
		p.value = v
	}
}

// stats accumulates max/min/avg with 1-based member indices.
type stats struct {
	n            int
	sum          float64
	max, min     float64
	maxAt, minAt int
}

func (s *stats) add(v float64, at int) {
	if s.n == 0 || v > s.max {
		s.max, s.maxAt = v, at
	}
	if s.n == 0 || v < s.min {
		s.min, s.minAt = v, at
	}
	s.n++
	s.sum += v
}

func (s *stats) set(a aggregate) {
	if s.n == 0 {
		return
	}
	setD(a.max, s.max)
	setD(a.maxAt, float64(s.maxAt))
	setD(a.min, s.min)
	setD(a.minAt, float64(s.minAt))
	setD(a.avg, s.sum/float64(s.n))
}

// tick advances what changes by itself with time: the heartbeat, and the
// bank's charge, counted from the string currents (+ = discharge) against
// the rated capacity unless the charge is pinned.
func (r *rack) tick(now time.Time) {
	if !r.hb.pinned {
		r.hb.value = float64((int(r.hb.value) + 1) & 0xFFFF)
	}
	if !r.last.IsZero() && now.After(r.last) && !r.bankSoC.pinned {
		amps := 0.0
		for _, s := range r.strs {
			if !s.a.unavailable {
				amps += s.a.value
			}
		}
		ah := r.opts.CapacityAh * float64(len(r.strs))
		soc := r.bankSoC.value - amps*now.Sub(r.last).Hours()/ah*100
		r.bankSoC.value = min(max(soc, 0), 100)
	}
	r.last = now
}

// derive recomputes every aggregate from the cells up, skipping
// unavailable members and pinned aggregates. Bank-level indices carry both
// the string and the module: at = string<<16 | module.
func (r *rack) derive() {
	var bankCellV, bankModT, bankStrV, bankStrA stats
	bal, sumA := 0, 0.0
	soc, soh := r.bankSoC.value, r.bankSoH.value
	for i, s := range r.strs {
		var strCellV, strModT stats
		strV, strBal := 0.0, 0
		for j, m := range s.mods {
			var cv, ct stats
			modV, modBal := 0.0, 0
			for k, c := range m.cells {
				if !c.v.unavailable {
					cv.add(c.v.value, k+1)
					strCellV.add(c.v.value, j+1)
					bankCellV.add(c.v.value, (i+1)<<16|(j+1))
					modV += c.v.value
				}
				if !c.t.unavailable {
					ct.add(c.t.value, k+1)
				}
				if c.bal.value != 0 {
					modBal++
				}
			}
			cv.set(m.cellV)
			cv.set(m.gCellV)
			ct.set(m.cellT)
			ct.set(m.gCellT)
			setD(m.v, modV)
			setD(m.nbal, float64(modBal))
			setD(m.soc, soc)
			setD(m.gSoc, soc)
			setD(m.dod, 100-soc)
			setD(m.soh, soh)
			setD(m.gSoh, soh)
			if ct.n > 0 {
				// A module's temperature is its cells' average.
				t := ct.sum / float64(ct.n)
				strModT.add(t, j+1)
				bankModT.add(t, (i+1)<<16|(j+1))
			}
			strV += m.v.value
			strBal += int(m.nbal.value)
		}
		strCellV.set(s.gCellV)
		strCellV.set(s.cellV)
		strModT.set(s.gModT)
		strModT.set(s.modT)
		setD(s.v, strV)
		setD(s.nbal, float64(strBal))
		setD(s.soc, soc)
		setD(s.soc804, soc)
		setD(s.dod, 100-soc)
		setD(s.soh, soh)
		setD(s.soh804, soh)
		setD(s.a804, s.a.value)
		bal += int(s.nbal.value)
		bankStrV.add(s.v.value, i+1)
		if !s.a.unavailable {
			bankStrA.add(s.a.value, i+1)
			sumA += s.a.value
		}
	}
	if bankCellV.n > 0 {
		bankCellV.set(r.cellV)
		setD(r.cellVStr[0], float64(bankCellV.maxAt>>16))
		setD(r.cellVMod[0], float64(bankCellV.maxAt&0xFFFF))
		setD(r.cellVStr[1], float64(bankCellV.minAt>>16))
		setD(r.cellVMod[1], float64(bankCellV.minAt&0xFFFF))
	}
	if bankModT.n > 0 {
		bankModT.set(r.modT)
		setD(r.modT.maxAt, float64(bankModT.maxAt>>16))
		setD(r.modTMod[0], float64(bankModT.maxAt&0xFFFF))
		setD(r.modT.minAt, float64(bankModT.minAt>>16))
		setD(r.modTMod[1], float64(bankModT.minAt&0xFFFF))
	}
	bankStrV.set(r.strV)
	bankStrA.set(r.strA)
	setD(r.nbal, float64(bal))
	setD(r.v, bankStrV.sum/float64(max(bankStrV.n, 1)))
	setD(r.vmax, bankStrV.max)
	setD(r.vmin, bankStrV.min)
	setD(r.a, sumA)
	setD(r.w, r.v.value*sumA)
	setD(r.dod, 100-soc)
	switch {
	case sumA > 0.5:
		setD(r.chaSt, 3) // discharging
	case sumA < -0.5:
		setD(r.chaSt, 4) // charging
	case soc >= 99.5:
		setD(r.chaSt, 5) // full
	default:
		setD(r.chaSt, 6) // holding
	}
}
