package blackbox_test

import (
	"fmt"
	"os"
	"time"

	"github.com/emberwatch/emberwatch/agent/blackbox"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// The agent records every round; when a rack reaches warning it freezes the
// last minutes and publishes them as telemetry lines.
func Example() {
	pts := []*drivers.Point{
		drivers.NewPoint("string[1].module[1].cell[1].temperature.celsius", "degC", drivers.KindNumber),
		drivers.NewPoint("gas.h2.ppm", "ppm", drivers.KindNumber),
	}
	rec, err := blackbox.New("rack-a1", pts, 2*time.Second, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	at := time.Unix(1763784000, 0)
	for i := range 5 {
		rs := []drivers.Reading{{Point: pts[0], Value: 25 + float64(i)}, {Point: pts[1], Value: 2}}
		if i == 4 {
			rs[1].Fault = drivers.FaultTimeout
		}
		rec.Record(at.Add(time.Duration(i)*time.Second), rs, nil)
	}
	snap := rec.Freeze() // the last 3 rounds
	snap.WriteLineProtocol(os.Stdout, []wire.Tag{{Key: "site", Value: "pangyo-a"}, {Key: "agent", Value: "gw-01"}})
	// Output:
	// ember,agent=gw-01,component=string/1/module/1/cell/1,device=rack-a1,site=pangyo-a temperature.celsius=27 1763784002000000000
	// ember,agent=gw-01,device=rack-a1,site=pangyo-a gas.h2.ppm=2 1763784002000000000
	// ember,agent=gw-01,component=string/1/module/1/cell/1,device=rack-a1,site=pangyo-a temperature.celsius=28 1763784003000000000
	// ember,agent=gw-01,device=rack-a1,site=pangyo-a gas.h2.ppm=2 1763784003000000000
	// ember,agent=gw-01,component=string/1/module/1/cell/1,device=rack-a1,site=pangyo-a temperature.celsius=29 1763784004000000000
	// ember,agent=gw-01,device=rack-a1,site=pangyo-a gas.h2.ppm.fault="timeout" 1763784004000000000
}
