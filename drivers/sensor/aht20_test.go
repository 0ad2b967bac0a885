package sensor_test

import (
	"testing"
	"testing/synctest"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// crc8 is the AHT20 datasheet's CRC: polynomial x^8+x^5+x^4+1 (0x31),
// initial value 0xFF, over the status and five data bytes.
func crc8(b []byte) byte {
	c := byte(0xFF)
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x31
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// ahtFrame builds a measurement frame: status, 20-bit humidity, 20-bit
// temperature, CRC. RH = h/2^20*100, T = t/2^20*200-50.
func ahtFrame(status byte, h, t uint32) []byte {
	b := []byte{status, byte(h >> 12), byte(h >> 4), byte(h<<4) | byte(t>>16), byte(t >> 8), byte(t)}
	return append(b, crc8(b))
}

var (
	ahtStatus  = []i2ctest.IO{{Addr: 0x38, W: []byte{0x71}, R: []byte{0x18}}} // calibrated
	ahtTrigger = i2ctest.IO{Addr: 0x38, W: []byte{0xAC, 0x33, 0x00}}
)

func ahtRead(frame []byte) i2ctest.IO { return i2ctest.IO{Addr: 0x38, R: frame} }

func TestAHT20(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := ahtFrame(0x18, 1<<19, 3<<17) // 50 %RH, 25 degC
		bad := append([]byte{}, good...)
		bad[6] ^= 0xFF
		var busy []i2ctest.IO
		for range 40 {
			busy = append(busy, ahtRead(ahtFrame(0x98, 0, 0))) // busy bit set
		}
		bus := &i2ctest.Playback{Ops: ops(
			ahtStatus, []i2ctest.IO{ahtTrigger, ahtRead(ahtFrame(0x98, 0, 0)), ahtRead(good)}, // busy once, then done
			[]i2ctest.IO{ahtTrigger, ahtRead(bad)},                  // corrupted on the wire
			[]i2ctest.IO{ahtTrigger, ahtRead(ahtFrame(0x10, 0, 0))}, // lost its calibration
			[]i2ctest.IO{{Addr: 0x38, W: []byte{0x71}, R: []byte{0x10}}, {Addr: 0x38, W: []byte{0xBE, 0x08, 0x00}}, ahtTrigger, ahtRead(good)},
			[]i2ctest.IO{ahtTrigger}, busy, // never ready
		)}
		p, err := sensor.NewPoller(sensor.Config{Bus: "i2c", Name: "1"}, builtin(t, "aht20"), hardware(bus, nil), discard())
		if err != nil {
			t.Fatal(err)
		}
		rs, err := poll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "ambient.temperature.celsius", 25)
		wantValue(t, rs, "ambient.humidity.percent", 50)

		rs, _ = poll(t, p)
		wantFault(t, rs, "ambient.temperature.celsius", drivers.FaultMalformed)
		rs, _ = poll(t, p)
		wantFault(t, rs, "ambient.humidity.percent", drivers.FaultSensor)
		rs, err = poll(t, p) // initialised again (0xBE), then read
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, rs, "ambient.humidity.percent", 50)
		rs, err = poll(t, p)
		if err == nil {
			t.Error("never ready: no error")
		}
		wantFault(t, rs, "ambient.temperature.celsius", drivers.FaultTimeout)
		if bus.Count >= len(bus.Ops) {
			t.Errorf("never ready: all %d busy reads ran; the read timeout did not stop it", len(busy))
		}
	})
}
