package collector

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// A zero-copy line protocol scanner. The collector sees every telemetry
// line twice (storage and site state), so it neither builds maps nor
// allocates per line: tags and fields are byte slices into the payload,
// valid until the next call.

type lpTag struct{ key, val []byte }

type lpField struct {
	key   []byte
	num   float64
	str   []byte // string value, unescaped in place when needed
	isStr bool
}

type lpLine struct {
	esc         bool // the line has a backslash somewhere
	measurement []byte
	tags        []lpTag
	fields      []lpField
	ts          int64
	hasTS       bool
	scratch     []byte
}

func (l *lpLine) tag(key string) []byte {
	for _, t := range l.tags {
		if string(t.key) == key {
			return t.val
		}
	}
	return nil
}

var errLP = errors.New("malformed line protocol")

// nextLine returns the next non-empty, non-comment line of p and the rest.
func nextLine(p []byte) (line, rest []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			line, p = p, nil
		} else {
			line, p = p[:i], p[i+1:]
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return line, p
		}
	}
	return nil, nil
}

// scanUntil returns the index of the first unescaped byte in stops.
func scanUntil(b []byte, i int, s1, s2, s3 byte) int {
	for ; i < len(b); i++ {
		c := b[i]
		if c == '\\' {
			i++
			continue
		}
		if c == s1 || c == s2 || c == s3 {
			return i
		}
	}
	return len(b)
}

// unesc removes backslash escapes, copying into scratch only if needed.
func (l *lpLine) unesc(b []byte) []byte {
	if !l.esc || bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	start := len(l.scratch)
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			i++
		}
		l.scratch = append(l.scratch, b[i])
	}
	return l.scratch[start:]
}

// parse parses one line into l, reusing its slices.
func (l *lpLine) parse(b []byte) error {
	l.tags, l.fields, l.scratch = l.tags[:0], l.fields[:0], l.scratch[:0]
	l.hasTS, l.ts = false, 0
	l.esc = bytes.IndexByte(b, '\\') >= 0
	i := scanUntil(b, 0, ',', ' ', ' ')
	if i == 0 {
		return fmt.Errorf("%w: empty measurement", errLP)
	}
	l.measurement = l.unesc(b[:i])
	for i < len(b) && b[i] == ',' {
		k := i + 1
		eq := scanUntil(b, k, '=', ',', ' ')
		if eq >= len(b) || b[eq] != '=' || eq == k {
			return fmt.Errorf("%w: tag at byte %d", errLP, k)
		}
		end := scanUntil(b, eq+1, ',', ' ', ' ')
		if end == eq+1 {
			return fmt.Errorf("%w: empty tag value at byte %d", errLP, eq+1)
		}
		l.tags = append(l.tags, lpTag{l.unesc(b[k:eq]), l.unesc(b[eq+1 : end])})
		i = end
	}
	if i >= len(b) || b[i] != ' ' {
		return fmt.Errorf("%w: no fields", errLP)
	}
	i++
	for {
		k := i
		eq := scanUntil(b, k, '=', ',', ' ')
		if eq >= len(b) || b[eq] != '=' || eq == k {
			return fmt.Errorf("%w: field at byte %d", errLP, k)
		}
		f := lpField{key: l.unesc(b[k:eq])}
		v := eq + 1
		if v >= len(b) {
			return fmt.Errorf("%w: field %q has no value", errLP, f.key)
		}
		var end int
		if b[v] == '"' {
			end = v + 1
			for ; end < len(b) && b[end] != '"'; end++ {
				if b[end] == '\\' {
					end++
				}
			}
			if end >= len(b) {
				return fmt.Errorf("%w: unterminated string field %q", errLP, f.key)
			}
			f.isStr, f.str = true, l.unesc(b[v+1:end])
			end++
		} else {
			end = scanUntil(b, v, ',', ' ', ' ')
			raw := b[v:end]
			switch string(raw) {
			case "t", "T", "true", "True", "TRUE":
				f.num = 1
			case "f", "F", "false", "False", "FALSE":
				f.num = 0
			default:
				if n := len(raw); n > 1 && (raw[n-1] == 'i' || raw[n-1] == 'u') {
					raw = raw[:n-1]
				}
				x, err := strconv.ParseFloat(string(raw), 64)
				if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
					return fmt.Errorf("%w: field %q value %q", errLP, f.key, b[v:end])
				}
				f.num = x
			}
		}
		l.fields = append(l.fields, f)
		if end >= len(b) {
			return nil
		}
		switch b[end] {
		case ',':
			i = end + 1
			continue
		case ' ':
			ts := bytes.TrimSpace(b[end+1:])
			if len(ts) == 0 {
				return nil
			}
			n, err := strconv.ParseInt(string(ts), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: timestamp %q", errLP, ts)
			}
			l.ts, l.hasTS = n, true
			return nil
		}
		return fmt.Errorf("%w: after field %q", errLP, f.key)
	}
}
