package modbus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// Config is the `modbus:` section of an agent device.
type Config struct {
	// URL of the link: tcp://host:502, rtu:///dev/ttyUSB0,
	// rtuovertcp://host:port (RTU framing over a TCP socket), tcp+tls://host:802.
	URL string `yaml:"url"`
	// UnitID is the device's unit (slave) id: 1..247 on serial lines (0 is
	// broadcast there); 0..255 over TCP, where many devices ignore it.
	UnitID int `yaml:"unit_id"`
	// Timeout per request. Defaults to 500ms.
	Timeout time.Duration `yaml:"timeout,omitempty"`

	// Serial settings (rtu:// only). Default 9600 8N1.
	Speed    int    `yaml:"speed,omitempty"`
	DataBits int    `yaml:"data_bits,omitempty"`
	Parity   string `yaml:"parity,omitempty"` // none, even, odd
	StopBits int    `yaml:"stop_bits,omitempty"`

	// TLS for tcp+tls:// (MBAPS): mutual authentication is mandatory.
	TLS TLSConfig `yaml:"tls,omitempty"`

	// Device quirks overriding the profile's modbus options.
	MaxRegisters    int            `yaml:"max_registers,omitempty"`
	MaxGap          *int           `yaml:"max_gap,omitempty"`
	Pause           *time.Duration `yaml:"pause,omitempty"`
	CloseAfterRound *bool          `yaml:"close_after_round,omitempty"`
	BusyRetries     *int           `yaml:"busy_retries,omitempty"`

	// RetryMin and RetryMax bound the exponential backoff after a device
	// stopped answering. Default 1s and 60s.
	RetryMin time.Duration `yaml:"retry_min,omitempty"`
	RetryMax time.Duration `yaml:"retry_max,omitempty"`
}

// TLSConfig names PEM files.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// Defaults.
const (
	DefaultTimeout  = 500 * time.Millisecond
	DefaultSpeed    = 9600
	DefaultMaxGap   = 16
	DefaultRetryMin = time.Second
	DefaultRetryMax = 60 * time.Second
)

// ConfigError is one problem of a Config; Key is relative to the modbus
// section ("url", "tls.ca_file") so the agent can add file and line.
type ConfigError struct {
	Key, Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

// Validate reports every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{key, fmt.Sprintf(format, args...)})
	}
	scheme, rest, ok := strings.Cut(c.URL, "://")
	switch {
	case c.URL == "":
		add("url", "missing (tcp://host:502, rtu:///dev/ttyUSB0, rtuovertcp://host:port, tcp+tls://host:802)")
	case !ok:
		add("url", "%q has no scheme (tcp://, rtu://, rtuovertcp://, tcp+tls://)", c.URL)
	default:
		switch scheme {
		case "tcp", "rtuovertcp", "tcp+tls":
			if _, port, err := net.SplitHostPort(rest); err != nil || port == "" {
				add("url", "%q: want %s://host:port", c.URL, scheme)
			}
		case "rtu":
			if !strings.HasPrefix(rest, "/") {
				add("url", "%q: want rtu:///dev/ttyX (an absolute device path)", c.URL)
			}
		default:
			add("url", "unsupported scheme %q (want tcp, rtu, rtuovertcp or tcp+tls)", scheme)
		}
	}
	if c.UnitID < 0 || c.UnitID > 255 {
		add("unit_id", "%d is outside 0..255", c.UnitID)
	} else if scheme == "rtu" && (c.UnitID < 1 || c.UnitID > 247) {
		add("unit_id", "%d is outside 1..247 (serial line addresses)", c.UnitID)
	}
	if c.Timeout < 0 {
		add("timeout", "must not be negative")
	}
	if scheme != "rtu" {
		if c.Speed != 0 || c.DataBits != 0 || c.Parity != "" || c.StopBits != 0 {
			add("speed", "serial settings (speed, data_bits, parity, stop_bits) apply to rtu:// only")
		}
	}
	if c.Speed < 0 {
		add("speed", "must be positive")
	}
	if c.DataBits != 0 && (c.DataBits < 5 || c.DataBits > 8) {
		add("data_bits", "%d is outside 5..8", c.DataBits)
	}
	switch c.Parity {
	case "", "none", "even", "odd":
	default:
		add("parity", "%q is not none, even or odd", c.Parity)
	}
	if c.StopBits != 0 && c.StopBits != 1 && c.StopBits != 2 {
		add("stop_bits", "%d is not 1 or 2", c.StopBits)
	}
	if scheme == "tcp+tls" {
		for _, f := range []struct{ key, v string }{{"tls.ca_file", c.TLS.CAFile}, {"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
			if f.v == "" {
				add(f.key, "required for tcp+tls:// (mutual authentication)")
			}
		}
	} else if c.TLS != (TLSConfig{}) {
		add("tls", "applies to tcp+tls:// only")
	}
	if c.MaxRegisters < 0 || c.MaxRegisters > maxRegsPerRead {
		add("max_registers", "%d is outside 1..%d", c.MaxRegisters, maxRegsPerRead)
	}
	if c.MaxGap != nil && (*c.MaxGap < 0 || *c.MaxGap > maxRegsPerRead) {
		add("max_gap", "%d is outside 0..%d", *c.MaxGap, maxRegsPerRead)
	}
	if c.Pause != nil && *c.Pause < 0 {
		add("pause", "must not be negative")
	}
	if c.BusyRetries != nil && (*c.BusyRetries < 0 || *c.BusyRetries > 10) {
		add("busy_retries", "%d is outside 0..10", *c.BusyRetries)
	}
	if c.RetryMin < 0 {
		add("retry_min", "must not be negative")
	}
	if c.RetryMax < 0 || (c.RetryMax > 0 && c.RetryMax < c.RetryMin) {
		add("retry_max", "must be at least retry_min")
	}
	return errors.Join(errs...)
}

// scheme returns the URL's scheme.
func (c *Config) scheme() string {
	s, _, _ := strings.Cut(c.URL, "://")
	return s
}

// linkKey is the sharing key of a link: devices whose configs give the
// same key share one client.
func (c *Config) linkKey() string {
	scheme, rest, _ := strings.Cut(c.URL, "://")
	return scheme + "://" + strings.ToLower(rest)
}

// transport is what must agree between devices sharing a link.
type transport struct {
	timeout                   time.Duration
	speed, dataBits, stopBits int
	parity                    string
	tls                       TLSConfig
}

func (c *Config) transport() transport {
	t := transport{timeout: c.Timeout, tls: c.TLS}
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	if c.scheme() == "rtu" {
		t.speed, t.dataBits, t.stopBits, t.parity = c.Speed, c.DataBits, c.StopBits, c.Parity
		if t.speed == 0 {
			t.speed = DefaultSpeed
		}
		if t.dataBits == 0 {
			t.dataBits = 8
		}
		if t.stopBits == 0 {
			t.stopBits = 1
		}
		if t.parity == "" {
			t.parity = "none"
		}
	}
	return t
}

// loadTLS reads the certificate files for tcp+tls.
func (t transport) loadTLS() (*tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(t.tls.CertFile, t.tls.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	pem, err := os.ReadFile(t.tls.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.tls.CAFile)
	}
	return &cert, pool, nil
}

// quirks are the effective request-planning and pacing options of a device:
// the profile's, overridden by the device config.
type quirks struct {
	planLimits
	pause           time.Duration
	closeAfterRound bool
	busyRetries     int
	retryMin        time.Duration
	retryMax        time.Duration
}

func effectiveQuirks(c *Config, p *profile.Profile) quirks {
	q := quirks{planLimits: planLimits{maxRegs: maxRegsPerRead, maxGap: DefaultMaxGap},
		retryMin: DefaultRetryMin, retryMax: DefaultRetryMax}
	if o := p.Modbus; o != nil {
		if o.MaxRegisters > 0 && o.MaxRegisters <= maxRegsPerRead {
			q.maxRegs = o.MaxRegisters
		}
		if o.MaxGap > 0 {
			q.maxGap = o.MaxGap
		}
		q.unreadable = o.Unreadable
		q.pause, q.closeAfterRound, q.busyRetries = o.Pause, o.CloseAfterRound, o.BusyRetries
	}
	if c.MaxRegisters > 0 {
		q.maxRegs = c.MaxRegisters
	}
	if c.MaxGap != nil {
		q.maxGap = *c.MaxGap
	}
	if c.Pause != nil {
		q.pause = *c.Pause
	}
	if c.CloseAfterRound != nil {
		q.closeAfterRound = *c.CloseAfterRound
	}
	if c.BusyRetries != nil {
		q.busyRetries = *c.BusyRetries
	}
	if c.RetryMin > 0 {
		q.retryMin = c.RetryMin
	}
	if c.RetryMax > 0 {
		q.retryMax = c.RetryMax
	}
	if q.retryMax < q.retryMin {
		q.retryMax = q.retryMin
	}
	return q
}
