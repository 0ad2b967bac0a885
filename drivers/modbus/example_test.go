package modbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// A link loop: one goroutine per Poller.Link(), polling its devices in
// turn. Prepare makes SunSpec points known before the first round;
// ErrLayoutChanged tells the loop to size its readings again.
func Example() {
	pool := modbus.NewPool(slog.Default())
	prof := &profile.Profile{ID: "sunspec", Protocol: "modbus",
		SunSpec: &profile.SunSpec{Bases: []uint16{40000, 0, 50000}}}
	p, err := pool.NewPoller(modbus.Config{URL: "tcp://10.0.0.5:502", UnitID: 1, Timeout: 500 * time.Millisecond}, prof)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.Prepare(ctx) // a dead device backs off; Poll says so too
	out := make([]drivers.Reading, len(p.Points()))
	for range 3 {
		err := p.Poll(ctx, out)
		if errors.Is(err, modbus.ErrLayoutChanged) {
			out = make([]drivers.Reading, len(p.Points()))
			continue
		}
		for _, r := range out {
			if r.OK() {
				fmt.Println(r.Point.Name, r.Value, r.Point.Unit)
			} else {
				fmt.Println(r.Point.Name, "fault:", r.Fault, r.Detail)
			}
		}
	}
}

func ExampleConfig_Validate() {
	c := modbus.Config{URL: "rtu://ttyUSB0", UnitID: 0, Parity: "mark"}
	fmt.Println(c.Validate())
	// Output:
	// url: "rtu://ttyUSB0": want rtu:///dev/ttyX (an absolute device path)
	// unit_id: 0 is outside 1..247 (serial line addresses)
	// parity: "mark" is not none, even or odd
}
