package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func testPoints() []*drivers.Point {
	return []*drivers.Point{
		drivers.NewPoint("battery.charge.percent", "%", drivers.KindNumber),
		drivers.NewPoint("string[1].module[1].cell[1].voltage.volts", "V", drivers.KindNumber),
		drivers.NewPoint("string[1].module[1].cell[1].temperature.celsius", "degC", drivers.KindNumber),
		drivers.NewPoint("string[1].module[1].cell[2].voltage.volts", "V", drivers.KindNumber),
		drivers.NewPoint("ups.identity.model", "", drivers.KindString),
	}
}

func TestEncodeRound(t *testing.T) {
	pts := testPoints()
	tags := []wire.Tag{{Key: "site", Value: "s1"}, {Key: "agent", Value: "gw-1"}, {Key: "device", Value: "rack-a1"}, {Key: "room", Value: "ups 2"}}
	enc := newEncoder(tags, pts)
	at := time.Unix(1700000000, 250_000_000)
	r := &round{at: at, readings: []drivers.Reading{
		{Value: 97.5}, {Value: 3.912}, {Value: 25.25}, {Fault: drivers.FaultSentinel}, {Text: `Smart-UPS "SRT"`},
	}}
	got := string(enc.encode(r))
	want := strings.Join([]string{
		`ember,agent=gw-1,device=rack-a1,room=ups\ 2,site=s1 battery.charge.percent=97.5,ups.identity.model="Smart-UPS \"SRT\"" 1700000000250000000`,
		`ember,agent=gw-1,component=string/1/module/1/cell/1,device=rack-a1,room=ups\ 2,site=s1 voltage.volts=3.912,temperature.celsius=25.25 1700000000250000000`,
		`ember,agent=gw-1,component=string/1/module/1/cell/2,device=rack-a1,room=ups\ 2,site=s1 voltage.volts.fault="sentinel" 1700000000250000000`,
	}, "\n") + "\n"
	if got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
	// What the agent writes, the collector reads back equal.
	lines, err := wire.ParseLines([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[1].Fields["voltage.volts"] != 3.912 || lines[2].Strings["voltage.volts.fault"] != "sentinel" ||
		lines[0].Strings["ups.identity.model"] != `Smart-UPS "SRT"` || lines[0].Tags["room"] != "ups 2" || !lines[0].Time.Equal(at) {
		t.Fatalf("parsed back wrong: %+v", lines)
	}
	if _, bad := lines[2].Fields["voltage.volts"]; bad {
		t.Fatal("a faulted point must not carry a number")
	}
}

func BenchmarkEncodeRound512Cells(b *testing.B) {
	var pts []*drivers.Point
	for m := 1; m <= 16; m++ {
		for c := 1; c <= 16; c++ {
			pts = append(pts, drivers.NewPoint(cellName(1, m, c, "voltage.volts"), "V", drivers.KindNumber),
				drivers.NewPoint(cellName(1, m, c, "temperature.celsius"), "degC", drivers.KindNumber))
		}
	}
	enc := newEncoder([]wire.Tag{{Key: "site", Value: "s"}, {Key: "agent", Value: "a"}, {Key: "device", Value: "d"}}, pts)
	r := &round{at: time.Unix(1700000000, 0), readings: make([]drivers.Reading, len(pts))}
	for i := range r.readings {
		r.readings[i].Value = 3.3 + float64(i)/1000
	}
	b.ReportAllocs()
	for b.Loop() {
		enc.encode(r)
	}
}

func cellName(s, m, c int, field string) string {
	return "string[" + itoa(s) + "].module[" + itoa(m) + "].cell[" + itoa(c) + "]." + field
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
