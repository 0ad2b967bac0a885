package sensor_test

import (
	"testing"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// INA219 traffic (TI SBOS448) as periph's ina219 sends it, plus the
// calibration read-back this package adds. The profile's 1.5 mOhm shunt and
// 50 A give Current_LSB = 50 A / 32768 and Cal = trunc(0.04096 /
// (Current_LSB * 0.0015)) = 17895 = 0x45E7.
func inaSetup() []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x05, 0x45, 0xE7}}, // calibration
		{Addr: 0x40, W: []byte{0x00, 0x1F, 0xFF}}, // config: 32 V, /8 PGA, 12-bit, continuous
	}
}

func inaRound(bus, current uint16, cal uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x01}, R: []byte{0x00, 0x64}}, // shunt: 100 x 10 uV
		{Addr: 0x40, W: []byte{0x02}, R: be16(bus)},          // bus
		{Addr: 0x40, W: []byte{0x04}, R: be16(current)},      // current
		{Addr: 0x40, W: []byte{0x03}, R: []byte{0x00, 0x32}}, // power
		{Addr: 0x40, W: []byte{0x05}, R: be16(cal)},          // calibration still there?
	}
}

func TestINA219(t *testing.T) {
	// 13.2 V: 3300 x 4 mV in bits 15..3, conversion ready (bit 1).
	const bus = 3300<<3 | 0x2
	bus0 := &i2ctest.Playback{Ops: ops(
		inaSetup(),
		inaRound(bus, 1000, 0x45E7), // charging at 1000 LSB
		inaRound(bus, uint16(0x10000-2000), 0x45E7), // discharging at 2000 LSB
		inaRound(bus, 0, 0),                         // brown-out: calibration gone, current reads 0
		inaSetup(),                                  // calibrated again
		inaRound(bus|0x1, 0, 0x45E7)[:2],            // overflow: periph stops after the bus voltage
	)}
	p, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, builtin(t, "ina219-12v"), hardware(bus0, nil), discard())
	if err != nil {
		t.Fatal(err)
	}
	const lsb = 1525878e-9 // amps, periph's integer Current_LSB
	rs, err := poll(t, p)
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, rs, "battery.voltage.volts", 13.2)
	wantValue(t, rs, "battery.current.amps", -1000*lsb) // charging is negative here
	rs, _ = poll(t, p)
	wantValue(t, rs, "battery.current.amps", 2000*lsb)
	rs, _ = poll(t, p)
	wantValue(t, rs, "battery.voltage.volts", 13.2)
	wantFault(t, rs, "battery.current.amps", drivers.FaultSentinel)
	rs, err = poll(t, p)
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, rs, "battery.voltage.volts", 13.2)
	wantFault(t, rs, "battery.current.amps", drivers.FaultRange)
	closePlayback(t, bus0)
}
