package snmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/gosnmp/gosnmp"
)

const (
	defaultMaxOIDs = 60
	defaultMaxReps = 20
	defaultMaxRows = 1024
	// recheckAbsent is how many rounds an absent object stays unasked
	// before it is tried again (a card may gain a sensor after a restart).
	recheckAbsent = 500
)

// ErrAuth wraps SNMPv3 authentication failures (unknown user, wrong
// passphrase, wrong privacy key).
var ErrAuth = errors.New("snmp: authentication failed")

// ErrLayoutChanged is returned by a Poll whose out was sized for another
// point list (the tables were discovered since): size it from Points again.
var ErrLayoutChanged = errors.New("snmp: point layout changed")

// slot is one object instance asked in a round.
type slot struct {
	oid    string // ".1.3.6.1..." as gosnmp returns names
	pdu    gosnmp.SnmpPDU
	got    bool
	fault  drivers.Fault // why it has no answer this round
	detail string
	absent int // round it was found absent (0 = not absent)
	table  int // -1 = scalar
}

// source is one way of reading a point (its OID, then its fallbacks).
type source struct {
	slot          int
	typ           string
	scale, offset float64
	invalid       []int64
	invalidText   []string
}

// cpoint is a compiled point.
type cpoint struct {
	pt       *drivers.Point
	srcs     []source
	flip     bool
	enum     map[int64]string
	trueVals []int64
	bit      int // -1 = the whole value
	flagBase int
	rate     bool
	rng      *profile.Range
	// rate state
	prevRaw  uint64
	prevAt   time.Time
	havePrev bool
}

// walkScratch holds walkGroup's buffers between rounds.
type walkScratch struct {
	cur    []string
	count  []int
	active []int
	next   []int
	oids   []string
}

// table is a walked table block.
type table struct {
	name    string
	entry   string   // ".1.3...": the entry OID
	cols    []string // value columns walked each round
	maxRows int
}

// Poller reads one SNMP device with a compiled profile. It implements
// drivers.Poller and drivers.Identifier. It is owned by one goroutine.
type Poller struct {
	cfg     Config
	prof    *profile.Profile
	log     *slog.Logger
	g       *gosnmp.GoSNMP
	maxOIDs int
	maxReps int

	slots  []slot
	byOID  map[string]int
	scalar []int // scalar slot indices, in ask order
	tables []table
	points []cpoint
	pts    []*drivers.Point

	// preparation (table discovery)
	ready   bool
	prepErr error
	nextTry time.Time
	backoff time.Duration

	round    int
	requests uint64
	ask      []string // reused buffer of OIDs for one Get
	walk     walkScratch
	askSlot  []int
	connErr  error
}

// NewPoller compiles prof for the device and opens its socket; it does no
// SNMP I/O, so an unreachable device does not stop the agent starting.
// A profile with table blocks needs its rows discovered: until Prepare (or
// the first Poll) succeeds, Points is empty; a profile of scalars only is
// ready at once.
func NewPoller(cfg Config, prof *profile.Profile, log *slog.Logger) (*Poller, error) {
	if prof == nil {
		return nil, fmt.Errorf("snmp device %s: no profile", cfg.name())
	}
	if prof.Protocol != "" && prof.Protocol != "snmp" {
		return nil, fmt.Errorf("snmp device %s: profile %s is for protocol %q", cfg.name(), prof.ID, prof.Protocol)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Poller{cfg: cfg, prof: prof, byOID: map[string]int{}, maxOIDs: defaultMaxOIDs, maxReps: defaultMaxReps}
	if o := prof.SNMP; o != nil {
		if o.MaxOIDs > 0 {
			p.maxOIDs = o.MaxOIDs
		}
		if o.MaxRepetitions > 0 {
			p.maxReps = o.MaxRepetitions
		}
	}
	if cfg.MaxOIDs > 0 {
		p.maxOIDs = cfg.MaxOIDs
	}
	g, err := cfg.client(p.maxOIDs, p.maxReps)
	if err != nil {
		return nil, err
	}
	p.g = g
	p.log = log.With("device", cfg.name(), "link", cfg.link(), "profile", prof.ID)
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("snmp device %s: connect %s: %w", cfg.name(), cfg.Target, err)
	}
	if err := p.compileScalars(); err != nil {
		g.Conn.Close()
		return nil, err
	}
	p.ask = make([]string, 0, p.maxOIDs)
	p.askSlot = make([]int, 0, p.maxOIDs)
	if len(prof.Blocks) == 0 {
		p.finish()
	}
	return p, nil
}

// NewPollerContext is NewPoller followed by Prepare: Points is final when
// it returns, and a device that does not answer is an error naming it.
func NewPollerContext(ctx context.Context, cfg Config, prof *profile.Profile, log *slog.Logger) (*Poller, error) {
	p, err := NewPoller(cfg, prof, log)
	if err != nil {
		return nil, err
	}
	if err := p.Prepare(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// finish freezes the point list.
func (p *Poller) finish() {
	p.pts = make([]*drivers.Point, len(p.points))
	for i := range p.points {
		p.pts[i] = p.points[i].pt
	}
	p.ready = true
}

// Prepare walks the profile's tables once to fix their rows, so that
// Points is known before the first round. It does nothing once done; after
// a failure it returns the last error at once until a backoff (1 s doubling
// to 60 s) has passed, so calling it every round is cheap.
func (p *Poller) Prepare(ctx context.Context) error {
	if p.ready {
		return nil
	}
	if p.prepErr != nil && time.Now().Before(p.nextTry) {
		return p.prepErr
	}
	p.g.Context = ctx
	nSlots, nPoints := len(p.slots), len(p.points)
	if err := p.discoverTables(ctx); err != nil {
		// Roll back what the failed discovery added.
		for _, sl := range p.slots[nSlots:] {
			delete(p.byOID, sl.oid)
		}
		p.slots, p.points, p.tables = p.slots[:nSlots], p.points[:nPoints], p.tables[:0]
		p.backoff = min(max(2*p.backoff, time.Second), time.Minute)
		p.prepErr, p.nextTry = err, time.Now().Add(p.backoff)
		return err
	}
	p.prepErr, p.backoff = nil, 0
	p.finish()
	p.log.Info("snmp tables discovered", "points", len(p.pts))
	return nil
}

// normOID gives an OID the leading dot gosnmp uses in answers.
func normOID(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '.' {
		return s
	}
	return "." + s
}

func (p *Poller) addSlot(oid string, tab int) int {
	oid = normOID(oid)
	if i, ok := p.byOID[oid]; ok {
		return i
	}
	p.slots = append(p.slots, slot{oid: oid, table: tab})
	i := len(p.slots) - 1
	p.byOID[oid] = i
	if tab < 0 {
		p.scalar = append(p.scalar, i)
	}
	return i
}

func scaleOf(s *profile.Scale) (float64, error) {
	switch {
	case s == nil:
		return 1, nil
	case s.Factor != nil:
		return *s.Factor, nil
	case s.Pow10 != nil:
		return math.Pow10(*s.Pow10), nil
	case s.Pow2 != nil:
		return math.Ldexp(1, *s.Pow2), nil
	case s.SF != "":
		return 0, errors.New("scale factor registers are Modbus only")
	}
	return 1, nil
}

// compilePoint turns one profile point into compiled points (one, or one
// per bit). oidOf maps a profile OID to its slot; name is the point name
// with placeholders already replaced.
func (p *Poller) compilePoint(pp *profile.Point, repl func(string) string, oidOf func(string) int) ([]cpoint, error) {
	name := ""
	if pp.Name != "" {
		name = repl(pp.Name)
	}
	where := func(err error) error {
		return fmt.Errorf("snmp device %s: profile %s: %s:%d: point %q: %w", p.cfg.name(), p.prof.ID, p.prof.File, pp.Line, pp.Name, err)
	}
	typ := strings.ToLower(pp.Type)
	sc, err := scaleOf(pp.Scale)
	if err != nil {
		return nil, where(err)
	}
	c := cpoint{bit: -1, flagBase: 1, rate: pp.Rate, rng: pp.Range, enum: pp.Enum, trueVals: pp.True}
	if pp.FlagBase != nil {
		c.flagBase = *pp.FlagBase
	}
	c.srcs = append(c.srcs, source{slot: oidOf(pp.OID), typ: typ, scale: sc, offset: pp.Offset, invalid: pp.Invalid, invalidText: pp.InvalidText})
	for _, fb := range pp.Fallback {
		fsc, err := scaleOf(fb.Scale)
		if err != nil {
			return nil, where(err)
		}
		ft := strings.ToLower(fb.Type)
		if ft == "" {
			ft = typ
		}
		c.srcs = append(c.srcs, source{slot: oidOf(fb.OID), typ: ft, scale: fsc, offset: fb.Offset, invalid: fb.Invalid, invalidText: fb.InvalidText})
	}
	switch pp.Sign {
	case "invert":
		c.flip = true
	case "battery":
		c.flip = p.prof.CurrentSign == "charge_positive"
	}
	kind := drivers.KindNumber
	switch {
	case typ == "string" || typ == "oid":
		kind = drivers.KindString
	case len(pp.True) > 0 || typ == "bool":
		kind = drivers.KindBool
	case len(pp.Enum) > 0:
		kind = drivers.KindEnum
	}
	var out []cpoint
	if name != "" && typ != "flags" {
		c.pt = drivers.NewPoint(name, pp.Unit, kind)
		if pp.Range != nil {
			c.pt.Min, c.pt.Max = pp.Range.Min, pp.Range.Max
		}
		out = append(out, c)
	}
	bits := make([]int, 0, len(pp.Bits))
	for b := range pp.Bits {
		bits = append(bits, b)
	}
	sort.Ints(bits)
	for _, b := range bits {
		bc := c
		bc.bit = b
		bc.rng = nil
		bc.pt = drivers.NewPoint(repl(pp.Bits[b]), "", drivers.KindBool)
		out = append(out, bc)
	}
	return out, nil
}

func (p *Poller) compileScalars() error {
	for i := range p.prof.Points {
		pp := &p.prof.Points[i]
		cps, err := p.compilePoint(pp, func(s string) string { return s }, func(oid string) int { return p.addSlot(oid, -1) })
		if err != nil {
			return err
		}
		p.points = append(p.points, cps...)
	}
	return nil
}

// Points lists the compiled points; fixed once NewPoller returned.
func (p *Poller) Points() []*drivers.Point { return p.pts }

// String names the device and link: "snmp udp://10.0.0.9:161 v2c".
func (p *Poller) String() string { return p.cfg.link() + " device=" + p.cfg.name() }

// Link names the link the poller uses, for grouping and logs.
func (p *Poller) Link() string { return p.cfg.link() }

// Requests returns how many SNMP requests the poller has sent (each Get or
// GetBulk PDU, retries not counted).
func (p *Poller) Requests() uint64 { return p.requests }

// Close closes the socket.
func (p *Poller) Close() error {
	if p.g != nil && p.g.Conn != nil {
		return p.g.Conn.Close()
	}
	return nil
}

// classify turns a request error into a fault and, for auth failures, a
// clear error naming the device.
func (p *Poller) classify(err error) (drivers.Fault, error) {
	switch {
	case errors.Is(err, gosnmp.ErrWrongDigest), errors.Is(err, gosnmp.ErrUnknownUsername),
		errors.Is(err, gosnmp.ErrDecryption), errors.Is(err, gosnmp.ErrUnknownSecurityLevel),
		// gosnmp reports a wrong auth key on the answer as plain text.
		strings.Contains(err.Error(), "not authentic"), strings.Contains(err.Error(), "not authenticated"):
		user := ""
		if p.cfg.V3 != nil {
			user = p.cfg.V3.User
		}
		return drivers.FaultComms, fmt.Errorf("snmp device %s (%s): user %q: %w: %v (check v3 auth/priv passphrases and protocols)",
			p.cfg.name(), p.cfg.Target, user, ErrAuth, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "timeout") {
		return drivers.FaultTimeout, fmt.Errorf("snmp device %s (%s): no answer: %w", p.cfg.name(), p.cfg.Target, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return drivers.FaultTimeout, fmt.Errorf("snmp device %s: %w", p.cfg.name(), err)
	}
	return drivers.FaultComms, fmt.Errorf("snmp device %s (%s): %w", p.cfg.name(), p.cfg.Target, err)
}

// get asks the given slots in one Get (already at most maxOIDs), handling
// v1 noSuchName by dropping the named varbind and asking again, and
// tooBig by halving.
func (p *Poller) get(ctx context.Context, slots []int) error {
	for len(slots) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.ask = p.ask[:0]
		for _, s := range slots {
			p.ask = append(p.ask, p.slots[s].oid)
		}
		p.requests++
		res, err := p.g.Get(p.ask)
		if err != nil {
			return err
		}
		switch res.Error {
		case gosnmp.NoError:
		case gosnmp.NoSuchName:
			// SNMPv1: the whole PDU failed because of one varbind.
			i := int(res.ErrorIndex) - 1
			if i < 0 || i >= len(slots) {
				i = 0
			}
			sl := &p.slots[slots[i]]
			sl.absent = p.round
			sl.fault, sl.detail = drivers.FaultAbsent, "noSuchName"
			slots = append(slots[:i:i], slots[i+1:]...)
			continue
		case gosnmp.TooBig:
			if len(slots) == 1 {
				p.markSlots(slots, drivers.FaultException, "tooBig")
				return nil
			}
			h := len(slots) / 2
			if err := p.get(ctx, slots[:h]); err != nil {
				return err
			}
			slots = slots[h:]
			continue
		default:
			// genErr and friends: some agents fail a whole PDU for one bad
			// object. Halve until the culprit is alone, then mark only it.
			if len(slots) == 1 {
				p.markSlots(slots, drivers.FaultException, "error-status "+res.Error.String())
				return nil
			}
			h := len(slots) / 2
			if err := p.get(ctx, slots[:h]); err != nil {
				return err
			}
			slots = slots[h:]
			continue
		}
		for i, v := range res.Variables {
			si, ok := p.byOID[v.Name]
			if !ok && i < len(slots) {
				si = slots[i]
			} else if !ok {
				continue
			}
			p.store(si, v)
		}
		return nil
	}
	return nil
}

func (p *Poller) markSlots(slots []int, f drivers.Fault, detail string) {
	for _, s := range slots {
		p.slots[s].fault, p.slots[s].detail = f, detail
	}
}

// store records an answer; noSuchObject/noSuchInstance mark the slot
// absent (remembered for scalars).
func (p *Poller) store(si int, v gosnmp.SnmpPDU) {
	sl := &p.slots[si]
	switch v.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
		if sl.table < 0 {
			sl.absent = p.round
		}
		sl.fault, sl.detail = drivers.FaultAbsent, "noSuchObject"
		return
	}
	sl.pdu = v
	sl.got = true
	sl.fault = drivers.FaultNone
}

// Poll reads every point once. It returns an error only when no request
// of the round was answered (device down, wrong credentials, ctx done).
func (p *Poller) Poll(ctx context.Context, out []Reading) error {
	if !p.ready {
		if err := p.Prepare(ctx); err != nil {
			f, _ := p.classify(err)
			markAll(out, f, "tables not discovered", time.Now())
			return err
		}
	}
	if len(out) != len(p.points) {
		markAll(out, drivers.FaultComms, "layout changed", time.Now())
		return fmt.Errorf("snmp device %s: %d readings for %d points: %w", p.cfg.name(), len(out), len(p.points), ErrLayoutChanged)
	}
	p.round++
	p.g.Context = ctx
	for i := range p.slots {
		sl := &p.slots[i]
		sl.got = false
		sl.fault, sl.detail = drivers.FaultTimeout, "not answered"
		if sl.absent != 0 {
			if p.round-sl.absent >= recheckAbsent {
				sl.absent = 0
			} else {
				sl.fault, sl.detail = drivers.FaultAbsent, "absent on device"
			}
		}
	}
	var (
		asked, answered int
		firstErr        error
		roundFault      = drivers.FaultTimeout
	)
	// Scalars, packed up to maxOIDs per Get.
	batch := p.askSlot[:0]
	flush := func() {
		if len(batch) == 0 {
			return
		}
		asked++
		err := p.get(ctx, batch)
		if err != nil {
			f, werr := p.classify(err)
			p.markSlots(batch, f, "request failed")
			if firstErr == nil {
				firstErr, roundFault = werr, f
			}
		} else {
			answered++
		}
		batch = batch[:0]
	}
	for _, si := range p.scalar {
		if p.slots[si].absent != 0 {
			continue
		}
		batch = append(batch, si)
		if len(batch) == p.maxOIDs {
			flush()
		}
	}
	flush()
	p.askSlot = batch
	// Tables, walked with GetBulk.
	for ti := range p.tables {
		if ctx.Err() != nil {
			break
		}
		asked++
		for si := range p.slots {
			// Until the walk sees it, a row is missing from the table.
			if p.slots[si].table == ti {
				p.slots[si].fault, p.slots[si].detail = drivers.FaultAbsent, "not in table"
			}
		}
		if err := p.walkRound(ctx, ti); err != nil {
			f, werr := p.classify(err)
			for si := range p.slots {
				if p.slots[si].table == ti {
					p.slots[si].fault, p.slots[si].detail = f, "walk failed"
				}
			}
			if firstErr == nil {
				firstErr, roundFault = werr, f
			}
		} else {
			answered++
		}
	}
	now := time.Now()
	if asked > 0 && answered == 0 && firstErr != nil {
		for i := range out {
			out[i] = Reading{Point: p.points[i].pt, Fault: roundFault, Detail: "round failed", At: now}
		}
		return firstErr
	}
	for i := range p.points {
		p.decode(&p.points[i], &out[i], now)
	}
	return nil
}

// markAll marks every reading of a failed round (their points may be
// unknown yet).
func markAll(out []Reading, f drivers.Fault, detail string, at time.Time) {
	for i := range out {
		out[i].Value, out[i].Text = 0, ""
		out[i].Fault, out[i].Detail, out[i].At = f, detail, at
	}
}

// Reading is drivers.Reading (an alias keeps signatures short here).
type Reading = drivers.Reading

// sortedKeys is used for deterministic table processing.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return oidLess(ks[i], ks[j]) })
	return ks
}

// oidLess orders dotted OIDs numerically.
func oidLess(a, b string) bool {
	a, b = strings.TrimPrefix(a, "."), strings.TrimPrefix(b, ".")
	for a != "" && b != "" {
		var x, y string
		x, a, _ = strings.Cut(a, ".")
		y, b, _ = strings.Cut(b, ".")
		if x != y {
			xn, _ := strconv.ParseUint(x, 10, 64)
			yn, _ := strconv.ParseUint(y, 10, 64)
			return xn < yn
		}
	}
	return a == "" && b != ""
}

var (
	_ drivers.Poller     = (*Poller)(nil)
	_ drivers.Identifier = (*Poller)(nil)
)
