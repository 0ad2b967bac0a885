package profile

import "time"

// LocalOptions describe a locally attached sensor or contact (periph). The
// profile says what the chip is and how its points are read; the agent's
// config says where it is (bus name, I2C address, host pin names).
type LocalOptions struct {
	// Driver names the chip or input kind: gpio-contacts, ads1x15, bmxx80,
	// aht20, ina219.
	Driver string `yaml:"driver,omitempty"`
	// Chip narrows the driver: ads1115 or ads1015 (ads1x15); bme280 or
	// bmp280 (bmxx80, which reads the chip id and refuses a mismatch).
	Chip string `yaml:"chip,omitempty"`
	// Address is the chip's default I2C address, used when the config gives
	// none (0x48 for an ADS1115 with ADDR to GND, 0x76 for a BME280 with SDO
	// to GND).
	Address uint16 `yaml:"default_address,omitempty"`
	// DataRate in samples per second for ADCs (ADS1115: 8 16 32 64 128 250
	// 475 860; ADS1015: 128 250 490 920 1600 2400 3300). A conversion takes
	// 1/DataRate. Defaults to 860 (ADS1115) or 3300 (ADS1015).
	DataRate int `yaml:"data_rate,omitempty"`
	// Oversampling for bmxx80 measurements: 1, 2, 4, 8 or 16. Higher is
	// less noisy and slower (about 2 ms per step and quantity). Defaults to 1.
	Oversampling int `yaml:"oversampling,omitempty"`
	// ShuntOhms and MaxCurrent (amps) calibrate an INA219: its shunt
	// resistor and the largest current to read (the current LSB is
	// MaxCurrent/32768). Default to 0.1 ohm and 3.2 A (the common breakout
	// board).
	ShuntOhms  float64 `yaml:"shunt_ohms,omitempty"`
	MaxCurrent float64 `yaml:"max_current,omitempty"`
	// Debounce is the default time a contact must hold a new level before
	// the change is taken. Defaults to 0 (every sampled change is taken).
	Debounce time.Duration `yaml:"debounce,omitempty"`
}

// LocalAddr locates a local point: a GPIO pin, an ADC channel, a quantity of
// an environmental sensor. A local point's type says what it carries: bool
// (a contact's debounced level), counter (the count of debounced level
// changes of a contact since start) or float (an ADC or sensor value).
type LocalAddr struct {
	// Channel is the ADC input (0..3, single-ended against GND).
	Channel *int `yaml:"channel,omitempty"`

	// Pin is the default host pin name ("GPIO17"); the config's pins map
	// overrides it per point name.
	Pin string `yaml:"pin,omitempty"`
	// ActiveLow inverts the contact: a low level means the point is true.
	// Normally-closed relay contacts pulled up and opened on alarm are
	// active high; normally-open contacts that close to ground on alarm
	// are active low.
	ActiveLow bool `yaml:"active_low,omitempty"`
	// Pull is the input's bias: up (default), down or none (external
	// resistors).
	Pull string `yaml:"pull,omitempty"`
	// Debounce overrides LocalOptions.Debounce for this contact.
	Debounce *time.Duration `yaml:"debounce,omitempty"`

	// FullScale is the ADC's programmable-gain range in volts: 6.144,
	// 4.096, 2.048 (default), 1.024, 0.512 or 0.256. The input must stay
	// within it; a saturated conversion is a FaultRange.
	FullScale float64 `yaml:"full_scale,omitempty"`
	// Input is what the ADC channel measures: voltage (default, volts) or
	// current (a 4-20 mA loop through ShuntOhms, in milliamps).
	Input string `yaml:"input,omitempty"`
	// ShuntOhms is the loop's shunt resistor for Input current.
	ShuntOhms float64 `yaml:"shunt_ohms,omitempty"`
	// Curve maps the input (volts or milliamps) to the point's value:
	// [[x, y], ...] with x strictly increasing, piecewise linear, and
	// extrapolated along the end segments. Without a curve the value is
	// input*scale+offset.
	Curve []CurvePoint `yaml:"curve,omitempty"`
	// FaultBelow and FaultAbove bound the input (volts or milliamps):
	// at or beyond them the transmitter signals a fault or the loop is open
	// (NAMUR NE 43: at most 3.6 mA or at least 21 mA), and the point is a
	// FaultSensor instead of a value.
	FaultBelow *float64 `yaml:"fault_below,omitempty"`
	FaultAbove *float64 `yaml:"fault_above,omitempty"`

	// Measure names a sensor's quantity: temperature (degC), humidity (%)
	// or pressure (Pa) for bmxx80; temperature or humidity for aht20;
	// voltage (V, the bus), current (A), power (W) or shunt (V) for ina219.
	Measure string `yaml:"measure,omitempty"`
}

// CurvePoint is one [x, y] pair of a calibration curve.
type CurvePoint [2]float64
