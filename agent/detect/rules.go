package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// charging reports whether a string is charging (or at rest, or its
// current unknown): over-voltage is judged only then.
func (d *Detector) charging(v *voltEnt) bool {
	el := &d.cfg.Electrical
	cur := math.NaN()
	if v.str >= 0 {
		cur = d.curI[v.str]
	}
	return math.IsNaN(cur) || cur < -el.ChargeCurrent || math.Abs(cur) <= el.RestCurrent
}

// stepStringOV evaluates whole-string over-voltage on the median cell of
// each charging string: a charger fault overcharges every cell, and that is
// one condition, not one alert per cell.
func (d *Detector) stepStringOV(now int64) {
	el := &d.cfg.Electrical
	for i := range d.ovs {
		d.ovs[i].near, d.ovs[i].maxV = false, math.Inf(-1)
	}
	for i := range d.volts {
		v := &d.volts[i]
		if v.ovs >= 0 && v.h.valid && !v.collapsed && d.charging(v) && v.h.val-el.VMax >= 0.4*el.OverWarn {
			d.ovs[v.ovs].near = true
		}
	}
	for i := range d.ovs {
		o := &d.ovs[i]
		o.med = math.Inf(-1)
		if o.near {
			vals := d.medScr[:0]
			for _, m := range o.members {
				v := &d.volts[m]
				if v.h.valid && !v.collapsed && d.charging(v) {
					vals = append(vals, v.h.val)
					if v.h.val > o.maxV {
						o.maxV, o.maxComp = v.h.val, v.comp
					}
				}
			}
			if len(vals) >= 3 {
				o.med = median(vals)
			}
		}
		if o.c == nil {
			continue
		}
		over := o.med - el.VMax
		r := o.c.rs
		r[0].eval(now, over >= el.OverWarn, over >= el.OverWarn*0.8, el.OverFor.ns(), o.med, el.VMax+el.OverWarn)
		r[1].eval(now, over >= el.OverCrit, over >= el.OverCrit*0.9, el.OverFor.ns(), o.med, el.VMax+el.OverCrit)
		for k := range r {
			r[k].v2, r[k].th2, r[k].comp = o.maxV, r[k].th, o.maxComp
		}
		o.c.computeEvidence()
	}
}

func (d *Detector) stepVoltRules(now int64) {
	el := &d.cfg.Electrical
	d.stepStringOV(now)
	for i := range d.volts {
		v := &d.volts[i]
		c, s, h := v.elec, v.sensor, &v.h
		s.rs[sVoltInvalid].eval(now, h.badN >= int32(d.cfg.Hygiene.FaultAfter), false, 0, float64(h.badN), float64(d.cfg.Hygiene.FaultAfter))
		if h.fault != drivers.FaultNone {
			s.note = "voltage " + h.fault.String()
		}
		stuckFor := 0.0
		if h.stuck {
			stuckFor = float64(now-h.sameSince) / 1e9
		}
		s.rs[sVoltStuck].eval(now, h.stuck, false, 0, stuckFor, float64(d.cfg.Hygiene.StuckAfter)/1e9)
		s.computeEvidence()
		med, medOK := d.vmed(v)
		if !h.valid || !medOK {
			continue // unknown: hold evidence
		}
		x := h.val
		cur := math.NaN()
		if v.str >= 0 {
			cur = d.curI[v.str]
		}
		absI := math.Abs(cur)
		if math.IsNaN(cur) {
			absI = 0
		}
		allow := absI * el.CurrentAllowance
		v.dV = x - med
		masked := v.balNow || now < v.balUntil
		for _, n := range v.nb {
			if n >= 0 && (d.volts[n].balNow || now < d.volts[n].balUntil) {
				masked = true
			}
		}
		if !v.hasBase {
			v.base, v.hasBase = v.dV, true
		}
		e := v.dV - v.base
		atRest := !math.IsNaN(cur) && absI <= el.RestCurrent
		charging := math.IsNaN(cur) || cur < -el.ChargeCurrent || absI <= el.RestCurrent

		// Maintenance: imbalance at rest, slow drift of the rest deviation.
		c.rs[eImbalance].eval(now, atRest && !masked && math.Abs(v.dV) >= el.ImbalanceWatch,
			atRest && !masked && math.Abs(v.dV) >= el.ImbalanceWatch*0.8, el.ImbalanceFor.ns(), v.dV, el.ImbalanceWatch)
		if atRest && !masked && now-v.lastDrift >= hourNs {
			// Hourly rest samples; the drift slope only changes with them.
			v.lastDrift = now
			v.drift.add(float64(now-d.epoch)/86400e9, v.dV, 0)
			span := float64(el.DriftSpan) / 86400e9
			drift, ok := v.drift.slope(float64(now-d.epoch)/86400e9, span*1.5, 3)
			if lt, _ := v.drift.last(); ok && lt-v.drift.t[oldest(&v.drift)] < span*0.99 {
				ok = false
			}
			v.driftVal, v.driftOK = drift, ok
		}
		c.rs[eDrift].eval(now, v.driftOK && math.Abs(v.driftVal) >= el.DriftWatch, false, 0, v.driftVal, el.DriftWatch)

		// Dips: a sudden drop of the peer delta not explained by a current
		// step (micro-shorts, 20-80 mV).
		if v.hasPrev && !masked {
			dI := 0.0
			if !math.IsNaN(cur) && !math.IsNaN(v.prevI) {
				dI = math.Abs(cur - v.prevI)
			}
			if v.prevDV-v.dV >= el.DipDrop+dI*el.CurrentAllowance {
				v.dipSize = v.prevDV - v.dV
				v.dips[v.dipHead] = now
				v.dipHead = (v.dipHead + 1) % maxDips
				v.nDips = min(v.nDips+1, maxDips)
			}
		}
		v.prevDV, v.prevI, v.hasPrev = v.dV, cur, true
		nRecent, lastDip := 0, int64(0)
		for k := 0; k < v.nDips; k++ {
			t := v.dips[k]
			if now-t <= el.DipWindow.ns() {
				nRecent++
			}
			lastDip = max(lastDip, t)
		}
		c.rs[eDip].eval(now, v.nDips > 0 && now-lastDip < el.DipHold.ns(), false, 0, v.dipSize, el.DipDrop)
		c.rs[eDips].eval(now, nRecent >= el.DipsWarn, false, 0, float64(nRecent), float64(el.DipsWarn))

		// Unexplained deviation from the cell's own baseline.
		ae := math.Abs(e)
		c.rs[eDevWarn].eval(now, !masked && ae >= el.DevWarn+allow, !masked && ae >= el.DevWarn*0.8+allow, el.DevWarnFor.ns(), e, el.DevWarn+allow)
		c.rs[eDevCrit].eval(now, !masked && ae >= el.DevCrit+allow, !masked && ae >= el.DevCrit*0.9+allow, el.DevCritFor.ns(), e, el.DevCrit+allow)
		if !masked && ae < el.DevWarn/2 {
			v.base += d.alphaBase * e
		}
		// Over-voltage while charging (or at rest: never while discharging).
		over := x - el.VMax
		// A cell that merely follows its string near the limit is covered by
		// the string's condition; an outlier above its string keeps its own.
		alone := true
		if v.ovs >= 0 {
			o := &d.ovs[v.ovs]
			if o.med-el.VMax >= 0.8*el.OverWarn && x-o.med < 0.5*el.OverWarn {
				alone = false
			}
		}
		c.rs[eOverWarn].eval(now, alone && charging && over >= el.OverWarn, alone && charging && over >= el.OverWarn*0.8, el.OverFor.ns(), x, el.VMax+el.OverWarn)
		c.rs[eOverCrit].eval(now, alone && charging && over >= el.OverCrit, alone && charging && over >= el.OverCrit*0.9, el.OverFor.ns(), x, el.VMax+el.OverCrit)
		c.computeEvidence()
	}
}

func oldest(s *series) int {
	i := s.head - s.n
	if i < 0 {
		i += len(s.t)
	}
	return i
}

func (d *Detector) stepGas(now int64, tsec float64, rs []drivers.Reading) {
	if d.gas == nil {
		return
	}
	gc := &d.cfg.Gas
	c := d.gas
	window := math.Max(float64(gc.RiseWindow)/1e9, 6*d.period)
	// First pass: validity, baseline, excess.
	for i := range d.gases {
		g := &d.gases[i]
		r := &rs[g.idx]
		g.h.valid = false
		if !r.OK() || math.IsNaN(r.Value) || r.Value < 0 || r.Value > d.cfg.Hygiene.GasMax {
			f := r.Fault
			if f == drivers.FaultNone {
				f = drivers.FaultRange
			}
			g.h.markBad(now, f)
			continue
		}
		x := r.Value
		g.h.accept(now, x)
		m := now / minuteNs
		switch {
		case !g.haveBase:
			g.base, g.haveBase, g.minute, g.curMin = x, true, m, x
		case m != g.minute:
			g.minima[g.mHead] = g.curMin
			g.mHead = (g.mHead + 1) % len(g.minima)
			g.mN = min(g.mN+1, len(g.minima))
			buf := d.scratch[:0]
			for k := 0; k < g.mN; k++ {
				buf = append(buf, g.minima[k])
			}
			g.base = percentile(buf, gc.Percentile)
			g.minute, g.curMin = m, x
		default:
			g.curMin = math.Min(g.curMin, x)
			if g.mN == 0 {
				g.base = math.Min(g.base, x)
			}
		}
		g.x = x - g.base
		g.ser.add(tsec, x, window/float64(ringCap-4))
	}
	otherFamily := d.famLevel[0] >= wire.StageWarning || d.famLevel[2] >= wire.StageWarning
	for i := range d.gases {
		g := &d.gases[i]
		if !g.h.valid {
			continue
		}
		x := g.x
		slope, ok := g.ser.slope(tsec, window, 3)
		rising := ok && slope*60 > 0.1
		second := false
		for j := range d.gases {
			if j != i && d.gases[j].h.valid && d.gases[j].x >= gc.WarnAbove {
				second = true
			}
		}
		r := c.rs[g.rs:]
		r[0].eval(now, x >= gc.WatchAbove, x >= gc.WatchAbove*0.8, gc.WatchFor.ns(), g.h.val, g.base+gc.WatchAbove)
		r[1].eval(now, x >= gc.WarnAbove && rising, x >= gc.WarnAbove*0.8, gc.WarnFor.ns(), g.h.val, g.base+gc.WarnAbove)
		// One species alone can be cross-sensitivity or drift: critical
		// needs a second species or another family (design note 5).
		r[2].eval(now, x >= gc.CritAbove && (second || otherFamily), x >= gc.CritAbove*0.9 && (second || otherFamily), gc.CritFor.ns(), g.h.val, g.base+gc.CritAbove)
		lim := math.Inf(1)
		switch g.species {
		case "h2":
			lim = gc.H2Emergency
		case "co":
			lim = gc.COEmergency
		}
		r[3].eval(now, g.h.val >= lim, false, 1, g.h.val, lim)
	}
	c.computeEvidence()
	d.famLevel[1] = c.evidence
}

func (d *Detector) stepEnv(now int64, tsec float64, rs []drivers.Reading) {
	ev := &d.cfg.Environment
	th := &d.cfg.Thermal
	c := d.env
	if d.ambient >= 0 {
		if r := &rs[d.ambient]; r.OK() && r.Value > d.cfg.Hygiene.TempMin && r.Value < d.cfg.Hygiene.TempMax {
			c.rs[envAmbient].eval(now, r.Value >= ev.AmbientWatch, r.Value >= ev.AmbientWatch-th.Hysteresis, ev.AmbientFor.ns(), r.Value, ev.AmbientWatch)
		}
	}
	if d.rackN > 0 {
		window := math.Max(float64(th.SlopeWindow)/1e9*2, float64(th.SlopeMinSamples)*d.period)
		d.rackSer.add(tsec, d.rackSum/float64(d.rackN), window/float64(ringCap-4))
		sl, ok := d.rackSer.slope(tsec, window, 3)
		sl *= 60
		c.rs[envRackRate].eval(now, ok && sl >= ev.RackRateWatch, ok && sl >= ev.RackRateWatch/2, ev.RackRateFor.ns(), sl, ev.RackRateWatch)
	}
	if !math.IsInf(d.envMax, -1) {
		x := d.envMax
		c.rs[envRackWatch].eval(now, x >= th.TempWatch, x >= th.TempWatch-th.Hysteresis, 30*int64(time.Second), x, th.TempWatch)
		c.rs[envRackWarn].eval(now, x >= th.TempWarn, x >= th.TempWarn-th.Hysteresis, th.TempWarnFor.ns(), x, th.TempWarn)
		c.rs[envRackWatch].comp, c.rs[envRackWarn].comp = d.envMaxComp, d.envMaxComp
	}
	c.computeEvidence()
}

func (d *Detector) stepContacts(now int64, rs []drivers.Reading) {
	if d.fireC == nil {
		return
	}
	c := d.fireC
	on := func(idx int32) (bool, bool) {
		if idx < 0 {
			return false, false
		}
		r := &rs[idx]
		if !r.OK() {
			return false, false
		}
		return r.Value >= 0.5, true
	}
	if s, ok := on(d.smoke); ok {
		other := d.famLevel[0] >= wire.StageWarning || d.famLevel[1] >= wire.StageWarning || d.famLevel[2] >= wire.StageWarning
		// One contact sample can be a glitch: two samples.
		c.rs[fSmoke].eval(now, s, false, 1, 1, 1)
		c.rs[fSmokeCorr].eval(now, s && other, false, 1, 1, 1)
	}
	if f, ok := on(d.fire); ok {
		c.rs[fFirePanel].eval(now, f, false, 1, 1, 1)
	}
	c.computeEvidence()
	d.famLevel[3] = c.evidence
}

// escalateDataLoss raises by one stage any condition at warning or above
// whose data has been lost for DataLossAfter: the whole rack (lost rounds)
// or the condition's own sensor (a cell sensor dying in a fire).
func (d *Detector) escalateDataLoss(now int64, lostRound bool) {
	after := d.cfg.Hygiene.DataLossAfter.ns()
	bump := func(c *cond, lost bool) {
		if c == nil || c.family == "" || !lost || c.escalate > 0 {
			return
		}
		if s := c.level(); s >= wire.StageWarning && s < wire.StageEmergency {
			c.escalate = s + 1
		}
	}
	rackLost := lostRound && now-d.lastGood >= after
	for _, c := range d.conds {
		bump(c, rackLost)
	}
	if lostRound {
		return
	}
	for i := range d.temps {
		e := &d.temps[i]
		bump(e.therm, e.h.badN > 0 && now-e.h.badSince >= after)
	}
	for i := range d.volts {
		v := &d.volts[i]
		bump(v.elec, v.h.badN > 0 && now-v.h.badSince >= after)
	}
}

// finish applies the device-level rules (propagation, corroboration), runs
// every condition's stage machine and emits the changes.
func (d *Detector) finish(now int64, at time.Time, emit func(wire.Alert)) {
	// Propagation: two or more cells thermally critical on their own
	// evidence (a whole string over-voltage is not propagation).
	nCrit := 0
	var first string
	for _, c := range d.conds {
		if c.isCell && c.family == FamilyThermal && c.own >= wire.StageCritical && c.comp != first {
			if nCrit == 0 {
				first = c.comp
			}
			nCrit++
		}
	}
	if nCrit >= 2 {
		for _, c := range d.conds {
			if c.isCell && c.family == FamilyThermal && c.own >= wire.StageCritical {
				c.evidence = wire.StageEmergency
			}
		}
	}
	// Corroboration: two independent families at warning on this rack.
	var lv [4]wire.Stage
	for _, c := range d.conds {
		if fi := familyIndex(c.family); fi >= 0 {
			lv[fi] = max(lv[fi], c.level())
		}
	}
	nFam := 0
	for _, s := range lv {
		if s >= wire.StageWarning {
			nFam++
		}
	}
	if nFam >= 2 {
		for _, c := range d.conds {
			if fi := familyIndex(c.family); fi >= 0 && c.evidence >= wire.StageWarning && c.evidence < wire.StageCritical {
				c.evidence = wire.StageCritical
				c.promoted = true
			}
		}
	}
	clear := d.cfg.Stages.ClearAfter.ns()
	for _, c := range d.conds {
		changed, prev := c.step(now, clear)
		if changed && emit != nil {
			emit(d.alert(c, prev, at, lv))
		}
	}
}

// alert builds the alert for a condition's stage change. It allocates; stage
// changes are rare.
func (d *Detector) alert(c *cond, prev wire.Stage, at time.Time, lv [4]wire.Stage) wire.Alert {
	a := wire.Alert{
		Device:        d.device,
		Component:     c.comp,
		Category:      c.category,
		Stage:         c.stage,
		PreviousStage: prev,
		SampleTime:    at.UTC(),
		Ack:           c.pendingAck,
	}
	c.pendingAck = nil
	for i := range c.rs {
		r := &c.rs[i]
		if !r.active || d.outranked(c, i) {
			continue
		}
		a.Signatures = append(a.Signatures, wire.Signature{Kind: c.defs[i].kind, Value: round(r.v), Unit: c.defs[i].unit, Threshold: round(r.th), Component: r.comp})
		if c.defs[i].kind2 != "" && !math.IsNaN(r.v2) {
			a.Signatures = append(a.Signatures, wire.Signature{Kind: c.defs[i].kind2, Value: round(r.v2), Unit: c.defs[i].unit2, Threshold: round(r.th2), Component: r.comp})
		}
	}
	if c.family != "" {
		a.Families = append(a.Families, c.family)
		if c.stage >= wire.StageWarning {
			for fi, s := range lv {
				if s >= wire.StageWarning && familyNames[fi] != c.family {
					a.Families = append(a.Families, familyNames[fi])
				}
			}
		}
	}
	var why []string
	if c.escalate > 0 && c.stage == c.escalate {
		why = append(why, "data lost while at "+(c.escalate-1).String())
		a.Signatures = append(a.Signatures, wire.Signature{Kind: "data_loss", Value: 1, Threshold: d.cfg.Hygiene.DataLossAfter.seconds(), Unit: "s"})
	}
	if len(a.Families) >= 2 && c.stage >= wire.StageCritical {
		why = append(why, "corroborated by "+strings.Join(a.Families[1:], ", "))
	}
	if c.own >= wire.StageCritical && c.evidence == wire.StageEmergency && c.isCell && c.own < wire.StageEmergency {
		why = append(why, "two or more cells critical (propagation)")
	}
	if c.note != "" && c.category == wire.CategorySensorFault && c.stage > wire.StageNormal {
		why = append(why, c.note)
	}
	a.Summary = summary(d.device, c, a.Signatures, why)
	return a
}

// outranked reports whether another active rule of c reports the same kind
// at a higher stage: the alert then carries only the stronger one.
func (d *Detector) outranked(c *cond, i int) bool {
	for j := range c.rs {
		if j != i && c.rs[j].active && c.defs[j].kind == c.defs[i].kind && c.rs[j].comp == c.rs[i].comp &&
			(c.defs[j].stage > c.defs[i].stage || (c.defs[j].stage == c.defs[i].stage && j > i)) {
			return true
		}
	}
	return false
}

func (x Duration) seconds() float64 { return time.Duration(x).Seconds() }

// round keeps alerts readable and byte-stable: 4 significant decimals.
func round(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}

func summary(device string, c *cond, sigs []wire.Signature, why []string) string {
	var b strings.Builder
	b.WriteString(device)
	if c.comp != "" {
		b.WriteString(" ")
		b.WriteString(c.comp)
	}
	b.WriteString(": ")
	b.WriteString(c.category)
	b.WriteString(" ")
	b.WriteString(c.stage.String())
	for i, s := range sigs {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(s.Kind)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(s.Value, 'g', 4, 64))
		if s.Unit != "" {
			b.WriteByte(' ')
			b.WriteString(s.Unit)
		}
		b.WriteString(", limit ")
		b.WriteString(strconv.FormatFloat(s.Threshold, 'g', 4, 64))
		if i == len(sigs)-1 {
			b.WriteString(")")
		}
	}
	for _, w := range why {
		b.WriteString("; ")
		b.WriteString(w)
	}
	return b.String()
}

// ErrNotLatched is returned by Ack for a condition that holds no latched
// stage.
var ErrNotLatched = errors.New("detect: condition is not latched")

// Ack acknowledges a latched (critical or emergency) condition, named by
// component ("" for rack-level) and category. The stage is released: the
// next Step lowers it to what the evidence then says and emits that change
// with the Ack attached.
func (d *Detector) Ack(component, category string, ack wire.Ack) error {
	c := d.byKey[component+"|"+category]
	if c == nil {
		return fmt.Errorf("detect: ack %s %s/%s: no such condition", d.device, component, category)
	}
	if !c.stage.Latches() {
		return fmt.Errorf("detect: ack %s %s/%s at %s: %w", d.device, component, category, c.stage, ErrNotLatched)
	}
	a := ack
	c.acked = &a
	c.escalate = 0
	return nil
}

// Stage returns the published stage of a condition (normal if unknown).
func (d *Detector) Stage(component, category string) wire.Stage {
	if c := d.byKey[component+"|"+category]; c != nil {
		return c.stage
	}
	return wire.StageNormal
}

// MaxStage returns the highest published stage of the device over the
// given categories (all when none given).
func (d *Detector) MaxStage(categories ...string) wire.Stage {
	s := wire.StageNormal
	for _, c := range d.conds {
		if len(categories) > 0 && !contains(categories, c.category) {
			continue
		}
		s = max(s, c.stage)
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// AlertID derives a stable id from an alert's content (device, component,
// category, stages and sample time), so that replaying the same telemetry
// gives the same ids and JetStream de-duplicates a re-sent alert.
func AlertID(a *wire.Alert) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d", a.Site, a.Agent, a.Device, a.Component, a.Category, a.Stage, a.SampleTime.UnixNano())
	fmt.Fprintf(h, "\x00%s", a.PreviousStage)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
