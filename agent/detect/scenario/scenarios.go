package scenario

import (
	"fmt"
	"math"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
)

// Truth is a scenario's ground truth, as offsets from its start.
type Truth struct {
	// Real is true for a thermal-runaway event, false for a benign trap.
	Real bool `json:"real"`
	// Device is the device with the event ("" for benign scenarios).
	Device string `json:"device,omitempty"`
	// EarliestWarning: a warning before this is a false alarm (the
	// physical anomaly does not exist yet).
	EarliestWarning time.Duration `json:"earliest_warning"`
	// LatestWarning and LatestCritical are the deadlines a detector must
	// meet; Onset is the runaway onset (first cell venting into runaway).
	LatestWarning  time.Duration `json:"latest_warning"`
	LatestCritical time.Duration `json:"latest_critical"`
	Onset          time.Duration `json:"onset"`
	// CheckUntil bounds the benign checks (e.g. a neighbour rack, until
	// the real event makes everything fair game). 0 = the whole run.
	CheckUntil time.Duration `json:"check_until,omitempty"`
}

// Scenario is one entry of the library.
type Scenario struct {
	Name        string
	Description string
	Chemistry   string
	Duration    time.Duration
	Truth       Truth
	build       func(o Options) []*model
}

// Options parametrise a run.
type Options struct {
	Period time.Duration // sampling period; default 1 s
	Seed   uint64        // noise seed
	Rack   Rack          // default DefaultRack()
	Start  time.Time     // default 2026-01-01T00:00:00Z
}

func (o Options) withDefaults() Options {
	if o.Period <= 0 {
		o.Period = time.Second
	}
	if o.Rack.N() == 0 {
		o.Rack = DefaultRack()
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return o
}

const (
	minute = 60.0
	warmup = 10 * minute // baselines settle before anything happens
)

func mins(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

// runaway describes one cell running away at onset (s), for the shared
// "after onset" physics: a fast rise, voltage collapse, venting, smoke,
// the fire panel, and the sensors dying.
type runaway struct {
	cell  int
	onset float64
}

// runawayHeat is the extra temperature of a cell s seconds after onset:
// 1-5 degC/s at first (GB 38031: >= 1 degC/s), then the jump to ~450 degC
// in seconds ([S20]: 167 -> 450 degC in ~5 s).
func runawayHeat(s float64) float64 {
	switch {
	case s < 0:
		return 0
	case s < 20:
		return 1.5*s + 0.1*s*s
	default:
		return math.Min(70+60*(s-20), 450)
	}
}

// neighbourHeat is what a running-away cell adds to an adjacent cell s
// seconds after its onset (conduction through the module).
func neighbourHeat(s float64) float64 {
	if s < 0 {
		return 0
	}
	return 60 * (1 - math.Exp(-s/300))
}

// afterOnset adds the shared consequences of the runaways to a model.
func afterOnset(m *model, rs []runaway, ventLead float64) {
	prevHeat, prevDV, prevGas, prevContacts := m.heat, m.dv, m.gas, m.contacts
	m.heat = func(m *model, i int, t float64) float64 {
		h := 0.0
		if prevHeat != nil {
			h = prevHeat(m, i, t)
		}
		for _, r := range rs {
			s := t - r.onset
			if i == r.cell {
				h += runawayHeat(s)
			} else if m.rack.neighbours(i, r.cell) {
				h += neighbourHeat(s)
			} else if m.rack.sameModule(i, r.cell) {
				h += neighbourHeat(s) / 4
			}
		}
		return h
	}
	m.dv = func(m *model, i int, t float64) float64 {
		v := 0.0
		if prevDV != nil {
			v = prevDV(m, i, t)
		}
		for _, r := range rs {
			if s := t - r.onset; i == r.cell && s >= 0 {
				v -= 4.5 * math.Min(s/10, 1) // collapse to 0 V within ~10 s
			}
		}
		return v
	}
	first := rs[0].onset
	m.gas = func(t float64) (h2, co, voc float64) {
		if prevGas != nil {
			h2, co, voc = prevGas(t)
		}
		if s := t - (first - ventLead); s >= 0 { // first vent: electrolyte vapour
			voc += 80 * math.Min(s/60, 1)
			co += 20 * math.Min(s/120, 1)
		}
		if s := t - first; s >= 0 { // runaway: H2 and CO dominate the vent gas [S32]
			f := math.Min(s/60, 1)
			h2 += 3000 * f
			co += 1500 * f
			voc += 500 * f
		}
		return
	}
	m.contacts = func(t float64) (bool, bool) {
		sm, fi := false, false
		if prevContacts != nil {
			sm, fi = prevContacts(t)
		}
		return sm || t >= first+45, fi || t >= first+120
	}
	m.dead = func(i int, t float64) bool {
		for _, r := range rs {
			if i == r.cell && t >= r.onset+90 {
				return true
			}
		}
		return false
	}
}

// selfHeat is the precursor self-heating excess of a cell tau seconds
// before runaway onset, fitted to the ARC rates of the design note
// (~0.1 degC/min 85 min before, ~1 degC/min 4 min before, [S20]):
// rate = 9/(tau_min+5) degC/min, integrated from span minutes before.
func selfHeat(tauS, spanMin float64) float64 {
	tau := tauS / minute
	if tau > spanMin {
		return 0
	}
	if tau < 0 {
		tau = 0
	}
	return 9 * math.Log((spanMin+5)/(tau+5))
}

// All returns the scenario library in a stable order.
func All() []Scenario {
	return []Scenario{
		internalShort(), overcharge(), externalHeating(), offgasFirst(), propagation(), lfpHydrogen(),
		heavyDischarge(), hvacFailure(), singleSpike(), stuckSensor(), sentinels(),
		commsLoss(), balancingSteps(), normalImbalance(), twoRacks(),
	}
}

// Get returns the scenario called name.
func Get(name string) (Scenario, bool) {
	for _, s := range All() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func realTruth(device string, start, onset float64) Truth {
	return Truth{Real: true, Device: device, EarliestWarning: mins(start / minute),
		LatestWarning: mins((onset - 15*minute) / minute), LatestCritical: mins((onset - 5*minute) / minute),
		Onset: mins(onset / minute)}
}

// suspect is the cell where events happen: module 2, cell 7 (or the last
// module/cell of a small rack).
func suspect(r Rack) int { return r.cellIndex(1, min(2, r.Modules), min(7, r.Cells)) }

func internalShort() Scenario {
	const span = 60.0
	onset := warmup + span*minute
	return Scenario{
		Name:        "internal_short",
		Description: "NMC rack on float at 95 % SOC; a latent internal short in one cell: micro-short dips, a growing voltage deficit, self-heating (ARC-fitted), first vent 2 min before runaway (APS McMicken, Korea ESS post-charge standby)",
		Chemistry:   "nmc", Duration: mins(warmup/minute + span + 10),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			shortCell(m, suspect(o.Rack), warmup, onset, span)
			return []*model{m}
		},
	}
}

// shortCell applies the internal-short precursor to cell c of m.
func shortCell(m *model, c int, start, onset, spanMin float64) {
	m.heat = func(m *model, i int, t float64) float64 {
		if i != c {
			return 0
		}
		return selfHeat(onset-t, spanMin)
	}
	m.dv = func(m *model, i int, t float64) float64 {
		if i != c || t < start {
			return 0
		}
		x := math.Min((t-start)/(onset-start), 1)
		v := -0.2 * x * x // soft short: deficit grows to 200 mV
		// Transient micro-short dips of 40 mV lasting 3 s ([S43]: 20-80 mV).
		for _, d := range [...]float64{5, 12, 20} {
			if s := t - (start + d*minute + 1.3); s >= 0 && s < 3 {
				v -= 0.040
			}
		}
		return v
	}
	afterOnset(m, []runaway{{c, onset}}, 2*minute)
}

func overcharge() Scenario {
	onset := warmup + 50*minute
	return Scenario{
		Name:        "overcharge",
		Description: "charger/BMS control failure: 0.5C charge continues past full; a weak cell (85 % capacity) climbs fastest toward 4.8 V and heats from side reactions ([S48], Korea ESS SOC > 95 %)",
		Chemistry:   "nmc", Duration: mins(warmup/minute + 60),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c := suspect(o.Rack)
			for i := range m.soc {
				m.soc[i] = 0.92
			}
			m.capF[c] = 0.85
			m.current = func(t float64) float64 {
				if t >= warmup && t < onset+5*minute {
					return -50
				}
				return 0
			}
			m.heat = func(m *model, i int, t float64) float64 {
				// Side-reaction heat once a cell is past full: a few degC for
				// the string, much more for the weak cell, which also starts
				// self-heating 30 min before its runaway.
				h := 12 * math.Max(m.soc[i]-1.02, 0)
				if i == c {
					over := math.Max(m.soc[i]-1.05, 0)
					h += 100*over*over + selfHeat(onset-t, 30)
				}
				return h
			}
			afterOnset(m, []runaway{{c, onset}}, 3*minute)
			return []*model{m}
		},
	}
}

func externalHeating() Scenario {
	onset := warmup + 70*minute
	return Scenario{
		Name:        "external_heating",
		Description: "a failing busbar joint heats the end cell of a module at ~1 degC/min (UL 9540A cells were heated at 4-7 degC/min, [S26]); its neighbour gets 40 %; runaway 70 min later; no gas until the vent",
		Chemistry:   "nmc", Duration: mins(warmup/minute + 80),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c := o.Rack.cellIndex(1, min(3, o.Rack.Modules), 1)
			m.heat = func(m *model, i int, t float64) float64 {
				x := math.Max(math.Min(t, onset)-warmup, 0) / minute
				switch {
				case i == c:
					return 1.0*x + 0.004*x*x
				case i == c+1:
					return 0.4 * x
				}
				return 0
			}
			afterOnset(m, []runaway{{c, onset}}, 3*minute)
			return []*model{m}
		},
	}
}

func offgasFirst() Scenario {
	vent := warmup + 5*minute
	onset := vent + 20*minute
	return Scenario{
		Name:        "offgas_first",
		Description: "electrolyte vapour vents before any thermal signature (Li-ion Tamer 6.4 min, vendors 5-30 min, [S27][S16]); CO follows; the cell warms slowly; runaway 20 min after the first vent",
		Chemistry:   "nmc", Duration: mins(onset/minute + 8),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c := suspect(o.Rack)
			m.gas = func(t float64) (h2, co, voc float64) {
				if s := t - vent; s >= 0 {
					voc = 25*math.Min(s/180, 1) - 0.3*s/minute
					co = 15 * math.Min(s/(10*minute), 1)
					h2 = 0.5 * s / minute // H2 trails ([S27]: H2 only at runaway)
				}
				if s := t - (vent + 10*minute); s >= 0 {
					voc += 60 * math.Min(s/120, 1)
				}
				return
			}
			m.heat = func(m *model, i int, t float64) float64 {
				if i != c || t < warmup {
					return 0
				}
				return 0.3 * (math.Min(t, onset) - warmup) / minute
			}
			afterOnset(m, []runaway{{c, onset}}, 0)
			return []*model{m}
		},
	}
}

func propagation() Scenario {
	const span = 45.0
	onset := warmup + span*minute
	return Scenario{
		Name:        "propagation",
		Description: "an internal short runs away and propagates to the adjacent cells ~6 min apart (UL 9540A unit test, [S26])",
		Chemistry:   "nmc", Duration: mins(onset/minute + 16),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c := suspect(o.Rack)
			shortCell(m, c, warmup, onset, span)
			var rs []runaway
			rs = append(rs, runaway{c, onset})
			if o.Rack.Cells > 1 {
				nb := c + 1
				if (c+1)%o.Rack.Cells == 0 {
					nb = c - 1
				}
				rs = append(rs, runaway{nb, onset + 6*minute})
			}
			if o.Rack.Cells > 2 && c%o.Rack.Cells > 0 && (c+1)%o.Rack.Cells > 0 {
				rs = append(rs, runaway{c - 1, onset + 12*minute})
			}
			afterOnset(m, rs, 2*minute)
			return []*model{m}
		},
	}
}

func lfpHydrogen() Scenario {
	onset := warmup + 96*minute
	return Scenario{
		Name:        "lfp_hydrogen",
		Description: "LFP rack: hydrogen leads by over an hour (x2 of baseline at 44 min, x10 at 60, x100 at 80, runaway at 96 min, [S22]); slow self-heating from 50 min before; LFP's flat OCV hides the short (-20 mV)",
		Chemistry:   "lfp", Duration: mins(onset/minute + 8),
		Truth: realTruth("rack-a", warmup, onset),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "lfp", o.Seed)
			for i := range m.soc {
				m.soc[i] = 0.85
			}
			c := suspect(o.Rack)
			// log10(H2 / baseline) against minutes since the anomaly began.
			knots := [...][2]float64{{30, 0}, {44, 0.301}, {60, 1}, {80, 2}, {96, 2.5}}
			m.gas = func(t float64) (h2, co, voc float64) {
				x := (t - warmup) / minute
				f := 0.0
				for k := 1; k < len(knots); k++ {
					a, b := knots[k-1], knots[k]
					if x >= a[0] {
						f = a[1] + (b[1]-a[1])*math.Min((x-a[0])/(b[0]-a[0]), 1)
					}
				}
				return 2 * (math.Pow(10, f) - 1), 0, 0
			}
			m.heat = func(m *model, i int, t float64) float64 {
				if i != c {
					return 0
				}
				return selfHeat(onset-t, 50)
			}
			m.dv = func(m *model, i int, t float64) float64 {
				if i != c || t < warmup {
					return 0
				}
				return -0.020 * math.Min((t-warmup)/(onset-warmup), 1)
			}
			afterOnset(m, []runaway{{c, onset}}, 0)
			return []*model{m}
		},
	}
}

func benignTruth() Truth { return Truth{} }

func heavyDischarge() Scenario {
	return Scenario{
		Name:        "heavy_discharge",
		Description: "utility outage: 2.5C discharge for 10 min (UPS transfers are mostly < 10 min at high load, [S57]); every cell warms ~1 degC/min and sags together; then recharge at 0.5C",
		Chemistry:   "nmc", Duration: mins(60),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			m.current = func(t float64) float64 {
				switch {
				case t >= warmup && t < warmup+10*minute:
					return 250
				case t >= warmup+12*minute && t < warmup+42*minute:
					return -50
				}
				return 0
			}
			return []*model{m}
		},
	}
}

func hvacFailure() Scenario {
	return Scenario{
		Name:        "hvac_failure",
		Description: "chillers fail: the room warms ~2 degC/min to 44 degC ([S60]: >40 degC in 15 min), holds, recovers; cells follow with their thermal lag; gas sensors drift with temperature",
		Chemistry:   "nmc", Duration: mins(70),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			m.ambient = func(t float64) float64 {
				x := (t - warmup) / minute
				switch {
				case x < 0:
					return baseAmbient
				case x < 10:
					return baseAmbient + 2*x
				case x < 25:
					return baseAmbient + 20
				default:
					return math.Max(baseAmbient+20-(x-25), baseAmbient)
				}
			}
			m.gas = func(t float64) (h2, co, voc float64) {
				d := (m.air - baseAmbient) * 0.1 // MOS drift with temperature
				return d, d / 2, d / 2
			}
			return []*model{m}
		},
	}
}

func singleSpike() Scenario {
	return Scenario{
		Name:        "single_spike",
		Description: "EMI/ADC glitches: one sample of 127.5 degC, one of 85 degC and one voltage sample of 2.1 V, each followed by normal readings (a 90 degC jump in 1 s needs ~84 kW, [S59] derived)",
		Chemistry:   "nmc", Duration: mins(40),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c1, c2 := suspect(o.Rack), o.Rack.cellIndex(1, 1, 1)
			done := [3]bool{}
			m.sensor = func(m *model, t float64) {
				switch {
				case t >= 20*minute && !done[0]:
					done[0] = true
					m.out[m.cellT[c1]].Value = 127.5
				case t >= 25*minute && !done[1]:
					done[1] = true
					m.out[m.cellV[c2]].Value = 2.1
				case t >= 30*minute && !done[2]:
					done[2] = true
					m.out[m.cellT[c2]].Value = 85
				}
			}
			return []*model{m}
		},
	}
}

func stuckSensor() Scenario {
	return Scenario{
		Name:        "stuck_sensor",
		Description: "one cell's NTC and another cell's voltage tap freeze bit-identical while the module warms under a 1C load (120 identical readings are impossible for a live sensor)",
		Chemistry:   "nmc", Duration: mins(45),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			c1, c2 := suspect(o.Rack), o.Rack.cellIndex(1, 1, 2)
			m.current = func(t float64) float64 {
				if t >= 12*minute && t < 35*minute {
					return 100
				}
				return 0
			}
			var frozenT, frozenV float64
			m.sensor = func(m *model, t float64) {
				if t < 5*minute {
					frozenT, frozenV = m.out[m.cellT[c1]].Value, m.out[m.cellV[c2]].Value
					return
				}
				m.out[m.cellT[c1]].Value = frozenT
				m.out[m.cellV[c2]].Value = frozenV
			}
			return []*model{m}
		},
	}
}

func sentinels() Scenario {
	return Scenario{
		Name:        "sentinels",
		Description: "not-available values: 0xFFFF read as 6553.5 degC, 0x8000 as -3276.8, open thermistor -40 degC, 0 V and 65.535 V taps, points marked sentinel by the driver, and a gas head reporting -1 ([S63][S64])",
		Chemistry:   "nmc", Duration: mins(40),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			n := o.Rack.N()
			cA, cB, cC := suspect(o.Rack), (suspect(o.Rack)+5)%n, (suspect(o.Rack)+11)%n
			m.sensor = func(m *model, t float64) {
				x := t / minute
				switch {
				case x >= 12 && x < 20:
					m.out[m.cellT[cA]].Value = 6553.5
				case x >= 20 && x < 24:
					m.out[m.cellT[cA]].Value = -3276.8
				}
				if x >= 15 && x < 30 {
					m.out[m.cellT[cB]].Value = -40
					m.out[m.cellV[cB]].Value = 0
				}
				if x >= 18 && x < 26 {
					m.out[m.cellV[cC]].Value = 65.535
					m.out[m.cellT[cC]].Fault = drivers.FaultSentinel
					m.out[m.cellT[cC]].Value = 0
				}
				if x >= 22 && x < 23 {
					m.out[m.h2].Value = -1
				}
			}
			return []*model{m}
		},
	}
}

func commsLoss() Scenario {
	return Scenario{
		Name:        "comms_loss",
		Description: "the gateway times out for 3 min, then returns all-zero frames for 1 min, then repeats its last frame for 2 min (treated as unknown, never as 0)",
		Chemistry:   "nmc", Duration: mins(45),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			m.roundErr = func(t float64) error {
				if x := t / minute; x >= 15 && x < 18 {
					return fmt.Errorf("%w: no answer from 10.0.0.5:502", ErrPoll)
				}
				return nil
			}
			var frozen []float64
			m.sensor = func(m *model, t float64) {
				x := t / minute
				switch {
				case x >= 25 && x < 26:
					for _, i := range m.cellV {
						m.out[i].Value = 0
					}
					for _, i := range m.cellT {
						m.out[i].Value = 0
					}
				case x >= 30 && x < 32:
					if frozen == nil {
						frozen = make([]float64, len(m.out))
						for i := range m.out {
							frozen[i] = m.out[i].Value
						}
					}
					for i := range m.out {
						m.out[i].Value = frozen[i]
					}
				}
			}
			return []*model{m}
		},
	}
}

func balancingSteps() Scenario {
	return Scenario{
		Name:        "balancing",
		Description: "passive balancing on float: the highest cells bleed in 5-10 min windows; the sense-lead IR drop steps the reading by -45 mV and the adjacent cell by +12 mV while the flag is set ([S50][S65])",
		Chemistry:   "nmc", Duration: mins(50),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			n := o.Rack.N()
			on := func(i int, t float64) bool {
				if i%5 != 2 {
					return false
				}
				x := t/minute - float64(i%7)
				return x >= 12 && math.Mod(x, 15) < 8
			}
			m.balance = on
			m.dv = func(m *model, i int, t float64) float64 {
				v := 0.0
				if on(i, t) {
					v -= 0.045
				}
				if i > 0 && m.rack.neighbours(i, i-1) && on(i-1, t) {
					v += 0.012
				}
				if i+1 < n && m.rack.neighbours(i, i+1) && on(i+1, t) {
					v += 0.012
				}
				return v
			}
			return []*model{m}
		},
	}
}

func normalImbalance() Scenario {
	return Scenario{
		Name:        "normal_imbalance",
		Description: "a healthy but unbalanced string: 10-40 mV spread with one cell 45 mV low at rest, through a small cycle (maintenance watch at most, [S44][S45])",
		Chemistry:   "nmc", Duration: mins(50),
		build: func(o Options) []*model {
			m := newModel("rack-a", o.Rack, "nmc", o.Seed)
			for i := range m.voff {
				m.voff[i] = 0.010 * m.rng.NormFloat64()
			}
			m.voff[suspect(o.Rack)] = -0.045
			m.current = func(t float64) float64 {
				if t >= 30*minute && t < 40*minute {
					return 30
				}
				return 0
			}
			return []*model{m}
		},
	}
}

func twoRacks() Scenario {
	const span = 60.0
	onset := warmup + span*minute
	t := realTruth("rack-a", warmup, onset)
	t.CheckUntil = mins(onset / minute)
	return Scenario{
		Name:        "two_racks",
		Description: "two racks in one room: rack-a has an internal short; rack-b is healthy but its gas head sees a tenth of rack-a's plume a minute later (attribution by cell-level anomalies and timing)",
		Chemistry:   "nmc", Duration: mins(warmup/minute + span + 10),
		Truth: t,
		build: func(o Options) []*model {
			a := newModel("rack-a", o.Rack, "nmc", o.Seed)
			shortCell(a, suspect(o.Rack), warmup, onset, span)
			b := newModel("rack-b", o.Rack, "nmc", o.Seed^0x5bd1e995)
			b.gas = func(t float64) (h2, co, voc float64) {
				h2, co, voc = a.gas(t - minute)
				return h2 / 10, co / 10, voc / 10
			}
			return []*model{a, b}
		},
	}
}
