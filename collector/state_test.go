package collector

import (
	"strconv"
	"testing"
	"time"
)

// A replayed older round does not replace newer values; faults replace a
// value and a later value clears the fault.
func TestStateLatestWins(t *testing.T) {
	s := newState("s1", time.Now)
	var l lpLine
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	apply := func(payload string) {
		if _, err := s.applyTelemetry("gw-01", "d1", []byte(payload), &l); err != nil {
			t.Fatal(err)
		}
	}
	line := func(ts time.Time, fields string) string {
		return "ember,site=s1,agent=gw-01,device=d1,rack=07,component=string/1/cell/1 " + fields + " " + strconv.FormatInt(ts.UnixNano(), 10) + "\n"
	}
	apply(line(t0.Add(10*time.Second), "temperature.celsius=30"))
	apply(line(t0, "temperature.celsius=25")) // late replay
	snap := s.Snapshot(true)
	if v := snap.Devices[0].Values["string[1].cell[1].temperature.celsius"]; v != 30 {
		t.Errorf("value after a late replay %v, want 30", v)
	}
	apply(line(t0.Add(11*time.Second), `temperature.celsius.fault="timeout"`))
	snap = s.Snapshot(true)
	if _, ok := snap.Devices[0].Values["string[1].cell[1].temperature.celsius"]; ok || snap.Devices[0].Faults["string[1].cell[1].temperature.celsius"] != "timeout" {
		t.Errorf("fault: values %v faults %v", snap.Devices[0].Values, snap.Devices[0].Faults)
	}
	apply(line(t0.Add(12*time.Second), "temperature.celsius=31"))
	snap = s.Snapshot(true)
	if snap.Devices[0].Values["string[1].cell[1].temperature.celsius"] != 31 || len(snap.Devices[0].Faults) != 0 {
		t.Errorf("after recovery: values %v faults %v", snap.Devices[0].Values, snap.Devices[0].Faults)
	}
	if got := snap.Devices[0].LastSample; !got.Equal(t0.Add(12 * time.Second)) {
		t.Errorf("last sample %v", got)
	}
}

func TestPointName(t *testing.T) {
	for comp, want := range map[string]string{
		"":                         "voltage.volts",
		"string/1":                 "string[1].voltage.volts",
		"string/1/module/3/cell/7": "string[1].module[3].cell[7].voltage.volts",
	} {
		if got := PointName(comp, "voltage.volts"); got != want {
			t.Errorf("PointName(%q) = %q, want %q", comp, got, want)
		}
	}
}

func TestSlope(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	var tr []trendSample
	for i := range 60 {
		tr = append(tr, trendSample{t0.Add(time.Duration(i) * 2 * time.Second), 25 + float64(i)*0.1}) // 3 degC/min
	}
	if sl, ok := slope(tr, trendWindow); !ok || sl < 2.999 || sl > 3.001 {
		t.Errorf("slope %v %v, want 3", sl, ok)
	}
	if _, ok := slope(tr[:2], trendWindow); ok {
		t.Error("slope from 2 s of data")
	}
}
