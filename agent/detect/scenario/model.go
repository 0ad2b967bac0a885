package scenario

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
)

// Rack is the shape of one simulated battery rack.
type Rack struct {
	Strings int `json:"strings"`
	Modules int `json:"modules"` // per string
	Cells   int `json:"cells"`   // per module
}

// DefaultRack is 1 string x 8 modules x 16 cells = 128 cells.
func DefaultRack() Rack { return Rack{Strings: 1, Modules: 8, Cells: 16} }

// N is the number of cells.
func (r Rack) N() int { return r.Strings * r.Modules * r.Cells }

// Cell physics and sensor assumptions (design note sections 4 and 5).
const (
	capacityAh  = 100.0  // cell capacity
	cellR       = 0.8e-3 // ohm, 100 Ah cell (< 0.6-1.2 mOhm, [S58])
	cellMass    = 2.0    // kg
	cellCp      = 1040.0 // J/kg.K, NMC [S59]
	coolTau     = 30 * 60.0
	airTau      = 5 * 60.0
	tempNoise   = 0.15   // degC, NTC noise
	tempQuant   = 0.1    // degC/LSB
	voltNoise   = 0.0015 // V
	voltQuant   = 0.001  // V/LSB
	gasNoise    = 0.2    // ppm
	gasQuant    = 0.1
	baseAmbient = 24.0
)

// model is one simulated rack: true physical state plus a sensor layer.
// Scenario hooks add the event on top of the normal physics.
type model struct {
	id     string
	rack   Rack
	chem   string
	rng    *rand.Rand
	points []*drivers.Point
	out    []drivers.Reading

	cellT, cellV, cellB []int // reading index per cell
	modT                []int // per module
	strI, strV          []int // per string
	h2, co, voc         int
	amb, smoke, fire    int

	// physical state
	t     float64 // s since start
	air   float64 // rack air temperature
	temp  []float64
	soc   []float64
	capF  []float64 // capacity factor per cell
	r     []float64 // resistance per cell
	voff  []float64 // static voltage offset per cell
	pos   []float64 // position heating factor per cell
	lastV []float64 // last true voltage (for sensor freeze tricks)

	// hooks; nil = nothing happens
	current  func(t float64) float64 // A, + = discharge
	ambient  func(t float64) float64
	heat     func(m *model, i int, t float64) float64 // extra cell temperature, degC
	dv       func(m *model, i int, t float64) float64 // extra cell voltage, V
	gas      func(t float64) (h2, co, voc float64)    // extra ppm over clean air
	contacts func(t float64) (smoke, fire bool)
	balance  func(i int, t float64) bool
	sensor   func(m *model, t float64) // trap layer, after the clean sensor values
	roundErr func(t float64) error
	dead     func(i int, t float64) bool // cell sensors destroyed (fire)
}

// ErrPoll is the error of a simulated failed poll.
var ErrPoll = errors.New("scenario: simulated poll timeout")

func newModel(id string, rack Rack, chem string, seed uint64) *model {
	m := &model{id: id, rack: rack, chem: chem, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		h2: -1, co: -1, voc: -1, amb: -1, smoke: -1, fire: -1}
	add := func(name, unit string, kind drivers.Kind, lo, hi float64) int {
		p := drivers.NewPoint(name, unit, kind)
		p.Min, p.Max = lo, hi
		m.points = append(m.points, p)
		return len(m.points) - 1
	}
	for s := 1; s <= rack.Strings; s++ {
		m.strI = append(m.strI, add(fmt.Sprintf("string[%d].current.amps", s), "A", drivers.KindNumber, -1000, 1000))
		m.strV = append(m.strV, add(fmt.Sprintf("string[%d].voltage.volts", s), "V", drivers.KindNumber, 0, 1500))
		for j := 1; j <= rack.Modules; j++ {
			m.modT = append(m.modT, add(fmt.Sprintf("string[%d].module[%d].temperature.celsius", s, j), "degC", drivers.KindNumber, -40, 150))
			for k := 1; k <= rack.Cells; k++ {
				pre := fmt.Sprintf("string[%d].module[%d].cell[%d].", s, j, k)
				m.cellT = append(m.cellT, add(pre+"temperature.celsius", "degC", drivers.KindNumber, -40, 150))
				m.cellV = append(m.cellV, add(pre+"voltage.volts", "V", drivers.KindNumber, 0, 5))
				m.cellB = append(m.cellB, add(pre+"balancing", "", drivers.KindBool, 0, 1))
			}
		}
	}
	m.h2 = add("gas.h2.ppm", "ppm", drivers.KindNumber, 0, 10000)
	m.co = add("gas.co.ppm", "ppm", drivers.KindNumber, 0, 10000)
	m.voc = add("gas.voc.ppm", "ppm", drivers.KindNumber, 0, 10000)
	m.amb = add("ambient.temperature.celsius", "degC", drivers.KindNumber, -40, 80)
	m.smoke = add("alarm.smoke", "", drivers.KindBool, 0, 1)
	m.fire = add("alarm.fire_panel", "", drivers.KindBool, 0, 1)
	m.out = make([]drivers.Reading, len(m.points))
	for i, p := range m.points {
		m.out[i].Point = p
	}
	n := rack.N()
	m.temp = make([]float64, n)
	m.soc = make([]float64, n)
	m.capF = make([]float64, n)
	m.r = make([]float64, n)
	m.voff = make([]float64, n)
	m.pos = make([]float64, n)
	m.lastV = make([]float64, n)
	m.air = baseAmbient + 2
	for i := range n {
		k := i % rack.Cells
		// Cells in the middle of a module run warmer (less airflow).
		m.pos[i] = 1 - math.Abs(float64(k)-float64(rack.Cells-1)/2)/float64(rack.Cells)
		m.temp[i] = m.air + 0.6*m.pos[i]
		m.soc[i] = 0.95
		m.capF[i] = 1 + 0.01*m.rng.NormFloat64()
		m.r[i] = cellR * (1 + 0.04*m.rng.NormFloat64())
		m.voff[i] = 0.004 * m.rng.NormFloat64() // healthy spread, 10-30 mV peak to peak [S44]
	}
	return m
}

// ocv is a coarse open-circuit voltage curve; above full it climbs as in
// overcharge tests (to ~4.8 V, [S48]).
func (m *model) ocv(soc float64) float64 {
	if m.chem == "lfp" {
		switch {
		case soc > 1:
			return math.Min(3.45+2.0*(soc-1), 4.6)
		case soc > 0.9:
			return 3.34 + 1.1*(soc-0.9)
		default:
			return 3.27 + 0.08*soc
		}
	}
	if soc > 1 {
		return math.Min(4.20+1.2*(soc-1), 4.9)
	}
	return 3.45 + 0.75*soc
}

func quant(v, q float64) float64 { return math.Round(v/q) * q }

// step advances the model by dt seconds to time t and fills m.out.
func (m *model) step(t, dt float64, at time.Time) error {
	m.t = t
	amb := baseAmbient
	if m.ambient != nil {
		amb = m.ambient(t)
	}
	I := 0.0
	if m.current != nil {
		I = m.current(t)
	}
	if dt > 0 {
		// Exact exponential update: the same physics at any sampling period.
		m.air += (amb + 2 - m.air) * (1 - math.Exp(-dt/airTau))
		for i := range m.temp {
			q := I * I * m.r[i] / (cellMass * cellCp) // K/s Joule heating
			target := m.air + 0.6*m.pos[i] + q*coolTau*(0.9+0.2*m.pos[i])
			m.temp[i] += (target - m.temp[i]) * (1 - math.Exp(-dt/coolTau))
			m.soc[i] -= I * dt / 3600 / (capacityAh * m.capF[i])
		}
	}
	var err error
	if m.roundErr != nil {
		err = m.roundErr(t)
	}
	if err != nil {
		for i := range m.out {
			m.out[i].Value, m.out[i].Fault, m.out[i].Detail, m.out[i].At = 0, drivers.FaultTimeout, "simulated timeout", at
		}
		return err
	}
	set := func(idx int, v float64) {
		m.out[idx].Value, m.out[idx].Fault, m.out[idx].Detail, m.out[idx].At = v, drivers.FaultNone, "", at
	}
	n := m.rack.N()
	cellsPerString := m.rack.Modules * m.rack.Cells
	for s := range m.rack.Strings {
		set(m.strI[s], quant(I+0.3*m.rng.NormFloat64(), 0.1))
		sum := 0.0
		for i := s * cellsPerString; i < (s+1)*cellsPerString; i++ {
			sum += m.lastV[i]
		}
		set(m.strV[s], quant(sum, 0.1))
	}
	for i := range n {
		T := m.temp[i]
		if m.heat != nil {
			T += m.heat(m, i, t)
		}
		V := m.ocv(m.soc[i]) - I*m.r[i] + m.voff[i]
		if m.dv != nil {
			V += m.dv(m, i, t)
		}
		V = math.Max(V, 0)
		m.lastV[i] = V
		bal := m.balance != nil && m.balance(i, t)
		if m.dead != nil && m.dead(i, t) {
			// Sensors destroyed by the fire: the NTC reads open (-40 degC),
			// the voltage tap reads nothing.
			set(m.cellT[i], -40)
			set(m.cellV[i], 0)
		} else {
			set(m.cellT[i], quant(T+tempNoise*m.rng.NormFloat64(), tempQuant))
			set(m.cellV[i], quant(math.Max(V+voltNoise*m.rng.NormFloat64(), 0), voltQuant))
		}
		b := 0.0
		if bal {
			b = 1
		}
		set(m.cellB[i], b)
	}
	for j := range m.modT {
		sum := 0.0
		for k := range m.rack.Cells {
			i := j*m.rack.Cells + k
			sum += m.temp[i]
			if m.heat != nil {
				sum += m.heat(m, i, t) * 0.5 // the module sensor sits between cells
			}
		}
		set(m.modT[j], quant(sum/float64(m.rack.Cells)+tempNoise*m.rng.NormFloat64(), tempQuant))
	}
	h2, co, voc := 2.0, 1.0, 0.5
	if m.gas != nil {
		dh, dc, dvv := m.gas(t)
		h2, co, voc = h2+dh, co+dc, voc+dvv
	}
	set(m.h2, quant(math.Max(h2+gasNoise*m.rng.NormFloat64(), 0), gasQuant))
	set(m.co, quant(math.Max(co+gasNoise*m.rng.NormFloat64(), 0), gasQuant))
	set(m.voc, quant(math.Max(voc+0.5*gasNoise*m.rng.NormFloat64(), 0), gasQuant))
	set(m.amb, quant(amb+0.1*m.rng.NormFloat64(), 0.1))
	sm, fi := false, false
	if m.contacts != nil {
		sm, fi = m.contacts(t)
	}
	set(m.smoke, b2f(sm))
	set(m.fire, b2f(fi))
	if m.sensor != nil {
		m.sensor(m, t)
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cellIndex returns the flat index of string s, module j, cell k (all 1-based).
func (r Rack) cellIndex(s, j, k int) int {
	return ((s-1)*r.Modules+(j-1))*r.Cells + (k - 1)
}

// neighbours reports whether cells a and b are adjacent in one module.
func (r Rack) neighbours(a, b int) bool {
	return a/r.Cells == b/r.Cells && (a-b == 1 || b-a == 1)
}

func (r Rack) sameModule(a, b int) bool { return a/r.Cells == b/r.Cells }
