package profile

import (
	"strings"
	"testing"
)

const localHead = `id: bad-local
vendor: test
model: test
firmware: "*"
source: test
protocol: local
`

func TestValidateLocal(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"no local section", "points: [{name: door.open, type: bool, pin: GPIO4}]\n", []string{
			"test.yaml:1: local: required for protocol local (driver: gpio-contacts, ads1x15, bmxx80, aht20 or ina219)"}},
		{"bad driver and options", `local: {driver: ads1x15, chip: ads1116, default_address: 0x50, data_rate: 100, oversampling: 2, debounce: 2m}
points: [{name: door.open, type: bool, pin: GPIO4}]
`, []string{
			`test.yaml:7: local.chip: "ads1116" is not one of [ads1115 ads1015] for driver ads1x15`,
			"test.yaml:7: local.default_address: 0x50 is not one of the ads1x15 addresses 0x48 0x49 0x4a 0x4b",
			"test.yaml:7: local.data_rate: only for driver ads1x15",
			"test.yaml:7: local.oversampling: only for driver bmxx80",
			"test.yaml:7: local.debounce: must be between 0 and 1m, got 2m0s",
		}},
		{"contacts", `local: {driver: gpio-contacts}
points:
  - {name: door.open, type: bool, pin: GPIO4, pull: sideways}
  - {name: epo.active, type: bool, pin: GPIO4, channel: 1}
  - {name: alarm.smoke, type: float, pin: GPIO5}
  - {name: alarm.fire_panel, type: analog}
`, []string{
			`test.yaml:9: points[0].pull: "sideways" is not one of up, down, none`,
			"test.yaml:10: points[1].pin: pin GPIO4 is also read by door.open",
			"test.yaml:10: points[1]: ADC settings (channel, full_scale, input, shunt_ohms, curve, fault_below, fault_above) are for float points",
			"test.yaml:11: points[2].type: float points need an I2C chip (driver ads1x15, bmxx80, aht20 or ina219); gpio-contacts has bool and counter points",
			`test.yaml:12: points[3].type: "analog" is not one of bool, counter, float for protocol local`,
		}},
		{"adc", `local: {driver: ads1x15}
points:
  - name: gas.h2.ppm
    type: float
    unit: ppm
    channel: 0
    input: current
    curve: [[4, 0], [4, 1000]]
    fault_below: 21
    fault_above: 3.6
    scale: 2
  - {name: gas.co.ppm, type: float, unit: ppm, channel: 0, full_scale: 3.3, input: current, shunt_ohms: 100, fault_above: 21}
  - {name: gas.voc.ppm, type: float, unit: ppm, shunt_ohms: 100, measure: humidity}
`, []string{
			"test.yaml:9: points[0].shunt_ohms: required and > 0 for input current (the loop's shunt resistor)",
			"test.yaml:16: points[0].fault_above: must be greater than fault_below (21)",
			"test.yaml:14: points[0].curve[1]: x must increase strictly (4 after 4)",
			"test.yaml:17: points[0].scale: give either a curve or scale/offset, not both",
			"test.yaml:18: points[1].channel: channel 0 is also read by gas.h2.ppm",
			"test.yaml:18: points[1].full_scale: 3.3 is not one of [6.144 4.096 2.048 1.024 0.512 0.256] (volts)",
			"test.yaml:19: points[2].channel: required: the ADC input 0..3",
			"test.yaml:19: points[2].shunt_ohms: only for input current",
			"test.yaml:19: points[2].measure: only for drivers bmxx80, aht20 and ina219",
		}},
		{"env", `local: {driver: bmxx80, chip: bmp280}
points:
  - {name: ambient.humidity.percent, type: float, unit: "%", measure: humidity}
  - {name: ambient.temperature.celsius, type: float, unit: degC, scale: {sf: X}}
`, []string{
			"test.yaml:9: points[0].measure: a bmp280 has no humidity sensor",
			"test.yaml:10: points[1].measure: required: one of [temperature humidity pressure]",
			"test.yaml:10: points[1].scale: must be a constant for protocol local (no sf)",
		}},
		{"ina219", `local: {driver: ina219, default_address: 0x3f, shunt_ohms: -1}
points:
  - {name: battery.current.amps, type: float, unit: A, measure: temperature}
`, []string{
			"test.yaml:7: local.default_address: 0x3f is not one of the ina219 addresses 0x40 0x41 0x42 0x43 0x44 0x45 0x46 0x47 0x48 0x49 0x4a 0x4b 0x4c 0x4d 0x4e 0x4f",
			"test.yaml:7: local.shunt_ohms: shunt_ohms and max_current must be > 0",
			`test.yaml:9: points[0].measure: "temperature" is not one of [voltage current power shunt] for driver ina219`,
		}},
		{"ina219 options elsewhere", `local: {driver: bmxx80, max_current: 5}
points:
  - {name: ambient.temperature.celsius, type: float, unit: degC, measure: temperature}
`, []string{
			"test.yaml:7: local.shunt_ohms: shunt_ohms and max_current are only for driver ina219",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(localHead+tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q", w)
				}
			}
			// Nothing else is reported (no follow-on noise).
			if n := strings.Count(got, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems, want %d", n, len(tc.want))
			}
			if t.Failed() {
				t.Logf("got:\n%s", got)
			}
		})
	}
}

// A saturating range is caught when everything else about the channel is
// right.
func TestValidateLocalSaturation(t *testing.T) {
	_, err := Parse("test.yaml", []byte(localHead+`local: {driver: ads1x15}
points:
  - {name: gas.co.ppm, type: float, unit: ppm, channel: 1, input: current, shunt_ohms: 100, curve: [[4, 0], [20, 500]], fault_above: 21}
`))
	const want = "test.yaml:9: points[0].full_scale: 2.048 V saturates below fault_above (2.1 V at the ADC input)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
