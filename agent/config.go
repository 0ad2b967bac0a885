package agent

import (
	"fmt"
	"os"
	"time"

	"github.com/emberwatch/emberwatch/agent/blackbox"
	"github.com/emberwatch/emberwatch/drivers/modbus"
	"github.com/emberwatch/emberwatch/drivers/sensor"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/confpos"
	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/hooks/fallback"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Config is agent.yaml (docs/config.md, contract section 2).
type Config struct {
	Site          string           `yaml:"site"`
	AgentID       string           `yaml:"agent_id"`
	NATS          NATSConfig       `yaml:"nats"`
	BufferDir     string           `yaml:"buffer_dir"`
	ProfilesDir   string           `yaml:"profiles_dir"`
	Heartbeat     time.Duration    `yaml:"heartbeat"`
	Devices       []DeviceConfig   `yaml:"devices"`
	Hooks         []hooks.Spec     `yaml:"hooks"`
	Fallback      *fallback.Config `yaml:"fallback"`
	DetectionFile string           `yaml:"detection_file"`
	Traps         *snmp.TrapConfig `yaml:"traps"`
	BlackBox      time.Duration    `yaml:"black_box"`
	BlackBoxKiB   int              `yaml:"black_box_kib"`
	MetricsListen string           `yaml:"metrics_listen"`

	doc *confpos.Doc
}

// NATSConfig is the nats: section.
type NATSConfig struct {
	Servers           []string      `yaml:"servers"`
	CredsFile         string        `yaml:"creds_file"`
	TLS               TLSConfig     `yaml:"tls"`
	PingInterval      time.Duration `yaml:"ping_interval"`
	MaxPingsOut       int           `yaml:"max_pings_out"`
	ReconnectBufBytes int           `yaml:"reconnect_buffer_bytes"`
}

// TLSConfig holds client TLS files.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DeviceConfig is one entry of devices:.
type DeviceConfig struct {
	ID        string            `yaml:"id"`
	Profile   string            `yaml:"profile"`
	Period    time.Duration     `yaml:"period"`
	Burst     time.Duration     `yaml:"burst_period"`
	Location  map[string]string `yaml:"location"`
	Chemistry string            `yaml:"chemistry"`
	Modbus    *modbus.Config    `yaml:"modbus"`
	SNMP      *snmp.Config      `yaml:"snmp"`
	Local     *sensor.Config    `yaml:"local"`
}

// DefaultConfig holds the defaults applied before a file is decoded.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		AgentID:     sanitizeID(host),
		NATS:        NATSConfig{Servers: []string{"nats://127.0.0.1:4222"}, PingInterval: 5 * time.Second, MaxPingsOut: 2, ReconnectBufBytes: 8 << 20},
		BufferDir:   "/var/lib/ember",
		Heartbeat:   2 * time.Second,
		BlackBox:    10 * time.Minute,
		BlackBoxKiB: blackbox.DefaultBudget >> 10,
	}
}

func sanitizeID(s string) string {
	b := []byte{}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, '-')
		}
	}
	if len(b) == 0 {
		return "agent"
	}
	return string(b)
}

// LoadConfig reads, decodes and validates agent.yaml. Every problem is
// reported as file:line: key: what is wrong.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseConfig(file, data)
}

// ParseConfig decodes and validates agent config data named file.
func ParseConfig(file string, data []byte) (*Config, error) {
	cfg := DefaultConfig()
	doc, err := confpos.Decode(file, data, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.doc = doc
	cfg.validate(doc)
	if err := doc.Err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate(d *confpos.Doc) {
	if c.Site == "" {
		d.Errorf("site", "is required")
	} else if !wire.ValidID(c.Site) {
		d.Errorf("site", "%q must match [a-z0-9-]+", c.Site)
	}
	if !wire.ValidID(c.AgentID) {
		d.Errorf("agent_id", "%q must match [a-z0-9-]+", c.AgentID)
	}
	if len(c.NATS.Servers) == 0 {
		d.Errorf("nats.servers", "needs at least one server URL")
	}
	if c.NATS.PingInterval <= 0 {
		d.Errorf("nats.ping_interval", "must be positive")
	}
	if c.Heartbeat <= 0 || c.Heartbeat > 5*time.Second {
		d.Errorf("heartbeat", "must be between 0 and 5s (contract: at least every 5 s), got %v", c.Heartbeat)
	}
	if c.BlackBox < 0 {
		d.Errorf("black_box", "must not be negative (0 turns the black box off), got %v", c.BlackBox)
	}
	if c.BlackBoxKiB < 16 {
		d.Errorf("black_box_kib", "must be at least 16 (KiB of memory per device), got %d", c.BlackBoxKiB)
	}
	for _, f := range []struct{ key, path string }{{"nats.creds_file", c.NATS.CredsFile}, {"nats.tls.key_file", c.NATS.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil {
			d.Errorf(f.key, "%v", err)
		} else if st.Mode().Perm()&0o004 != 0 {
			d.Errorf(f.key, "secret file %s is world-readable (mode %v); chmod o-r it", f.path, st.Mode().Perm())
		}
	}
	if len(c.Devices) == 0 {
		d.Errorf("devices", "needs at least one device")
	}
	seen := map[string]int{}
	for i := range c.Devices {
		dev := &c.Devices[i]
		key := fmt.Sprintf("devices[%d]", i)
		if dev.ID == "" {
			d.Errorf(key+".id", "is required")
		} else if !wire.ValidID(dev.ID) {
			d.Errorf(key+".id", "%q must match [a-z0-9-]+", dev.ID)
		} else if j, dup := seen[dev.ID]; dup {
			d.Errorf(key+".id", "%q is already used by devices[%d]", dev.ID, j)
		} else {
			seen[dev.ID] = i
		}
		if dev.Profile == "" {
			d.Errorf(key+".profile", "is required")
		}
		if dev.Period == 0 {
			dev.Period = time.Second
		}
		if dev.Period < 10*time.Millisecond {
			d.Errorf(key+".period", "must be at least 10ms, got %v", dev.Period)
		}
		if dev.Burst == 0 {
			dev.Burst = min(dev.Period, 250*time.Millisecond)
		}
		if dev.Burst < 0 || dev.Burst > dev.Period {
			d.Errorf(key+".burst_period", "must be between 0 and period (%v), got %v", dev.Period, dev.Burst)
		}
		for k := range dev.Location {
			if !wire.ValidID(k) || k == "site" || k == "agent" || k == "device" || k == "component" {
				d.Errorf(key+".location."+k, "label name must match [a-z0-9-]+ and not be site, agent, device or component")
			}
		}
		n := 0
		if dev.Modbus != nil {
			n++
			d.Check(key+".modbus", dev.Modbus.Validate())
		}
		if dev.SNMP != nil {
			n++
			dev.SNMP.Name = dev.ID
			resolveSecret(d, key+".snmp.community", &dev.SNMP.Community)
			if v3 := dev.SNMP.V3; v3 != nil {
				resolveSecret(d, key+".snmp.v3.auth_passphrase", &v3.AuthPassphrase)
				resolveSecret(d, key+".snmp.v3.priv_passphrase", &v3.PrivPassphrase)
			}
			d.Check(key+".snmp", dev.SNMP.Validate())
			if v := dev.SNMP.Version; (v == "" || v == "1" || v == "2c") && !dev.SNMP.AllowInsecure {
				d.Errorf(key+".snmp.version", "SNMP v1/v2c sends its community in clear and cannot authenticate the device: use version \"3\" (authPriv), or set allow_insecure: true (a standing security alert is then raised)")
			}
		}
		if dev.Local != nil {
			n++
			d.Check(key+".local", dev.Local.Validate())
		}
		if n != 1 {
			d.Errorf(key, "needs exactly one of modbus, snmp or local, has %d", n)
		}
	}
	for _, p := range hooks.Validate(c.Hooks) {
		d.Errorf("hooks", "%v", p)
	}
	if len(c.Hooks) > 0 && c.Fallback == nil {
		d.Errorf("fallback", "local hooks are configured but no fallback section says which domain and targets they act on")
	}
	if c.Fallback != nil {
		c.Fallback.Site, c.Fallback.Agent, c.Fallback.Hooks = c.Site, c.AgentID, c.Hooks
		d.Check("fallback", c.Fallback.Validate())
	}
}

// resolveSecret replaces a "${ENV}" or "file:/path" value by the secret
// it names. Secrets never appear in messages.
func resolveSecret(d *confpos.Doc, key string, v *string) {
	s, err := confpos.Secret(*v)
	if err != nil {
		d.Errorf(key, "%v", err)
		return
	}
	*v = s
}

// Line returns the line of a config key (for errors found after loading).
func (c *Config) Line(key string) int {
	if c.doc == nil {
		return 0
	}
	return c.doc.Line(key)
}
