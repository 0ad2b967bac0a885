package detect

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in Go syntax in YAML ("90s", "2m").
type Duration time.Duration

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 2m: %w", err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML parses a scalar duration, reporting its line on error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 30s or 2m", n.Line)}}
	}
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}

// MarshalText prints Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d Duration) ns() int64 { return int64(d) }

// Config holds every threshold of the detector. Defaults come from section 7
// of the thermal-runaway design note; see docs/detection.md for the sources.
// Zero values are not "use the default": start from DefaultConfig and
// overlay overrides (LoadOverrides).
type Config struct {
	Chemistry   string      `yaml:"chemistry"`
	Hygiene     Hygiene     `yaml:"hygiene"`
	Thermal     Thermal     `yaml:"thermal"`
	Electrical  Electrical  `yaml:"electrical"`
	Gas         Gas         `yaml:"gas"`
	Environment Environment `yaml:"environment"`
	Stages      Stages      `yaml:"stages"`
}

// Hygiene configures the checks run on every sample before any rule.
type Hygiene struct {
	TempMin       float64   `yaml:"temp_min"`       // °C, below = invalid
	TempMax       float64   `yaml:"temp_max"`       // °C, above = invalid unless corroborated
	VoltMin       float64   `yaml:"volt_min"`       // V per cell, below = invalid unless the cell is hot
	VoltMax       float64   `yaml:"volt_max"`       // V per cell
	TempSentinels []float64 `yaml:"temp_sentinels"` // exact values that mean "not available"
	VoltSentinels []float64 `yaml:"volt_sentinels"`
	GasMax        float64   `yaml:"gas_max"`         // ppm; above = invalid
	CurrentMax    float64   `yaml:"current_max"`     // A; |I| above = unknown
	SpikeJump     float64   `yaml:"spike_jump"`      // °C jump between samples that is held for one-sample look-ahead
	SpikeReturn   float64   `yaml:"spike_return"`    // °C: a held jump that comes back within this is a spike
	StuckAfter    Duration  `yaml:"stuck_after"`     // bit-identical for this long while peers vary = stuck
	CommsMissed   int       `yaml:"comms_missed"`    // consecutive failed polls before a comms watch
	DataLossAfter Duration  `yaml:"data_loss_after"` // no data this long on a condition at warning+ escalates it
	FaultAfter    int       `yaml:"fault_after"`     // consecutive invalid samples before a sensor_fault watch
}

// Thermal configures the temperature rules (per cell, module sensor or
// battery sensor).
type Thermal struct {
	DeltaWatch      float64  `yaml:"delta_watch"` // °C above peer median
	DeltaWatchFor   Duration `yaml:"delta_watch_for"`
	DeltaWarn       float64  `yaml:"delta_warn"`
	RateWarn        float64  `yaml:"rate_warn"` // °C/min, slope of the peer delta
	WarnFor         Duration `yaml:"warn_for"`
	RateCrit        float64  `yaml:"rate_crit"` // °C/min, with DeltaWarn
	RateCritFor     Duration `yaml:"rate_crit_for"`
	TempWatch       float64  `yaml:"temp_watch"` // absolute back-stops, °C
	TempWarn        float64  `yaml:"temp_warn"`
	TempWarnFor     Duration `yaml:"temp_warn_for"`
	TempCrit        float64  `yaml:"temp_crit"` // with DeltaCrit
	DeltaCrit       float64  `yaml:"delta_crit"`
	TempEmergency   float64  `yaml:"temp_emergency"`   // validated, for EmergencySamples samples
	RunawayRate     float64  `yaml:"runaway_rate"`     // °C/s (GB 38031: 1 °C/s)
	RunawayRateFor  Duration `yaml:"runaway_rate_for"` // (GB 38031: 3 s)
	SlopeWindow     Duration `yaml:"slope_window"`
	SlopeMinSamples int      `yaml:"slope_min_samples"` // the window widens at slow sampling to hold this many
	Hysteresis      float64  `yaml:"hysteresis"`        // °C below an entry threshold to leave a rule
}

// Electrical configures the cell-voltage rules.
type Electrical struct {
	VMax             float64  `yaml:"v_max"`           // V, maximum charge voltage of the chemistry
	OverWarn         float64  `yaml:"over_warn"`       // V above VMax while charging
	OverCrit         float64  `yaml:"over_crit"`       // V above VMax while charging
	OverFor          Duration `yaml:"over_for"`        // on-delay of both over-voltage rules
	ImbalanceWatch   float64  `yaml:"imbalance_watch"` // V from peer median at rest
	ImbalanceFor     Duration `yaml:"imbalance_for"`
	DevWarn          float64  `yaml:"dev_warn"` // V of unexplained deviation from the cell's own baseline
	DevWarnFor       Duration `yaml:"dev_warn_for"`
	DevCrit          float64  `yaml:"dev_crit"`
	DevCritFor       Duration `yaml:"dev_crit_for"`
	DipDrop          float64  `yaml:"dip_drop"`          // V drop of the peer delta in one sample
	DipsWarn         int      `yaml:"dips_warn"`         // dips within DipWindow
	DipWindow        Duration `yaml:"dip_window"`        //
	DipHold          Duration `yaml:"dip_hold"`          // a dip keeps the watch this long
	RestCurrent      float64  `yaml:"rest_current"`      // A; |I| below = at rest
	ChargeCurrent    float64  `yaml:"charge_current"`    // A; I below -this = charging
	CurrentAllowance float64  `yaml:"current_allowance"` // V/A (ohms): deviation explained by current
	BalanceHold      Duration `yaml:"balance_hold"`      // mask after balancing stops
	BaselineTau      Duration `yaml:"baseline_tau"`      // EWMA of each cell's own deviation
	DriftWatch       float64  `yaml:"drift_watch"`       // V/day of rest deviation drift
	DriftSpan        Duration `yaml:"drift_span"`        // history needed for the drift rule
	Collapse         float64  `yaml:"collapse"`          // fraction of the peer median (GB 38031: 25 %)
}

// Gas configures off-gas rules; levels are above each species' rolling
// baseline.
type Gas struct {
	WatchAbove     float64  `yaml:"watch_above"` // ppm
	WatchFor       Duration `yaml:"watch_for"`
	WarnAbove      float64  `yaml:"warn_above"`
	WarnFor        Duration `yaml:"warn_for"`
	CritAbove      float64  `yaml:"crit_above"`
	CritFor        Duration `yaml:"crit_for"`
	H2Emergency    float64  `yaml:"h2_emergency"` // absolute ppm
	COEmergency    float64  `yaml:"co_emergency"`
	BaselineWindow Duration `yaml:"baseline_window"`
	Percentile     float64  `yaml:"percentile"` // of per-minute minima over the window
	RiseWindow     Duration `yaml:"rise_window"`
}

// Environment configures room-level rules.
type Environment struct {
	AmbientWatch  float64  `yaml:"ambient_watch"` // °C
	AmbientFor    Duration `yaml:"ambient_for"`
	RackRateWatch float64  `yaml:"rack_rate_watch"` // °C/min of the rack median
	RackRateFor   Duration `yaml:"rack_rate_for"`
}

// Stages configures the stage machine.
type Stages struct {
	ClearAfter Duration `yaml:"clear_after"` // evidence below the stage this long lowers it (non-latched)
}

// Chemistries known to DefaultConfig.
const (
	ChemistryNMC = "nmc"
	ChemistryLFP = "lfp"
)

// DefaultConfig returns the defaults of section 7 of the design note for a
// chemistry ("nmc", "lfp"; anything else gets the NMC numbers, which are the
// more conservative for over-voltage).
func DefaultConfig(chemistry string) Config {
	c := Config{
		Chemistry: chemistry,
		Hygiene: Hygiene{
			TempMin: -30, TempMax: 90, VoltMin: 1.5, VoltMax: 5.0,
			TempSentinels: []float64{6553.5, 6553.4, 3276.7, -3276.8, 3276.8, 65535, 32767, -32768, 32768, -40, 0},
			VoltSentinels: []float64{65.535, 65.534, 32.767, -32.768, 6553.5, 0},
			GasMax:        100000,
			CurrentMax:    5000,
			SpikeJump:     15, SpikeReturn: 2,
			StuckAfter:    Duration(120 * time.Second),
			CommsMissed:   3,
			DataLossAfter: Duration(60 * time.Second),
			FaultAfter:    3,
		},
		Thermal: Thermal{
			DeltaWatch: 3, DeltaWatchFor: Duration(5 * time.Minute),
			DeltaWarn: 5, RateWarn: 0.2, WarnFor: Duration(2 * time.Minute),
			RateCrit: 1, RateCritFor: Duration(60 * time.Second),
			TempWatch: 45, TempWarn: 55, TempWarnFor: Duration(10 * time.Second),
			TempCrit: 70, DeltaCrit: 10,
			TempEmergency: 120,
			RunawayRate:   1, RunawayRateFor: Duration(3 * time.Second),
			SlopeWindow: Duration(60 * time.Second), SlopeMinSamples: 24,
			Hysteresis: 0.5,
		},
		Electrical: Electrical{
			VMax: 4.20, OverWarn: 0.050, OverCrit: 0.250, OverFor: Duration(10 * time.Second),
			ImbalanceWatch: 0.030, ImbalanceFor: Duration(10 * time.Minute),
			DevWarn: 0.050, DevWarnFor: Duration(30 * time.Second),
			DevCrit: 0.200, DevCritFor: Duration(10 * time.Second),
			DipDrop: 0.020, DipsWarn: 3, DipWindow: Duration(24 * time.Hour), DipHold: Duration(10 * time.Minute),
			RestCurrent: 2, ChargeCurrent: 1, CurrentAllowance: 0.0002,
			BalanceHold: Duration(30 * time.Second),
			BaselineTau: Duration(time.Hour),
			DriftWatch:  0.005, DriftSpan: Duration(72 * time.Hour),
			Collapse: 0.25,
		},
		Gas: Gas{
			WatchAbove: 5, WatchFor: Duration(60 * time.Second),
			WarnAbove: 10, WarnFor: Duration(10 * time.Second),
			CritAbove: 50, CritFor: Duration(10 * time.Second),
			H2Emergency: 1000, COEmergency: 500,
			BaselineWindow: Duration(24 * time.Hour), Percentile: 10,
			RiseWindow: Duration(60 * time.Second),
		},
		Environment: Environment{
			AmbientWatch: 35, AmbientFor: Duration(60 * time.Second),
			RackRateWatch: 0.5, RackRateFor: Duration(2 * time.Minute),
		},
		Stages: Stages{ClearAfter: Duration(60 * time.Second)},
	}
	if chemistry == ChemistryLFP {
		// LFP: 3.65 V maximum charge voltage, so warn at 3.70 V (design note
		// 7.3); its flat OCV makes voltage-based short detection weaker, so
		// the deviation rules stay as they are rather than loosen.
		c.Electrical.VMax = 3.65
		c.Hygiene.VoltMax = 4.5
	}
	return c
}

// keyErr is a validation problem with the key it is about.
type keyErr struct{ key, msg string }

func (e keyErr) Error() string { return e.key + ": " + e.msg }

// Validate reports every value that cannot work, one per line, as
// "key: what is wrong".
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.problems() {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c *Config) problems() []keyErr {
	var errs []keyErr
	bad := func(key, format string, a ...any) {
		errs = append(errs, keyErr{key, fmt.Sprintf(format, a...)})
	}
	pos := func(key string, v float64) {
		if !(v > 0) {
			bad(key, "must be positive, got %g", v)
		}
	}
	h, t, e, g := c.Hygiene, c.Thermal, c.Electrical, c.Gas
	if h.TempMin >= h.TempMax {
		bad("hygiene.temp_min", "must be below temp_max (%g >= %g)", h.TempMin, h.TempMax)
	}
	if h.VoltMin >= h.VoltMax {
		bad("hygiene.volt_min", "must be below volt_max (%g >= %g)", h.VoltMin, h.VoltMax)
	}
	pos("hygiene.spike_jump", h.SpikeJump)
	pos("hygiene.current_max", h.CurrentMax)
	pos("hygiene.stuck_after", float64(h.StuckAfter))
	if h.CommsMissed < 1 {
		bad("hygiene.comms_missed", "must be at least 1, got %d", h.CommsMissed)
	}
	if h.FaultAfter < 1 {
		bad("hygiene.fault_after", "must be at least 1, got %d", h.FaultAfter)
	}
	if !(t.DeltaWatch < t.DeltaWarn && t.DeltaWarn < t.DeltaCrit) {
		bad("thermal.delta_warn", "want delta_watch < delta_warn < delta_crit, got %g, %g, %g", t.DeltaWatch, t.DeltaWarn, t.DeltaCrit)
	}
	if !(t.TempWatch < t.TempWarn && t.TempWarn < t.TempCrit && t.TempCrit < t.TempEmergency) {
		bad("thermal.temp_warn", "want temp_watch < temp_warn < temp_crit < temp_emergency, got %g, %g, %g, %g", t.TempWatch, t.TempWarn, t.TempCrit, t.TempEmergency)
	}
	if !(t.RateWarn > 0 && t.RateWarn < t.RateCrit) {
		bad("thermal.rate_warn", "want 0 < rate_warn < rate_crit, got %g, %g", t.RateWarn, t.RateCrit)
	}
	pos("thermal.runaway_rate", t.RunawayRate)
	pos("thermal.slope_window", float64(t.SlopeWindow))
	if t.SlopeMinSamples < 3 {
		bad("thermal.slope_min_samples", "must be at least 3, got %d", t.SlopeMinSamples)
	}
	if t.Hysteresis < 0 {
		bad("thermal.hysteresis", "must not be negative, got %g", t.Hysteresis)
	}
	pos("electrical.v_max", e.VMax)
	if !(e.OverWarn > 0 && e.OverWarn < e.OverCrit) {
		bad("electrical.over_warn", "want 0 < over_warn < over_crit, got %g, %g", e.OverWarn, e.OverCrit)
	}
	if !(e.DevWarn > 0 && e.DevWarn < e.DevCrit) {
		bad("electrical.dev_warn", "want 0 < dev_warn < dev_crit, got %g, %g", e.DevWarn, e.DevCrit)
	}
	pos("electrical.dip_drop", e.DipDrop)
	if e.DipsWarn < 1 || e.DipsWarn > maxDips {
		bad("electrical.dips_warn", "must be 1..%d, got %d", maxDips, e.DipsWarn)
	}
	pos("electrical.baseline_tau", float64(e.BaselineTau))
	if !(e.Collapse > 0 && e.Collapse < 1) {
		bad("electrical.collapse", "must be a fraction in (0, 1), got %g", e.Collapse)
	}
	if !(g.WatchAbove > 0 && g.WatchAbove < g.WarnAbove && g.WarnAbove < g.CritAbove) {
		bad("gas.warn_above", "want 0 < watch_above < warn_above < crit_above, got %g, %g, %g", g.WatchAbove, g.WarnAbove, g.CritAbove)
	}
	if !(g.Percentile >= 0 && g.Percentile <= 100) {
		bad("gas.percentile", "must be 0..100, got %g", g.Percentile)
	}
	if time.Duration(g.BaselineWindow) < time.Minute {
		bad("gas.baseline_window", "must be at least 1m, got %s", time.Duration(g.BaselineWindow))
	}
	return errs
}

// Overrides holds per-site, per-chemistry and per-profile overrides of the
// defaults, as written in YAML:
//
//	site:                 # applies to every device
//	  thermal: {delta_warn: 4}
//	chemistry:
//	  lfp: {electrical: {v_max: 3.60}}
//	profiles:
//	  sunspec: {hygiene: {stuck_after: 5m}}
//
// They are applied in that order on top of DefaultConfig(chemistry), so the
// most specific wins.
type Overrides struct {
	file      string
	site      *yaml.Node
	chemistry map[string]*yaml.Node
	profiles  map[string]*yaml.Node
}

// LoadOverrides parses an overrides document. file names it in errors,
// which read "file:line: key: what is wrong".
func LoadOverrides(file string, data []byte) (*Overrides, error) {
	o := &Overrides{file: file, chemistry: map[string]*yaml.Node{}, profiles: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return o, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with site, chemistry and profiles", file, root.Line)
	}
	var errs []error
	cfgType := reflect.TypeOf(Config{})
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "site":
			errs = append(errs, checkKeys(file, v, cfgType, "site")...)
			o.site = v
		case "chemistry", "profiles":
			if v.Kind != yaml.MappingNode {
				errs = append(errs, fmt.Errorf("%s:%d: %s: want a mapping of name to overrides", file, v.Line, k.Value))
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				name, body := v.Content[j].Value, v.Content[j+1]
				errs = append(errs, checkKeys(file, body, cfgType, k.Value+"."+name)...)
				if k.Value == "chemistry" {
					o.chemistry[name] = body
				} else {
					o.profiles[name] = body
				}
			}
		default:
			errs = append(errs, fmt.Errorf("%s:%d: %s: unknown key (want site, chemistry or profiles)", file, k.Line, k.Value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Apply each layer once to catch type errors now, not at bind time.
	for _, n := range o.layers("", "") {
		c := DefaultConfig("")
		if err := o.apply(&c, n.node, n.path); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

type layer struct {
	path string
	node *yaml.Node
}

func (o *Overrides) layers(chemistry, profile string) []layer {
	var ls []layer
	if o.site != nil {
		ls = append(ls, layer{"site", o.site})
	}
	if chemistry == "" && profile == "" { // every layer, for checking
		for n, v := range o.chemistry {
			ls = append(ls, layer{"chemistry." + n, v})
		}
		for n, v := range o.profiles {
			ls = append(ls, layer{"profiles." + n, v})
		}
		return ls
	}
	if n := o.chemistry[chemistry]; n != nil {
		ls = append(ls, layer{"chemistry." + chemistry, n})
	}
	if n := o.profiles[profile]; n != nil {
		ls = append(ls, layer{"profiles." + profile, n})
	}
	return ls
}

// Config returns the defaults for chemistry with the site, chemistry and
// profile overrides applied, validated. A nil *Overrides gives the defaults.
func (o *Overrides) Config(chemistry, profile string) (Config, error) {
	c := DefaultConfig(chemistry)
	if o != nil {
		for _, l := range o.layers(chemistry, profile) {
			if err := o.apply(&c, l.node, l.path); err != nil {
				return c, err
			}
		}
	}
	probs := c.problems()
	if len(probs) == 0 {
		return c, nil
	}
	var errs []error
	for _, p := range probs {
		if o == nil {
			errs = append(errs, fmt.Errorf("defaults for chemistry %q: %w", chemistry, p))
			continue
		}
		// Blame the most specific layer that sets the key.
		file, line, path := o.file, 0, ""
		ls := o.layers(chemistry, profile)
		for i := len(ls) - 1; i >= 0 && line == 0; i-- {
			if n := findKey(ls[i].node, strings.Split(p.key, ".")); n != nil {
				line, path = n.Line, ls[i].path+"."
			}
		}
		if line > 0 {
			errs = append(errs, fmt.Errorf("%s:%d: %s%s: %s", file, line, path, p.key, p.msg))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s (chemistry %q, profile %q)", file, p, chemistry, profile))
		}
	}
	return c, errors.Join(errs...)
}

// findKey returns the key node of a dotted path in a mapping, or nil.
func findKey(n *yaml.Node, path []string) *yaml.Node {
	for depth, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				if depth == len(path)-1 {
					return n.Content[i]
				}
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return nil
}

// apply decodes one layer over c. Node.Decode drops KnownFields (go-yaml
// issue 460), so unknown keys were checked by checkKeys at load.
func (o *Overrides) apply(c *Config, n *yaml.Node, path string) error {
	err := n.Decode(c)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s:%d: %s: %v", o.file, n.Line, path, err)
	}
	var errs []error
	for _, msg := range te.Errors {
		// yaml.v3 says "line N: cannot unmarshal ..."; name the key instead.
		var line int
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
			_, rest, _ := strings.Cut(msg, ": ")
			key := keyAtLine(n, line, path)
			errs = append(errs, fmt.Errorf("%s:%d: %s: %s", o.file, line, key, rest))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", o.file, n.Line, path, msg))
	}
	return errors.Join(errs...)
}

// keyAtLine returns the dotted path of the key on a line of a mapping.
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	if n.Kind != yaml.MappingNode {
		return prefix
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Line == line && v.Kind == yaml.ScalarNode {
			return prefix + "." + k.Value
		}
		if v.Kind == yaml.MappingNode {
			if p := keyAtLine(v, line, prefix+"."+k.Value); p != prefix+"."+k.Value {
				return p
			}
			if k.Line == line {
				return prefix + "." + k.Value
			}
		}
	}
	return prefix
}

// checkKeys reports mapping keys with no matching yaml tag in t, with their
// line.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string) []error {
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(Duration(0)) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("%s:%d: %s: want a mapping, got %q", file, n.Line, path, n.Value)}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: %s.%s: unknown key", file, k.Line, path, k.Value))
			continue
		}
		errs = append(errs, checkKeys(file, n.Content[i+1], f.Type, path+"."+k.Value)...)
	}
	return errs
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// MarshalYAML-free dump for docs and emberctl: the effective config as YAML.
func (c Config) YAML() []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(c) // a plain struct of numbers always encodes
	return b.Bytes()
}
