package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Script drives the points matching Point (a glob: * matches any run of
// characters, ? one; brackets are literal) over time, measured from when the
// script is set (the simulation's start for configured scripts).
//
//	constant     Value
//	ramp         Value + Rate*(t-At) after At, bounded by Min/Max
//	step         Value before At, To from At on
//	sine         Value + Amplitude*sin(2π t/Period)
//	noise        Value plus gaussian noise of Sigma (seeded by Seed)
//	unavailable  the "not available" sentinel (from At on)
//	csv          column Column (default: the point's name) of File,
//	             interpolated linearly; the first column is the time offset
//	             in seconds; an empty cell or "unavailable" serves the
//	             sentinel; the last row holds after the end
//
// Sigma adds gaussian noise to every kind but unavailable. Value defaults
// to the point's value when the script is set.
type Script struct {
	Point     string        `yaml:"point"`
	Kind      string        `yaml:"kind"`
	Value     *float64      `yaml:"value,omitempty"`
	Rate      float64       `yaml:"rate,omitempty"`
	Min       *float64      `yaml:"min,omitempty"`
	Max       *float64      `yaml:"max,omitempty"`
	At        time.Duration `yaml:"at,omitempty"`
	To        float64       `yaml:"to,omitempty"`
	Amplitude float64       `yaml:"amplitude,omitempty"`
	Period    time.Duration `yaml:"period,omitempty"`
	Sigma     float64       `yaml:"sigma,omitempty"`
	Seed      uint64        `yaml:"seed,omitempty"`
	File      string        `yaml:"file,omitempty"`
	Column    string        `yaml:"column,omitempty"`

	// Replay is the loaded CSV (set by Validate from File, or directly).
	Replay *Replay `yaml:"-"`
}

// Validate checks the script's fields for its kind and loads its CSV file,
// relative to dir. The error names the offending key.
func (sc *Script) Validate(dir string) error {
	if sc.Point == "" {
		return errors.New("point: missing")
	}
	switch sc.Kind {
	case "constant":
		if sc.Value == nil {
			return errors.New("value: missing for a constant")
		}
	case "ramp":
		if sc.Rate == 0 {
			return errors.New("rate: missing or zero for a ramp")
		}
	case "step":
		if sc.At <= 0 {
			return errors.New("at: a step needs a time after the start")
		}
	case "sine":
		if sc.Period <= 0 {
			return errors.New("period: a sine needs a positive period")
		}
	case "noise":
		if sc.Sigma <= 0 {
			return errors.New("sigma: noise needs a positive sigma")
		}
	case "unavailable":
	case "csv":
		if sc.Replay == nil {
			if sc.File == "" {
				return errors.New("file: missing for a csv replay")
			}
			f := sc.File
			if dir != "" && !strings.HasPrefix(f, "/") {
				f = dir + "/" + f
			}
			r, err := LoadReplay(f)
			if err != nil {
				return fmt.Errorf("file: %w", err)
			}
			sc.Replay = r
		}
		if sc.Column != "" && sc.Replay.Column(sc.Column) == nil {
			return fmt.Errorf("column: %q is not in %s", sc.Column, sc.Replay.File)
		}
	case "":
		return errors.New("kind: missing (constant, ramp, step, sine, noise, unavailable, csv)")
	default:
		return fmt.Errorf("kind: unknown %q (constant, ramp, step, sine, noise, unavailable, csv)", sc.Kind)
	}
	if sc.Sigma < 0 {
		return errors.New("sigma: must not be negative")
	}
	if sc.Min != nil && sc.Max != nil && *sc.Min > *sc.Max {
		return errors.New("min: greater than max")
	}
	return nil
}

// scriptRun is a script attached to one point.
type scriptRun struct {
	sc    Script
	start time.Time
	base  float64
	rng   *rand.Rand
	col   []float64 // csv column, NaN = unavailable
}

func newScriptRun(sc Script, name, col string, current float64, now time.Time) (*scriptRun, error) {
	if err := sc.Validate(""); err != nil {
		return nil, err
	}
	r := &scriptRun{sc: sc, start: now, base: current}
	if sc.Value != nil {
		r.base = *sc.Value
	}
	if sc.Sigma > 0 {
		h := fnv.New64a()
		h.Write([]byte(name)) // each point its own, reproducible, stream
		r.rng = rand.New(rand.NewPCG(sc.Seed, h.Sum64()))
	}
	if sc.Kind == "csv" {
		r.col = sc.Replay.Column(col)
		if r.col == nil {
			return nil, fmt.Errorf("csv %s has no column %q", sc.Replay.File, col)
		}
	}
	return r, nil
}

// at returns the script's value at now and whether it is unavailable.
func (r *scriptRun) at(now time.Time) (float64, bool) {
	sc := &r.sc
	e := now.Sub(r.start)
	s := e.Seconds()
	v := r.base
	switch sc.Kind {
	case "ramp":
		if e > sc.At {
			v += sc.Rate * (e - sc.At).Seconds()
		}
	case "step":
		if e >= sc.At {
			v = sc.To
		}
	case "sine":
		v += sc.Amplitude * math.Sin(2*math.Pi*s/sc.Period.Seconds())
	case "unavailable":
		return v, e >= sc.At
	case "csv":
		v = sc.Replay.at(r.col, s)
		if math.IsNaN(v) {
			return 0, true
		}
	}
	if sc.Min != nil && v < *sc.Min {
		v = *sc.Min
	}
	if sc.Max != nil && v > *sc.Max {
		v = *sc.Max
	}
	if r.rng != nil {
		v += r.rng.NormFloat64() * sc.Sigma
	}
	return v, false
}

// Replay is a loaded CSV: a time column (seconds from the start) and one
// column per point.
type Replay struct {
	File  string
	Times []float64
	Names []string
	Cols  [][]float64 // NaN = unavailable
}

// Column returns the values of column name, or nil.
func (r *Replay) Column(name string) []float64 {
	for i, n := range r.Names {
		if n == name {
			return r.Cols[i]
		}
	}
	return nil
}

// at interpolates col at s seconds. A row next to an unavailable one is not
// interpolated into it: the gap is served as unavailable.
func (r *Replay) at(col []float64, s float64) float64 {
	t := r.Times
	i := sort.SearchFloat64s(t, s) // first t[i] >= s
	switch {
	case i == 0:
		return col[0]
	case i == len(t):
		return col[len(t)-1]
	case t[i] == s:
		return col[i]
	}
	a, b := col[i-1], col[i]
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	f := (s - t[i-1]) / (t[i] - t[i-1])
	return a + f*(b-a)
}

// LoadReplay reads a replay CSV: a header naming the columns (the first is
// the time offset in seconds, any name), then rows with increasing times.
// Lines starting with # are comments.
func LoadReplay(file string) (*Replay, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open replay: %w", err)
	}
	defer f.Close()
	return ParseReplay(file, f)
}

// ParseReplay is LoadReplay on a reader; file names it in errors.
func ParseReplay(file string, rd io.Reader) (*Replay, error) {
	cr := csv.NewReader(rd)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: read header: %w", file, err)
	}
	if len(head) < 2 {
		return nil, fmt.Errorf("%s:1: header needs a time column and at least one point column", file)
	}
	r := &Replay{File: file, Names: head[1:], Cols: make([][]float64, len(head)-1)}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: time offset %q is not a number of seconds", file, line, head[0], rec[0])
		}
		if n := len(r.Times); n > 0 && t <= r.Times[n-1] {
			return nil, fmt.Errorf("%s:%d: %s: time %v does not increase (previous %v)", file, line, head[0], t, r.Times[n-1])
		}
		r.Times = append(r.Times, t)
		for i, cell := range rec[1:] {
			cell = strings.TrimSpace(cell)
			v := math.NaN()
			if cell != "" && !strings.EqualFold(cell, "unavailable") {
				if v, err = strconv.ParseFloat(cell, 64); err != nil || math.IsNaN(v) {
					return nil, fmt.Errorf("%s:%d: %s: %q is not a number", file, line, head[i+1], cell)
				}
			}
			r.Cols[i] = append(r.Cols[i], v)
		}
	}
	if len(r.Times) == 0 {
		return nil, fmt.Errorf("%s: no rows after the header", file)
	}
	return r, nil
}

// globMatch reports whether name matches pattern, where * matches any run
// of characters (dots and brackets included) and ? any one character.
func globMatch(pattern, name string) bool {
	px, nx := 0, 0
	star, mark := -1, 0
	for nx < len(name) {
		switch {
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == name[nx]):
			px++
			nx++
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, nx
			px++
		case star >= 0:
			px = star + 1
			mark++
			nx = mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
