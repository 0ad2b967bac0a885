package drivers

import (
	"context"
	"strings"
	"time"
)

// Fault says why a point has no trustworthy value in a round.
type Fault uint8

const (
	FaultNone      Fault = iota // the value is good
	FaultTimeout                // the device did not answer in time
	FaultException              // the device answered with a protocol exception
	FaultMalformed              // the answer was garbage: short frame, bad CRC, wrong type
	FaultSentinel               // the device reported "not available" (0xFFFF, 0x8000, -1, NaN, ...)
	FaultAbsent                 // the object does not exist on this device (noSuchObject, illegal address)
	FaultRange                  // the decoded value is outside the point's plausible range
	FaultScale                  // the point's scale factor was itself unavailable
	FaultComms                  // the link is down; nothing was asked
	FaultSensor                 // a local sensor reported an error
)

var faultNames = [...]string{
	FaultNone:      "",
	FaultTimeout:   "timeout",
	FaultException: "exception",
	FaultMalformed: "malformed",
	FaultSentinel:  "sentinel",
	FaultAbsent:    "absent",
	FaultRange:     "range",
	FaultScale:     "scale",
	FaultComms:     "comms",
	FaultSensor:    "sensor",
}

// String returns the fault's wire name, as carried in telemetry.
func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "unknown"
}

// Kind tells how a point's value is to be read.
type Kind uint8

const (
	KindNumber Kind = iota // Value holds the number, in SI units after scaling
	KindBool               // Value is 0 or 1
	KindEnum               // Value is the raw code; Text holds its name when the profile maps it
	KindString             // Text holds the string
)

// Point describes one compiled point of a device: what it is called and how
// it is carried in telemetry. It is built once when a profile is compiled for
// a device and shared read-only by every Reading of that point.
type Point struct {
	Name      string // vocabulary name, e.g. "string[1].module[3].cell[7].voltage.volts"
	Component string // "string/1/module/3/cell/7"; "" for device-level points
	Field     string // "voltage.volts"
	Unit      string // "V", "A", "degC", "%", "s", "W", "Wh", ... ("" for none)
	Kind      Kind
	// Min and Max bound the plausible range after scaling; both zero = none.
	Min, Max float64
}

// NewPoint splits a vocabulary name into its component and field. Indexed
// segments ("string[1]") become component path elements ("string/1"); the
// rest of the name is the field.
func NewPoint(name, unit string, kind Kind) *Point {
	p := &Point{Name: name, Unit: unit, Kind: kind}
	p.Component, p.Field = SplitName(name)
	return p
}

// SplitName splits "string[1].module[3].cell[7].voltage.volts" into
// ("string/1/module/3/cell/7", "voltage.volts"). Names without an indexed
// segment have an empty component.
func SplitName(name string) (component, field string) {
	last := strings.LastIndexByte(name, ']')
	if last < 0 {
		return "", name
	}
	head, field := name[:last+1], strings.TrimPrefix(name[last+1:], ".")
	var b strings.Builder
	for _, seg := range strings.Split(head, ".") {
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			b.WriteString(seg[:i])
			b.WriteByte('/')
			b.WriteString(seg[i+1 : len(seg)-1])
		} else {
			b.WriteString(seg)
		}
	}
	return b.String(), field
}

// Reading is one point's outcome in one round.
type Reading struct {
	Point *Point
	Value float64
	Text  string // KindString value, or the enum's name
	Fault Fault
	// Detail says more about a fault ("exception 2: illegal data address");
	// drivers set it from constant strings so that a steady fault does not
	// allocate.
	Detail string
	At     time.Time // when the value was read from the device
}

// OK reports whether the reading carries a trustworthy value.
func (r *Reading) OK() bool { return r.Fault == FaultNone }

// Poller reads a device's compiled points in as few requests as its protocol
// allows.
type Poller interface {
	// Points lists the device's compiled points. The slice and its elements
	// are fixed once the poller is ready; Poll fills readings in the same
	// order.
	Points() []*Point
	// Poll reads every point once into out (len(out) == len(Points())).
	// Per-point failures go in out[i].Fault; Poll returns an error only when
	// the whole round failed (link down, device dead, ctx done), in which case
	// every reading is marked too. Poll must not allocate in steady state.
	Poll(ctx context.Context, out []Reading) error
	// String names the device and link for logs: "modbus tcp://10.0.0.5:502 unit=1".
	String() string
	// Close releases what the poller holds. A poller sharing a link does not
	// close the link.
	Close() error
}

// Identity is what a device says about itself, used to pick a profile.
type Identity struct {
	Vendor, Model, Firmware, Serial string
	// Extra holds protocol-specific identifiers (sysObjectID, SunSpec model
	// ids) by name.
	Extra map[string]string
}

// Identifier is implemented by pollers and probes that can read a device's
// identity.
type Identifier interface {
	Identify(ctx context.Context) (Identity, error)
}
