package profile

import (
	"fmt"
	"math"
	"time"
)

// Local drivers, the chips each accepts (the first is the default), and the
// I2C addresses the chip can be strapped to.
var localChips = map[string][]string{
	"gpio-contacts": nil,
	"ads1x15":       {"ads1115", "ads1015"},
	"bmxx80":        {"bme280", "bmp280"},
	"ina219":        {"ina219"},
	"aht20":         {"aht20"},
}

var localAddrs = map[string][]uint16{
	"ads1x15": {0x48, 0x49, 0x4A, 0x4B}, // ADDR to GND, VDD, SDA, SCL
	"bmxx80":  {0x76, 0x77},             // SDO to GND, VDD
	"ina219": {0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
		0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F}, // A0, A1 to GND, VS+, SDA, SCL
	"aht20": {0x38}, // fixed
}

// localMeasures are the quantities a sensor driver reads.
var localMeasures = map[string][]string{
	"bmxx80": {"temperature", "humidity", "pressure"},
	"ina219": {"voltage", "current", "power", "shunt"},
	"aht20":  {"temperature", "humidity"},
}

// localDataRates are the ADC data rates per chip, in samples per second.
var localDataRates = map[string][]int{
	"ads1115": {8, 16, 32, 64, 128, 250, 475, 860},
	"ads1015": {128, 250, 490, 920, 1600, 2400, 3300},
}

// localFullScales are the ADS1x15 programmable-gain ranges in volts.
var localFullScales = []float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256}

// LocalChip returns the profile's chip, or its driver's default.
func (o *LocalOptions) LocalChip() string {
	if o.Chip != "" {
		return o.Chip
	}
	if c := localChips[o.Driver]; len(c) > 0 {
		return c[0]
	}
	return ""
}

// ValidateLocal checks a local profile alone, for drivers handed a profile
// that did not come through the loader (tests, code).
func ValidateLocal(p *Profile) error {
	ps := &Problems{File: p.File}
	validateLocal(p, ps)
	return ps.Err()
}

// validateLocal checks what is specific to local sensor profiles: the
// driver and chip, and that each point is addressed the way its kind needs
// (contacts by pin, ADC points by channel, sensor points by quantity).
func validateLocal(p *Profile, ps *Problems) {
	add := func(key, format string, args ...any) { ps.Add(p.KeyLine(key), key, format, args...) }
	o := p.Local
	if o == nil {
		add("local", "required for protocol local (driver: gpio-contacts, ads1x15, bmxx80, aht20 or ina219)")
		return
	}
	chips, known := localChips[o.Driver]
	switch {
	case o.Driver == "":
		add("local.driver", "required: gpio-contacts, ads1x15, bmxx80, aht20 or ina219")
	case !known:
		add("local.driver", "%q is not one of gpio-contacts, ads1x15, bmxx80, aht20, ina219", o.Driver)
	}
	chip := o.LocalChip()
	if o.Chip != "" && known && !localHas(chips, o.Chip) {
		if len(chips) == 0 {
			add("local.chip", "driver %s has no chip", o.Driver)
		} else {
			add("local.chip", "%q is not one of %v for driver %s", o.Chip, chips, o.Driver)
		}
	}
	if o.Address != 0 && known {
		if addrs := localAddrs[o.Driver]; !localHas(addrs, o.Address) {
			if addrs == nil {
				add("local.default_address", "driver %s is not on I2C", o.Driver)
			} else {
				add("local.default_address", "%#x is not one of the %s addresses %s", o.Address, o.Driver, localFmtAddrs(addrs))
			}
		}
	}
	if o.DataRate != 0 {
		if rates, ok := localDataRates[chip]; !ok {
			add("local.data_rate", "only for driver ads1x15")
		} else if !localHas(rates, o.DataRate) {
			add("local.data_rate", "%d is not one of the %s rates %v", o.DataRate, chip, rates)
		}
	}
	if o.Oversampling != 0 {
		if o.Driver != "bmxx80" {
			add("local.oversampling", "only for driver bmxx80")
		} else if !localHas([]int{1, 2, 4, 8, 16}, o.Oversampling) {
			add("local.oversampling", "%d is not one of 1 2 4 8 16", o.Oversampling)
		}
	}
	if o.ShuntOhms != 0 || o.MaxCurrent != 0 {
		switch {
		case o.Driver != "ina219":
			add("local.shunt_ohms", "shunt_ohms and max_current are only for driver ina219")
		case o.ShuntOhms < 0 || o.MaxCurrent < 0:
			add("local.shunt_ohms", "shunt_ohms and max_current must be > 0")
		}
	}
	localDebounce(add, "local.debounce", o.Debounce)
	if len(p.Blocks) > 0 {
		add("blocks", "not supported for protocol local: list every point")
	}
	if len(p.Points) == 0 {
		add("points", "a local profile needs at least one point")
	}
	pins := map[string]string{}
	chans := map[int]string{}
	for i := range p.Points {
		pt := &p.Points[i]
		k := fmt.Sprintf("points[%d]", i)
		switch pt.Type {
		case "bool", "counter":
			localContact(add, k, pt, pins)
		case "float":
			switch o.Driver {
			case "ads1x15":
				localADC(add, k, pt, chans)
			case "bmxx80", "aht20", "ina219":
				localEnv(add, k, pt, o.Driver, chip)
			default:
				add(k+".type", "float points need an I2C chip (driver ads1x15, bmxx80, aht20 or ina219); gpio-contacts has bool and counter points")
			}
		case "":
			add(k+".type", "required: bool (contact level), counter (contact changes) or float")
		default:
			add(k+".type", "%q is not one of bool, counter, float for protocol local", pt.Type)
		}
	}
}

// localContact checks a GPIO contact point.
func localContact(add func(string, string, ...any), k string, pt *Point, pins map[string]string) {
	if pt.Pin != "" && pt.Type == "bool" {
		if other, dup := pins[pt.Pin]; dup {
			add(k+".pin", "pin %s is also read by %s", pt.Pin, other)
		}
		pins[pt.Pin] = pt.Name
	}
	switch pt.Pull {
	case "", "up", "down", "none":
	default:
		add(k+".pull", "%q is not one of up, down, none", pt.Pull)
	}
	if pt.Debounce != nil {
		localDebounce(add, k+".debounce", *pt.Debounce)
	}
	if pt.Scale != nil || pt.Offset != 0 {
		add(k+".scale", "a contact has no scale or offset")
	}
	if pt.Channel != nil || pt.FullScale != 0 || pt.Input != "" || pt.ShuntOhms != 0 || pt.Curve != nil ||
		pt.FaultBelow != nil || pt.FaultAbove != nil {
		add(k, "ADC settings (channel, full_scale, input, shunt_ohms, curve, fault_below, fault_above) are for float points")
	}
	if pt.Measure != "" {
		add(k+".measure", "only for float points of drivers bmxx80, aht20 and ina219")
	}
}

// localADC checks an ADS1x15 channel point.
func localADC(add func(string, string, ...any), k string, pt *Point, chans map[int]string) {
	switch {
	case pt.Channel == nil:
		add(k+".channel", "required: the ADC input 0..3")
	case *pt.Channel < 0 || *pt.Channel > 3:
		add(k+".channel", "%d is not an ADC input 0..3", *pt.Channel)
	default:
		if other, dup := chans[*pt.Channel]; dup {
			add(k+".channel", "channel %d is also read by %s", *pt.Channel, other)
		}
		chans[*pt.Channel] = pt.Name
	}
	fsr, known := pt.FullScale, true
	if fsr == 0 {
		fsr = 2.048
	} else if !localHas(localFullScales, fsr) {
		add(k+".full_scale", "%g is not one of %v (volts)", fsr, localFullScales)
		known = false
	}
	// Convert an input threshold to volts at the ADC pin.
	volts := func(x float64) float64 { return x }
	switch pt.Input {
	case "", "voltage":
		if pt.ShuntOhms != 0 {
			add(k+".shunt_ohms", "only for input current")
		}
	case "current":
		if !(pt.ShuntOhms > 0) {
			add(k+".shunt_ohms", "required and > 0 for input current (the loop's shunt resistor)")
			known = false
		} else {
			volts = func(x float64) float64 { return x / 1000 * pt.ShuntOhms }
		}
	default:
		add(k+".input", "%q is not one of voltage, current", pt.Input)
	}
	if pt.FaultBelow != nil && pt.FaultAbove != nil && !(*pt.FaultBelow < *pt.FaultAbove) {
		add(k+".fault_above", "must be greater than fault_below (%g)", *pt.FaultBelow)
	}
	// The ADC must be able to see the fault level, or a failed-high
	// transmitter would read as saturated instead of as a sensor fault.
	if known && pt.FaultAbove != nil && volts(*pt.FaultAbove) > fsr {
		add(k+".full_scale", "%g V saturates below fault_above (%g V at the ADC input)", fsr, volts(*pt.FaultAbove))
	}
	if len(pt.Curve) > 0 {
		if len(pt.Curve) < 2 {
			add(k+".curve", "needs at least 2 [x, y] points")
		}
		for j := 1; j < len(pt.Curve); j++ {
			if !(pt.Curve[j][0] > pt.Curve[j-1][0]) {
				add(fmt.Sprintf("%s.curve[%d]", k, j), "x must increase strictly (%g after %g)", pt.Curve[j][0], pt.Curve[j-1][0])
			}
		}
		for j, c := range pt.Curve {
			if math.IsNaN(c[0]) || math.IsNaN(c[1]) || math.IsInf(c[0], 0) || math.IsInf(c[1], 0) {
				add(fmt.Sprintf("%s.curve[%d]", k, j), "must be finite numbers")
			}
		}
		if pt.Scale != nil || pt.Offset != 0 {
			add(k+".scale", "give either a curve or scale/offset, not both")
		}
	}
	localScale(add, k, pt)
	if pt.Pin != "" || pt.ActiveLow || pt.Pull != "" || pt.Debounce != nil {
		add(k, "contact settings (pin, active_low, pull, debounce) are for bool and counter points")
	}
	if pt.Measure != "" {
		add(k+".measure", "only for drivers bmxx80, aht20 and ina219")
	}
}

// localEnv checks a quantity of a sensor chip (BME280/BMP280, AHT20, INA219).
func localEnv(add func(string, string, ...any), k string, pt *Point, driver, chip string) {
	measures := localMeasures[driver]
	switch {
	case pt.Measure == "":
		add(k+".measure", "required: one of %v", measures)
	case !localHas(measures, pt.Measure):
		add(k+".measure", "%q is not one of %v for driver %s", pt.Measure, measures, driver)
	case pt.Measure == "humidity" && chip == "bmp280":
		add(k+".measure", "a bmp280 has no humidity sensor")
	}
	localScale(add, k, pt)
	if pt.Channel != nil || pt.Curve != nil || pt.Input != "" || pt.FullScale != 0 || pt.ShuntOhms != 0 ||
		pt.FaultBelow != nil || pt.FaultAbove != nil {
		add(k, "ADC settings (channel, full_scale, input, shunt_ohms, curve, fault_below, fault_above) are for driver ads1x15")
	}
	if pt.Pin != "" || pt.ActiveLow || pt.Pull != "" || pt.Debounce != nil {
		add(k, "contact settings (pin, active_low, pull, debounce) are for bool and counter points")
	}
}

func localScale(add func(string, string, ...any), k string, pt *Point) {
	if pt.Scale == nil {
		return
	}
	if f, ok := pt.Scale.Const(); !ok {
		add(k+".scale", "must be a constant for protocol local (no sf)")
	} else if f == 0 {
		add(k+".scale", "must not be zero")
	}
}

func localDebounce(add func(string, string, ...any), key string, d time.Duration) {
	// Longer than a minute would hide a real alarm for too long.
	if d < 0 || d > time.Minute {
		add(key, "must be between 0 and 1m, got %v", d)
	}
}

func localHas[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func localFmtAddrs(s []uint16) string {
	out := ""
	for i, a := range s {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%#x", a)
	}
	return out
}
