package sensor_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// On the edge box, hw is the real host:
//
//	hw, err := sensor.NewHost()
//	defer hw.Close()
//
// Here two periph test pins stand in for the header.
func ExampleNewPoller() {
	prof, err := profile.Parse("door.yaml", []byte(`
id: door-epo
vendor: example
model: door switch and EPO contact
firmware: "*"
source: site wiring
protocol: local
local: {driver: gpio-contacts, debounce: 100ms}
points:
  - {name: door.open, type: bool, pin: GPIO22}
  - {name: epo.active, type: bool, pin: GPIO23}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	door, epo := &gpiotest.Pin{N: "GPIO22"}, &gpiotest.Pin{N: "GPIO23"}
	hw := sensor.StaticHardware{Pins: map[string]gpio.PinIO{"GPIO22": door, "GPIO23": epo}}
	p, err := sensor.NewPoller(sensor.Config{Bus: "gpio"}, prof, hw, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	door.Out(gpio.High) // the reed switch is open: door open
	epo.Out(gpio.Low)   // the EPO loop is closed: not pressed
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(context.Background(), out); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range out {
		fmt.Println(r.Point.Name, r.Value, r.OK())
	}
	// Output:
	// door.open 1 true
	// epo.active 0 true
}
