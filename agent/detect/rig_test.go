package detect_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// rig is a small rack (1 string x 1 module x 8 cells plus gas, ambient,
// current and contacts) driven sample by sample, with realistic noise so
// that hygiene rules see live sensors.
type rig struct {
	t      *testing.T
	det    *detect.Detector
	points []*drivers.Point
	rs     []drivers.Reading
	rng    *rand.Rand
	at     time.Time
	period time.Duration
	alerts []wire.Alert

	T, V  []float64 // per cell, before noise
	bal   []bool
	I     float64
	gas   map[string]float64
	amb   float64
	smoke bool
	fire  bool
	// idx
	cellT, cellV, cellB []int
	cur, amb_, sm, fi   int
	gasIdx              map[string]int
}

const nCells = 8

func newRig(t *testing.T, cfg detect.Config) *rig {
	r := &rig{t: t, rng: rand.New(rand.NewPCG(1, 2)), at: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		period: time.Second, gas: map[string]float64{"h2": 2, "co": 1, "voc": 0.5}, amb: 24, gasIdx: map[string]int{}}
	add := func(name string, kind drivers.Kind) int {
		r.points = append(r.points, drivers.NewPoint(name, "", kind))
		return len(r.points) - 1
	}
	r.cur = add("string[1].current.amps", drivers.KindNumber)
	for k := 1; k <= nCells; k++ {
		pre := fmt.Sprintf("string[1].module[1].cell[%d].", k)
		r.cellT = append(r.cellT, add(pre+"temperature.celsius", drivers.KindNumber))
		r.cellV = append(r.cellV, add(pre+"voltage.volts", drivers.KindNumber))
		r.cellB = append(r.cellB, add(pre+"balancing", drivers.KindBool))
		r.T = append(r.T, 25)
		r.V = append(r.V, 4.0)
		r.bal = append(r.bal, false)
	}
	for _, g := range []string{"h2", "co", "voc"} {
		r.gasIdx[g] = add("gas."+g+".ppm", drivers.KindNumber)
	}
	r.amb_ = add("ambient.temperature.celsius", drivers.KindNumber)
	r.sm = add("alarm.smoke", drivers.KindBool)
	r.fi = add("alarm.fire_panel", drivers.KindBool)
	r.rs = make([]drivers.Reading, len(r.points))
	for i, p := range r.points {
		r.rs[i].Point = p
	}
	r.det = detect.New(cfg, "rack-t", r.points)
	return r
}

func q(v, step float64) float64 { return float64(int64(v/step+0.5*sign(v))) * step }

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

// fill writes the clean values with noise; tweak may then edit readings.
func (r *rig) fill() {
	set := func(i int, v float64) { r.rs[i].Value, r.rs[i].Fault = v, drivers.FaultNone }
	set(r.cur, r.I)
	for k := range nCells {
		set(r.cellT[k], q(r.T[k]+0.15*r.rng.NormFloat64(), 0.1))
		set(r.cellV[k], q(r.V[k]+0.0015*r.rng.NormFloat64(), 0.001))
		b := 0.0
		if r.bal[k] {
			b = 1
		}
		set(r.cellB[k], b)
	}
	for g, i := range r.gasIdx {
		set(i, q(r.gas[g]+0.2*r.rng.NormFloat64(), 0.1))
	}
	set(r.amb_, q(r.amb+0.1*r.rng.NormFloat64(), 0.1))
	set(r.sm, b2f(r.smoke))
	set(r.fi, b2f(r.fire))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// step runs one round; tweak (optional) edits the readings after noise.
func (r *rig) step(tweak func(rs []drivers.Reading)) {
	r.t.Helper()
	r.fill()
	if tweak != nil {
		tweak(r.rs)
	}
	r.det.Step(r.at, r.rs, nil, func(a wire.Alert) { r.alerts = append(r.alerts, a) })
	r.at = r.at.Add(r.period)
}

func (r *rig) fail(err error) {
	r.det.Step(r.at, r.rs, err, func(a wire.Alert) { r.alerts = append(r.alerts, a) })
	r.at = r.at.Add(r.period)
}

// run steps for d.
func (r *rig) run(d time.Duration, tweak func(rs []drivers.Reading)) {
	r.t.Helper()
	for end := r.at.Add(d); r.at.Before(end); {
		r.step(tweak)
	}
}

// runEach steps for d, calling each before every round.
func (r *rig) runEach(d time.Duration, each func()) {
	for end := r.at.Add(d); r.at.Before(end); {
		each()
		r.step(nil)
	}
}

func cellComp(k int) string { return fmt.Sprintf("string/1/module/1/cell/%d", k+1) }

// stage returns the published stage of a condition.
func (r *rig) stage(comp, category string) wire.Stage { return r.det.Stage(comp, category) }

// max returns the highest stage alerted in a category (any component).
func (r *rig) max(category string) wire.Stage {
	s := wire.StageNormal
	for _, a := range r.alerts {
		if a.Category == category && a.Stage > s {
			s = a.Stage
		}
	}
	return s
}

// first returns the first alert of a category reaching at least stage.
func (r *rig) first(category string, stage wire.Stage) (wire.Alert, bool) {
	for _, a := range r.alerts {
		if a.Category == category && a.Stage >= stage {
			return a, true
		}
	}
	return wire.Alert{}, false
}

func hasSig(a wire.Alert, kind string) bool {
	for _, s := range a.Signatures {
		if s.Kind == kind {
			return true
		}
	}
	return false
}

func (r *rig) dump() {
	for _, a := range r.alerts {
		r.t.Logf("%s %s", a.SampleTime.Format("15:04:05"), a.Summary)
	}
}
