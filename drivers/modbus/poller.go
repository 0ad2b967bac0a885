package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// ErrLayoutChanged is returned by Poll when the device's points changed
// (first discovery, or a rediscovery after the device came back found a
// different SunSpec chain or block count). The caller re-reads Points and
// sizes its readings again.
var ErrLayoutChanged = errors.New("modbus: device layout changed; re-read Points")

// Fault details of whole-round failures (constant: no allocation).
const (
	detailBackoff   = "device not answering; waiting to retry"
	detailNotAsked  = "not asked: the link failed earlier in the round"
	detailCtx       = "round cancelled"
	detailTimeout   = "no answer within the timeout"
	detailMalformed = "garbage or short answer"
	detailDown      = "link down"
	detailAbsent    = "exception 2: illegal data address"
)

// Poller polls one device. It implements drivers.Poller and
// drivers.Identifier and is driven by the goroutine that owns its link.
type Poller struct {
	log         *slog.Logger
	pool        *Pool
	link        *link
	prof        *profile.Profile
	unit        uint8
	name        string
	q           quirks
	opts        DecodeOptions
	needsLayout bool

	ready  bool
	layout *layout
	sig    string
	c      *compiled
	reqs   []request
	buf    []uint16
	// Per-request outcome of the current round.
	reqFault  []drivers.Fault
	reqDetail []string
	reqAt     []time.Time
	reqSlots  [][]int // slots each request fills
	// learned are register ranges found unreadable by probing a request
	// the device refused as a whole; replan is set when one was found.
	learned []profile.AddrRange
	replan  bool

	down     bool
	failures int
	nextTry  time.Time
	errDown  error
	closed   bool

	stats stats
}

// stats are counted by the link goroutine and read by anyone (heartbeats,
// metrics), hence atomics; they never allocate.
type stats struct {
	rounds, requests, timeouts, exceptions, malformed, down, reopens atomic.Uint64
}

// Stats are a poller's counters since it was created.
type Stats struct {
	Rounds     uint64 // Poll calls that talked to the device
	Requests   uint64 // reads sent (probes and discovery included)
	Timeouts   uint64 // reads without an answer in time
	Exceptions uint64 // exception answers (illegal address included)
	Malformed  uint64 // garbage or short frames
	Down       uint64 // failed rounds (device or link down)
	Reopens    uint64 // link closes after a transport error, so a reopen follows
}

// Stats returns the poller's counters. Safe for concurrent use.
func (p *Poller) Stats() Stats {
	s := &p.stats
	return Stats{Rounds: s.rounds.Load(), Requests: s.requests.Load(), Timeouts: s.timeouts.Load(),
		Exceptions: s.exceptions.Load(), Malformed: s.malformed.Load(), Down: s.down.Load(), Reopens: s.reopens.Load()}
}

var (
	_ drivers.Poller     = (*Poller)(nil)
	_ drivers.Identifier = (*Poller)(nil)
)

// NewPoller validates cfg, compiles prof for the device and attaches it to
// the link for cfg.URL (created on first use). Profiles whose layout is
// read from the device (SunSpec, count_from blocks) have no points until
// the first Prepare or Poll.
func (p *Pool) NewPoller(cfg Config, prof *profile.Profile) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if prof == nil {
		return nil, errors.New("modbus: no profile")
	}
	if prof.Protocol != "" && prof.Protocol != "modbus" {
		return nil, fmt.Errorf("profile %s: protocol is %q, not modbus", prof.ID, prof.Protocol)
	}
	po := &Poller{
		pool: p, prof: prof, unit: uint8(cfg.UnitID),
		name: fmt.Sprintf("modbus %s unit=%d", cfg.URL, cfg.UnitID),
		q:    effectiveQuirks(&cfg, prof), opts: optionsOf(prof),
	}
	po.log = p.log.With("device", po.name, "profile", prof.ID)
	// Compile once without the device: a static profile is ready now, and
	// profile errors surface at start-up rather than at the first poll.
	b := newBuilder(po.log, po.opts, nil)
	c, err := compileProfile(b, prof, nil)
	switch {
	case errors.Is(err, errNeedsIO):
		po.needsLayout = true
	case err != nil:
		return nil, fmt.Errorf("profile %s: %w", prof.ID, err)
	}
	po.needsLayout = po.needsLayout || prof.SunSpec != nil
	if !po.needsLayout {
		if _, err := po.install(c, ""); err != nil {
			return nil, fmt.Errorf("profile %s: %w", prof.ID, err)
		}
	}
	l, err := p.acquire(&cfg)
	if err != nil {
		return nil, err
	}
	po.link = l
	return po, nil
}

// Points lists the compiled points; empty until a device-dependent layout
// has been read.
func (p *Poller) Points() []*drivers.Point {
	if p.c == nil {
		return nil
	}
	return p.c.points
}

// String names the device and link.
func (p *Poller) String() string { return p.name }

// Link is the sharing key of the poller's link: pollers with the same Link
// share one client and must be driven by one goroutine.
func (p *Poller) Link() string { return p.link.key }

// Requests is the number of reads a round takes (0 before the layout is
// known).
func (p *Poller) Requests() int { return len(p.reqs) }

// Close detaches the poller; the link is closed with its last poller.
func (p *Poller) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	return p.pool.release(p.link)
}

// install plans c and makes it the current layout. It reports whether the
// points changed.
func (p *Poller) install(c *compiled, layoutSig string) (bool, error) {
	var sb strings.Builder
	sb.WriteString(layoutSig)
	for i := range c.slots {
		s := &c.slots[i]
		fmt.Fprintf(&sb, "|%d:%d:%d", s.sp, s.addr, s.n)
	}
	for _, pt := range c.points {
		sb.WriteString("|")
		sb.WriteString(pt.Name)
	}
	sig := sb.String()
	if p.c != nil && sig == p.sig {
		return false, nil
	}
	p.learned = nil
	if err := p.planFor(c); err != nil {
		return false, err
	}
	p.c, p.sig = c, sig
	p.log.Info("device planned", "points", len(c.points), "requests", len(p.reqs), "registers", len(p.buf))
	return true, nil
}

// planFor plans c's slots with the profile's and the learned unreadable
// ranges and sizes the round's buffers.
func (p *Poller) planFor(c *compiled) error {
	lim := p.q.planLimits
	if len(p.learned) > 0 {
		lim.unreadable = append(append([]profile.AddrRange(nil), lim.unreadable...), p.learned...)
	}
	reqs, size, err := plan(c.slots, lim)
	if err != nil {
		return err
	}
	p.reqs, p.buf = reqs, make([]uint16, size)
	p.reqFault = make([]drivers.Fault, len(reqs))
	p.reqDetail = make([]string, len(reqs))
	p.reqAt = make([]time.Time, len(reqs))
	p.reqSlots = make([][]int, len(reqs))
	for i := range c.slots {
		if r := c.slots[i].req; r >= 0 {
			p.reqSlots[r] = append(p.reqSlots[r], i)
		}
	}
	return nil
}

// probe reads each point (and scale factor) of request i alone after the
// device refused the whole request with "illegal data address": points
// that answer are decoded this round; the rest are marked absent, and the
// registers between them are learned as unreadable so the next plan does
// not ask for them again. It returns a transport error, if one happened.
func (p *Poller) probe(i int) error {
	r := &p.reqs[i]
	covered := make([]bool, r.qty)
	for _, si := range p.reqSlots[i] {
		s := &p.c.slots[si]
		time.Sleep(p.q.pause) // devices that need a pause need it here too
		err := p.readRetry(s.sp, s.addr, p.buf[s.bufOff:s.bufOff+int(s.n)])
		switch classify(err) {
		case classOK:
			for k := range int(s.n) {
				covered[int(s.addr)-int(r.addr)+k] = true
			}
		case classAbsent:
			s.absent = true
		case classException, classBusy:
			// Not an address problem: keep reading it, faulted this round.
			for k := range int(s.n) {
				covered[int(s.addr)-int(r.addr)+k] = true
			}
			s.fault, s.detail = drivers.FaultException, err.Error()
		default:
			return err
		}
	}
	// Scale factors read in this request, whichever request their points
	// are in.
	for si := range p.c.slots {
		s := &p.c.slots[si]
		if !s.hasSF || s.sfReq != i || s.absent || s.sfAbsent || covered[int(s.sfAddr)-int(r.addr)] {
			continue
		}
		time.Sleep(p.q.pause)
		err := p.readRetry(s.sp, s.sfAddr, p.buf[s.sfBufOff:s.sfBufOff+1])
		switch classify(err) {
		case classOK:
			covered[int(s.sfAddr)-int(r.addr)] = true
		case classException, classBusy:
			covered[int(s.sfAddr)-int(r.addr)] = true
			for sj := range p.c.slots {
				if o := &p.c.slots[sj]; o.hasSF && o.sp == s.sp && o.sfAddr == s.sfAddr && o.fault == drivers.FaultNone {
					o.fault, o.detail = drivers.FaultScale, detailScaleRead
				}
			}
		case classAbsent:
			// Every slot sharing this scale factor loses it.
			for sj := range p.c.slots {
				if o := &p.c.slots[sj]; o.hasSF && o.sp == s.sp && o.sfAddr == s.sfAddr {
					o.sfAbsent = true
				}
			}
		default:
			return err
		}
	}
	for k := 0; k < int(r.qty); {
		if covered[k] {
			k++
			continue
		}
		j := k
		for j < int(r.qty) && !covered[j] {
			j++
		}
		p.learned = append(p.learned, profile.AddrRange{Space: r.sp.String(), From: r.addr + uint16(k), To: r.addr + uint16(j-1)})
		k = j
	}
	p.replan = true
	p.log.Warn("device refused a merged read; probed its points one by one",
		"space", r.sp.String(), "addr", r.addr, "qty", r.qty)
	return nil
}

// Prepare reads what the layout depends on (SunSpec chain, block counts)
// and plans the reads, so that Points is known before the first round. It
// does nothing once the layout is known, and while the device is backing
// off it returns at once with the last error: calling it every round is
// cheap. Poll prepares by itself when needed.
func (p *Poller) Prepare(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.ready {
		return nil
	}
	if p.down && time.Now().Before(p.nextTry) {
		return p.errDown
	}
	if _, err := p.prepare(); err != nil {
		p.fail(fmt.Errorf("prepare: %w", err))
		return p.errDown
	}
	return nil
}

func (p *Poller) prepare() (bool, error) {
	if !p.needsLayout {
		p.ready = true
		return false, nil
	}
	read := func(sp space, addr uint16, dst []uint16) error {
		time.Sleep(p.q.pause)
		err := p.readRetry(sp, addr, dst)
		if c := classify(err); c == classMalformed || c == classTimeout || c == classDown {
			p.link.reset()
		}
		return err
	}
	lay := &layout{}
	if p.prof.SunSpec != nil {
		var err error
		if lay, err = discoverSunSpec(read, p.prof.SunSpec); err != nil {
			return false, err
		}
	}
	b := newBuilder(p.log, p.opts, read)
	c, err := compileProfile(b, p.prof, lay.models)
	if err != nil {
		return false, err
	}
	changed, err := p.install(c, lay.signature())
	if err != nil {
		return false, err
	}
	p.layout, p.ready = lay, true
	if p.prof.SunSpec != nil {
		p.log.Info("SunSpec chain discovered", "base", lay.base, "models", lay.modelList())
	}
	return changed, nil
}

// readRetry reads once, retrying "server device busy" answers, and
// counts the outcome.
func (p *Poller) readRetry(sp space, addr uint16, dst []uint16) error {
	p.stats.requests.Add(1)
	err := p.link.read(p.unit, sp, addr, dst)
	for i := 0; i < p.q.busyRetries && classify(err) == classBusy; i++ {
		time.Sleep(time.Duration(10*(i+1)) * time.Millisecond)
		p.stats.requests.Add(1)
		err = p.link.read(p.unit, sp, addr, dst)
	}
	switch classify(err) {
	case classAbsent, classException, classBusy:
		p.stats.exceptions.Add(1)
	case classMalformed:
		p.stats.malformed.Add(1)
		p.stats.reopens.Add(1)
	case classTimeout:
		p.stats.timeouts.Add(1)
		p.stats.reopens.Add(1)
	case classDown:
		p.stats.reopens.Add(1)
	}
	return err
}

// Poll reads every point once into out. See drivers.Poller.
func (p *Poller) Poll(ctx context.Context, out []drivers.Reading) error {
	now := time.Now()
	if p.down && now.Before(p.nextTry) {
		markAll(out, drivers.FaultComms, detailBackoff, now)
		return p.errDown
	}
	if !p.ready {
		changed, err := p.prepare()
		if err != nil {
			f, d := faultOf(classify(err))
			markAll(out, f, d, now)
			p.fail(fmt.Errorf("prepare: %w", err))
			return p.errDown
		}
		if changed {
			markAll(out, drivers.FaultComms, "layout changed", now)
			return ErrLayoutChanged
		}
	}
	if len(out) != len(p.c.points) {
		markAll(out, drivers.FaultComms, "layout changed", now)
		return fmt.Errorf("%s: %d readings for %d points: %w", p.name, len(out), len(p.c.points), ErrLayoutChanged)
	}
	p.stats.rounds.Add(1)
	var roundErr error
	anyAnswer := false
	for i := range p.reqs {
		r := &p.reqs[i]
		if roundErr != nil {
			p.reqFault[i], p.reqDetail[i], p.reqAt[i] = drivers.FaultComms, detailNotAsked, now
			continue
		}
		if err := ctx.Err(); err != nil {
			roundErr = err
			p.reqFault[i], p.reqDetail[i], p.reqAt[i] = drivers.FaultTimeout, detailCtx, time.Now()
			continue
		}
		if i > 0 && p.q.pause > 0 {
			time.Sleep(p.q.pause)
		}
		err := p.readRetry(r.sp, r.addr, p.buf[r.off:r.off+int(r.qty)])
		p.reqAt[i] = time.Now()
		c := classify(err)
		p.reqFault[i], p.reqDetail[i] = faultOf(c)
		switch c {
		case classOK:
			anyAnswer = true
		case classAbsent:
			anyAnswer = true
			if len(p.reqSlots[i]) > 1 {
				if perr := p.probe(i); perr != nil {
					p.reqFault[i], p.reqDetail[i] = faultOf(classify(perr))
					p.link.reset()
					roundErr = perr
				} else {
					p.reqFault[i], p.reqDetail[i] = drivers.FaultNone, ""
				}
			}
		case classException, classBusy:
			anyAnswer = true
			p.reqDetail[i] = err.Error()
		case classMalformed:
			p.link.reset()
		case classTimeout, classDown:
			p.link.reset()
			roundErr = err
		}
	}
	for i := range p.c.slots {
		s := &p.c.slots[i]
		o := out[s.out : s.out+s.dec.Outputs()]
		at := now
		switch {
		case s.absent:
			s.dec.fail(o, drivers.FaultAbsent, detailAbsent)
		case s.fault != drivers.FaultNone:
			s.dec.fail(o, s.fault, s.detail)
			s.fault, s.detail = drivers.FaultNone, ""
			at = p.reqAt[s.req]
		case p.reqFault[s.req] != drivers.FaultNone:
			s.dec.fail(o, p.reqFault[s.req], p.reqDetail[s.req])
			at = p.reqAt[s.req]
		default:
			var sf uint16
			sfOK := true
			if s.hasSF {
				sfOK = !s.sfAbsent && p.reqFault[s.sfReq] == drivers.FaultNone
				if sfOK {
					sf = p.buf[s.sfBufOff]
				}
			}
			s.dec.Decode(p.buf[s.bufOff:s.bufOff+int(s.n)], sf, sfOK, o)
			at = p.reqAt[s.req]
		}
		for j := range o {
			o[j].Point, o[j].At = p.c.points[s.out+j], at
		}
	}
	if p.q.closeAfterRound {
		p.link.reset()
	}
	if p.replan {
		p.replan = false
		if err := p.planFor(p.c); err != nil {
			return fmt.Errorf("%s: replan after probing: %w", p.name, err)
		}
		p.log.Info("device replanned", "requests", len(p.reqs), "unreadable_learned", len(p.learned))
	}
	if roundErr != nil && ctx.Err() != nil {
		return roundErr
	}
	if roundErr == nil && !anyAnswer && len(p.reqs) > 0 {
		roundErr = errors.New("every request of the round failed")
	}
	if roundErr != nil {
		p.fail(roundErr)
		return p.errDown
	}
	if p.down {
		p.log.Info("device up", "after_failures", p.failures)
		p.down, p.failures, p.errDown = false, 0, nil
	}
	return nil
}

// fail records a failed round and schedules the next try with capped
// exponential backoff and jitter, so that a dead device costs its link one
// timeout per backoff period instead of one per round.
func (p *Poller) fail(err error) {
	now := time.Now() // after the failed round: the wait starts now
	p.failures++
	p.stats.down.Add(1)
	d := p.q.retryMin
	for i := 1; i < p.failures && d < p.q.retryMax; i++ {
		d *= 2
	}
	d = min(d, p.q.retryMax)
	// ±25% jitter spreads retries of devices that died together.
	d = time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
	p.nextTry = now.Add(d)
	if !p.down {
		p.log.Warn("device down", "err", err)
	}
	p.down = true
	if p.needsLayout {
		// Rediscover when it answers again: it may have been replaced or
		// reconfigured.
		p.ready = false
	}
	p.errDown = fmt.Errorf("%s: device down (%d failed rounds, next try in %s): %w", p.name, p.failures, d.Round(time.Millisecond), err)
}

func faultOf(c errClass) (drivers.Fault, string) {
	switch c {
	case classOK:
		return drivers.FaultNone, ""
	case classAbsent:
		return drivers.FaultAbsent, detailAbsent
	case classException, classBusy:
		return drivers.FaultException, "exception"
	case classMalformed:
		return drivers.FaultMalformed, detailMalformed
	case classTimeout:
		return drivers.FaultTimeout, detailTimeout
	}
	return drivers.FaultComms, detailDown
}

func markAll(out []drivers.Reading, f drivers.Fault, detail string, at time.Time) {
	for i := range out {
		setFault(&out[i], f, detail)
		out[i].At = at
	}
}

// Identify reads the device's identity: the SunSpec common model (1) for
// SunSpec profiles, otherwise the profile's string points named *.model,
// *.serial, *.firmware and *.mfr / *.vendor / *.manufacturer.
func (p *Poller) Identify(ctx context.Context) (drivers.Identity, error) {
	id := drivers.Identity{Vendor: p.prof.Vendor, Extra: map[string]string{"profile": p.prof.ID}}
	if !p.ready {
		if _, err := p.prepare(); err != nil {
			return id, fmt.Errorf("%s: identify: %w", p.name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return id, err
	}
	if p.layout != nil && p.prof.SunSpec != nil {
		id.Extra["sunspec.base"] = strconv.Itoa(int(p.layout.base))
		id.Extra["sunspec.models"] = p.layout.modelList()
		for _, m := range p.layout.models {
			if m.id != 1 {
				continue
			}
			if m.length < 64 {
				return id, fmt.Errorf("%s: identify: SunSpec common model is %d registers long, want 66", p.name, m.length)
			}
			regs := make([]uint16, 64)
			if err := p.readRetry(spHolding, m.addr+2, regs); err != nil {
				return id, fmt.Errorf("%s: identify: read SunSpec common model at %d: %w", p.name, m.addr, err)
			}
			str := func(off, n int) string {
				d := &Decoder{typ: tString, n: n, sunspec: true}
				var r drivers.Reading
				d.decodeString(regs[off-2:off-2+n], &r)
				return r.Text
			}
			id.Vendor, id.Model, id.Firmware, id.Serial = str(2, 16), str(18, 16), str(42, 8), str(50, 16)
			if opt := str(34, 8); opt != "" {
				id.Extra["options"] = opt
			}
			return id, nil
		}
		return id, fmt.Errorf("%s: identify: no SunSpec common model in the chain", p.name)
	}
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		return id, fmt.Errorf("%s: identify: %w", p.name, err)
	}
	for i := range out {
		r := &out[i]
		if !r.OK() || r.Point.Kind != drivers.KindString || r.Text == "" {
			continue
		}
		f := r.Point.Field
		switch {
		case strings.HasSuffix(f, "model"):
			id.Model = r.Text
		case strings.HasSuffix(f, "serial"):
			id.Serial = r.Text
		case strings.HasSuffix(f, "firmware"):
			id.Firmware = r.Text
		case strings.HasSuffix(f, "mfr"), strings.HasSuffix(f, "vendor"), strings.HasSuffix(f, "manufacturer"):
			id.Vendor = r.Text
		default:
			id.Extra[r.Point.Name] = r.Text
		}
	}
	return id, nil
}
