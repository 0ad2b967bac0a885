package profile

// LocalOptions describe a locally attached sensor or contact (periph).
// Owned by the local-sensor driver's authors: extend as the driver needs.
type LocalOptions struct {
	// Driver names the chip or input kind: gpio-contact, ads1x15, bmxx80, ...
	Driver string `yaml:"driver,omitempty"`
}

// LocalAddr locates a local point: an ADC channel, a GPIO pin.
type LocalAddr struct {
	Channel *int `yaml:"channel,omitempty"`
}
