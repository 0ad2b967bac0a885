package sensor_test

import (
	"testing"
	"testing/synctest"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// BME280 register traffic (Bosch BST-BME280-DS002: chip id at 0xD0,
// calibration at 0x88..0xA1 and 0xE1..0xE7, ctrl_hum 0xF2, status 0xF3,
// ctrl_meas 0xF4, config 0xF5, data 0xF7..0xFE) as periph's bmxx80 sends it
// with the profile's settings (x1 temperature and humidity, pressure off).
// Calibration and data bytes are those of a real chip, from periph's own
// test (23.72 degC, 65.3056 %RH).
var (
	bmeCalib = []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}
	bmeHum   = []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}
	bmeData  = []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}
)

func bmeSetup(addr uint16, chipID byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xD0}, R: []byte{chipID}},
		{Addr: addr, W: []byte{0x88}, R: bmeCalib},
		{Addr: addr, W: []byte{0xE1}, R: bmeHum},
		// ctrl_meas sleep (osrs_t x1, osrs_p off), ctrl_hum x1, config
		// (standby 1 s, filter off), ctrl_meas sleep again.
		{Addr: addr, W: []byte{0xF4, 0x20, 0xF2, 0x01, 0xF5, 0xA0, 0xF4, 0x20}},
	}
}

func bmeSense(addr uint16, data []byte, busy int) []i2ctest.IO {
	ops := []i2ctest.IO{{Addr: addr, W: []byte{0xF4, 0x21}}} // forced mode
	for range busy {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xF3}, R: []byte{0x08}}) // measuring
	}
	return append(ops,
		i2ctest.IO{Addr: addr, W: []byte{0xF3}, R: []byte{0x00}},
		i2ctest.IO{Addr: addr, W: []byte{0xF7}, R: data},
	)
}

func bme(t *testing.T, bus *i2ctest.Playback) *sensor.Poller {
	t.Helper()
	p, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, builtin(t, "bme280"), hardware(bus, nil), discard())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBME280(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: ops(bmeSetup(0x76, 0x60), bmeSense(0x76, bmeData, 1), bmeSense(0x76, bmeData, 0))}
		p := bme(t, bus)
		for range 2 { // setup once, then one forced measurement per round
			rs, err := poll(t, p)
			if err != nil {
				t.Fatal(err)
			}
			wantValue(t, rs, "ambient.temperature.celsius", 23.72)
			wantValue(t, rs, "ambient.humidity.percent", 65.3056)
		}
		closePlayback(t, bus)
	})
}

func TestBME280Faults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Absent at start: nothing answers (the playback is empty).
		bus := &i2ctest.Playback{DontPanic: true}
		p := bme(t, bus)
		rs, err := poll(t, p)
		if err == nil {
			t.Error("absent chip: no error")
		}
		wantFault(t, rs, "ambient.temperature.celsius", drivers.FaultSensor)
		wantFault(t, rs, "ambient.humidity.percent", drivers.FaultSensor)

		// Plugged in: set up and read.
		bus.Ops = append(bus.Ops, ops(bmeSetup(0x76, 0x60), bmeSense(0x76, bmeData, 0))...)
		rs, err = poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "ambient.temperature.celsius", 23.72)

		// Power-cycled between rounds: ctrl_hum is lost, so humidity reads
		// its reset value 0x8000 and temperature is measured. Then the
		// next round sets the chip up again.
		reset := append([]byte{}, bmeData...)
		reset[6], reset[7] = 0x80, 0x00
		bus.Ops = append(bus.Ops, bmeSense(0x76, reset, 0)...)
		rs, err = poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "ambient.temperature.celsius", 23.72)
		wantFault(t, rs, "ambient.humidity.percent", drivers.FaultSentinel)

		// Temperature at its reset value 0x80000 too: nothing measured.
		reset[3], reset[4], reset[5] = 0x80, 0x00, 0x00
		bus.Ops = append(bus.Ops, ops(bmeSetup(0x76, 0x60), bmeSense(0x76, reset, 0))...)
		rs, _ = poll(t, p)
		wantFault(t, rs, "ambient.temperature.celsius", drivers.FaultSentinel)
		wantFault(t, rs, "ambient.humidity.percent", drivers.FaultSentinel)

		// Stuck busy: periph's driver would poll the status forever; the
		// round is cut after a bounded number of transactions.
		bus.Ops = append(bus.Ops, ops(bmeSetup(0x76, 0x60), bmeSense(0x76, bmeData, 1000))...)
		rs, err = poll(t, p)
		if err == nil {
			t.Error("stuck chip: no error")
		}
		wantFault(t, rs, "ambient.temperature.celsius", drivers.FaultSensor)
		if bus.Count > len(bus.Ops)-900 {
			t.Errorf("stuck chip: %d of %d transactions ran", bus.Count, len(bus.Ops))
		}

		// A BMP280 answers where a BME280 is expected: no humidity.
		bus.Ops, bus.Count = ops(bmeSetup(0x76, 0x58)[:2], []i2ctest.IO{
			{Addr: 0x76, W: []byte{0xF4, 0x20, 0xF5, 0xA0, 0xF4, 0x20}},
			{Addr: 0x76, W: []byte{0xF4, 0x21}},
			{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}},
			{Addr: 0x76, W: []byte{0xF7}, R: bmeData[:6]},
		}), 0
		rs, err = poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "ambient.temperature.celsius", 23.72)
		wantFault(t, rs, "ambient.humidity.percent", drivers.FaultAbsent)
		closePlayback(t, bus)
	})
}
