package detect

import (
	"fmt"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// A UPS in steady state repeats the same values round after round: that
// is data, not a frozen gateway, so it must not raise a comms alert.
func TestSteadyUPSIsNotFrozen(t *testing.T) {
	var pts []*drivers.Point
	for i := range 40 {
		pts = append(pts, drivers.NewPoint(fmt.Sprintf("ups.output[%d].voltage.volts", i), "V", drivers.KindNumber))
	}
	pts = append(pts, drivers.NewPoint("battery.charge.percent", "%", drivers.KindNumber))
	d := New(DefaultConfig("nmc"), "ups-1", pts)
	rs := make([]drivers.Reading, len(pts))
	for i := range rs {
		rs[i] = drivers.Reading{Point: pts[i], Value: 230}
	}
	t0 := time.Unix(1700000000, 0)
	for k := range 120 {
		d.Step(t0.Add(time.Duration(k)*time.Second), rs, nil, func(a wire.Alert) {
			t.Errorf("steady UPS raised %s %s: %+v", a.Stage, a.Category, a.Signatures)
		})
	}
}
