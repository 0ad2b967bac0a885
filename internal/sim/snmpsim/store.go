package snmpsim

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gosnmp/gosnmp"
)

// oid is a parsed object identifier.
type oid []uint32

func parseOID(s string) (oid, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), ".")
	if s == "" {
		return nil, fmt.Errorf("empty OID")
	}
	parts := strings.Split(s, ".")
	o := make(oid, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad OID %q", s)
		}
		o[i] = uint32(n)
	}
	return o, nil
}

func (o oid) String() string {
	var b strings.Builder
	for _, n := range o {
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

func cmpOID(a, b oid) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// Var is one object instance the agent serves.
type Var struct {
	OID   string // dotted, no leading dot
	Type  gosnmp.Asn1BER
	Value any // as gosnmp marshals it: int, uint32, uint64, []byte, string (OID)
}

type entry struct {
	oid oid
	pdu gosnmp.SnmpPDU
}

// Store is a sorted, concurrency-safe set of object instances.
type Store struct {
	mu      sync.RWMutex
	entries []entry
}

// NewStore returns a store holding vars.
func NewStore(vars ...Var) (*Store, error) {
	s := &Store{}
	for _, v := range vars {
		if err := s.Set(v); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Set adds or replaces one instance.
func (s *Store) Set(v Var) error {
	o, err := parseOID(v.OID)
	if err != nil {
		return err
	}
	e := entry{oid: o, pdu: gosnmp.SnmpPDU{Name: o.String(), Type: v.Type, Value: v.Value}}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.entries), func(i int) bool { return cmpOID(s.entries[i].oid, o) >= 0 })
	if i < len(s.entries) && cmpOID(s.entries[i].oid, o) == 0 {
		s.entries[i] = e
		return nil
	}
	s.entries = append(s.entries, entry{})
	copy(s.entries[i+1:], s.entries[i:])
	s.entries[i] = e
	return nil
}

// Delete removes an instance (it then answers noSuchInstance).
func (s *Store) Delete(oidStr string) {
	o, err := parseOID(oidStr)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.entries), func(i int) bool { return cmpOID(s.entries[i].oid, o) >= 0 })
	if i < len(s.entries) && cmpOID(s.entries[i].oid, o) == 0 {
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
	}
}

// Len is the number of instances.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

func (s *Store) get(o oid) (gosnmp.SnmpPDU, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.entries), func(i int) bool { return cmpOID(s.entries[i].oid, o) >= 0 })
	if i < len(s.entries) && cmpOID(s.entries[i].oid, o) == 0 {
		return s.entries[i].pdu, true
	}
	return gosnmp.SnmpPDU{}, false
}

func (s *Store) next(o oid) (gosnmp.SnmpPDU, oid, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.entries), func(i int) bool { return cmpOID(s.entries[i].oid, o) > 0 })
	if i < len(s.entries) {
		return s.entries[i].pdu, s.entries[i].oid, true
	}
	return gosnmp.SnmpPDU{}, nil, false
}

// ParseSnmprec reads a recording in snmpsim's format: `OID|TAG|VALUE` per
// line, TAG the BER tag in decimal with an `x` suffix for hex-encoded
// values; `#` lines are comments. name labels errors (file:line: what).
func ParseSnmprec(name string, r io.Reader) ([]Var, error) {
	var out []Var
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimRight(sc.Text(), "\r")
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		parts := strings.SplitN(t, "|", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s:%d: want OID|TAG|VALUE", name, line)
		}
		v, err := decodeRec(parts[0], parts[1], parts[2])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func decodeRec(oidStr, tag, val string) (Var, error) {
	if _, err := parseOID(oidStr); err != nil {
		return Var{}, err
	}
	isHex := strings.HasSuffix(tag, "x")
	tag = strings.TrimSuffix(tag, "x")
	if i := strings.IndexByte(tag, ':'); i >= 0 {
		return Var{}, fmt.Errorf("variation module %q not supported", tag)
	}
	n, err := strconv.Atoi(tag)
	if err != nil {
		return Var{}, fmt.Errorf("bad tag %q", tag)
	}
	raw := []byte(val)
	if isHex {
		raw, err = hex.DecodeString(val)
		if err != nil {
			return Var{}, fmt.Errorf("bad hex value: %v", err)
		}
	}
	v := Var{OID: strings.TrimPrefix(oidStr, "."), Type: gosnmp.Asn1BER(n)}
	switch v.Type {
	case gosnmp.Integer:
		x, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil {
			return Var{}, fmt.Errorf("INTEGER %q: %v", raw, err)
		}
		v.Value = int(x)
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		x, err := strconv.ParseUint(string(raw), 10, 32)
		if err != nil {
			return Var{}, fmt.Errorf("%s %q: %v", v.Type, raw, err)
		}
		v.Value = uint32(x)
	case gosnmp.Counter64:
		x, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil {
			return Var{}, fmt.Errorf("Counter64 %q: %v", raw, err)
		}
		v.Value = x
	case gosnmp.OctetString, gosnmp.Opaque:
		v.Value = raw
	case gosnmp.ObjectIdentifier:
		o, err := parseOID(string(raw))
		if err != nil {
			return Var{}, err
		}
		v.Value = o.String()
	case gosnmp.IPAddress:
		if isHex && len(raw) == 4 {
			v.Value = fmt.Sprintf("%d.%d.%d.%d", raw[0], raw[1], raw[2], raw[3])
		} else {
			v.Value = string(raw)
		}
	case gosnmp.Null:
		v.Value = nil
	default:
		return Var{}, fmt.Errorf("unsupported tag %d", n)
	}
	return v, nil
}

// clampInt keeps a simulated raw value inside INTEGER's 32 bits.
func clampInt(f float64) int {
	return int(math.Max(math.MinInt32, math.Min(math.MaxInt32, math.Round(f))))
}
