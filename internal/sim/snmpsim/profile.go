package snmpsim

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/gosnmp/gosnmp"
)

// ProfileOptions give the values a profile-driven agent serves.
type ProfileOptions struct {
	// Values by point name, in the units the driver decodes (SI after
	// scaling, + = discharge for battery current). Missing numbers get the
	// middle of the point's range, else 0.
	Values map[string]float64
	// Texts by point name for string and oid points (default "sim").
	Texts map[string]string
	// Rows per table block name (default 1); nested blocks: rows per
	// parent row.
	Rows map[string]int
	// SysObjectID and SysDescr fill MIB-II system (defaults: net-snmp's
	// Linux OID and "emberwatch snmpsim <profile id>").
	SysObjectID, SysDescr string
}

type simVar struct {
	v        Var
	explicit bool
}

// FromProfile builds the objects a device matching prof would serve. It is
// the inverse of the driver's decoding, so a poll of the agent reads back
// opts.Values.
func FromProfile(prof *profile.Profile, o ProfileOptions) ([]Var, error) {
	b := &builder{prof: prof, o: o, vars: map[string]simVar{}, tableSeq: map[string]int{}, tableBlocks: map[string]int{}}
	sysOID := o.SysObjectID
	if sysOID == "" {
		sysOID = "1.3.6.1.4.1.8072.3.2.10"
	}
	descr := o.SysDescr
	if descr == "" {
		descr = "emberwatch snmpsim " + prof.ID
	}
	b.put(Var{OID: "1.3.6.1.2.1.1.1.0", Type: gosnmp.OctetString, Value: []byte(descr)}, true)
	b.put(Var{OID: "1.3.6.1.2.1.1.2.0", Type: gosnmp.ObjectIdentifier, Value: "." + strings.TrimPrefix(sysOID, ".")}, true)
	b.put(Var{OID: "1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(100)}, true)
	b.put(Var{OID: "1.3.6.1.2.1.1.5.0", Type: gosnmp.OctetString, Value: []byte(prof.ID)}, true)
	for i := range prof.Points {
		if err := b.point(&prof.Points[i], "", nil); err != nil {
			return nil, err
		}
	}
	for i := range prof.Blocks {
		if err := b.block(&prof.Blocks[i], nil); err != nil {
			return nil, err
		}
	}
	out := make([]Var, 0, len(b.vars))
	for _, sv := range b.vars {
		out = append(out, sv.v)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := parseOID(out[i].OID)
		c, _ := parseOID(out[j].OID)
		return cmpOID(a, c) < 0
	})
	return out, nil
}

type builder struct {
	prof     *profile.Profile
	o        ProfileOptions
	vars     map[string]simVar
	tableSeq map[string]int // rows already used per table (select blocks share tables)
	// tableBlocks counts the blocks reading one table.
	tableBlocks map[string]int
}

// put stores a var; an explicit value is not overwritten by a default
// (two points may read one OID: ups.output.source and ups.status.on_battery).
func (b *builder) put(v Var, explicit bool) {
	v.OID = strings.TrimPrefix(v.OID, ".")
	if old, ok := b.vars[v.OID]; ok && old.explicit && !explicit {
		return
	}
	b.vars[v.OID] = simVar{v, explicit}
}

func expand(s string, vars map[string]int) string {
	for k, x := range vars {
		s = strings.ReplaceAll(s, "{"+k+"}", strconv.Itoa(x))
	}
	return s
}

func factor(s *profile.Scale) float64 {
	switch {
	case s == nil:
		return 1
	case s.Factor != nil:
		return *s.Factor
	case s.Pow10 != nil:
		return math.Pow10(*s.Pow10)
	case s.Pow2 != nil:
		return math.Ldexp(1, *s.Pow2)
	}
	return 1
}

// point encodes one profile point at oid+suffix.
func (b *builder) point(pt *profile.Point, suffix string, vars map[string]int) error {
	oidStr := strings.TrimPrefix(pt.OID, ".") + suffix
	name := expand(pt.Name, vars)
	typ := pt.Type
	switch typ {
	case "string", "oid":
		t, explicit := b.o.Texts[name]
		if !explicit {
			t = "sim"
			if typ == "oid" {
				t = "0.0"
			}
		}
		if typ == "oid" {
			b.put(Var{OID: oidStr, Type: gosnmp.ObjectIdentifier, Value: "." + strings.TrimPrefix(t, ".")}, explicit)
		} else {
			b.put(Var{OID: oidStr, Type: gosnmp.OctetString, Value: []byte(t)}, explicit)
		}
		return nil
	case "flags":
		base := 1
		if pt.FlagBase != nil {
			base = *pt.FlagBase
		}
		n := 0
		for bit := range pt.Bits {
			n = max(n, bit-base+1)
		}
		flags := []byte(strings.Repeat("0", max(n, 1)))
		explicit := false
		for bit, bn := range pt.Bits {
			if v, ok := b.o.Values[expand(bn, vars)]; ok {
				explicit = true
				if v != 0 {
					flags[bit-base] = '1'
				}
			}
		}
		b.put(Var{OID: oidStr, Type: gosnmp.OctetString, Value: flags}, explicit)
		return nil
	}
	v, explicit := b.o.Values[name]
	var raw float64
	switch {
	case len(pt.True) > 0:
		raw = float64(pt.True[0])
		if explicit && v == 0 || !explicit {
			raw = float64(pt.True[0]) + 1 // any value not meaning true
			for _, t := range pt.True {
				if int64(raw) == t {
					raw++
				}
			}
		}
	case len(pt.Bits) > 0 && pt.Name == "":
		bits := uint64(0)
		for bit, bn := range pt.Bits {
			if x, ok := b.o.Values[expand(bn, vars)]; ok {
				explicit = true
				if x != 0 {
					bits |= 1 << uint(bit)
				}
			}
		}
		raw = float64(bits)
	case len(pt.Enum) > 0 && !explicit:
		codes := make([]int64, 0, len(pt.Enum))
		for c := range pt.Enum {
			codes = append(codes, c)
		}
		sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
		raw = float64(codes[0])
	default:
		if !explicit && pt.Range != nil {
			v = (pt.Range.Min + pt.Range.Max) / 2
		}
		if b.flip(pt) {
			v = -v
		}
		raw = (v - pt.Offset) / factor(pt.Scale)
	}
	var val any
	var asn gosnmp.Asn1BER
	switch typ {
	case "gauge", "uint":
		asn, val = gosnmp.Gauge32, uint32(math.Max(0, math.Min(math.MaxUint32, math.Round(raw))))
	case "counter32":
		asn, val = gosnmp.Counter32, uint32(math.Max(0, math.Min(math.MaxUint32, math.Round(raw))))
	case "counter64":
		asn, val = gosnmp.Counter64, uint64(math.Max(0, math.Round(raw)))
	case "timeticks":
		asn, val = gosnmp.TimeTicks, uint32(math.Max(0, math.Min(math.MaxUint32, math.Round(raw))))
	case "int", "enum", "bool":
		asn, val = gosnmp.Integer, clampInt(raw)
	default:
		return fmt.Errorf("snmpsim: profile %s: point %q: type %q cannot be simulated", b.prof.ID, pt.Name, typ)
	}
	b.put(Var{OID: oidStr, Type: asn, Value: val}, explicit)
	return nil
}

func (b *builder) flip(pt *profile.Point) bool {
	switch pt.Sign {
	case "invert":
		return true
	case "battery":
		return b.prof.CurrentSign == "charge_positive"
	}
	return false
}

// block writes a table's rows; parent is the enclosing block's rows (row
// index -> placeholders) for nested tables.
func (b *builder) block(bl *profile.Block, parent []rowVars) error {
	n := 1
	if r, ok := b.o.Rows[bl.Name]; ok {
		n = r
	}
	parents := parent
	if parents == nil {
		parents = []rowVars{{idx: 0, vars: map[string]int{}}}
	}
	var rows []rowVars
	table := strings.TrimPrefix(bl.Table, ".")
	b.tableBlocks[table]++
	blockSeq := b.tableBlocks[table]
	for _, pr := range parents {
		for j := 1; j <= n; j++ {
			var idx string
			var inst, last int
			switch {
			case bl.IndexPart > 1:
				// Tables indexed (measurement point, line): one point per block.
				idx = strings.Repeat(strconv.Itoa(blockSeq)+".", bl.IndexPart-1) + strconv.Itoa(j)
				inst, last = j, j
			case bl.Select != nil || parent != nil:
				// Rows shared with other blocks or parents: a global number.
				b.tableSeq[table]++
				seq := b.tableSeq[table]
				idx, inst, last = strconv.Itoa(seq), seq, seq
			default:
				idx, inst, last = strconv.Itoa(j), j, j
			}
			if bl.IndexColumn != "" {
				inst = j
				b.put(Var{OID: strings.TrimPrefix(bl.IndexColumn, ".") + "." + idx, Type: gosnmp.Integer, Value: j}, true)
			}
			if bl.Select != nil {
				b.put(selectVar(strings.TrimPrefix(bl.Select.Column, ".")+"."+idx, bl.Select.Equals), true)
			}
			if bl.ParentColumn != "" {
				b.put(Var{OID: strings.TrimPrefix(bl.ParentColumn, ".") + "." + idx, Type: gosnmp.Integer, Value: pr.idx}, true)
			}
			vars := map[string]int{}
			for k, x := range pr.vars {
				vars[k] = x
			}
			vars[bl.Name] = inst
			for i := range bl.Points {
				if err := b.point(&bl.Points[i], "."+idx, vars); err != nil {
					return err
				}
			}
			rows = append(rows, rowVars{idx: last, vars: vars})
		}
	}
	for i := range bl.Blocks {
		if err := b.block(&bl.Blocks[i], rows); err != nil {
			return err
		}
	}
	return nil
}

type rowVars struct {
	idx  int
	vars map[string]int
}

// selectVar encodes a select column's value: an OID when it looks like
// one, else a number or a string.
func selectVar(oid, equals string) Var {
	if strings.Count(equals, ".") >= 2 {
		if _, err := parseOID(equals); err == nil {
			return Var{OID: oid, Type: gosnmp.ObjectIdentifier, Value: "." + strings.TrimPrefix(equals, ".")}
		}
	}
	if n, err := strconv.Atoi(equals); err == nil {
		return Var{OID: oid, Type: gosnmp.Integer, Value: n}
	}
	return Var{OID: oid, Type: gosnmp.OctetString, Value: []byte(equals)}
}
