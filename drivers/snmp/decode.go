package snmp

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/gosnmp/gosnmp"
)

// rawValue is what an answer holds, decoded by meaning.
type rawValue struct {
	isNum  bool
	num    int64   // integer value (uint64 above MaxInt64 is clamped in u)
	u      uint64  // the same, unsigned, for counters
	f      float64 // the number as float (for Opaque floats and parsed strings)
	isText bool
	text   string
}

// rawOf extracts a number or a text from any ASN.1 type: agents tag
// INTEGER objects as TimeTicks or Counter32, or send numbers as strings.
func rawOf(v *gosnmp.SnmpPDU) (rawValue, bool) {
	var r rawValue
	switch v.Type {
	case gosnmp.Integer:
		n, ok := v.Value.(int)
		if !ok {
			return r, false
		}
		r.isNum, r.num, r.u, r.f = true, int64(n), uint64(int64(n)), float64(n)
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		var n uint64
		switch x := v.Value.(type) {
		case uint:
			n = uint64(x)
		case uint32:
			n = uint64(x)
		case int:
			n = uint64(x)
		default:
			return r, false
		}
		r.isNum, r.num, r.u, r.f = true, int64(n), n, float64(n)
	case gosnmp.Counter64:
		b := gosnmp.ToBigInt(v.Value)
		if b == nil || !b.IsUint64() {
			return r, false
		}
		n := b.Uint64()
		r.isNum, r.u, r.f = true, n, float64(n)
		if n > math.MaxInt64 {
			r.num = math.MaxInt64
		} else {
			r.num = int64(n)
		}
	case gosnmp.OpaqueFloat:
		f, ok := v.Value.(float32)
		if !ok {
			return r, false
		}
		r.isNum, r.f, r.num = true, float64(f), int64(f)
	case gosnmp.OpaqueDouble:
		f, ok := v.Value.(float64)
		if !ok {
			return r, false
		}
		r.isNum, r.f, r.num = true, f, int64(f)
	case gosnmp.OctetString:
		b, ok := v.Value.([]byte)
		if !ok {
			return r, false
		}
		r.isText, r.text = true, cleanText(b)
		if f, err := strconv.ParseFloat(r.text, 64); err == nil {
			r.isNum, r.f, r.num = true, f, int64(f)
			if f >= 0 {
				r.u = uint64(f)
			}
		}
	case gosnmp.ObjectIdentifier, gosnmp.IPAddress:
		s, ok := v.Value.(string)
		if !ok {
			return r, false
		}
		r.isText, r.text = true, strings.TrimPrefix(s, ".")
	default:
		// Null, BitString, Opaque...: nothing a point can be read from.
		return r, false
	}
	return r, true
}

// cleanText trims the trailing NULs and spaces agents pad strings with.
func cleanText(b []byte) string {
	return strings.TrimRight(strings.TrimSpace(string(b)), "\x00 ")
}

var numericTypes = []string{"", "int", "uint", "gauge", "counter32", "counter64", "timeticks", "enum", "bool"}

// decodeSource decodes one source of a point; ok=false with a fault means
// this source gave no trustworthy value.
func (p *Poller) decodeSource(c *cpoint, s *source, r *Reading, now time.Time) bool {
	sl := &p.slots[s.slot]
	if !sl.got {
		r.Fault, r.Detail = sl.fault, sl.detail
		return false
	}
	rv, ok := rawOf(&sl.pdu)
	if !ok {
		r.Fault, r.Detail = drivers.FaultMalformed, "undecodable ASN.1 value"
		return false
	}
	if rv.isText && len(s.invalidText) > 0 {
		for _, t := range s.invalidText {
			if strings.EqualFold(rv.text, t) {
				r.Fault, r.Detail = drivers.FaultSentinel, "not-available text"
				return false
			}
		}
	}
	if rv.isNum && slices.Contains(s.invalid, rv.num) {
		r.Fault, r.Detail = drivers.FaultSentinel, "not-available value"
		return false
	}
	switch s.typ {
	case "string", "oid":
		if rv.isText {
			r.Text = rv.text
		} else {
			r.Text = strconv.FormatFloat(rv.f, 'f', -1, 64)
		}
		return true
	case "flags":
		// "0101..." strings, flag number flagBase = leftmost character.
		if !rv.isText {
			r.Fault, r.Detail = drivers.FaultMalformed, "flags: not a string"
			return false
		}
		i := c.bit - c.flagBase
		if i < 0 || i >= len(rv.text) || (rv.text[i] != '0' && rv.text[i] != '1') {
			r.Fault, r.Detail = drivers.FaultMalformed, "flags: no such flag"
			return false
		}
		if rv.text[i] == '1' {
			r.Value = 1
		}
		return true
	}
	if !slices.Contains(numericTypes, s.typ) || !rv.isNum {
		r.Fault, r.Detail = drivers.FaultMalformed, "not a number"
		return false
	}
	if c.bit >= 0 {
		r.Value = float64((rv.u >> uint(c.bit)) & 1)
		return true
	}
	if len(c.trueVals) > 0 {
		if slices.Contains(c.trueVals, rv.num) {
			r.Value = 1
		}
		return true
	}
	if len(c.enum) > 0 {
		r.Value = float64(rv.num)
		r.Text = c.enum[rv.num]
		return true
	}
	v := rv.f
	if c.rate {
		width := uint64(math.MaxUint32)
		if s.typ == "counter64" {
			width = math.MaxUint64
		}
		cur := rv.u
		prev, prevAt, had := c.prevRaw, c.prevAt, c.havePrev
		c.prevRaw, c.prevAt, c.havePrev = cur, now, true
		if !had {
			r.Fault, r.Detail = drivers.FaultSentinel, "rate: first sample"
			return false
		}
		dt := now.Sub(prevAt).Seconds()
		if dt <= 0 {
			r.Fault, r.Detail = drivers.FaultSentinel, "rate: no time elapsed"
			return false
		}
		var d uint64
		switch {
		case cur >= prev:
			d = cur - prev
		case prev > width/4*3:
			// Wrapped past the counter's width.
			d = width - prev + cur + 1
		default:
			// The counter went back far from its top: an agent restart.
			r.Fault, r.Detail = drivers.FaultSentinel, "rate: counter reset"
			return false
		}
		v = float64(d) / dt
	}
	v = v*s.scale + s.offset
	if c.flip {
		v = -v
	}
	r.Value = v
	return true
}

// decode fills one reading from the point's sources, the first good one
// winning; else the primary source's fault.
func (p *Poller) decode(c *cpoint, r *Reading, now time.Time) {
	*r = Reading{Point: c.pt, At: now}
	var first Reading
	for i := range c.srcs {
		var tr Reading
		tr.Point, tr.At = c.pt, now
		if p.decodeSource(c, &c.srcs[i], &tr, now) {
			*r = tr
			if c.rng != nil && (r.Value < c.rng.Min || r.Value > c.rng.Max) {
				r.Fault, r.Detail = drivers.FaultRange, "outside plausible range"
			}
			return
		}
		if i == 0 {
			first = tr
		}
	}
	*r = first
	r.Value, r.Text = 0, ""
}
