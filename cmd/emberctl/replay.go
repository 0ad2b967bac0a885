package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// cmdReplay runs the detector over recorded telemetry and prints the
// alerts as JSON lines. The output depends only on the input: alert ids
// derive from content and the alert time is the sample time.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	chem := fs.String("chemistry", "nmc", "cell chemistry for the defaults: nmc or lfp")
	cfgFile := fs.String("config", "", "detection overrides YAML (site / chemistry / profiles sections)")
	prof := fs.String("profile", "", "profile id whose overrides apply")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: emberctl replay [-chemistry nmc|lfp] [-config overrides.yaml] [-profile ID] FILE... (- = stdin)")
		fmt.Fprintln(stderr, "FILE: agent telemetry as line protocol, an InfluxDB 1.x CSV export (influx -format csv), an InfluxDB 2 annotated CSV, or a scenario CSV (time,device,point,value,fault)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no input files")
	}
	var ov *detect.Overrides
	if *cfgFile != "" {
		data, err := os.ReadFile(*cfgFile)
		if err != nil {
			return fmt.Errorf("read detection config: %w", err)
		}
		if ov, err = detect.LoadOverrides(*cfgFile, data); err != nil {
			return err
		}
	}
	cfg, err := ov.Config(*chem, *prof)
	if err != nil {
		return err
	}
	rec := newReplayRecording()
	for _, name := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rec.readFile(name); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	return rec.replay(ctx, cfg, func(a wire.Alert) error { return enc.Encode(a) })
}

// replayKey names one device's telemetry.
type replayKey struct{ site, agent, device string }

// replayDevice accumulates one device's rounds: values and faults by point
// index, keyed by timestamp.
type replayDevice struct {
	key    replayKey
	points []*drivers.Point
	index  map[[2]string]int // (component, field) -> point index
	rounds map[int64]*replayRound
}

type replayRound struct {
	vals   map[int]float64
	faults map[int]drivers.Fault
}

type replayRecording struct {
	devices map[replayKey]*replayDevice
}

func newReplayRecording() *replayRecording {
	return &replayRecording{devices: map[replayKey]*replayDevice{}}
}

func (r *replayRecording) device(k replayKey) *replayDevice {
	d := r.devices[k]
	if d == nil {
		d = &replayDevice{key: k, index: map[[2]string]int{}, rounds: map[int64]*replayRound{}}
		r.devices[k] = d
	}
	return d
}

// set records one field of one component at one time.
func (d *replayDevice) set(at int64, component, field string, v float64, fault drivers.Fault) {
	k := [2]string{component, field}
	i, ok := d.index[k]
	if !ok {
		i = len(d.points)
		d.index[k] = i
		d.points = append(d.points, replayPoint(component, field))
	}
	rd := d.rounds[at]
	if rd == nil {
		rd = &replayRound{vals: map[int]float64{}, faults: map[int]drivers.Fault{}}
		d.rounds[at] = rd
	}
	if fault != drivers.FaultNone {
		rd.faults[i] = fault
		delete(rd.vals, i)
		return
	}
	rd.vals[i] = v
	delete(rd.faults, i)
}

// canonical puts the points in (component, field) order, whatever order
// the input listed them in (line-protocol fields are unordered), so that
// alerts are the same for the same data.
func (d *replayDevice) canonical() {
	perm := make([]int, len(d.points))
	for i := range perm {
		perm[i] = i
	}
	sort.Slice(perm, func(a, b int) bool {
		pa, pb := d.points[perm[a]], d.points[perm[b]]
		if pa.Component != pb.Component {
			return pa.Component < pb.Component
		}
		return pa.Field < pb.Field
	})
	newIdx := make([]int, len(perm)) // old index -> new index
	pts := make([]*drivers.Point, len(perm))
	for n, old := range perm {
		newIdx[old] = n
		pts[n] = d.points[old]
	}
	d.points = pts
	for k := range d.index {
		d.index[k] = newIdx[d.index[k]]
	}
	for _, rd := range d.rounds {
		if rd == nil {
			continue
		}
		vals := make(map[int]float64, len(rd.vals))
		for i, v := range rd.vals {
			vals[newIdx[i]] = v
		}
		faults := make(map[int]drivers.Fault, len(rd.faults))
		for i, f := range rd.faults {
			faults[newIdx[i]] = f
		}
		rd.vals, rd.faults = vals, faults
	}
}

// replayPoint rebuilds a compiled point from its telemetry component and
// field ("string/1/module/3/cell/7", "voltage.volts").
func replayPoint(component, field string) *drivers.Point {
	name := field
	if component != "" {
		parts := strings.Split(component, "/")
		var b strings.Builder
		for i := 0; i < len(parts); i += 2 {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(parts[i])
			if i+1 < len(parts) {
				b.WriteString("[" + parts[i+1] + "]")
			}
		}
		name = b.String() + "." + field
	}
	kind := drivers.KindNumber
	if field == "balancing" || strings.HasPrefix(field, "alarm.") || field == "door.open" || field == "epo.active" {
		kind = drivers.KindBool
	}
	return &drivers.Point{Name: name, Component: component, Field: field, Kind: kind}
}

func parseFault(s string) drivers.Fault {
	for f := drivers.FaultTimeout; f <= drivers.FaultSensor; f++ {
		if f.String() == s {
			return f
		}
	}
	return drivers.FaultMalformed
}

func (r *replayRecording) readFile(name string) error {
	var in io.Reader
	if name == "-" {
		in = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReaderSize(in, 1<<16)
	head, _ := br.Peek(512)
	first := strings.TrimSpace(strings.SplitN(string(head), "\n", 2)[0])
	switch {
	case strings.HasPrefix(first, "name,time,"):
		return r.readInflux1CSV(name, br)
	case strings.HasPrefix(first, "#datatype") || strings.HasPrefix(first, "#group") || strings.Contains(first, ",_time,") || strings.HasPrefix(first, "_time,") || strings.Contains(first, "_value"):
		return r.readInfluxCSV(name, br)
	case first == "time,device,point,value,fault":
		return r.readScenarioCSV(name, br)
	}
	return r.readLineProtocol(name, br)
}

func (r *replayRecording) readLineProtocol(name string, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		if len(strings.TrimSpace(string(raw))) == 0 || raw[0] == '#' {
			continue
		}
		ls, err := wire.ParseLines(raw)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, errors.Unwrap(err))
		}
		for _, l := range ls {
			if l.Measurement != wire.Measurement {
				continue
			}
			if l.Time.IsZero() {
				return fmt.Errorf("%s:%d: line has no timestamp; replay needs the sample time", name, n)
			}
			d := r.device(replayKey{l.Tags["site"], l.Tags["agent"], l.Tags["device"]})
			at := l.Time.UnixNano()
			comp := l.Tags["component"]
			for f, v := range l.Fields {
				d.set(at, comp, f, v, drivers.FaultNone)
			}
			for f, s := range l.Strings {
				if base, ok := strings.CutSuffix(f, wire.FaultSuffix); ok {
					d.set(at, comp, base, 0, parseFault(s))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// readInfluxCSV reads an InfluxDB 2 annotated CSV export (or a plain one
// with a header row): columns _time, _field, _value, device, and optionally
// component, site, agent.
func (r *replayRecording) readInfluxCSV(name string, in io.Reader) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	var col map[string]int
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line++
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) == 0 || (len(rec) == 1 && rec[0] == "") {
			col = nil // a blank line separates tables
			continue
		}
		if col == nil || (len(rec) > 1 && contains2(rec, "_time") && contains2(rec, "_value")) {
			col = map[string]int{}
			for i, h := range rec {
				col[h] = i
			}
			for _, need := range []string{"_time", "_field", "_value", "device"} {
				if _, ok := col[need]; !ok {
					return fmt.Errorf("%s:%d: CSV header lacks column %q", name, line, need)
				}
			}
			continue
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		ts, err := time.Parse(time.RFC3339Nano, get("_time"))
		if err != nil {
			return fmt.Errorf("%s:%d: _time: %w", name, line, err)
		}
		d := r.device(replayKey{get("site"), get("agent"), get("device")})
		field, val := get("_field"), get("_value")
		if base, ok := strings.CutSuffix(field, wire.FaultSuffix); ok {
			d.set(ts.UnixNano(), get("component"), base, 0, parseFault(val))
			continue
		}
		v, ok := parseValue(val)
		if !ok {
			return fmt.Errorf("%s:%d: _value %q of %s is not a number", name, line, val, field)
		}
		d.set(ts.UnixNano(), get("component"), field, v, drivers.FaultNone)
	}
}

// replayTags are the columns of an InfluxDB 1.x CSV export that are tags;
// every other column is a field.
var replayTags = map[string]bool{"site": true, "agent": true, "device": true, "component": true, "room": true, "row": true, "rack": true}

// readInflux1CSV reads `influx -format csv` output of the ember measurement:
// name,time,<tags and fields...>, time in ns or RFC 3339, empty cells
// absent, "<field>.fault" columns naming faults.
func (r *replayRecording) readInflux1CSV(name string, in io.Reader) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	var head []string
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line++
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) >= 2 && rec[0] == "name" && rec[1] == "time" {
			head = rec
			if !contains2(head, "device") {
				return fmt.Errorf("%s:%d: CSV header lacks the device column", name, line)
			}
			continue
		}
		if head == nil || len(rec) != len(head) {
			return fmt.Errorf("%s:%d: want %d columns as in the header, got %d", name, line, len(head), len(rec))
		}
		if rec[0] != wire.Measurement {
			continue
		}
		var at int64
		if ns, err := strconv.ParseInt(rec[1], 10, 64); err == nil {
			at = ns
		} else if ts, err := time.Parse(time.RFC3339Nano, rec[1]); err == nil {
			at = ts.UnixNano()
		} else {
			return fmt.Errorf("%s:%d: time %q is neither nanoseconds nor RFC 3339", name, line, rec[1])
		}
		tags := map[string]string{}
		for i, h := range head[2:] {
			if replayTags[h] {
				tags[h] = rec[i+2]
			}
		}
		d := r.device(replayKey{tags["site"], tags["agent"], tags["device"]})
		for i, h := range head[2:] {
			v := rec[i+2]
			if replayTags[h] || v == "" {
				continue
			}
			if base, ok := strings.CutSuffix(h, wire.FaultSuffix); ok {
				d.set(at, tags["component"], base, 0, parseFault(v))
				continue
			}
			f, ok := parseValue(v)
			if !ok {
				return fmt.Errorf("%s:%d: %s: %q is not a number", name, line, h, v)
			}
			d.set(at, tags["component"], h, f, drivers.FaultNone)
		}
	}
}

func contains2(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// readScenarioCSV reads the scenario library's CSV export.
func (r *replayRecording) readScenarioCSV(name string, in io.Reader) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = 5
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line++
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if line == 1 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, rec[0])
		if err != nil {
			return fmt.Errorf("%s:%d: time: %w", name, line, err)
		}
		d := r.device(replayKey{device: rec[1]})
		if rec[2] == "*" { // a failed round: present, with nothing in it
			d.rounds[ts.UnixNano()] = nil
			continue
		}
		comp, field := drivers.SplitName(rec[2])
		if rec[4] != "" {
			d.set(ts.UnixNano(), comp, field, 0, parseFault(rec[4]))
			continue
		}
		v, err := strconv.ParseFloat(rec[3], 64)
		if err != nil {
			return fmt.Errorf("%s:%d: value %q: %w", name, line, rec[3], err)
		}
		d.set(ts.UnixNano(), comp, field, v, drivers.FaultNone)
	}
}

// replayStep is one device round, in global time order.
type replayStep struct {
	at  int64
	dev *replayDevice
	rd  *replayRound // nil: the round failed
}

// replay runs one detector per device over the rounds in time order
// (devices ordered by site, agent, device at equal times). Gaps longer than
// 2.5 sampling periods are replayed as failed polls, so comms loss and its
// escalation behave as they did live.
func (r *replayRecording) replay(ctx context.Context, cfg detect.Config, out func(wire.Alert) error) error {
	keys := make([]replayKey, 0, len(r.devices))
	for k := range r.devices {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.site != b.site {
			return a.site < b.site
		}
		if a.agent != b.agent {
			return a.agent < b.agent
		}
		return a.device < b.device
	})
	var steps []replayStep
	dets := map[*replayDevice]*detect.Detector{}
	for _, k := range keys {
		d := r.devices[k]
		d.canonical()
		dets[d] = detect.New(cfg, k.device, d.points)
		ts := make([]int64, 0, len(d.rounds))
		for t := range d.rounds {
			ts = append(ts, t)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		period := replayPeriod(ts)
		for i, t := range ts {
			if i > 0 && period > 0 && t-ts[i-1] > period*5/2 {
				for g, n := ts[i-1]+period, 0; g < t-period/2 && n < 100000; g, n = g+period, n+1 {
					steps = append(steps, replayStep{at: g, dev: d})
				}
			}
			steps = append(steps, replayStep{at: t, dev: d, rd: d.rounds[t]})
		}
	}
	order := map[*replayDevice]int{}
	for i, k := range keys {
		order[r.devices[k]] = i
	}
	sort.SliceStable(steps, func(i, j int) bool {
		if steps[i].at != steps[j].at {
			return steps[i].at < steps[j].at
		}
		return order[steps[i].dev] < order[steps[j].dev]
	})
	bufs := map[*replayDevice][]drivers.Reading{}
	errLost := errors.New("replay: no telemetry for this round")
	var outErr error
	for n, s := range steps {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		d := s.dev
		rs := bufs[d]
		if rs == nil {
			rs = make([]drivers.Reading, len(d.points))
			for i, p := range d.points {
				rs[i].Point = p
			}
			bufs[d] = rs
		}
		at := time.Unix(0, s.at).UTC()
		var roundErr error
		if s.rd == nil {
			roundErr = errLost
		}
		for i := range rs {
			rs[i].Value, rs[i].Fault, rs[i].At = 0, drivers.FaultAbsent, at
			if s.rd == nil {
				rs[i].Fault = drivers.FaultComms
				continue
			}
			if v, ok := s.rd.vals[i]; ok {
				rs[i].Value, rs[i].Fault = v, drivers.FaultNone
			} else if f, ok := s.rd.faults[i]; ok {
				rs[i].Fault = f
			}
		}
		dets[d].Step(at, rs, roundErr, func(a wire.Alert) {
			if outErr != nil {
				return
			}
			a.Site, a.Agent = d.key.site, d.key.agent
			a.Time = a.SampleTime
			a.ID = detect.AlertID(&a)
			outErr = out(a)
		})
		if outErr != nil {
			return fmt.Errorf("replay: write alert: %w", outErr)
		}
	}
	return nil
}

// replayPeriod is the median interval between rounds (0 if fewer than 3).
func replayPeriod(ts []int64) int64 {
	if len(ts) < 3 {
		return 0
	}
	d := make([]int64, len(ts)-1)
	for i := range d {
		d[i] = ts[i+1] - ts[i]
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// parseValue reads an exported field value: a number, or a boolean as 0/1.
func parseValue(s string) (float64, bool) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		return v, true
	}
	if b, err := strconv.ParseBool(s); err == nil {
		if b {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
