package profile_test

import (
	"fmt"
	"log/slog"
	"testing/fstest"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

func ExampleLoad() {
	site := fstest.MapFS{"ups.yaml": {Data: []byte(`id: my-ups
vendor: Acme
model: UPS 3000
firmware: ">=2.0"
source: "Acme Modbus map rev 4"
protocol: modbus
points:
  - {name: battery.voltage.volts, address: 100, type: u16, scale: {pow10: -1}}
  - {name: battery.temperature.celsius, address: 101, type: s16, scale: 0.1, range: {min: -40, max: 150}}
`)}}
	set, err := profile.Load(slog.New(slog.DiscardHandler), site)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := set.Get("my-ups")
	for _, pt := range p.Points {
		f, _ := pt.Scale.Const()
		fmt.Printf("%s @%d %s x%g %s (line %d)\n", pt.Name, *pt.Address, pt.Type, f, pt.Unit, pt.Line)
	}
	// Output:
	// battery.voltage.volts @100 u16 x0.1 V (line 8)
	// battery.temperature.celsius @101 s16 x0.1 degC (line 9)
}

func ExampleParse_problems() {
	_, err := profile.Parse("bad.yaml", []byte(`id: bad
vendor: Acme
model: UPS
firmware: "*"
source: s
protocol: modbus
points:
  - {name: battery.voltage.volts, address: 100, type: u16, scale: {sf: V_SF}}
  - {name: battery.current.amps, adress: 101, type: s16}
`))
	fmt.Println(err)
	// Output:
	// bad.yaml:9: points[1].adress: unknown key
	// bad.yaml:8: points[0].scale.sf: no scale factor "V_SF" in scale_factors here or in an enclosing scope
	// bad.yaml:9: points[1].address: required
}

func ExampleExpand() {
	p, err := profile.Parse("cells.yaml", []byte(`id: cells
vendor: Acme
model: BMS
firmware: "*"
source: s
protocol: modbus
blocks:
  - name: cell
    count: 3
    start: 200
    stride: 2
    points:
      - {name: "cell[{cell}].voltage.volts", address: 0, type: u16, scale: 0.001}
      - {name: "cell[{cell}].temperature.celsius", address: 1, type: s16, scale: 0.1}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = profile.Expand(p.TopScope(), 0, nil, nil, func(in profile.Instance) error {
		fmt.Println(in.Addr, in.Name)
		return nil
	})
	// Output:
	// 200 cell[1].voltage.volts
	// 201 cell[1].temperature.celsius
	// 202 cell[2].voltage.volts
	// 203 cell[2].temperature.celsius
	// 204 cell[3].voltage.volts
	// 205 cell[3].temperature.celsius
}
