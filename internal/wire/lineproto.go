package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Measurement is the InfluxDB measurement of all device telemetry.
//
// One line per component and round:
//
//	ember,site=S,agent=A,device=D[,<location labels>][,component=string/1/module/3] voltage.volts=3.91,temperature.degc=25.1 <ns>
//
// A faulted point is never written as a number: its field is left out and a
// string field "<field>.fault" names the fault instead.
const Measurement = "ember"

// FaultSuffix marks the string field that replaces a faulted point.
const FaultSuffix = ".fault"

// Tag is one tag of a line.
type Tag struct{ Key, Value string }

// AppendLineStart appends "ember,<tags> " to b; tags must be sorted by key
// by the caller for best InfluxDB ingestion.
func AppendLineStart(b []byte, tags []Tag) []byte {
	b = append(b, Measurement...)
	for _, t := range tags {
		if t.Value == "" {
			continue
		}
		b = append(b, ',')
		b = appendEscaped(b, t.Key, tagEsc)
		b = append(b, '=')
		b = appendEscaped(b, t.Value, tagEsc)
	}
	return append(b, ' ')
}

// AppendFloatField appends key=value, preceded by a comma unless first.
func AppendFloatField(b []byte, first bool, key string, v float64) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendEscaped(b, key, tagEsc)
	b = append(b, '=')
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// AppendStringField appends key="value".
func AppendStringField(b []byte, first bool, key, v string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendEscaped(b, key, tagEsc)
	b = append(b, '=', '"')
	b = appendEscaped(b, v, strEsc)
	return append(b, '"')
}

// AppendTimestamp ends the line with a nanosecond timestamp and newline.
func AppendTimestamp(b []byte, t time.Time) []byte {
	b = append(b, ' ')
	b = strconv.AppendInt(b, t.UnixNano(), 10)
	return append(b, '\n')
}

type escaper uint8

const (
	tagEsc escaper = iota // commas, equals signs and spaces
	strEsc                // double quotes and backslashes
)

func appendEscaped(b []byte, s string, e escaper) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch e {
		case tagEsc:
			if c == ',' || c == '=' || c == ' ' {
				b = append(b, '\\')
			}
		case strEsc:
			if c == '"' || c == '\\' {
				b = append(b, '\\')
			}
		}
		b = append(b, c)
	}
	return b
}

// Line is a parsed line of telemetry.
type Line struct {
	Measurement string
	Tags        map[string]string
	Fields      map[string]float64
	Strings     map[string]string // string fields, including faults
	Time        time.Time
}

// ErrLine is returned for lines that are not valid line protocol.
var ErrLine = errors.New("wire: malformed line protocol")

// ParseLines parses the lines of one telemetry message. Integer (i/u) and
// boolean fields are returned as numbers.
func ParseLines(payload []byte) ([]Line, error) {
	var out []Line
	for n, raw := range strings.Split(string(payload), "\n") {
		raw = strings.TrimSpace(raw)
		if raw == "" || raw[0] == '#' {
			continue
		}
		l, err := parseLine(raw)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n+1, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// splitUnescaped splits s at sep outside quotes and escapes, at most n parts (n<0: all).
func splitUnescaped(s string, sep byte, n int) []string {
	var parts []string
	start, inQ := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
		case c == '"':
			inQ = !inQ
		case c == sep && !inQ:
			if n >= 0 && len(parts) == n-1 {
				continue
			}
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unescape(s string) string {
	if !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseLine(raw string) (Line, error) {
	parts := splitUnescaped(raw, ' ', -1)
	if len(parts) < 2 || len(parts) > 3 {
		return Line{}, fmt.Errorf("%w: want 'measurement,tags fields [time]', got %d sections", ErrLine, len(parts))
	}
	l := Line{Tags: map[string]string{}, Fields: map[string]float64{}, Strings: map[string]string{}}
	head := splitUnescaped(parts[0], ',', -1)
	l.Measurement = unescape(head[0])
	if l.Measurement == "" {
		return Line{}, fmt.Errorf("%w: empty measurement", ErrLine)
	}
	for _, kv := range head[1:] {
		p := splitUnescaped(kv, '=', 2)
		if len(p) != 2 || p[0] == "" {
			return Line{}, fmt.Errorf("%w: tag %q", ErrLine, kv)
		}
		l.Tags[unescape(p[0])] = unescape(p[1])
	}
	for _, kv := range splitUnescaped(parts[1], ',', -1) {
		p := splitUnescaped(kv, '=', 2)
		if len(p) != 2 || p[0] == "" || p[1] == "" {
			return Line{}, fmt.Errorf("%w: field %q", ErrLine, kv)
		}
		k, v := unescape(p[0]), p[1]
		switch {
		case v[0] == '"':
			if len(v) < 2 || v[len(v)-1] != '"' {
				return Line{}, fmt.Errorf("%w: unterminated string field %q", ErrLine, k)
			}
			l.Strings[k] = unescape(v[1 : len(v)-1])
		case v == "t" || v == "T" || v == "true" || v == "True" || v == "TRUE":
			l.Fields[k] = 1
		case v == "f" || v == "F" || v == "false" || v == "False" || v == "FALSE":
			l.Fields[k] = 0
		default:
			num := strings.TrimRight(v, "iu")
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return Line{}, fmt.Errorf("%w: field %q value %q", ErrLine, k, v)
			}
			l.Fields[k] = f
		}
	}
	if len(parts) == 3 {
		ns, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return Line{}, fmt.Errorf("%w: timestamp %q", ErrLine, parts[2])
		}
		l.Time = time.Unix(0, ns).UTC()
	}
	return l, nil
}
