package agent

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberwatch/emberwatch/agent/blackbox"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/internal/selfmon"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// layout is one generation of a device's points. Devices whose points are
// read from the device itself (a SunSpec chain) start with an empty layout
// and get a new one when the driver reports a change.
type layout struct {
	points []*drivers.Point
}

// round is one sampling round of one device, a reusable buffer.
type round struct {
	lay      *layout
	due      time.Time // the deadline it was sampled for
	at       time.Time // when polling started (the sample's timestamp)
	dur      time.Duration
	err      error
	readings []drivers.Reading
	drill    bool
}

// queueDepth is how many rounds may wait for the processor per device.
const queueDepth = 4

// device is the runtime of one configured device.
type device struct {
	id     string
	cfg    *DeviceConfig
	prof   *profile.Profile
	poller drivers.Poller
	link   string
	tags   []wire.Tag
	lay    *layout // current layout, owned by the link goroutine

	dl      deadline
	burst   atomic.Int64 // burst period in ns; 0 = normal period
	pollNow atomic.Bool  // poll out of turn (a trap arrived)

	acks chan wire.Alert // operator acks for the detector
	free chan *round     // rounds ready to be filled
	out  chan *round     // rounds waiting for the processor

	// Owned by the processor goroutine.
	encLay     *layout
	enc        encoder
	det        Detector
	bb         *blackbox.Recorder
	lastStage  wire.Stage
	tlsAlerted bool // a security alert for a refused TLS handshake is up

	rounds, overruns, skipped, drops, failures atomic.Uint64
	metrics                                    selfmon.DeviceMetrics
	hasMetrics                                 bool

	mu        sync.Mutex
	health    string
	lastAt    time.Time
	lastErr   string
	faulted   int
	lateness  [latenessWindow]time.Duration // recent start lateness (ring), for jitter figures
	lateIdx   int
	latencyNS atomic.Int64 // last poll duration
}

func newDevice(cfg *DeviceConfig, prof *profile.Profile, p drivers.Poller, link string, tags []wire.Tag) *device {
	d := &device{id: cfg.ID, cfg: cfg, prof: prof, poller: p, link: link, tags: tags,
		free: make(chan *round, queueDepth), out: make(chan *round, queueDepth),
		acks: make(chan wire.Alert, 16), health: wire.HealthDown}
	d.lay = &layout{points: p.Points()}
	for range queueDepth {
		d.free <- &round{}
	}
	return d
}

// preparer is implemented by pollers that read their layout from the
// device before the first round (SunSpec discovery).
type preparer interface {
	Prepare(ctx context.Context) error
}

// refreshLayout starts a new layout generation when the poller's points
// changed (first discovery, device replaced by another model).
func (d *device) refreshLayout(ctx context.Context) {
	pts := d.poller.Points()
	if len(pts) == 0 {
		if p, ok := d.poller.(preparer); ok && p.Prepare(ctx) == nil {
			pts = d.poller.Points()
		}
	}
	old := d.lay.points
	if len(pts) == len(old) && (len(pts) == 0 || &pts[0] == &old[0]) {
		return
	}
	d.lay = &layout{points: pts}
}

// acquire returns a buffer for the next round. When every buffer is queued
// the oldest queued round is dropped: sampling never waits for the network.
func (d *device) acquire() *round {
	var r *round
	select {
	case r = <-d.free:
	default:
		select {
		case r = <-d.out:
			d.drops.Add(1)
			if d.hasMetrics {
				d.metrics.Dropped.Inc()
			}
		case r = <-d.free:
		}
	}
	if r.lay != d.lay {
		// Only when the layout changed: steady state reuses the buffer.
		r.lay = d.lay
		r.readings = make([]drivers.Reading, len(d.lay.points))
	}
	return r
}

// period is the current sampling period (burst when set).
func (d *device) period() time.Duration {
	if b := d.burst.Load(); b > 0 && time.Duration(b) < d.cfg.Period {
		return time.Duration(b)
	}
	return d.cfg.Period
}

func (d *device) noteRound(r *round) {
	faulted := 0
	for i := range r.readings {
		f := r.readings[i].Fault
		switch f {
		case drivers.FaultNone:
			continue
		case drivers.FaultSentinel, drivers.FaultAbsent:
			// "Not available" is the device's own, steady answer for a
			// point it does not implement, not a health problem.
		default:
			faulted++
		}
		if d.hasMetrics && int(f) < len(d.metrics.Faults) {
			d.metrics.Faults[f].Inc()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faulted = faulted
	switch {
	case r.err != nil:
		d.health = wire.HealthDown
		d.lastErr = r.err.Error()
	case faulted > 0:
		d.health = wire.HealthDegraded
		d.lastErr = ""
		d.lastAt = r.at
	default:
		d.health = wire.HealthOK
		d.lastErr = ""
		d.lastAt = r.at
	}
}

func (d *device) healthReport() wire.DeviceHealth {
	d.mu.Lock()
	defer d.mu.Unlock()
	return wire.DeviceHealth{Device: d.id, Health: d.health, LastSample: d.lastAt, Error: d.lastErr, Faults: d.faulted}
}

// encoder turns rounds into line protocol without allocating: points are
// grouped by component once, and each group's tag prefix is prebuilt.
type encoder struct {
	points []*drivers.Point
	groups []group
	buf    []byte
}

type group struct {
	prefix  []byte // "ember,tags... "
	indices []int  // points of this component, in profile order
}

// prepareProcessor rebuilds what depends on the layout: the encoder and the
// detector. Runs on the processor goroutine.
func (d *device) prepareProcessor(lay *layout, newDet func(*DeviceConfig, *profile.Profile, []*drivers.Point) Detector, newBB func(*device, *layout) *blackbox.Recorder) {
	if d.encLay == lay {
		return
	}
	d.encLay = lay
	d.enc = newEncoder(d.tags, lay.points)
	d.det = nil
	if newDet != nil && len(lay.points) > 0 {
		d.det = newDet(d.cfg, d.prof, lay.points)
	}
	d.bb = newBB(d, lay)
	d.lastStage = wire.StageNormal
}

func newEncoder(base []wire.Tag, points []*drivers.Point) encoder {
	e := encoder{points: points}
	byComp := map[string][]int{}
	var comps []string
	for i, p := range points {
		if _, ok := byComp[p.Component]; !ok {
			comps = append(comps, p.Component)
		}
		byComp[p.Component] = append(byComp[p.Component], i)
	}
	for _, c := range comps {
		tags := append([]wire.Tag(nil), base...)
		if c != "" {
			tags = append(tags, wire.Tag{Key: "component", Value: c})
		}
		sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
		e.groups = append(e.groups, group{prefix: wire.AppendLineStart(nil, tags), indices: byComp[c]})
	}
	e.buf = make([]byte, 0, 64*len(points)+256)
	return e
}

// encode returns the round's lines; the slice is reused by the next call.
func (e *encoder) encode(r *round) []byte {
	b := e.buf[:0]
	for gi := range e.groups {
		g := &e.groups[gi]
		b = append(b, g.prefix...)
		first := true
		for _, i := range g.indices {
			rd := &r.readings[i]
			p := e.points[i]
			switch {
			case rd.Fault != drivers.FaultNone:
				b = appendFaultField(b, first, p.Field, rd.Fault.String())
			case p.Kind == drivers.KindString:
				b = wire.AppendStringField(b, first, p.Field, rd.Text)
			default:
				b = wire.AppendFloatField(b, first, p.Field, rd.Value)
			}
			first = false
		}
		if r.drill {
			b = wire.AppendFloatField(b, false, "drill", 1)
		}
		b = wire.AppendTimestamp(b, r.at)
	}
	e.buf = b
	return b
}

func appendFaultField(b []byte, first bool, field, fault string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, field...)
	b = append(b, wire.FaultSuffix...)
	b = append(b, '=', '"')
	b = append(b, fault...)
	return append(b, '"')
}
