package blackbox

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// DefaultBudget is a recorder's memory when New is given 0: at a 100 ms
// period it holds 10 minutes of a 440-point rack whose values repeat
// between rounds, or about 12 s of one whose every value changes.
const DefaultBudget = 512 << 10

// numBlocks is how many blocks a budget is cut into: the ring forgets the
// oldest eighth at a time.
const numBlocks = 8

// Recorder is a per-device ring of the last rounds, delta-encoded into a
// fixed memory budget. A block's rounds before its keyframe are failed
// rounds, which carry no values.
type Recorder struct {
	device string
	points []*drivers.Point
	np     int
	window int64 // ns

	size   int // bytes per block: budget / numBlocks
	blocks [numBlocks]block
	order  []int // blocks holding data, oldest first (fixed capacity)
	free   []int // blocks never used (not allocated yet)

	prevVals   []float64 // the last recorded round, the base of the next delta
	prevFaults []drivers.Fault
	newest     int64
	n          int // rounds held
}

type block struct {
	buf    []byte // capacity size once first used
	rounds int
	last   int64 // unix ns of its newest round
	keyed  bool  // holds its keyframe (its first round that did not fail)
}

const (
	flagFailed = 1 << iota // the round failed as a whole: no values follow
	flagKey                // a keyframe: every point follows, no bitmap
)

// New returns a recorder that keeps the rounds of the last window within
// budget bytes (0 means DefaultBudget). A round is stored as the points
// that changed since the previous round (a bitmap, then 9 bytes per
// changed point), and each block starts with a keyframe of every point, so
// a block can be dropped as a whole. A block is allocated when the ring
// first reaches it, so a window that needs less than the budget costs less
// (and does not inflate the garbage collector's heap goal).
func New(device string, points []*drivers.Point, window time.Duration, budget int) (*Recorder, error) {
	if window <= 0 {
		return nil, fmt.Errorf("blackbox: device %s: window %s must be positive", device, window)
	}
	if budget < 0 {
		return nil, fmt.Errorf("blackbox: device %s: budget %d bytes must not be negative", device, budget)
	}
	if budget == 0 {
		budget = DefaultBudget
	}
	r := &Recorder{device: device, points: points, np: len(points), window: int64(window),
		order: make([]int, 0, numBlocks), free: make([]int, 0, numBlocks),
		prevVals: make([]float64, len(points)), prevFaults: make([]drivers.Fault, len(points))}
	// A block must hold its keyframe and a few rounds after it.
	size := budget / numBlocks
	if min := 4 * r.keySize(); size < min {
		return nil, fmt.Errorf("blackbox: device %s: budget %d bytes is too small for %d points; at least %d bytes",
			device, budget, len(points), numBlocks*min)
	}
	r.size = size
	for i := range r.blocks {
		r.free = append(r.free, numBlocks-1-i) // taken from the end: block 0 first
	}
	return r, nil
}

const headerSize = 9 // unix ns, flags

func (r *Recorder) keySize() int { return headerSize + 9*r.np }

// worst is the largest a round can be: a delta with every point changed.
func (r *Recorder) worst() int { return r.keySize() + (r.np+7)/8 }

// Len is the number of rounds held (some may be older than the window).
func (r *Recorder) Len() int { return r.n }

// Record stores one round, forgetting the oldest block when the budget is
// used up. readings are in point order (extra readings are ignored,
// missing ones recorded as absent); roundErr marks a round that failed as
// a whole. It does not allocate once the ring has reached every block it
// needs (at most numBlocks allocations in a recorder's life).
func (r *Recorder) Record(at time.Time, readings []drivers.Reading, roundErr error) {
	ns := at.UnixNano()
	if len(r.order) == 0 || cap(r.cur().buf)-len(r.cur().buf) < r.worst() {
		r.advance(ns)
	}
	b := r.cur()
	key := !b.keyed && roundErr == nil
	var flags byte
	if roundErr != nil {
		flags |= flagFailed
	}
	if key {
		flags |= flagKey
	}
	buf := binary.LittleEndian.AppendUint64(b.buf, uint64(ns))
	buf = append(buf, flags)
	if roundErr == nil {
		var mapAt int
		if !key {
			mapAt = len(buf)
			for range (r.np + 7) / 8 {
				buf = append(buf, 0)
			}
		}
		for i := range r.np {
			v, f := 0.0, drivers.FaultAbsent
			if i < len(readings) {
				v, f = readings[i].Value, readings[i].Fault
			}
			if !key {
				if math.Float64bits(v) == math.Float64bits(r.prevVals[i]) && f == r.prevFaults[i] {
					continue
				}
				buf[mapAt+i/8] |= 1 << (i % 8)
			}
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
			buf = append(buf, byte(f))
			r.prevVals[i], r.prevFaults[i] = v, f
		}
	}
	b.buf = buf
	b.keyed = b.keyed || key
	b.rounds++
	b.last = ns
	r.newest = ns
	r.n++
}

func (r *Recorder) cur() *block { return &r.blocks[r.order[len(r.order)-1]] }

// advance starts a new block: one whose rounds all left the window if
// there is one (so a long budget is not paged in for nothing), else a
// never-used one, else the oldest.
func (r *Recorder) advance(now int64) {
	var i int
	switch {
	case len(r.order) > 0 && r.blocks[r.order[0]].last < now-r.window:
		i = r.dropOldest()
	case len(r.free) > 0:
		i = r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		r.blocks[i].buf = make([]byte, 0, r.size) // at most numBlocks times in a recorder's life
	default:
		i = r.dropOldest()
	}
	r.order = append(r.order, i)
}

func (r *Recorder) dropOldest() int {
	i := r.order[0]
	copy(r.order, r.order[1:])
	r.order = r.order[:len(r.order)-1]
	b := &r.blocks[i]
	r.n -= b.rounds
	b.buf, b.rounds, b.last, b.keyed = b.buf[:0], 0, 0, false
	return i
}

// Snapshot is a frozen copy of a recorder's rounds of the last window,
// still delta-encoded: freezing costs at most the recorder's budget, and
// rounds are decoded one at a time as they are read or encoded.
type Snapshot struct {
	Device string
	Points []*drivers.Point
	np     int
	from   int64    // rounds before this (unix ns) are outside the window
	blocks [][]byte // copies of the blocks holding the window, oldest first
	n      int
	first  time.Time
	last   time.Time
}

// Freeze copies the rounds of the last window (ending at the newest round)
// into a Snapshot. The recorder keeps going.
func (r *Recorder) Freeze() *Snapshot {
	s := &Snapshot{Device: r.device, Points: r.points, np: r.np, from: r.newest - r.window}
	for _, bi := range r.order {
		if b := &r.blocks[bi]; b.last >= s.from {
			s.blocks = append(s.blocks, slices.Clone(b.buf))
		}
	}
	for row := range s.Rows() {
		if s.n == 0 {
			s.first = row.At
		}
		s.last = row.At
		s.n++
	}
	return s
}

// Len is the number of rounds in the snapshot.
func (s *Snapshot) Len() int { return s.n }

// Span is the time from the first round to the last.
func (s *Snapshot) Span() time.Duration { return s.last.Sub(s.first) }

// Row is one decoded round. Values and Faults are in point order; a failed
// round's values repeat the round before it and must not be used. The
// slices are reused from row to row: copy what you keep.
type Row struct {
	At     time.Time
	Failed bool
	Values []float64
	Faults []drivers.Fault
}

// Rows yields the snapshot's rounds, oldest first.
func (s *Snapshot) Rows() iter.Seq[Row] {
	return func(yield func(Row) bool) {
		row := Row{Values: make([]float64, s.np), Faults: make([]drivers.Fault, s.np)}
		mapLen := (s.np + 7) / 8
		for _, buf := range s.blocks {
			for len(buf) > 0 {
				ns := int64(binary.LittleEndian.Uint64(buf))
				flags := buf[8]
				buf = buf[headerSize:]
				if flags&flagFailed == 0 {
					var bitmap []byte
					if flags&flagKey == 0 {
						bitmap, buf = buf[:mapLen], buf[mapLen:]
					}
					for i := range s.np {
						if bitmap != nil && bitmap[i/8]&(1<<(i%8)) == 0 {
							continue
						}
						row.Values[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf))
						row.Faults[i] = drivers.Fault(buf[8])
						buf = buf[9:]
					}
				}
				if ns < s.from {
					continue
				}
				row.At, row.Failed = time.Unix(0, ns).UTC(), flags&flagFailed != 0
				if !yield(row) {
					return
				}
			}
		}
	}
}

// lineEncoder writes rows as telemetry lines, grouping points by
// component once.
type lineEncoder struct {
	points   []*drivers.Point
	comps    []string
	byComp   map[string][]int
	lineTags [][]wire.Tag
}

func (s *Snapshot) encoder(tags []wire.Tag) *lineEncoder {
	e := &lineEncoder{points: s.Points, byComp: map[string][]int{}}
	for i, p := range s.Points {
		if p == nil || p.Kind == drivers.KindString {
			continue
		}
		if _, ok := e.byComp[p.Component]; !ok {
			e.comps = append(e.comps, p.Component)
		}
		e.byComp[p.Component] = append(e.byComp[p.Component], i)
	}
	// Each component's tag set, sorted by key once (InfluxDB ingests
	// sorted tags fastest).
	e.lineTags = make([][]wire.Tag, len(e.comps))
	for ci, c := range e.comps {
		lt := make([]wire.Tag, 0, len(tags)+2)
		for _, t := range tags {
			if t.Key != "device" && t.Key != "component" {
				lt = append(lt, t)
			}
		}
		lt = append(lt, wire.Tag{Key: "device", Value: s.Device}, wire.Tag{Key: "component", Value: c})
		sort.Slice(lt, func(i, j int) bool { return lt[i].Key < lt[j].Key })
		e.lineTags[ci] = lt
	}
	return e
}

// appendRow appends one round's lines. Failed rounds produce no lines
// (absence of data, never zeros).
func (e *lineEncoder) appendRow(b []byte, row Row) []byte {
	if row.Failed {
		return b
	}
	for ci, c := range e.comps {
		b = wire.AppendLineStart(b, e.lineTags[ci])
		for n, i := range e.byComp[c] {
			f := e.points[i].Field
			if row.Faults[i] != drivers.FaultNone {
				b = wire.AppendStringField(b, n == 0, f+wire.FaultSuffix, row.Faults[i].String())
			} else {
				b = wire.AppendFloatField(b, n == 0, f, row.Values[i])
			}
		}
		b = wire.AppendTimestamp(b, row.At)
	}
	return b
}

// AppendLineProtocol appends the whole snapshot as telemetry lines. tags
// are the device's labels (site, agent, room, ...); device and component
// are added. For a large snapshot prefer Chunks, which holds one part at a
// time.
func (s *Snapshot) AppendLineProtocol(b []byte, tags []wire.Tag) []byte {
	e := s.encoder(tags)
	for row := range s.Rows() {
		b = e.appendRow(b, row)
	}
	return b
}

// Chunks encodes the snapshot as telemetry lines in parts of about max
// bytes, cut at round boundaries, and calls fn with each (the slice is
// reused after fn returns). Memory stays at one part whatever the window.
func (s *Snapshot) Chunks(tags []wire.Tag, max int, fn func(part []byte) error) error {
	e := s.encoder(tags)
	var b []byte
	for row := range s.Rows() {
		n := len(b)
		b = e.appendRow(b, row)
		if len(b) > max && n > 0 {
			if err := fn(b[:n]); err != nil {
				return err
			}
			b = append(b[:0], b[n:]...)
		}
	}
	if len(b) > 0 {
		return fn(b)
	}
	return nil
}

// WriteLineProtocol writes the snapshot as telemetry lines to w.
func (s *Snapshot) WriteLineProtocol(w io.Writer, tags []wire.Tag) error {
	bw := bufio.NewWriter(w)
	err := s.Chunks(tags, 64<<10, func(part []byte) error {
		_, err := bw.Write(part)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("blackbox: write %s snapshot: %w", s.Device, err)
	}
	return nil
}
