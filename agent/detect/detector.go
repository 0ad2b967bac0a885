package detect

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

const (
	ringCap   = 64 // samples per slope series
	maxDips   = 16 // dip times remembered per cell
	driftCap  = 96 // hourly rest samples per cell (4 days)
	minuteNs  = int64(time.Minute)
	hourNs    = int64(time.Hour)
	frozenMin = 16 // numeric points needed to call an identical frame frozen
)

// entity kinds of temperature sensors.
const (
	kindCell = iota
	kindModule
	kindSingle // battery-level: no peers, absolute rules only
)

// group is a set of peer sensors (the cells of a module, or the module
// sensors of a string) whose median is the reference for each member.
type group struct {
	members  []int32 // temperature or voltage entity indices
	med      float64
	ok       bool
	lastVary int64 // last time a non-stuck member's raw value changed
	str      bool  // a whole-string fallback group: computed only when needed
	need     bool
}

// hygiene is the per-sensor state of the checks run before any rule.
type hygiene struct {
	raw       float64 // last raw value seen
	sameSince int64   // start of the current run of bit-identical raw values
	sameN     int32   // samples in that run
	haveRaw   bool
	stuck     bool
	valid     bool    // this round's value is usable
	val       float64 // this round's accepted value
	last      float64 // last accepted value
	lastAt    int64
	haveLast  bool
	pending   bool // a jump held for one-sample look-ahead
	pendVal   float64
	badN      int32 // consecutive invalid samples
	badSince  int64
	fault     drivers.Fault
	spikeAt   int64
	spikeVal  float64
}

type tempEnt struct {
	h        hygiene
	idx      int32 // reading index
	kind     int8
	grp      int32 // -1: none
	sgrp     int32 // whole-string fallback group of a cell, -1
	volt     int32 // voltage entity of the same cell, -1
	comp     string
	dT       float64
	hasDT    bool
	realHi   bool  // above range, accepted as real
	hiN      int32 // consecutive accepted samples >= TempEmergency
	rateSpan int64
	rsPrev   float64
	rsPrevAt int64
	ser      series
	therm    *cond
	sensor   *cond
}

type voltEnt struct {
	h          hygiene
	idx        int32
	bal        int32 // balancing reading index, -1
	temp       int32 // temperature entity of the same cell, -1
	grp        int32
	sgrp       int32 // whole-string fallback group, -1
	ovs        int32 // string over-voltage aggregate, -1
	str        int32 // current index, -1
	cellNo     int
	nb         [2]int32 // neighbour voltage entities in the group, -1
	comp       string
	collapsed  bool
	balUntil   int64
	balNow     bool
	dV, prevDV float64
	hasPrev    bool
	base       float64
	hasBase    bool
	prevI      float64
	dipSize    float64
	driftVal   float64
	driftOK    bool
	dips       [maxDips]int64
	nDips      int
	dipHead    int
	lastDrift  int64
	drift      series
	elec       *cond
	sensor     *cond
}

type gasEnt struct {
	h         hygiene
	idx       int32
	species   string // h2, co, voc, ...
	comp      string
	base      float64
	haveBase  bool
	minute    int64
	curMin    float64
	minima    []float64 // ring of per-minute minima
	mHead, mN int
	ser       series
	x         float64 // this round's excess over baseline
	rs        int     // first rule index in the gas condition
}

// strOV is a string's over-voltage aggregate: a charger fault overcharges
// every cell, and that is one condition, not one per cell.
type strOV struct {
	comp    string
	c       *cond
	members []int32 // voltage entities
	near    bool    // some cell is near the limit while charging
	med     float64 // median charging cell voltage (-Inf when not near)
	maxV    float64
	maxComp string
}

// Detector is the thermal-runaway detector of one device. It is a pure
// function of the rounds it is given: no clock, no I/O, no goroutines. It
// is not safe for concurrent use; the agent's sampling loop owns it.
type Detector struct {
	cfg    Config
	device string
	points []*drivers.Point

	temps       []tempEnt
	volts       []voltEnt
	gases       []gasEnt
	tgrps       []group
	vgrps       []group
	currents    []int32 // reading index per string, -1
	battCurrent int32
	ambient     int32
	smoke, fire int32

	ovs                    []strOV // per string: whole-string over-voltage
	conds                  []*cond
	byKey                  map[string]*cond
	gas, env, fireC, comms *cond

	// round state
	epoch     int64
	lastAt    int64
	period    float64 // estimated sampling period, s
	lastGood  int64
	missed    int
	prevRaw   []float64
	pad       []drivers.Reading // readings when the caller's slice has the wrong length
	stuckNow  int32
	curI      []float64
	scratch   []float64
	medScr    []float64
	rackSer   series
	famLevel  [4]wire.Stage
	famScr    []string
	alphaBase float64
	// environment inputs gathered while stepping temperatures
	envMax     float64
	envMaxComp string
	rackSum    float64
	rackN      int
}

// New binds a detector to a device's compiled points. Points it does not
// know are ignored. cfg should come from DefaultConfig or Overrides.Config.
func New(cfg Config, device string, points []*drivers.Point) *Detector {
	d := &Detector{cfg: cfg, device: device, points: points, byKey: map[string]*cond{},
		battCurrent: -1, ambient: -1, smoke: -1, fire: -1}
	d.bind()
	return d
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

func cellParent(comp string) (parent string, cell int, ok bool) {
	i := strings.LastIndex(comp, "/cell/")
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(comp[i+len("/cell/"):])
	if err != nil {
		return "", 0, false
	}
	return comp[:i], n, true
}

func stringOf(comp string) string {
	parts := strings.SplitN(comp, "/", 3)
	if len(parts) >= 2 && parts[0] == "string" {
		return parts[0] + "/" + parts[1]
	}
	return ""
}

func (d *Detector) bind() {
	tg := map[string]int32{}
	vg := map[string]int32{}
	strIdx := map[string]int32{}
	tempOf := map[string]int32{}
	voltOf := map[string]int32{}
	balOf := map[string]int32{}
	getGroup := func(m map[string]int32, gs *[]group, key string) int32 {
		if g, ok := m[key]; ok {
			return g
		}
		*gs = append(*gs, group{})
		m[key] = int32(len(*gs) - 1)
		return m[key]
	}
	for i, p := range d.points {
		if p == nil {
			continue
		}
		idx := int32(i)
		switch {
		case p.Field == "temperature.celsius" && p.Component != "":
			e := tempEnt{idx: idx, comp: p.Component, volt: -1, sgrp: -1}
			if parent, _, ok := cellParent(p.Component); ok {
				e.kind = kindCell
				e.grp = getGroup(tg, &d.tgrps, "cells:"+parent)
				if s := stringOf(p.Component); s != "" && s != parent {
					e.sgrp = getGroup(tg, &d.tgrps, "cellstr:"+s)
					d.tgrps[e.sgrp].str = true
				}
				tempOf[p.Component] = int32(len(d.temps))
			} else {
				e.kind = kindModule
				e.grp = getGroup(tg, &d.tgrps, "modules:"+stringOf(p.Component))
			}
			d.temps = append(d.temps, e)
		case p.Field == "battery.temperature.celsius":
			d.temps = append(d.temps, tempEnt{idx: idx, comp: "battery", kind: kindSingle, grp: -1, sgrp: -1, volt: -1})
		case p.Field == "voltage.volts" && p.Component != "":
			parent, n, ok := cellParent(p.Component)
			if !ok {
				continue // string and module voltages are not used by the rules
			}
			voltOf[p.Component] = int32(len(d.volts))
			v := voltEnt{idx: idx, comp: p.Component, cellNo: n, bal: -1, temp: -1, str: -1, sgrp: -1,
				grp: getGroup(vg, &d.vgrps, parent)}
			if s := stringOf(p.Component); s != "" && s != parent {
				v.sgrp = getGroup(vg, &d.vgrps, "cellstr:"+s)
				d.vgrps[v.sgrp].str = true
			}
			d.volts = append(d.volts, v)
		case p.Field == "balancing" && p.Component != "":
			balOf[p.Component] = idx
		case p.Field == "current.amps" && strings.HasPrefix(p.Component, "string/"):
			strIdx[p.Component] = idx
		case p.Field == "battery.current.amps":
			d.battCurrent = idx
		case p.Field == "ambient.temperature.celsius":
			d.ambient = idx
		case p.Field == "alarm.smoke":
			d.smoke = idx
		case p.Field == "alarm.fire_panel":
			d.fire = idx
		case strings.HasPrefix(p.Field, "gas.") && strings.HasSuffix(p.Field, ".ppm"):
			d.gases = append(d.gases, gasEnt{idx: idx, species: strings.TrimSuffix(strings.TrimPrefix(p.Field, "gas."), ".ppm"), comp: p.Component})
		}
	}
	// Strings' currents, in a stable order.
	names := make([]string, 0, len(strIdx))
	for n := range strIdx {
		names = append(names, n)
	}
	sort.Strings(names)
	strNo := map[string]int32{}
	for _, n := range names {
		strNo[n] = int32(len(d.currents))
		d.currents = append(d.currents, strIdx[n])
	}
	d.curI = make([]float64, len(d.currents)+1)

	for i := range d.temps {
		e := &d.temps[i]
		if e.grp >= 0 {
			d.tgrps[e.grp].members = append(d.tgrps[e.grp].members, int32(i))
		}
		if e.sgrp >= 0 {
			d.tgrps[e.sgrp].members = append(d.tgrps[e.sgrp].members, int32(i))
		}
		if v, ok := voltOf[e.comp]; ok {
			e.volt = v
		}
	}
	for i := range d.volts {
		v := &d.volts[i]
		d.vgrps[v.grp].members = append(d.vgrps[v.grp].members, int32(i))
		if v.sgrp >= 0 {
			d.vgrps[v.sgrp].members = append(d.vgrps[v.sgrp].members, int32(i))
		}
		if b, ok := balOf[v.comp]; ok {
			v.bal = b
		}
		if t, ok := tempOf[v.comp]; ok {
			v.temp = t
		}
		if s, ok := strNo[stringOf(v.comp)]; ok {
			v.str = s
		} else if d.battCurrent >= 0 {
			v.str = int32(len(d.currents)) // the battery current slot
		}
		v.nb = [2]int32{-1, -1}
	}
	ovIdx := map[string]int32{}
	for i := range d.volts {
		v := &d.volts[i]
		v.ovs = -1
		if s := stringOf(v.comp); s != "" {
			if _, ok := ovIdx[s]; !ok {
				ovIdx[s] = int32(len(d.ovs))
				d.ovs = append(d.ovs, strOV{comp: s})
			}
			v.ovs = ovIdx[s]
			d.ovs[v.ovs].members = append(d.ovs[v.ovs].members, int32(i))
		}
	}
	for gi := range d.vgrps {
		if d.vgrps[gi].str {
			continue // neighbours are within a module
		}
		m := d.vgrps[gi].members
		for _, a := range m {
			for _, b := range m {
				va, vb := &d.volts[a], &d.volts[b]
				switch vb.cellNo - va.cellNo {
				case -1:
					va.nb[0] = b
				case 1:
					va.nb[1] = b
				}
			}
		}
	}
	maxGroup := 0
	for _, g := range d.tgrps {
		maxGroup = max(maxGroup, len(g.members))
	}
	for _, g := range d.vgrps {
		maxGroup = max(maxGroup, len(g.members))
	}
	d.medScr = make([]float64, 0, max(maxGroup, len(d.tgrps)))

	// Series buffers: one allocation each.
	nSer := len(d.temps) + len(d.gases) + 1
	tb := make([]float64, nSer*ringCap)
	vb := make([]float64, nSer*ringCap)
	k := 0
	next := func() series {
		s := newSeries(tb[k*ringCap:(k+1)*ringCap:(k+1)*ringCap], vb[k*ringCap:(k+1)*ringCap:(k+1)*ringCap])
		k++
		return s
	}
	for i := range d.temps {
		d.temps[i].ser = next()
	}
	for i := range d.gases {
		d.gases[i].ser = next()
	}
	d.rackSer = next()
	db := make([]float64, 2*len(d.volts)*driftCap)
	for i := range d.volts {
		o := 2 * i * driftCap
		d.volts[i].drift = newSeries(db[o:o+driftCap:o+driftCap], db[o+driftCap:o+2*driftCap:o+2*driftCap])
	}
	nMin := int(time.Duration(d.cfg.Gas.BaselineWindow) / time.Minute)
	nMin = max(nMin, 1)
	mb := make([]float64, len(d.gases)*nMin)
	for i := range d.gases {
		d.gases[i].minima = mb[i*nMin : (i+1)*nMin : (i+1)*nMin]
	}
	d.scratch = make([]float64, nMin)
	d.prevRaw = make([]float64, len(d.points))
	d.pad = make([]drivers.Reading, len(d.points))

	// Conditions, in a deterministic order: per cell/sensor, then device.
	thermDefs := func(prefix string) []ruleDef {
		return []ruleDef{
			tDeltaWatch:  {kind: prefix + "_temp_delta", unit: "degC", stage: wire.StageWatch},
			tDeltaRate:   {kind: prefix + "_temp_rate", unit: "degC/min", stage: wire.StageWarning, kind2: prefix + "_temp_delta", unit2: "degC"},
			tAbsWatch:    {kind: prefix + "_temp", unit: "degC", stage: wire.StageWatch},
			tAbsWarn:     {kind: prefix + "_temp", unit: "degC", stage: wire.StageWarning},
			tAbsCrit:     {kind: prefix + "_temp", unit: "degC", stage: wire.StageCritical, kind2: prefix + "_temp_delta", unit2: "degC"},
			tRateCrit:    {kind: prefix + "_temp_rate", unit: "degC/min", stage: wire.StageCritical, kind2: prefix + "_temp_delta", unit2: "degC"},
			tRunawayRate: {kind: prefix + "_temp_rise", unit: "degC/s", stage: wire.StageEmergency},
			tRunawayTemp: {kind: prefix + "_temp", unit: "degC", stage: wire.StageEmergency},
		}
	}
	cellT, modT, batT := thermDefs("cell"), thermDefs("module"), thermDefs("battery")
	sensDefs := []ruleDef{
		sTempInvalid: {kind: "temp_invalid", unit: "samples", stage: wire.StageWatch},
		sTempStuck:   {kind: "temp_stuck", unit: "s", stage: wire.StageWatch},
		sTempSpike:   {kind: "temp_spike", unit: "degC", stage: wire.StageWatch},
		sVoltInvalid: {kind: "voltage_invalid", unit: "samples", stage: wire.StageWatch},
		sVoltStuck:   {kind: "voltage_stuck", unit: "s", stage: wire.StageWatch},
	}
	elecDefs := []ruleDef{
		eImbalance: {kind: "cell_voltage_imbalance", unit: "V", stage: wire.StageWatch},
		eDrift:     {kind: "cell_voltage_drift", unit: "V/day", stage: wire.StageWatch},
		eDip:       {kind: "cell_voltage_dip", unit: "V", stage: wire.StageWatch},
		eDips:      {kind: "cell_voltage_dips", unit: "count", stage: wire.StageWarning},
		eDevWarn:   {kind: "cell_voltage_delta", unit: "V", stage: wire.StageWarning},
		eDevCrit:   {kind: "cell_voltage_delta", unit: "V", stage: wire.StageCritical},
		eOverWarn:  {kind: "cell_overvoltage", unit: "V", stage: wire.StageWarning},
		eOverCrit:  {kind: "cell_overvoltage", unit: "V", stage: wire.StageCritical},
	}
	sensorOf := map[string]*cond{}
	sensor := func(comp string) *cond {
		if c := sensorOf[comp]; c != nil {
			return c
		}
		c := d.newCond(comp, wire.CategorySensorFault, "", wire.StageWatch, sensDefs)
		sensorOf[comp] = c
		return c
	}
	ovDefs := []ruleDef{
		{kind: "string_overvoltage", unit: "V", stage: wire.StageWarning, kind2: "cell_voltage_max", unit2: "V"},
		{kind: "string_overvoltage", unit: "V", stage: wire.StageCritical, kind2: "cell_voltage_max", unit2: "V"},
	}
	for i := range d.ovs {
		if len(d.ovs[i].members) >= 4 {
			d.ovs[i].c = d.newCond(d.ovs[i].comp, wire.CategoryElectrical, FamilyElectrical, wire.StageEmergency, ovDefs)
		}
	}
	for i := range d.volts {
		v := &d.volts[i]
		v.elec = d.newCond(v.comp, wire.CategoryElectrical, FamilyElectrical, wire.StageEmergency, elecDefs)
		v.elec.isCell = true
		v.sensor = sensor(v.comp)
	}
	for i := range d.temps {
		e := &d.temps[i]
		defs := cellT
		switch e.kind {
		case kindModule:
			defs = modT
		case kindSingle:
			defs = batT
		}
		e.therm = d.newCond(e.comp, wire.CategoryThermal, FamilyThermal, wire.StageEmergency, defs)
		e.therm.isCell = e.kind == kindCell
		e.sensor = sensor(e.comp)
	}
	if len(d.gases) > 0 {
		var gd []ruleDef
		for i := range d.gases {
			g := &d.gases[i]
			g.rs = len(gd)
			k := "gas_" + g.species
			gd = append(gd,
				ruleDef{kind: k, unit: "ppm", stage: wire.StageWatch},
				ruleDef{kind: k, unit: "ppm", stage: wire.StageWarning},
				ruleDef{kind: k, unit: "ppm", stage: wire.StageCritical},
				ruleDef{kind: k, unit: "ppm", stage: wire.StageEmergency})
		}
		d.gas = d.newCond("", wire.CategoryGas, FamilyGas, wire.StageEmergency, gd)
		for i := range d.gases {
			d.gas.rs[d.gases[i].rs].comp = d.gases[i].comp
		}
	}
	d.env = d.newCond("", wire.CategoryEnvironment, "", wire.StageWarning, []ruleDef{
		envAmbient:   {kind: "ambient_temp", unit: "degC", stage: wire.StageWatch},
		envRackRate:  {kind: "rack_temp_rate", unit: "degC/min", stage: wire.StageWatch},
		envRackWatch: {kind: "rack_temp", unit: "degC", stage: wire.StageWatch},
		envRackWarn:  {kind: "rack_temp", unit: "degC", stage: wire.StageWarning},
	})
	if d.smoke >= 0 || d.fire >= 0 {
		d.fireC = d.newCond("", wire.CategoryThermal, FamilySmoke, wire.StageEmergency, []ruleDef{
			fSmoke:     {kind: "smoke", unit: "", stage: wire.StageCritical},
			fSmokeCorr: {kind: "smoke", unit: "", stage: wire.StageEmergency},
			fFirePanel: {kind: "fire_panel", unit: "", stage: wire.StageEmergency},
		})
	}
	d.comms = d.newCond("", wire.CategoryComms, "", wire.StageWatch, []ruleDef{
		{kind: "missed_polls", unit: "count", stage: wire.StageWatch},
	})
}

// Rule indices.
const (
	tDeltaWatch = iota
	tDeltaRate
	tAbsWatch
	tAbsWarn
	tAbsCrit
	tRateCrit
	tRunawayRate
	tRunawayTemp
)

const (
	sTempInvalid = iota
	sTempStuck
	sTempSpike
	sVoltInvalid
	sVoltStuck
)

const (
	eImbalance = iota
	eDrift
	eDip
	eDips
	eDevWarn
	eDevCrit
	eOverWarn
	eOverCrit
)

const (
	envAmbient = iota
	envRackRate
	envRackWatch
	envRackWarn
)

const (
	fSmoke = iota
	fSmokeCorr
	fFirePanel
)

func (d *Detector) newCond(comp, category, family string, capStage wire.Stage, defs []ruleDef) *cond {
	c := &cond{comp: comp, category: category, family: family, cap: capStage, defs: defs, rs: make([]ruleState, len(defs))}
	d.conds = append(d.conds, c)
	d.byKey[comp+"|"+category] = c
	return c
}

func familyIndex(f string) int {
	switch f {
	case FamilyThermal:
		return 0
	case FamilyGas:
		return 1
	case FamilyElectrical:
		return 2
	case FamilySmoke:
		return 3
	}
	return -1
}

var familyNames = [4]string{FamilyThermal, FamilyGas, FamilyElectrical, FamilySmoke}

// Step evaluates one sampling round taken at at. readings are in the order
// of the points given to New (as drivers.Poller.Poll fills them); roundErr
// is the poll's error when the whole round failed. emit is called for every
// stage change, in a deterministic order; the alert's ID, Site, Agent and
// Time are left for the caller (see AlertID).
func (d *Detector) Step(at time.Time, readings []drivers.Reading, roundErr error, emit func(wire.Alert)) {
	now := at.UnixNano()
	if d.epoch == 0 {
		d.epoch = now
		d.lastGood = now
	}
	dt := 0.0
	if d.lastAt != 0 {
		dt = float64(now-d.lastAt) / 1e9
	}
	if dt < 0 { // clock went backwards: treat as a lost round, keep state
		dt = 0
	}
	if dt > 0 {
		if d.period == 0 {
			d.period = dt
		} else {
			d.period += 0.2 * (dt - d.period)
		}
	}
	d.lastAt = max(d.lastAt, now)

	if len(readings) != len(d.points) {
		// A caller bug, not a device fault: never index past the slice.
		// Missing readings are absent, extra ones ignored.
		n := copy(d.pad, readings)
		for i := n; i < len(d.pad); i++ {
			d.pad[i] = drivers.Reading{Point: d.points[i], Fault: drivers.FaultAbsent}
		}
		readings = d.pad
	}
	if roundErr != nil || d.roundLost(readings) {
		d.missed++
		d.comms.rs[0].eval(now, d.missed >= d.cfg.Hygiene.CommsMissed, true, 0, float64(d.missed), float64(d.cfg.Hygiene.CommsMissed))
		d.comms.computeEvidence()
		// Evidence of every other condition is held as it was: unknown is
		// not normal. Only the data-loss escalation moves.
		d.escalateDataLoss(now, true)
		d.finish(now, at, emit)
		return
	}
	d.missed = 0
	d.comms.rs[0].eval(now, false, false, 0, 0, float64(d.cfg.Hygiene.CommsMissed))
	d.comms.computeEvidence()
	d.lastGood = now
	if dt > 0 {
		d.alphaBase = 1 - math.Exp(-dt*1e9/float64(d.cfg.Electrical.BaselineTau))
	}
	tsec := float64(now-d.epoch) / 1e9

	d.readCurrents(readings)
	d.updateStuckN()
	d.famLevel = [4]wire.Stage{}
	d.stepVolts(now, readings)
	d.stepTemps(now, tsec, readings)
	d.stepVoltRules(now)
	for i := range d.temps {
		if d.temps[i].therm.evidence > d.famLevel[0] {
			d.famLevel[0] = d.temps[i].therm.evidence
		}
	}
	for i := range d.volts {
		if d.volts[i].elec.evidence > d.famLevel[2] {
			d.famLevel[2] = d.volts[i].elec.evidence
		}
	}
	d.stepGas(now, tsec, readings)
	d.stepEnv(now, tsec, readings)
	d.stepContacts(now, readings)
	for i := range readings {
		if i < len(d.prevRaw) {
			d.prevRaw[i] = readings[i].Value
		}
	}
	d.escalateDataLoss(now, false)
	d.finish(now, at, emit)
}

// roundLost reports a round that failed as a whole although Poll returned
// no error: every point faulted by the link, all cells reading exactly 0
// (a gateway filling in zeros), or a frame bit-identical to the last one
// (a gateway repeating its cache): live sensors always carry noise.
func (d *Detector) roundLost(rs []drivers.Reading) bool {
	if len(rs) == 0 {
		return true
	}
	linkFault := 0
	for i := range rs {
		if f := rs[i].Fault; f == drivers.FaultTimeout || f == drivers.FaultComms {
			linkFault++
		}
	}
	if linkFault == len(rs) {
		return true
	}
	// A frozen frame (a gateway repeating its cache for a dead BMS) is
	// judged on cell readings only: dozens of cell voltages and
	// temperatures at mV and 0.1 degC resolution never repeat bit for bit
	// in a live rack, while a UPS in steady state legitimately does.
	numeric, same := 0, 0
	frozen := func(idx int32) {
		if r := &rs[idx]; r.OK() {
			numeric++
			if int(idx) < len(d.prevRaw) && r.Value == d.prevRaw[idx] {
				same++
			}
		}
	}
	for i := range d.volts {
		frozen(d.volts[i].idx)
	}
	for i := range d.temps {
		if d.temps[i].kind == kindCell {
			frozen(d.temps[i].idx)
		}
	}
	if numeric >= frozenMin && same == numeric && d.lastGood != d.epoch {
		return true
	}
	zeroV, nV := 0, 0
	for i := range d.volts {
		r := &rs[d.volts[i].idx]
		if r.OK() {
			nV++
			if r.Value == 0 {
				zeroV++
			}
		}
	}
	if nV >= 4 && zeroV == nV {
		return true
	}
	zeroT, nT := 0, 0
	for i := range d.temps {
		if d.temps[i].kind != kindCell {
			continue
		}
		r := &rs[d.temps[i].idx]
		if r.OK() {
			nT++
			if r.Value == 0 {
				zeroT++
			}
		}
	}
	return nT >= 4 && zeroT == nT
}

func (d *Detector) readCurrents(rs []drivers.Reading) {
	// Implausible currents are unknown: a garbage 1e300 A would otherwise
	// "explain" any voltage deviation.
	lim := d.cfg.Hygiene.CurrentMax
	ok := func(r *drivers.Reading) bool { return r.OK() && math.Abs(r.Value) <= lim }
	for i, idx := range d.currents {
		d.curI[i] = math.NaN()
		if r := &rs[idx]; ok(r) {
			d.curI[i] = r.Value
		}
	}
	d.curI[len(d.currents)] = math.NaN()
	if d.battCurrent >= 0 {
		if r := &rs[d.battCurrent]; ok(r) {
			d.curI[len(d.currents)] = r.Value
		}
	}
}

func isSentinel(v float64, list []float64) bool {
	for _, s := range list {
		if v == s {
			return true
		}
	}
	return false
}

// markBad records an invalid sample.
func (h *hygiene) markBad(now int64, f drivers.Fault) {
	if h.badN == 0 {
		h.badSince = now
	}
	h.badN++
	h.fault = f
	h.valid = false
}

// trackRaw updates the stuck detector with a raw value. A sensor is stuck
// when its value has been bit-identical for stuckAfter and at least minN
// samples (a gap in polling is not evidence) while a peer varied.
func (h *hygiene) trackRaw(now int64, v float64, g *group, stuckAfter int64, minN int32) {
	if !h.haveRaw || v != h.raw {
		h.raw, h.sameSince, h.sameN, h.haveRaw = v, now, 1, true
		h.stuck = false
		if g != nil {
			g.lastVary = now
		}
		return
	}
	h.sameN++
	h.stuck = g != nil && now-h.sameSince >= stuckAfter && h.sameN >= minN && g.lastVary > h.sameSince
}

func (h *hygiene) accept(now int64, v float64) {
	h.valid, h.val = true, v
	h.last, h.lastAt, h.haveLast = v, now, true
	h.badN = 0
	h.fault = drivers.FaultNone
}

// stuckN is the number of identical samples that, at the current sampling
// period, fill most of StuckAfter (computed once per round).
func (d *Detector) stuckN() int32 { return d.stuckNow }

func (d *Detector) updateStuckN() {
	n := int32(3)
	if d.period > 0 {
		n = max(n, int32(0.8*float64(d.cfg.Hygiene.StuckAfter)/1e9/d.period))
	}
	d.stuckNow = n
}

// hot reports whether a cell is already hot enough that an out-of-range
// voltage is a collapse rather than a sensor fault.
func (d *Detector) hot(ti int32) bool {
	if ti < 0 {
		return false
	}
	e := &d.temps[ti]
	return e.realHi || e.h.pending || (e.hasDT && e.dT >= d.cfg.Thermal.DeltaWarn) ||
		(e.h.haveLast && e.h.last >= d.cfg.Thermal.TempWarn)
}

func (d *Detector) stepVolts(now int64, rs []drivers.Reading) {
	hy := &d.cfg.Hygiene
	stuckAfter := hy.StuckAfter.ns()
	for i := range d.volts {
		v := &d.volts[i]
		h := &v.h
		r := &rs[v.idx]
		h.valid = false
		v.collapsed = false
		if v.bal >= 0 {
			if b := &rs[v.bal]; b.OK() && b.Value >= 0.5 {
				v.balUntil = now + d.cfg.Electrical.BalanceHold.ns()
				v.balNow = true
			} else {
				v.balNow = false
			}
		}
		if !r.OK() {
			h.markBad(now, r.Fault)
			continue
		}
		x := r.Value
		if math.IsNaN(x) || math.IsInf(x, 0) {
			h.markBad(now, drivers.FaultMalformed)
			continue
		}
		if x < hy.VoltMin && d.hot(v.temp) {
			// A hot cell whose voltage fell out of range has collapsed:
			// that is evidence, not a fault (GB 38031: >25 % drop).
			h.accept(now, x)
			v.collapsed = true
			continue
		}
		if isSentinel(x, hy.VoltSentinels) {
			h.markBad(now, drivers.FaultSentinel)
			continue
		}
		if x < hy.VoltMin || x > hy.VoltMax {
			h.markBad(now, drivers.FaultRange)
			continue
		}
		h.trackRaw(now, x, &d.vgrps[v.grp], stuckAfter, d.stuckN())
		if h.stuck {
			h.markBad(now, drivers.FaultSensor)
			continue
		}
		h.accept(now, x)
	}
	for pass := range 2 {
		for gi := range d.vgrps {
			g := &d.vgrps[gi]
			if g.str != (pass == 1) || (g.str && !g.need) {
				continue
			}
			g.need = false
			vals := d.medScr[:0]
			for _, m := range g.members {
				if d.volts[m].h.valid && !d.volts[m].collapsed {
					vals = append(vals, d.volts[m].h.val)
				}
			}
			g.ok = len(vals) >= 3
			if g.ok {
				g.med = median(vals)
			}
		}
		if pass == 0 {
			// A module with too few valid cells falls back to its string.
			for i := range d.volts {
				if v := &d.volts[i]; v.sgrp >= 0 && !d.vgrps[v.grp].ok {
					d.vgrps[v.sgrp].need = true
				}
			}
		}
	}
}

func (d *Detector) stepTemps(now int64, tsec float64, rs []drivers.Reading) {
	hy := &d.cfg.Hygiene
	th := &d.cfg.Thermal
	stuckAfter := hy.StuckAfter.ns()
	for i := range d.temps {
		e := &d.temps[i]
		h := &e.h
		r := &rs[e.idx]
		h.valid = false
		var g *group
		if e.grp >= 0 {
			g = &d.tgrps[e.grp]
		}
		if !r.OK() {
			h.markBad(now, r.Fault)
			h.pending = false
			continue
		}
		x := r.Value
		if math.IsNaN(x) || math.IsInf(x, 0) || isSentinel(x, hy.TempSentinels) {
			h.markBad(now, drivers.FaultSentinel)
			h.pending = false
			continue
		}
		if x < hy.TempMin {
			h.markBad(now, drivers.FaultRange)
			h.pending = false
			continue
		}
		corroborated := d.tempCorroborated(e)
		if x > hy.TempMax {
			// Above the channel: real if it continues a corroborated rise
			// (own voltage collapse, gas, or the cell already hot) or
			// persists for a second sample with corroboration; otherwise a
			// sensor fault.
			continuous := h.haveLast && math.Abs(x-h.last) <= hy.SpikeJump
			if e.realHi || (corroborated && (continuous || h.pending)) {
				e.realHi = true
				h.pending = false
				h.accept(now, x)
				continue
			}
			if !h.pending {
				h.pending, h.pendVal = true, x
				continue
			}
			h.pending = false
			h.markBad(now, drivers.FaultRange)
			continue
		}
		e.realHi = false
		if h.pending {
			// Look-ahead: the held sample was a spike if it jumped and this
			// one came back.
			h.pending = false
			if h.haveLast && math.Abs(h.pendVal-h.last) > hy.SpikeJump && math.Abs(x-h.last) <= hy.SpikeReturn {
				h.spikeAt, h.spikeVal = now, h.pendVal
			}
		} else if h.haveLast && math.Abs(x-h.last) > hy.SpikeJump && !corroborated {
			h.pending, h.pendVal = true, x
			continue
		}
		h.trackRaw(now, x, g, stuckAfter, d.stuckN())
		if h.stuck {
			h.markBad(now, drivers.FaultSensor)
			continue
		}
		h.accept(now, x)
	}
	// Peer medians; a module with too few valid cells falls back to its
	// string's median.
	for pass := range 2 {
		for gi := range d.tgrps {
			g := &d.tgrps[gi]
			if g.str != (pass == 1) || (g.str && !g.need) {
				continue
			}
			g.need = false
			vals := d.medScr[:0]
			for _, m := range g.members {
				if d.temps[m].h.valid {
					vals = append(vals, d.temps[m].h.val)
				}
			}
			g.ok = len(vals) >= 3
			if g.ok {
				g.med = median(vals)
			}
		}
		if pass == 0 {
			for i := range d.temps {
				if e := &d.temps[i]; e.sgrp >= 0 && !d.tgrps[e.grp].ok {
					d.tgrps[e.sgrp].need = true
				}
			}
		}
	}
	window := math.Max(float64(th.SlopeWindow)/1e9, float64(th.SlopeMinSamples)*d.period)
	minGap := window / float64(ringCap-4)
	minN := min(th.SlopeMinSamples, ringCap-4)
	if d.period > 0 {
		minN = min(minN, int(window/d.period*0.8)+1)
	}
	minN = max(minN, 3)
	d.envMax, d.envMaxComp, d.rackSum, d.rackN = math.Inf(-1), "", 0, 0
	for gi := range d.tgrps {
		g := &d.tgrps[gi]
		if !g.str && g.ok && len(g.members) > 0 && d.temps[g.members[0]].kind == kindCell {
			d.rackSum += g.med
			d.rackN++
		}
	}
	for i := range d.temps {
		d.tempRules(&d.temps[i], now, tsec, window, minGap, minN)
	}
}

// envCand gathers the hottest sensor that moves with its peers, for the
// environment condition.
func (d *Detector) envCand(e *tempEnt, valid bool) {
	if !valid || !e.hasDT || e.dT >= d.cfg.Thermal.DeltaWatch {
		return
	}
	if e.h.val > d.envMax {
		d.envMax, d.envMaxComp = e.h.val, e.comp
	}
}

func (d *Detector) tempCorroborated(e *tempEnt) bool {
	if e.volt >= 0 {
		v := &d.volts[e.volt]
		if med, ok := d.vmed(v); v.collapsed || (v.h.valid && ok && v.h.val < (1-d.cfg.Electrical.Collapse)*med) {
			return true
		}
		if !v.h.valid && v.h.badN > 0 && e.hasDT && e.dT >= d.cfg.Thermal.DeltaWarn {
			return true
		}
	}
	if d.gas != nil && d.gas.evidence >= wire.StageWarning {
		return true
	}
	return (e.hasDT && e.dT >= d.cfg.Thermal.DeltaWarn) || e.realHi
}

func (d *Detector) tempRules(e *tempEnt, now int64, tsec, window, minGap float64, minN int) {
	th := &d.cfg.Thermal
	c := e.therm
	s := e.sensor
	h := &e.h
	hyst := th.Hysteresis

	// Sensor-fault rules.
	s.rs[sTempInvalid].eval(now, h.badN >= int32(d.cfg.Hygiene.FaultAfter), false, 0, float64(h.badN), float64(d.cfg.Hygiene.FaultAfter))
	if h.fault != drivers.FaultNone {
		s.note = "temperature " + h.fault.String()
	}
	stuckFor := 0.0
	if h.stuck {
		stuckFor = float64(now-h.sameSince) / 1e9
	}
	s.rs[sTempStuck].eval(now, h.stuck, false, 0, stuckFor, float64(d.cfg.Hygiene.StuckAfter)/1e9)
	spikeOn := h.spikeAt != 0 && now-h.spikeAt < d.cfg.Stages.ClearAfter.ns()
	s.rs[sTempSpike].eval(now, spikeOn, false, 0, h.spikeVal, d.cfg.Hygiene.SpikeJump)
	s.computeEvidence()

	if !h.valid {
		// Unknown this round: hold the thermal evidence as it was.
		if !h.pending {
			e.rateSpan = 0
		}
		d.envCand(e, false)
		return
	}
	x := h.val
	e.hasDT = false
	if med, ok := d.tmed(e); ok {
		e.dT = x - med
		e.hasDT = true
		e.ser.add(tsec, e.dT, minGap)
	} else {
		e.ser.add(tsec, x, minGap)
	}
	slope := 0.0
	haveSlope := false
	// Slopes are only needed once a cell stands out; skip the work otherwise.
	if !e.hasDT || e.dT >= th.DeltaWarn-hyst || c.rs[tDeltaRate].holding || c.rs[tRateCrit].holding {
		var sl float64
		sl, haveSlope = e.ser.slope(tsec, window, minN)
		slope = sl * 60
	}
	dT := e.dT
	rel := e.hasDT
	if !rel {
		dT = math.NaN()
	}
	c.rs[tDeltaWatch].eval(now, rel && dT >= th.DeltaWatch, rel && dT >= th.DeltaWatch-hyst, th.DeltaWatchFor.ns(), dT, th.DeltaWatch)
	c.rs[tDeltaRate].eval(now, rel && dT >= th.DeltaWarn && haveSlope && slope >= th.RateWarn,
		rel && dT >= th.DeltaWarn-hyst && haveSlope && slope >= th.RateWarn/2, th.WarnFor.ns(), slope, th.RateWarn)
	c.rs[tDeltaRate].v2, c.rs[tDeltaRate].th2 = dT, th.DeltaWarn
	// Absolute back-stops are thermal only when the sensor stands out from
	// its peers (or has none); room-wide heat goes to environment.
	standsOut := !rel || dT >= th.DeltaWatch
	c.rs[tAbsWatch].eval(now, standsOut && x >= th.TempWatch, standsOut && x >= th.TempWatch-hyst, 30*int64(time.Second), x, th.TempWatch)
	c.rs[tAbsWarn].eval(now, standsOut && x >= th.TempWarn, standsOut && x >= th.TempWarn-hyst, th.TempWarnFor.ns(), x, th.TempWarn)
	absCrit := x >= th.TempCrit && (!rel || dT >= th.DeltaCrit)
	c.rs[tAbsCrit].eval(now, absCrit, x >= th.TempCrit-hyst && (!rel || dT >= th.DeltaCrit-hyst), th.TempWarnFor.ns(), x, th.TempCrit)
	c.rs[tAbsCrit].v2, c.rs[tAbsCrit].th2 = dT, th.DeltaCrit
	// Rates are peer-relative only: an absolute rise is what heavy discharge
	// and HVAC failure look like (design note 5). A sensor without peers
	// keeps the absolute back-stops alone.
	c.rs[tRateCrit].eval(now, rel && haveSlope && slope >= th.RateCrit && dT >= th.DeltaWarn,
		rel && haveSlope && slope >= th.RateCrit*0.8 && dT >= th.DeltaWarn-hyst, th.RateCritFor.ns(), slope, th.RateCrit)
	c.rs[tRateCrit].v2, c.rs[tRateCrit].th2 = dT, th.DeltaWarn
	// GB 38031 pattern: >= 1 °C/s for >= 3 s with voltage collapse or the
	// maximum operating temperature.
	rate, span := d.rate(e, now, x)
	if rate >= th.RunawayRate {
		e.rateSpan += span
	} else {
		e.rateSpan = 0
	}
	collapse := false
	if e.volt >= 0 {
		v := &d.volts[e.volt]
		med, ok := d.vmed(v)
		collapse = v.collapsed || (v.h.valid && ok && v.h.val < (1-d.cfg.Electrical.Collapse)*med)
	}
	c.rs[tRunawayRate].eval(now, e.rateSpan >= th.RunawayRateFor.ns() && (collapse || x >= th.TempWarn), false, 0, rate, th.RunawayRate)
	if x >= th.TempEmergency && (e.realHi || (rel && dT >= th.DeltaCrit)) {
		e.hiN++
	} else {
		e.hiN = 0
	}
	c.rs[tRunawayTemp].eval(now, e.hiN >= 3, false, 0, x, th.TempEmergency)
	c.computeEvidence()
	d.envCand(e, true)
}

// tmed returns a temperature sensor's peer median: its module's, or its
// string's when the module has too few valid cells.
func (d *Detector) tmed(e *tempEnt) (float64, bool) {
	if e.grp >= 0 && d.tgrps[e.grp].ok {
		return d.tgrps[e.grp].med, true
	}
	if e.sgrp >= 0 && d.tgrps[e.sgrp].ok {
		return d.tgrps[e.sgrp].med, true
	}
	return 0, false
}

// vmed is tmed for cell voltages.
func (d *Detector) vmed(v *voltEnt) (float64, bool) {
	if d.vgrps[v.grp].ok {
		return d.vgrps[v.grp].med, true
	}
	if v.sgrp >= 0 && d.vgrps[v.sgrp].ok {
		return d.vgrps[v.sgrp].med, true
	}
	return 0, false
}

// rate returns the rise in °C/s since the previous accepted sample, and
// the time it spans (ns).
func (d *Detector) rate(e *tempEnt, now int64, x float64) (float64, int64) {
	r, span := 0.0, int64(0)
	if e.rsPrevAt != 0 && now > e.rsPrevAt {
		span = now - e.rsPrevAt
		r = (x - e.rsPrev) / (float64(span) / 1e9)
	}
	e.rsPrev, e.rsPrevAt = x, now
	return r, span
}
