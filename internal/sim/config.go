package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// Config is an ember-sim configuration file.
//
//	tick: 100ms                  # how often scripts are evaluated
//	devices:
//	  - id: rack-a1
//	    profile: sunspec
//	    listen: tcp://127.0.0.1:15020   # rtu:/dev/ttyS0, rtuovertcp://127.0.0.1:15021
//	    unit_id: 1
//	    rack: {strings: 2, modules: 8, cells: 16}
//	    values: {"string[1].current.amps": 12}
//	    unavailable: ["battery.health.percent"]
//	    scripts:
//	      - {point: "string[1].module[3].cell[7].temperature.celsius", kind: ramp, rate: 0.05, at: 30s}
//	    faults:
//	      - {at: 5m, for: 30s, mode: timeout}
type Config struct {
	Tick    time.Duration  `yaml:"tick,omitempty"`
	Devices []DeviceConfig `yaml:"devices"`

	// File names the config in messages; Dir resolves relative CSV paths.
	File  string         `yaml:"-"`
	lines map[string]int // key path -> YAML line
}

// DeviceConfig is one simulated device.
type DeviceConfig struct {
	ID      string `yaml:"id"`
	Profile string `yaml:"profile"`
	Listen  string `yaml:"listen"`
	UnitID  uint8  `yaml:"unit_id,omitempty"`
	// Speed of the serial port (rtu:), default 9600.
	Speed int `yaml:"speed,omitempty"`
	// Rack shapes a SunSpec device (profile with a sunspec section).
	Rack *RackShape `yaml:"rack,omitempty"`
	// FillGaps maps holes of up to this many registers between points as
	// zeros (devices that answer whole blocks); 0 answers "illegal data
	// address" for every register no point maps.
	FillGaps int `yaml:"fill_gaps,omitempty"`
	// Counts fixes the instance count of count_from blocks, by block name.
	Counts map[string]int `yaml:"counts,omitempty"`
	// Values set starting values, by point name or glob, in order. On a
	// rack, a value given to an aggregate (module voltage, max cell
	// temperature, ...) pins it: it no longer follows the cells.
	Values PointValues `yaml:"values,omitempty"`
	// Texts set string points.
	Texts map[string]string `yaml:"texts,omitempty"`
	// Unavailable points serve their "not available" sentinel.
	Unavailable []string `yaml:"unavailable,omitempty"`
	Scripts     []Script `yaml:"scripts,omitempty"`
	// Faults is a timeline of injected faults, from the simulation's start.
	Faults []FaultStep `yaml:"faults,omitempty"`
}

// FaultStep injects a fault from At for For (0: until the end). Modes:
// timeout (no answer), exception (Code, default 4, on From..To or
// everywhere), kill (the listener stops; it restarts when the step ends).
type FaultStep struct {
	At   time.Duration `yaml:"at"`
	For  time.Duration `yaml:"for,omitempty"`
	Mode string        `yaml:"mode"`
	Code uint8         `yaml:"code,omitempty"`
	From uint16        `yaml:"from,omitempty"`
	To   uint16        `yaml:"to,omitempty"`
}

// RackShape is a SunSpec rack's size and starting values.
type RackShape struct {
	Strings     int     `yaml:"strings"`
	Modules     int     `yaml:"modules"`
	Cells       int     `yaml:"cells"`
	Base        *uint16 `yaml:"base,omitempty"`
	CellVolts   float64 `yaml:"cell_volts,omitempty"`
	CellCelsius float64 `yaml:"cell_celsius,omitempty"`
	StringAmps  float64 `yaml:"string_amps,omitempty"`
	Charge      float64 `yaml:"charge,omitempty"`
	CapacityAh  float64 `yaml:"capacity_ah,omitempty"`
}

// PointValue is one entry of a device's values.
type PointValue struct {
	Point string
	Value float64
}

// PointValues keeps the YAML mapping's order, so that a later, narrower
// pattern overrides an earlier, wider one.
type PointValues []PointValue

// UnmarshalYAML reads a mapping of point (or glob) to number.
func (pv *PointValues) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: values must be a mapping of point name to number", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: values.%s: %q is not a number", v.Line, k.Value, v.Value)
		}
		*pv = append(*pv, PointValue{Point: k.Value, Value: f})
	}
	return nil
}

func (c *Config) line(key string) int {
	for k := key; k != ""; {
		if l, ok := c.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// LoadConfig reads and validates a config file.
func LoadConfig(file string) (Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("read sim config: %w", err)
	}
	return ParseConfig(file, data)
}

var (
	idRE       = regexp.MustCompile(`^[a-z0-9-]+$`)
	yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	fieldRE    = regexp.MustCompile(`field (\S+) not found in type`)
)

// ParseConfig decodes and validates a config; file names it in messages
// and its directory resolves relative CSV files. Every problem is
// reported, one per line, as file:line: key: what is wrong.
func ParseConfig(file string, data []byte) (Config, error) {
	ps := &profile.Problems{File: file}
	cfg := Config{File: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		addYAMLErr(ps, err, cfg.lines)
		return Config{}, ps.Err()
	}
	if len(root.Content) == 0 {
		ps.Add(0, "", "empty config: it needs a devices list")
		return Config{}, ps.Err()
	}
	walkLines(root.Content[0], "", cfg.lines)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		addYAMLErr(ps, err, cfg.lines)
		return Config{}, ps.Err()
	}
	cfg.File = file
	cfg.validate(ps, filepath.Dir(file))
	if err := ps.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// walkLines records the line of every key path ("devices[1].scripts[0].kind").
func walkLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			walkLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			walkLines(c, p, lines)
		}
	}
}

// addYAMLErr turns yaml.v3's "line N: msg" errors into problems naming the
// key on that line.
func addYAMLErr(ps *profile.Problems, err error, lines map[string]int) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		sm := yamlLineRE.FindStringSubmatch(m)
		if sm == nil {
			ps.Add(0, "", "%s", strings.TrimPrefix(m, "yaml: "))
			continue
		}
		n, _ := strconv.Atoi(sm[1])
		msg := sm[2]
		key := ""
		best := ""
		for k, l := range lines {
			if l == n && (best == "" || len(k) > len(best)) {
				best = k
			}
		}
		key = best
		if f := fieldRE.FindStringSubmatch(msg); f != nil {
			msg = "unknown key " + strconv.Quote(f[1])
		}
		ps.Add(n, key, "%s", msg)
	}
}

func (c *Config) validate(ps *profile.Problems, dir string) {
	if c.Tick < 0 || c.Tick > 0 && c.Tick < time.Millisecond {
		ps.Add(c.line("tick"), "tick", "must be at least 1ms, got %v", c.Tick)
	}
	if len(c.Devices) == 0 {
		ps.Add(c.line("devices"), "devices", "at least one device is needed")
	}
	ids := map[string]int{}
	for i := range c.Devices {
		d := &c.Devices[i]
		key := fmt.Sprintf("devices[%d]", i)
		add := func(k, format string, args ...any) {
			ps.Add(c.line(key+"."+k), key+"."+k, format, args...)
		}
		switch {
		case d.ID == "":
			add("id", "missing")
		case !idRE.MatchString(d.ID):
			add("id", "%q must match [a-z0-9-]+", d.ID)
		default:
			if j, dup := ids[d.ID]; dup {
				add("id", "%q is also devices[%d]", d.ID, j)
			}
			ids[d.ID] = i
		}
		if d.Profile == "" {
			add("profile", "missing")
		}
		if d.Listen == "" {
			add("listen", "missing (tcp://127.0.0.1:PORT, rtu:/dev/ttyX, rtuovertcp://127.0.0.1:PORT)")
		} else if _, _, _, err := parseListen(d.Listen); err != nil {
			add("listen", "%v", err)
		}
		if d.UnitID == 0 {
			if _, ok := c.lines[key+".unit_id"]; ok {
				add("unit_id", "must be 1..247")
			}
			d.UnitID = 1
		} else if d.UnitID > 247 {
			add("unit_id", "%d: must be 1..247", d.UnitID)
		}
		if d.FillGaps < 0 || d.FillGaps > 125 {
			add("fill_gaps", "%d: want 0..125", d.FillGaps)
		}
		if d.Speed < 0 {
			add("speed", "must be positive")
		}
		if r := d.Rack; r != nil {
			o := RackOpts{Strings: r.Strings, Modules: r.Modules, Cells: r.Cells}
			if r.Base != nil {
				o.Base = *r.Base
			}
			if err := o.defaults(); err != nil {
				k, msg, _ := strings.Cut(err.Error(), ": ")
				if k == "strings" || k == "modules" || k == "cells" {
					add("rack."+k, "%s", msg)
				} else {
					add("rack", "%v", err)
				}
			}
		}
		for name, n := range d.Counts {
			if n < 0 {
				add("counts."+name, "must not be negative")
			}
		}
		for j, f := range d.Faults {
			fk := fmt.Sprintf("faults[%d].", j)
			switch f.Mode {
			case "timeout", "kill":
			case "exception":
				if f.Code > 11 {
					add(fk+"code", "%d: exception codes are 1..11", f.Code)
				}
				if f.To < f.From {
					add(fk+"to", "below from")
				}
			case "":
				add(fk+"mode", "missing (timeout, exception, kill)")
			default:
				add(fk+"mode", "unknown %q (timeout, exception, kill)", f.Mode)
			}
			if f.At < 0 || f.For < 0 {
				add(fk+"at", "times must not be negative")
			}
		}
		for j := range d.Scripts {
			if err := d.Scripts[j].Validate(dir); err != nil {
				k, msg, ok := strings.Cut(err.Error(), ": ")
				if !ok {
					k, msg = "", err.Error()
				}
				sk := fmt.Sprintf("%s.scripts[%d]", key, j)
				if k != "" {
					sk += "." + k
				}
				ps.Add(c.line(sk), sk, "%s", msg)
			}
		}
	}
}
