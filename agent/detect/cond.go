package detect

import (
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Families of independent evidence, for corroboration.
const (
	FamilyThermal    = "thermal"
	FamilyGas        = "gas"
	FamilyElectrical = "electrical"
	FamilySmoke      = "smoke" // smoke and fire-panel contacts
)

// ruleDef describes one rule: what it is called on the wire and the stage
// it supports while active.
type ruleDef struct {
	kind  string
	unit  string
	stage wire.Stage
	// kind2/unit2 name a second value reported with the first (e.g. the
	// peer delta alongside a rate).
	kind2, unit2 string
}

// timer is a rule's on-delay: the rule becomes active once its condition
// has held for delay and at least minN consecutive samples.
type timer struct {
	since   int64
	n       int32
	holding bool
	active  bool
}

// ruleState is one rule's live state on one condition.
type ruleState struct {
	timer
	v, th, v2, th2 float64
	comp           string // narrows the evidence ("" = the condition's component)
}

// eval updates the rule. on is the entry condition; stay, tested only once
// the rule is holding, is the (looser) condition to remain: hysteresis.
func (r *ruleState) eval(now int64, on, stay bool, delay int64, v, th float64) bool {
	hold := on || (r.holding && stay)
	if !hold {
		r.holding, r.active, r.n = false, false, 0
		return false
	}
	if !r.holding {
		r.holding, r.since, r.n = true, now, 0
	}
	r.n++
	minN := int32(1)
	if delay > 0 {
		minN = 2
	}
	if now-r.since >= delay && r.n >= minN {
		r.active = true
	}
	r.v, r.th = v, th
	return r.active
}

func (r *ruleState) clear() { r.holding, r.active, r.n = false, false, 0 }

// cond is one condition: a component and category whose stage changes are
// published as alerts.
type cond struct {
	comp     string
	category string
	family   string // "" for sensor_fault, comms, environment
	cap      wire.Stage
	defs     []ruleDef
	rs       []ruleState

	evidence   wire.Stage // from the rules this round
	own        wire.Stage // evidence before device-level promotion
	stage      wire.Stage // published
	escalate   wire.Stage // data-loss escalation, sticky until ack
	lowerSince int64
	acked      *wire.Ack
	pendingAck *wire.Ack // attached to the next alert
	promoted   bool      // raised by corroboration this round
	isCell     bool
	note       string // extra words for the summary (e.g. the fault name)
}

// level is what counts for corroboration: the published or current stage.
func (c *cond) level() wire.Stage { return max(c.stage, c.evidence) }

func (c *cond) computeEvidence() {
	e := wire.StageNormal
	for i := range c.rs {
		if c.rs[i].active && c.defs[i].stage > e {
			e = c.defs[i].stage
		}
	}
	c.evidence = min(e, c.cap)
	c.own = c.evidence
	c.promoted = false
}

// step runs the stage machine and reports whether the stage changed.
// Rising is immediate; falling waits clearAfter of lower evidence and never
// happens for latched stages until acknowledged.
func (c *cond) step(now, clearAfter int64) (changed bool, prev wire.Stage) {
	cand := min(max(c.evidence, c.escalate), c.cap)
	prev = c.stage
	switch {
	case cand > c.stage:
		c.stage, c.lowerSince, c.acked = cand, 0, nil
		return true, prev
	case cand < c.stage:
		if c.stage.Latches() && c.acked == nil {
			return false, prev
		}
		if c.acked != nil {
			c.stage, c.lowerSince = cand, 0
			c.pendingAck, c.acked = c.acked, nil
			return true, prev
		}
		if c.lowerSince == 0 {
			c.lowerSince = now
		}
		if now-c.lowerSince >= clearAfter {
			c.stage, c.lowerSince = cand, 0
			return true, prev
		}
	default:
		c.lowerSince = 0
	}
	return false, prev
}
