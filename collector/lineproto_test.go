package collector

import (
	"errors"
	"maps"
	"testing"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// The collector's scanner must agree with the contract's parser
// (wire.ParseLines) on every valid line, and refuse the invalid ones.
func TestScannerAgreesWithWire(t *testing.T) {
	lines := []string{
		`ember,site=s1,agent=gw-01,device=rack-a1,room=ups-2,component=string/1/module/3/cell/7 voltage.volts=3.91,temperature.celsius=25.1 1763784000000000000`,
		`ember,site=s1,agent=a,device=d battery.charge.percent=97i,alarm.smoke=false,door.open=t 1763784000000000001`,
		`ember,site=s1,agent=a,device=d,rack=r\ 1 voltage.volts.fault="timeout",x=1e-3 1763784000000000002`,
		`ember,site=s1,agent=a,device=d status="on \"battery\", ok",n=-2.5 1763784000000000003`,
		`ember,site=s1,agent=a,device=d,label=a\,b\=c v=1`,
	}
	for _, raw := range lines {
		want, err := wire.ParseLines([]byte(raw))
		if err != nil {
			t.Fatalf("wire.ParseLines(%q): %v", raw, err)
		}
		var l lpLine
		if err := l.parse([]byte(raw)); err != nil {
			t.Fatalf("parse(%q): %v", raw, err)
		}
		w := want[0]
		if string(l.measurement) != w.Measurement {
			t.Errorf("%q: measurement %q, want %q", raw, l.measurement, w.Measurement)
		}
		tags := map[string]string{}
		for _, tg := range l.tags {
			tags[string(tg.key)] = string(tg.val)
		}
		if !maps.Equal(tags, w.Tags) {
			t.Errorf("%q: tags %v, want %v", raw, tags, w.Tags)
		}
		nums, strs := map[string]float64{}, map[string]string{}
		for _, f := range l.fields {
			if f.isStr {
				strs[string(f.key)] = string(f.str)
			} else {
				nums[string(f.key)] = f.num
			}
		}
		if !maps.Equal(nums, w.Fields) || !maps.Equal(strs, w.Strings) {
			t.Errorf("%q: fields %v %v, want %v %v", raw, nums, strs, w.Fields, w.Strings)
		}
		if l.hasTS != !w.Time.IsZero() || (l.hasTS && l.ts != w.Time.UnixNano()) {
			t.Errorf("%q: ts %d (%v), want %v", raw, l.ts, l.hasTS, w.Time)
		}
	}
}

func TestScannerRejects(t *testing.T) {
	for _, raw := range []string{
		`ember`,
		`ember,site= v=1 1`,
		`ember,=x v=1 1`,
		`ember,site=s v= 1`,
		`ember,site=s v=abc 1`,
		`ember,site=s v=NaN 1`,
		`ember,site=s v="open 1`,
		`ember,site=s v=1 12ab`,
		`,site=s v=1 1`,
	} {
		var l lpLine
		if err := l.parse([]byte(raw)); !errors.Is(err, errLP) {
			t.Errorf("parse(%q) = %v, want a line protocol error", raw, err)
		}
	}
}

func BenchmarkScanLine(b *testing.B) {
	line := []byte(`ember,agent=gw-01,component=string/1/module/3/cell/7,device=rack-a1,rack=07,room=ups-2,row=b,site=s1 temperature.celsius=25.1,voltage.volts=3.912 1763784000000000000`)
	var l lpLine
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := l.parse(line); err != nil {
			b.Fatal(err)
		}
	}
}
