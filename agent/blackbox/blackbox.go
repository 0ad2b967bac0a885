package blackbox

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Recorder is a per-device ring of the last rounds.
type Recorder struct {
	device string
	points []*drivers.Point
	np     int
	at     []int64 // unix ns per slot
	failed []bool  // the whole round failed
	vals   []float64
	faults []drivers.Fault
	head   int // next slot to write
	n      int
}

// New sizes a recorder to hold window of rounds taken every period (at
// least two rounds).
func New(device string, points []*drivers.Point, window, period time.Duration) (*Recorder, error) {
	if period <= 0 || window <= 0 {
		return nil, fmt.Errorf("blackbox: device %s: window %s and period %s must be positive", device, window, period)
	}
	rounds := int(window/period) + 1
	rounds = max(rounds, 2)
	const maxCells = 1 << 28 // ~3 GB of values: refuse a configuration mistake
	if rounds*len(points) > maxCells {
		return nil, fmt.Errorf("blackbox: device %s: %d rounds x %d points is too large; shorten the window", device, rounds, len(points))
	}
	return &Recorder{
		device: device, points: points, np: len(points),
		at: make([]int64, rounds), failed: make([]bool, rounds),
		vals: make([]float64, rounds*len(points)), faults: make([]drivers.Fault, rounds*len(points)),
	}, nil
}

// Capacity is the number of rounds kept.
func (r *Recorder) Capacity() int { return len(r.at) }

// Len is the number of rounds held.
func (r *Recorder) Len() int { return r.n }

// Record stores one round, overwriting the oldest when full. readings are
// in point order (extra readings are ignored, missing ones recorded as
// absent); roundErr marks a round that failed as a whole. It does not
// allocate.
func (r *Recorder) Record(at time.Time, readings []drivers.Reading, roundErr error) {
	s := r.head
	r.at[s] = at.UnixNano()
	r.failed[s] = roundErr != nil
	v, f := r.vals[s*r.np:(s+1)*r.np], r.faults[s*r.np:(s+1)*r.np]
	for i := range v {
		if i >= len(readings) {
			v[i], f[i] = 0, drivers.FaultAbsent
			continue
		}
		v[i], f[i] = readings[i].Value, readings[i].Fault
	}
	r.head++
	if r.head == len(r.at) {
		r.head = 0
	}
	if r.n < len(r.at) {
		r.n++
	}
}

// Snapshot is a frozen copy of a recorder's rounds, oldest first.
type Snapshot struct {
	Device string
	Points []*drivers.Point
	At     []time.Time
	Failed []bool
	// Values and Faults hold len(At) rows of len(Points) each.
	Values [][]float64
	Faults [][]drivers.Fault
}

// Freeze copies the held rounds into a Snapshot. The recorder keeps going.
func (r *Recorder) Freeze() *Snapshot {
	s := &Snapshot{Device: r.device, Points: r.points,
		At: make([]time.Time, r.n), Failed: make([]bool, r.n),
		Values: make([][]float64, r.n), Faults: make([][]drivers.Fault, r.n)}
	vals := make([]float64, r.n*r.np)
	faults := make([]drivers.Fault, r.n*r.np)
	start := r.head - r.n
	if start < 0 {
		start += len(r.at)
	}
	for k := range r.n {
		slot := (start + k) % len(r.at)
		s.At[k] = time.Unix(0, r.at[slot]).UTC()
		s.Failed[k] = r.failed[slot]
		s.Values[k] = vals[k*r.np : (k+1)*r.np : (k+1)*r.np]
		s.Faults[k] = faults[k*r.np : (k+1)*r.np : (k+1)*r.np]
		copy(s.Values[k], r.vals[slot*r.np:(slot+1)*r.np])
		copy(s.Faults[k], r.faults[slot*r.np:(slot+1)*r.np])
	}
	return s
}

// AppendLineProtocol appends the snapshot as telemetry lines. tags are the
// device's labels (site, agent, room, ...); device and component are added.
// Failed rounds produce no lines (absence of data, never zeros).
func (s *Snapshot) AppendLineProtocol(b []byte, tags []wire.Tag) []byte {
	// Group points by component once, in first-appearance order.
	var comps []string
	byComp := map[string][]int{}
	for i, p := range s.Points {
		if p == nil || p.Kind == drivers.KindString {
			continue
		}
		if _, ok := byComp[p.Component]; !ok {
			comps = append(comps, p.Component)
		}
		byComp[p.Component] = append(byComp[p.Component], i)
	}
	// Each component's tag set, sorted by key once (InfluxDB ingests
	// sorted tags fastest).
	lineTags := make([][]wire.Tag, len(comps))
	for ci, c := range comps {
		lt := make([]wire.Tag, 0, len(tags)+2)
		for _, t := range tags {
			if t.Key != "device" && t.Key != "component" {
				lt = append(lt, t)
			}
		}
		lt = append(lt, wire.Tag{Key: "device", Value: s.Device}, wire.Tag{Key: "component", Value: c})
		sort.Slice(lt, func(i, j int) bool { return lt[i].Key < lt[j].Key })
		lineTags[ci] = lt
	}
	for k := range s.At {
		if s.Failed[k] {
			continue
		}
		for ci, c := range comps {
			b = wire.AppendLineStart(b, lineTags[ci])
			for n, i := range byComp[c] {
				f := s.Points[i].Field
				if s.Faults[k][i] != drivers.FaultNone {
					b = wire.AppendStringField(b, n == 0, f+wire.FaultSuffix, s.Faults[k][i].String())
				} else {
					b = wire.AppendFloatField(b, n == 0, f, s.Values[k][i])
				}
			}
			b = wire.AppendTimestamp(b, s.At[k])
		}
	}
	return b
}

// WriteLineProtocol writes the snapshot as telemetry lines to w.
func (s *Snapshot) WriteLineProtocol(w io.Writer, tags []wire.Tag) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for k := range s.At {
		one := Snapshot{Device: s.Device, Points: s.Points, At: s.At[k : k+1], Failed: s.Failed[k : k+1],
			Values: s.Values[k : k+1], Faults: s.Faults[k : k+1]}
		b = one.AppendLineProtocol(b[:0], tags)
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("blackbox: write %s snapshot: %w", s.Device, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("blackbox: write %s snapshot: %w", s.Device, err)
	}
	return nil
}
