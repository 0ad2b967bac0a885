package blackbox_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/blackbox"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func points(n int) []*drivers.Point {
	var ps []*drivers.Point
	for k := 1; k <= n; k++ {
		ps = append(ps,
			drivers.NewPoint(fmt.Sprintf("string[1].module[1].cell[%d].voltage.volts", k), "V", drivers.KindNumber),
			drivers.NewPoint(fmt.Sprintf("string[1].module[1].cell[%d].temperature.celsius", k), "degC", drivers.KindNumber))
	}
	return append(ps, drivers.NewPoint("gas.h2.ppm", "ppm", drivers.KindNumber))
}

func round(ps []*drivers.Point, i int) []drivers.Reading {
	rs := make([]drivers.Reading, len(ps))
	for k, p := range ps {
		rs[k] = drivers.Reading{Point: p, Value: float64(i*1000 + k)}
	}
	return rs
}

// decoded is a snapshot's rounds, copied.
type decoded struct {
	At     []time.Time
	Failed []bool
	Values [][]float64
	Faults [][]drivers.Fault
}

func decode(s *blackbox.Snapshot) decoded {
	var d decoded
	for r := range s.Rows() {
		d.At = append(d.At, r.At)
		d.Failed = append(d.Failed, r.Failed)
		d.Values = append(d.Values, slices.Clone(r.Values))
		d.Faults = append(d.Faults, slices.Clone(r.Faults))
	}
	if len(d.At) != s.Len() {
		panic(fmt.Sprintf("Len %d, %d rows", s.Len(), len(d.At)))
	}
	return d
}

func TestRingKeepsLastWindowInOrder(t *testing.T) {
	ps := points(2)
	r, err := blackbox.New("rack-a", ps, 4*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i := range 8 {
		var err error
		if i == 6 {
			err = errors.New("timeout")
		}
		r.Record(t0.Add(time.Duration(i)*time.Second), round(ps, i), err)
	}
	snap := r.Freeze()
	s := decode(snap)
	if len(s.At) != 5 || s.At[0] != t0.Add(3*time.Second).UTC() || s.At[4] != t0.Add(7*time.Second).UTC() {
		t.Fatalf("times %v", s.At)
	}
	if s.Values[0][1] != 3001 || s.Values[4][4] != 7004 {
		t.Fatalf("values %v", s.Values)
	}
	if !s.Failed[3] || s.Failed[2] {
		t.Fatalf("failed %v", s.Failed)
	}
	// The snapshot is a copy: recording more does not change it.
	r.Record(t0.Add(9*time.Second), round(ps, 9), nil)
	if s = decode(snap); s.Values[0][1] != 3001 || len(s.At) != 5 {
		t.Fatal("snapshot aliases the ring")
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	ps := points(128)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, 0)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Second)
		r.Record(at, rs, nil)
	})
	if allocs != 0 {
		t.Fatalf("Record allocates %v times per round", allocs)
	}
}

func TestLineProtocolRoundTrip(t *testing.T) {
	ps := points(2)
	r, _ := blackbox.New("rack-a", ps, time.Minute, 0)
	t0 := time.Unix(2000, 0)
	rs := round(ps, 1)
	rs[1].Fault = drivers.FaultSentinel
	r.Record(t0, rs, nil)
	r.Record(t0.Add(time.Second), round(ps, 2), errors.New("down"))
	var b bytes.Buffer
	if err := r.Freeze().WriteLineProtocol(&b, []wire.Tag{{Key: "site", Value: "s1"}, {Key: "agent", Value: "gw"}, {Key: "room", Value: "ups-2"}}); err != nil {
		t.Fatal(err)
	}
	lines, err := wire.ParseLines(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// One round (the failed one writes nothing): 2 cells + the device line.
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	c1 := lines[0]
	if c1.Tags["component"] != "string/1/module/1/cell/1" || c1.Tags["device"] != "rack-a" || c1.Tags["room"] != "ups-2" || !c1.Time.Equal(t0) {
		t.Fatalf("line %+v", c1)
	}
	if c1.Fields["voltage.volts"] != 1000 || c1.Strings["temperature.celsius.fault"] != "sentinel" {
		t.Fatalf("fields %v strings %v", c1.Fields, c1.Strings)
	}
	if _, ok := c1.Fields["temperature.celsius"]; ok {
		t.Fatal("a faulted point was written as a number")
	}
	if lines[2].Tags["component"] != "" || lines[2].Fields["gas.h2.ppm"] != 1004 {
		t.Fatalf("device line %+v", lines[2])
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	if _, err := blackbox.New("rack-a", points(1), 0, 0); err == nil {
		t.Fatal("zero window accepted")
	}
	if _, err := blackbox.New("rack-a", points(1), time.Minute, -1); err == nil {
		t.Fatal("negative budget accepted")
	}
	// 441 points need a 3,978-byte keyframe; 8 blocks of 4 keyframes.
	_, err := blackbox.New("rack-a", points(220), time.Minute, 64<<10)
	if err == nil || !strings.Contains(err.Error(), "too small for 441 points") {
		t.Fatalf("err %v, want a too-small budget refused", err)
	}
}

// Rounds come back exactly, whatever changes between them: random values
// (some repeating, as real registers do), faults and failed rounds, across
// many turns of a small ring.
func TestDeltaRoundTrip(t *testing.T) {
	ps := points(20) // 41 points
	r, err := blackbox.New("rack-a", ps, time.Hour, 8*4*(9+41*9)*3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type rec struct {
		at     time.Time
		failed bool
		rs     []drivers.Reading
	}
	var all []rec
	prev := round(ps, 0)
	t0 := time.Unix(5000, 0)
	for i := range 3000 {
		rs := slices.Clone(prev)
		for k := range rs {
			switch x := rng.IntN(20); {
			case x == 0:
				rs[k].Fault = drivers.FaultTimeout
			case x < 4:
				rs[k].Value, rs[k].Fault = rng.NormFloat64()*1e3, drivers.FaultNone
			case x == 4:
				rs[k].Value, rs[k].Fault = math.Inf(1), drivers.FaultNone
			}
		}
		var rerr error
		if rng.IntN(30) == 0 {
			rerr = errors.New("timeout")
		} else {
			prev = rs
		}
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		r.Record(at, rs, rerr)
		all = append(all, rec{at, rerr != nil, rs})
		if i%97 != 0 {
			continue
		}
		s := decode(r.Freeze())
		if len(s.At) != r.Len() || len(s.At) == 0 {
			t.Fatalf("round %d: snapshot of %d rounds, recorder holds %d", i, len(s.At), r.Len())
		}
		want := all[len(all)-len(s.At):]
		for j, w := range want {
			if !s.At[j].Equal(w.at) || s.Failed[j] != w.failed {
				t.Fatalf("round %d row %d: at %v failed %v, want %v %v", i, j, s.At[j], s.Failed[j], w.at, w.failed)
			}
			if w.failed {
				continue
			}
			for k := range ps {
				if math.Float64bits(s.Values[j][k]) != math.Float64bits(w.rs[k].Value) || s.Faults[j][k] != w.rs[k].Fault {
					t.Fatalf("round %d row %d point %d: %v/%v, want %v/%v", i, j, k, s.Values[j][k], s.Faults[j][k], w.rs[k].Value, w.rs[k].Fault)
				}
			}
		}
	}
	if r.Len() >= len(all) {
		t.Fatalf("the ring never turned: %d of %d rounds held", r.Len(), len(all))
	}
}

// Repeating values cost a bitmap per round: a 10-minute window of a
// 441-point rack at 100 ms fits in the default budget.
func TestRepeatingValuesFitTheWindow(t *testing.T) {
	ps := points(220)
	r, err := blackbox.New("rack-a", ps, 10*time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	rs := round(ps, 1)
	t0 := time.Unix(0, 0)
	for i := range 6001 {
		if i%10 == 0 { // a BMS that refreshes one cell's value each second
			rs[i/10%len(rs)].Value++
		}
		r.Record(t0.Add(time.Duration(i)*100*time.Millisecond), rs, nil)
	}
	s := r.Freeze()
	if s.Len() != 6001 || s.Span() != 10*time.Minute {
		t.Fatalf("%d rounds over %v, want the whole 10 minutes", s.Len(), s.Span())
	}
}

func BenchmarkRecord512(b *testing.B) {
	ps := points(512)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, 0)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		r.Record(at, rs, nil)
	}
}

// Every value changes every round: the worst case for the delta encoding.
func BenchmarkRecord512Changing(b *testing.B) {
	ps := points(512)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, 0)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		for k := range rs {
			rs[k].Value++
		}
		r.Record(at, rs, nil)
	}
}

func BenchmarkFreezeEncode(b *testing.B) {
	ps := points(128)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, 0)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	for range 600 {
		at = at.Add(time.Second)
		r.Record(at, rs, nil)
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = r.Freeze().AppendLineProtocol(buf[:0], []wire.Tag{{Key: "site", Value: "s"}, {Key: "agent", Value: "a"}})
	}
	b.ReportMetric(float64(len(buf)), "bytes/snapshot")
}

// Chunks cuts the same lines as AppendLineProtocol into parts under the
// limit, at round boundaries.
func TestChunksMatchWholeEncoding(t *testing.T) {
	ps := points(16)
	r, _ := blackbox.New("rack-a", ps, time.Hour, 0)
	t0 := time.Unix(3000, 0)
	for i := range 200 {
		r.Record(t0.Add(time.Duration(i)*time.Second), round(ps, i), nil)
	}
	snap := r.Freeze()
	tags := []wire.Tag{{Key: "site", Value: "s1"}, {Key: "agent", Value: "gw"}}
	whole := snap.AppendLineProtocol(nil, tags)
	var joined []byte
	parts := 0
	err := snap.Chunks(tags, 8<<10, func(p []byte) error {
		parts++
		if len(p) > 8<<10 || p[len(p)-1] != '\n' {
			return fmt.Errorf("part %d: %d bytes, ends %q", parts, len(p), p[len(p)-1])
		}
		joined = append(joined, p...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(joined, whole) || parts < len(whole)/(8<<10) {
		t.Fatalf("%d parts, %d bytes joined, %d whole", parts, len(joined), len(whole))
	}
	lines, err := wire.ParseLines(joined)
	if err != nil || len(lines) != 200*17 {
		t.Fatalf("%d lines, err %v", len(lines), err)
	}
}
