package scenario

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Run is one scenario being generated round by round. It holds one round
// per device at a time, so runs of any length use constant memory.
type Run struct {
	Scenario Scenario
	Options  Options
	models   []*model
	n, i     int
}

// Device is one simulated device of a run.
type Device struct {
	ID     string
	Points []*drivers.Point
}

// Start begins a run of the scenario.
func (s Scenario) Start(o Options) *Run {
	o = o.withDefaults()
	r := &Run{Scenario: s, Options: o, models: s.build(o)}
	r.n = int(s.Duration/o.Period) + 1
	return r
}

// Devices lists the run's devices with their compiled points.
func (r *Run) Devices() []Device {
	ds := make([]Device, len(r.models))
	for i, m := range r.models {
		ds[i] = Device{ID: m.id, Points: m.points}
	}
	return ds
}

// Rounds is the number of rounds in the run.
func (r *Run) Rounds() int { return r.n }

// Next generates the next round of every device and calls fn for each, in
// device order. The readings slice is reused by the next call. It returns
// false when the run is over.
func (r *Run) Next(fn func(device string, at time.Time, readings []drivers.Reading, err error)) bool {
	if r.i >= r.n {
		return false
	}
	dt := r.Options.Period.Seconds()
	t := float64(r.i) * dt
	if r.i == 0 {
		dt = 0
	}
	at := r.Options.Start.Add(time.Duration(r.i) * r.Options.Period)
	for _, m := range r.models {
		err := m.step(t, dt, at)
		fn(m.id, at, m.out, err)
	}
	r.i++
	return true
}

// WriteLineProtocol writes the whole run as the agent's telemetry (one
// line per component and round, faults as "<field>.fault" strings, failed
// rounds as nothing), for emberctl replay and the simulator.
func (r *Run) WriteLineProtocol(w io.Writer, site, agent string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var buf []byte
	var werr error
	for r.Next(func(device string, at time.Time, rs []drivers.Reading, err error) {
		if err != nil || werr != nil {
			return
		}
		buf = AppendRound(buf[:0], site, agent, device, at, rs)
		_, werr = bw.Write(buf)
	}) {
	}
	if werr != nil {
		return fmt.Errorf("write line protocol: %w", werr)
	}
	return bw.Flush()
}

// AppendRound appends one round of readings as line protocol: readings are
// grouped by component in their order of first appearance.
func AppendRound(b []byte, site, agent, device string, at time.Time, rs []drivers.Reading) []byte {
	// Components appear in runs in compiled point order; group each run.
	i := 0
	for i < len(rs) {
		comp := rs[i].Point.Component
		j := i
		for j < len(rs) && rs[j].Point.Component == comp {
			j++
		}
		tags := []wire.Tag{{Key: "agent", Value: agent}, {Key: "component", Value: comp}, {Key: "device", Value: device}, {Key: "site", Value: site}}
		b = wire.AppendLineStart(b, tags)
		first := true
		for k := i; k < j; k++ {
			r := &rs[k]
			if r.Fault != drivers.FaultNone {
				b = wire.AppendStringField(b, first, r.Point.Field+wire.FaultSuffix, r.Fault.String())
			} else {
				b = wire.AppendFloatField(b, first, r.Point.Field, r.Value)
			}
			first = false
		}
		b = wire.AppendTimestamp(b, at)
		i = j
	}
	return b
}

// WriteCSV writes the run as CSV: time (RFC 3339 nano), device, point
// name, value, fault. Failed rounds write one row with point "*" and fault
// "comms".
func (r *Run) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintln(bw, "time,device,point,value,fault")
	var line []byte
	for r.Next(func(device string, at time.Time, rs []drivers.Reading, err error) {
		ts := at.UTC().Format(time.RFC3339Nano)
		if err != nil {
			fmt.Fprintf(bw, "%s,%s,*,,comms\n", ts, device)
			return
		}
		for k := range rs {
			line = append(line[:0], ts...)
			line = append(line, ',')
			line = append(line, device...)
			line = append(line, ',')
			line = append(line, rs[k].Point.Name...)
			line = append(line, ',')
			if rs[k].Fault == drivers.FaultNone {
				line = strconv.AppendFloat(line, rs[k].Value, 'g', -1, 64)
			}
			line = append(line, ',')
			line = append(line, rs[k].Fault.String()...)
			line = append(line, '\n')
			bw.Write(line)
		}
	}) {
	}
	return bw.Flush()
}
