package detect_test

import (
	"fmt"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// A detector is bound once to a device's points and stepped with every
// round; it reports stage changes only.
func Example() {
	var pts []*drivers.Point
	for k := 1; k <= 6; k++ {
		pts = append(pts, drivers.NewPoint(fmt.Sprintf("string[1].module[1].cell[%d].temperature.celsius", k), "degC", drivers.KindNumber))
	}
	d := detect.New(detect.DefaultConfig(detect.ChemistryNMC), "rack-a1", pts)

	rs := make([]drivers.Reading, len(pts))
	at := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	for i := range 900 { // 15 min at 1 s
		for k := range rs {
			v := 25.0 + 0.1*float64((i+k)%3) // live sensors carry noise
			if k == 3 && i >= 60 {
				v += 1.0 * float64(i-60) / 60 // one cell heats at 1 degC/min
			}
			rs[k] = drivers.Reading{Point: pts[k], Value: v}
		}
		d.Step(at, rs, nil, func(a wire.Alert) {
			a.Site, a.Agent, a.Time = "pangyo-a", "gw-01", at
			a.ID = detect.AlertID(&a)
			fmt.Println(a.SampleTime.Format("15:04:05"), a.Component, a.Category, a.Stage)
		})
		at = at.Add(time.Second)
	}
	// Output:
	// 04:06:56 string/1/module/1/cell/4 thermal critical
}
