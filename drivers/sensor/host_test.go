package sensor_test

import (
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/sensor"
)

// TestHostWithoutHardware runs the real host registries on a machine
// without I2C or GPIO (CI): lookups fail with errors naming what is missing.
func TestHostWithoutHardware(t *testing.T) {
	h, err := sensor.NewHost()
	if err != nil {
		t.Skipf("periph host drivers do not load here: %v", err)
	}
	defer func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := h.GPIO("NO_SUCH_PIN"); err == nil || !strings.Contains(err.Error(), `"NO_SUCH_PIN"`) {
		t.Errorf("GPIO(NO_SUCH_PIN): %v", err)
	}
	if _, err := h.I2C("97"); err == nil || !strings.Contains(err.Error(), `open I2C bus "97"`) {
		t.Errorf("I2C(97): %v", err)
	}
}
