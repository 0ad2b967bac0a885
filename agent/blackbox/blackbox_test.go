package blackbox_test

import (
	"bytes"
	"errors"
	"fmt"
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

func TestRingKeepsLastWindowInOrder(t *testing.T) {
	ps := points(2)
	r, err := blackbox.New("rack-a", ps, 4*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Capacity() != 5 {
		t.Fatalf("capacity %d, want 5", r.Capacity())
	}
	t0 := time.Unix(1000, 0)
	for i := range 8 {
		var err error
		if i == 6 {
			err = errors.New("timeout")
		}
		r.Record(t0.Add(time.Duration(i)*time.Second), round(ps, i), err)
	}
	s := r.Freeze()
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
	if s.Values[0][1] != 3001 {
		t.Fatal("snapshot aliases the ring")
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	ps := points(128)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, time.Second)
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
	r, _ := blackbox.New("rack-a", ps, time.Minute, time.Second)
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
	if _, err := blackbox.New("rack-a", points(1), time.Minute, 0); err == nil {
		t.Fatal("zero period accepted")
	}
	if _, err := blackbox.New("rack-a", points(1), 0, time.Second); err == nil {
		t.Fatal("zero window accepted")
	}
}

func BenchmarkRecord512(b *testing.B) {
	ps := points(512)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, time.Second)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		r.Record(at, rs, nil)
	}
}

func BenchmarkFreezeEncode(b *testing.B) {
	ps := points(128)
	r, _ := blackbox.New("rack-a", ps, 10*time.Minute, time.Second)
	rs := round(ps, 1)
	at := time.Unix(0, 0)
	for range r.Capacity() {
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
