package collector

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
	"gopkg.in/yaml.v3"
)

// Config is collector.yaml. Durations are Go duration strings ("15s"),
// checked by Load together with their line numbers. Secrets (tokens,
// webhook secrets) may be given as ${ENV_VAR} or file:/path.
type Config struct {
	Site        string `yaml:"site"`
	CollectorID string `yaml:"collector_id"` // default: hostname; the "agent" id of the collector's own alerts

	NATS   NATSConfig   `yaml:"nats"`
	Influx InfluxConfig `yaml:"influx"`
	HTTP   HTTPConfig   `yaml:"http"`
	NOC    NOCConfig    `yaml:"noc"`

	// HeartbeatTimeout is how long an agent may stay silent before the
	// collector raises a comms alert for it. Default 15s.
	HeartbeatTimeout string `yaml:"heartbeat_timeout"`

	// Evacuation is left raw for the evacuation engine, which decodes it
	// with its own schema (see collector/evacuate).
	Evacuation yaml.Node `yaml:"evacuation"`

	// File is the path the config was loaded from, for error messages.
	File string `yaml:"-"`

	heartbeatTimeout time.Duration
	checked          bool // validate ran (ParseConfig or New)
}

// NATSConfig says where NATS is and how the streams are sized.
type NATSConfig struct {
	Servers   []string  `yaml:"servers"`
	CredsFile string    `yaml:"creds_file"`
	TLS       TLSConfig `yaml:"tls"`
	// Replicas of the streams this collector creates (1 or 3). Default 1.
	Replicas int `yaml:"replicas"`
	// TelemetryMaxAge bounds how long telemetry waits in JetStream for
	// InfluxDB. Default 72h: longer than any plausible outage.
	TelemetryMaxAge string `yaml:"telemetry_max_age"`
	// AlertMaxAge is the alert history kept in JetStream; the site state is
	// rebuilt from it at start. Default 720h.
	AlertMaxAge string `yaml:"alert_max_age"`
	// MaxInFlight bounds telemetry messages pulled but not yet acked: it
	// is the collector's memory bound under backpressure. Default 4096.
	MaxInFlight int `yaml:"max_in_flight"`
	// AckWait is how long JetStream waits before redelivering a message
	// that a crashed collector took. Default 30s.
	AckWait string `yaml:"ack_wait"`

	telemetryMaxAge, alertMaxAge, ackWait time.Duration
}

// TLSConfig is client TLS for NATS.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// InfluxConfig is the storage target. An empty URL disables storage.
type InfluxConfig struct {
	URL             string `yaml:"url"`
	Token           string `yaml:"token"` // "" or "user:pass" on 1.x
	Database        string `yaml:"database"`
	RetentionPolicy string `yaml:"retention_policy"`
	// EventsRetentionPolicy receives ember_alert and ember_evac (dashboard
	// annotations), usually kept longer than raw telemetry. Default: the
	// telemetry retention policy.
	EventsRetentionPolicy string `yaml:"events_retention_policy"`
	// Retention, when set with CreateDatabase, creates the retention policy
	// with this duration ("30d", "720h", "INF").
	Retention      string `yaml:"retention"`
	CreateDatabase bool   `yaml:"create_database"`
	BatchSize      int    `yaml:"batch_size"`     // points per write; default 5000
	FlushInterval  string `yaml:"flush_interval"` // longest a partial batch waits; default 1s
	Timeout        string `yaml:"timeout"`        // per write request; default 10s
	GZip           *bool  `yaml:"gzip"`           // default: true unless the url is loopback
	// MaxBackoff caps the retry delay while InfluxDB is down. Default 10s.
	MaxBackoff string `yaml:"max_backoff"`

	flushInterval, timeout, maxBackoff time.Duration
}

// HTTPConfig is the API and status page listener.
type HTTPConfig struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080; ":0" picks a port
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every request that changes something (POST: acks, evacuation
	// actions). Reads stay open: the status page is read-only.
	Token string `yaml:"token"`
	// TLSCert and TLSKey serve HTTPS instead of HTTP.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// NOCConfig lists the NOC consumers alerts fan out to besides NATS.
type NOCConfig struct {
	Webhooks        []WebhookConfig `yaml:"webhooks"`
	AlertmanagerURL string          `yaml:"alertmanager_url"`
	// MinStage is the least stage forwarded to webhooks and Alertmanager.
	// Default "watch" (every stage change except clears of watch-only
	// conditions is forwarded; clears are always forwarded).
	MinStage string `yaml:"min_stage"`

	// FloodLimit is how many notifications below critical (and their
	// clears) each sink gets per FloodWindow; beyond it they are counted
	// and sent as one summary per window (flood mode, ISA-18.2). Critical
	// and emergency always go through at once. Defaults to 10 per 10m; -1
	// turns flood mode off.
	FloodLimit  int           `yaml:"flood_limit"`
	FloodWindow time.Duration `yaml:"flood_window"`

	// Watchdog is how often the always-firing EmberWatchdog alert is
	// posted to Alertmanager (the dead-man's-switch pattern: the NOC
	// alerts when it stops arriving). Default 30s; -1s turns it off.
	Watchdog time.Duration `yaml:"watchdog_interval"`

	minStage wire.Stage
}

// WebhookConfig is one signed webhook.
type WebhookConfig struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
}

// Defaults.
const (
	DefaultHeartbeatTimeout = 15 * time.Second
	DefaultBatchSize        = 5000
	DefaultMaxInFlight      = 4096
)

// ParseConfig parses collector.yaml content. name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := &Config{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, yamlErrors(name, &root, err)
	}
	cfg.File = name
	if err := cfg.validate(&root); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadConfig reads and checks a collector.yaml file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read collector config: %w", err)
	}
	return ParseConfig(path, data)
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlErrors rewrites yaml.v3's "line N: ..." errors as "file:N: key: ...".
func yamlErrors(name string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %w", name, err)
	}
	var errs []error
	for _, e := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: %s", name, e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msg := m[2]
		if strings.HasPrefix(msg, "field ") && strings.Contains(msg, " not found in type") {
			f := strings.TrimPrefix(msg, "field ")
			f = f[:strings.Index(f, " not found")]
			key := keyAtLine(root, line, f)
			errs = append(errs, fmt.Errorf("%s:%d: %s: unknown key", name, line, key))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, line, keyAtLine(root, line, ""), msg))
	}
	return errors.Join(errs...)
}

// keyAtLine finds the dotted path of the mapping key on a line (named want
// when given), for messages.
func keyAtLine(root *yaml.Node, line int, want string) string {
	var found string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if found != "" {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if (k.Line == line || v.Line == line && v.Kind == yaml.ScalarNode) && (want == "" || k.Value == want) {
					found = p
					return
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, "")
	if found == "" {
		if want != "" {
			return want
		}
		return "(value)"
	}
	return found
}

// lineOf returns the line of the value at a dotted path ("influx.batch_size",
// "noc.webhooks[1].url"), or of the nearest existing parent.
func lineOf(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 1
	if n.Line > 0 {
		line = n.Line
	}
	for _, seg := range strings.Split(path, ".") {
		idx := -1
		if i := strings.IndexByte(seg, '['); i >= 0 {
			idx, _ = strconv.Atoi(strings.TrimSuffix(seg[i+1:], "]"))
			seg = seg[:i]
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				next = n.Content[i+1]
				line = n.Content[i].Line
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

type problems struct {
	file string
	root *yaml.Node
	errs []error
}

func (p *problems) add(path, format string, args ...any) {
	if p.root == nil { // a Config built in code: no lines to point at
		p.errs = append(p.errs, fmt.Errorf("%s: %s: %s", p.file, path, fmt.Sprintf(format, args...)))
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.file, lineOf(p.root, path), path, fmt.Sprintf(format, args...)))
}

// duration parses a duration key, with a default when empty.
func (p *problems) duration(path, v string, def time.Duration) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.add(path, "want a positive duration like 15s or 2m, got %q", v)
		return def
	}
	return d
}

// Check fills defaults and validates a Config built in code; ParseConfig
// has already done it for a loaded one.
func (c *Config) Check() error {
	if c.checked {
		return nil
	}
	if c.File == "" {
		c.File = "collector config"
	}
	return c.validate(nil)
}

func (c *Config) validate(root *yaml.Node) error {
	c.checked = true
	p := &problems{file: c.File, root: root}
	switch {
	case c.Site == "":
		p.add("site", "required")
	case !wire.ValidID(c.Site):
		p.add("site", "%q is not a valid id ([a-z0-9-]+)", c.Site)
	}
	if c.CollectorID == "" {
		c.CollectorID = hostnameID()
	} else if !wire.ValidID(c.CollectorID) {
		p.add("collector_id", "%q is not a valid id ([a-z0-9-]+)", c.CollectorID)
	}
	if len(c.NATS.Servers) == 0 {
		p.add("nats.servers", "at least one server URL is required")
	}
	for i, s := range c.NATS.Servers {
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			p.add(fmt.Sprintf("nats.servers[%d]", i), "%q is not a URL like nats://host:4222", s)
		}
	}
	switch c.NATS.Replicas {
	case 0:
		c.NATS.Replicas = 1
	case 1, 3, 5:
	default:
		p.add("nats.replicas", "want 1, 3 or 5, got %d", c.NATS.Replicas)
	}
	c.NATS.telemetryMaxAge = p.duration("nats.telemetry_max_age", c.NATS.TelemetryMaxAge, 72*time.Hour)
	c.NATS.alertMaxAge = p.duration("nats.alert_max_age", c.NATS.AlertMaxAge, 720*time.Hour)
	c.NATS.ackWait = p.duration("nats.ack_wait", c.NATS.AckWait, 30*time.Second)
	switch {
	case c.NATS.MaxInFlight == 0:
		c.NATS.MaxInFlight = DefaultMaxInFlight
	case c.NATS.MaxInFlight < 1:
		p.add("nats.max_in_flight", "must be positive, got %d", c.NATS.MaxInFlight)
	}

	in := &c.Influx
	if in.URL != "" {
		if u, err := url.Parse(in.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("influx.url", "%q is not an http(s) URL", in.URL)
		}
		if in.Database == "" {
			p.add("influx.database", "required when influx.url is set")
		} else if strings.ContainsAny(in.Database, "/\"") {
			p.add("influx.database", "%q must not contain / or \"", in.Database)
		}
		if strings.ContainsAny(in.RetentionPolicy, "/\"") {
			p.add("influx.retention_policy", "%q must not contain / or \"", in.RetentionPolicy)
		}
		if strings.ContainsAny(in.EventsRetentionPolicy, "/\"") {
			p.add("influx.events_retention_policy", "%q must not contain / or \"", in.EventsRetentionPolicy)
		}
		if in.Retention != "" {
			if in.RetentionPolicy == "" {
				p.add("influx.retention", "needs influx.retention_policy to name the policy")
			} else if !validInfluxDuration(in.Retention) {
				p.add("influx.retention", "want an InfluxQL duration like 30d, 720h or INF, got %q", in.Retention)
			}
		}
		tok, err := resolveSecret(in.Token)
		if err != nil {
			p.add("influx.token", "%v", err)
		}
		in.Token = tok
	}
	switch {
	case in.BatchSize == 0:
		in.BatchSize = DefaultBatchSize
	case in.BatchSize < 1 || in.BatchSize > 100000:
		p.add("influx.batch_size", "want 1..100000, got %d", in.BatchSize)
	}
	in.flushInterval = p.duration("influx.flush_interval", in.FlushInterval, time.Second)
	in.timeout = p.duration("influx.timeout", in.Timeout, 10*time.Second)
	in.maxBackoff = p.duration("influx.max_backoff", in.MaxBackoff, 10*time.Second)
	if in.GZip == nil {
		// Default: compress unless InfluxDB runs on this machine.
		z := !loopback(in.URL)
		in.GZip = &z
	}

	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if tok, err := resolveSecret(c.HTTP.Token); err != nil {
		p.add("http.token", "%v", err)
	} else {
		c.HTTP.Token = tok
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		p.add("http.tls_cert", "tls_cert and tls_key go together")
	}
	for _, f := range [][2]string{{"http.tls_cert", c.HTTP.TLSCert}, {"http.tls_key", c.HTTP.TLSKey}} {
		if f[1] != "" {
			if _, err := os.Stat(f[1]); err != nil {
				p.add(f[0], "%v", err)
			}
		}
	}
	c.heartbeatTimeout = p.duration("heartbeat_timeout", c.HeartbeatTimeout, DefaultHeartbeatTimeout)

	for i := range c.NOC.Webhooks {
		w := &c.NOC.Webhooks[i]
		path := fmt.Sprintf("noc.webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(path+".url", "%q is not an http(s) URL", w.URL)
		}
		s, err := resolveSecret(w.Secret)
		switch {
		case err != nil:
			p.add(path+".secret", "%v", err)
		case s == "":
			p.add(path+".secret", "required: receivers check the HMAC signature")
		}
		w.Secret = s
	}
	if am := c.NOC.AlertmanagerURL; am != "" {
		if u, err := url.Parse(am); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("noc.alertmanager_url", "%q is not an http(s) URL", am)
		}
	}
	if c.NOC.FloodLimit == 0 {
		c.NOC.FloodLimit = 10
	}
	if c.NOC.FloodWindow == 0 {
		c.NOC.FloodWindow = 10 * time.Minute
	}
	if c.NOC.Watchdog == 0 {
		c.NOC.Watchdog = 30 * time.Second
	}
	if c.NOC.Watchdog < 0 {
		c.NOC.Watchdog = 0
	} else if c.NOC.Watchdog < time.Second {
		p.add("noc.watchdog_interval", "%v is too short: want at least 1s (or -1s to turn it off)", c.NOC.Watchdog)
	}
	if c.NOC.FloodLimit < -1 || c.NOC.FloodWindow < 0 {
		p.add("noc.flood_limit", "want a positive limit (or -1 for no flood mode) and a positive flood_window")
	}
	c.NOC.minStage = wire.StageWatch
	if c.NOC.MinStage != "" {
		s, err := wire.ParseStage(c.NOC.MinStage)
		if err != nil {
			p.add("noc.min_stage", "%q: want normal, watch, warning, critical or emergency", c.NOC.MinStage)
		}
		c.NOC.minStage = s
	}
	return errors.Join(p.errs...)
}

var influxDurRE = regexp.MustCompile(`^(INF|([0-9]+(ns|u|µ|ms|s|m|h|d|w))+)$`)

func validInfluxDuration(s string) bool { return influxDurRE.MatchString(s) }

// resolveSecret expands ${ENV} and file:/path.
func resolveSecret(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}"):
		name := v[2 : len(v)-1]
		s, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		return s, nil
	case strings.HasPrefix(v, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(v, "file:"))
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return v, nil
}

// hostnameID turns the host name into a valid id.
func hostnameID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "collector"
	}
	h = strings.ToLower(h)
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// HeartbeatTimeoutDuration returns the parsed heartbeat timeout.
func (c *Config) HeartbeatTimeoutDuration() time.Duration { return c.heartbeatTimeout }
