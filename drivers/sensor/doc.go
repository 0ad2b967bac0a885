// Package sensor reads sensors and dry contacts wired to the edge box itself,
// through periph.io: fire-panel and smoke relays, door and EPO contacts on
// GPIO inputs, off-gas detectors with analog outputs on an ADS1115 ADC, a
// BME280 or AHT20 for room temperature and humidity, and an INA219 on a small
// DC battery. A GPIO output can drive a local alarm beacon (SetBeacon; the
// agent type-asserts interface{ SetBeacon(bool) error } on its poller).
//
// # Design
//
// A firmware profile (protocol: local) says what a device is: the driver
// (gpio-contacts, ads1x15, bmxx80, aht20, ina219), each point's pin, ADC
// channel, gain, calibration curve or measured quantity. The agent config's `local:`
// section (Config) says where it is on this box: the I2C bus and address,
// and host pin names overriding the profile's. NewPoller compiles the two
// into a Poller (drivers.Poller) over a Hardware, a small interface that
// hands out an i2c.Bus or a gpio.PinIO by name. Host is the real one
// (periph's host.Init, i2creg, gpioreg); tests use StaticHardware with
// periph's own doubles (i2ctest.Playback, gpiotest.Pin).
//
// # Contacts
//
// Inputs are sampled once per Poll (the agent's loop); Poll never waits for
// an edge. A new level is taken once it has been seen on every sample for
// the debounce time, so a glitch seen on one sample is ignored; debounced
// changes are counted (type: counter). The first sample is taken as is, so an
// alarm present at start-up is reported at once.
//
// # ADC
//
// ADS1015/ADS1115 (TI SBAS473/SBAS444) are driven in single-shot mode
// directly over i2c.Dev rather than through periph's devices/v3/ads1x15:
// that driver allocates per read and sleeps without checking that the
// conversion finished. Each channel is a config write, a config read (the
// OS bit says the conversion is done; every other bit must read back as
// written, or the chip was reset or is not an ADS1x15) and a conversion read.
// The config word is the one periph's driver builds for the same channel,
// gain and rate (tested). Codes at full scale are FaultRange; inputs at or
// beyond the profile's fault_below/fault_above (a 4-20 mA loop under 3.6 mA
// is open or its transmitter is in fault, NAMUR NE 43) are FaultSensor;
// the rest goes through the piecewise-linear calibration curve.
//
// # BME280
//
// periph's devices/v3/bmxx80 in forced mode, one measurement per round. The
// bus it sees is bounded per round (guardBus): that driver waits for the
// chip's busy flag in an unbounded loop, and a stuck chip must cost a
// faulted round, not a hung loop. Registers still at their reset values
// (the chip was power-cycled) are FaultSentinel, and a failed round sets the
// chip up again on the next one.
//
// # AHT20
//
// periph's devices/v3/aht20 with CRC checking: a corrupted frame is
// FaultMalformed, a sensor that lost its calibration is set up again, a
// measurement still busy after 150 ms is FaultTimeout.
//
// # INA219
//
// periph's devices/v3/ina219 (32 V range, 12-bit, continuous). After each
// round the calibration register is read back: a chip that browned out reads
// 0 A with a lost calibration, which is FaultSentinel, not "no current". The
// overflow flag makes current and power FaultRange.
//
// # Faults
//
// A chip that does not answer is never a number: its points are FaultSensor.
// Poll returns an error only when nothing could be read; contacts beside a
// failed chip are still reported. Steady rounds of contacts and ADC
// channels do not allocate (the BME280 round allocates inside periph).
package sensor
