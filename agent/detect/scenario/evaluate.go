package scenario

import (
	"fmt"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// ConventionalLimit is the fixed threshold of a conventional BMS alarm used
// for comparison: any cell reading above 60 degC (design note 4: 55-65 degC
// limits are typical).
const ConventionalLimit = 60.0

// Never marks a stage that was not reached.
const Never = time.Duration(-1)

// Result is one scenario run through the detector.
type Result struct {
	Scenario string
	Period   time.Duration
	Seed     uint64
	Truth    Truth
	// First times (offsets from the start) the event device reached each
	// stage in the runaway categories (thermal, gas, electrical); Never if
	// not reached. For benign scenarios, the first time any device did.
	Watch, Warning, Critical, Emergency time.Duration
	// Conventional is the first time a fixed >60 degC alarm would fire on
	// any raw cell reading of the event device (any device if benign).
	Conventional time.Duration
	// BenignMax is the highest runaway-category stage reached by a device
	// (or in a window) where nothing is happening.
	BenignMax wire.Stage
	// Alerts is the number of alerts emitted, by category.
	Alerts map[string]int
	Pass   bool
	Why    string // what failed, empty on pass
}

// LeadCritical is the time from the first critical to the runaway onset
// (negative: late; Never: no critical or not a real event).
func (r *Result) LeadCritical() time.Duration { return lead(r.Truth, r.Critical) }

// LeadWarning is the time from the first warning to the runaway onset.
func (r *Result) LeadWarning() time.Duration { return lead(r.Truth, r.Warning) }

// LeadConventional is the conventional alarm's lead.
func (r *Result) LeadConventional() time.Duration { return lead(r.Truth, r.Conventional) }

func lead(t Truth, at time.Duration) time.Duration {
	if !t.Real || at == Never {
		return Never
	}
	return t.Onset - at
}

var runawayCats = []string{wire.CategoryThermal, wire.CategoryGas, wire.CategoryElectrical}

// Evaluate runs a scenario through fresh detectors (one per device) built
// with cfg, and checks the result against the ground truth. onAlert, if
// not nil, sees every alert.
func Evaluate(s Scenario, o Options, cfg detect.Config, onAlert func(wire.Alert)) Result {
	run := s.Start(o)
	res := Result{Scenario: s.Name, Period: run.Options.Period, Seed: run.Options.Seed, Truth: s.Truth,
		Watch: Never, Warning: Never, Critical: Never, Emergency: Never, Conventional: Never,
		Alerts: map[string]int{}}
	dets := map[string]*detect.Detector{}
	for _, d := range run.Devices() {
		dets[d.ID] = detect.New(cfg, d.ID, d.Points)
	}
	start := run.Options.Start
	checkUntil := s.Truth.CheckUntil
	if checkUntil == 0 {
		checkUntil = s.Duration + time.Hour
	}
	first := func(p *time.Duration, at time.Duration) {
		if *p == Never {
			*p = at
		}
	}
	for run.Next(func(dev string, at time.Time, rs []drivers.Reading, err error) {
		off := at.Sub(start)
		event := !s.Truth.Real || dev == s.Truth.Device
		if err == nil && event && res.Conventional == Never {
			for k := range rs {
				r := &rs[k]
				if r.Fault == drivers.FaultNone && r.Point.Field == "temperature.celsius" &&
					strings.Contains(r.Point.Component, "/cell/") && r.Value > ConventionalLimit {
					res.Conventional = off
					break
				}
			}
		}
		dets[dev].Step(at, rs, err, func(a wire.Alert) {
			res.Alerts[a.Category]++
			if onAlert != nil {
				onAlert(a)
			}
			if !contains(runawayCats, a.Category) {
				return
			}
			benign := !s.Truth.Real || dev != s.Truth.Device
			if benign && off <= checkUntil && a.Stage > res.BenignMax {
				res.BenignMax = a.Stage
			}
			if !event {
				return
			}
			switch {
			case a.Stage >= wire.StageEmergency:
				first(&res.Emergency, off)
				fallthrough
			case a.Stage >= wire.StageCritical:
				first(&res.Critical, off)
				fallthrough
			case a.Stage >= wire.StageWarning:
				first(&res.Warning, off)
				fallthrough
			case a.Stage >= wire.StageWatch:
				first(&res.Watch, off)
			}
		})
	}) {
	}
	res.Pass, res.Why = check(&res)
	return res
}

func check(r *Result) (bool, string) {
	var why []string
	t := r.Truth
	if r.BenignMax > wire.StageWatch {
		why = append(why, fmt.Sprintf("benign device reached %s", r.BenignMax))
	}
	if t.Real {
		switch {
		case r.Warning == Never:
			why = append(why, "no warning")
		case r.Warning < t.EarliestWarning:
			why = append(why, fmt.Sprintf("warning at %s before the anomaly (%s)", r.Warning, t.EarliestWarning))
		case r.Warning > t.LatestWarning:
			why = append(why, fmt.Sprintf("warning at %s after its deadline %s", r.Warning, t.LatestWarning))
		}
		switch {
		case r.Critical == Never:
			why = append(why, "no critical")
		case r.Critical > t.LatestCritical:
			why = append(why, fmt.Sprintf("critical at %s after its deadline %s", r.Critical, t.LatestCritical))
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
