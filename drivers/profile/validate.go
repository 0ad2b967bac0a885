package profile

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

var (
	idRE        = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	identRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	nameSegRE   = regexp.MustCompile(`^[a-z0-9_]+(\[([0-9]+|\{[a-z][a-z0-9_]*\})\])?$`)
	chemistries = set("", "nmc", "lfp", "lead_acid")
	signs       = set("", "discharge_positive", "charge_positive")
	spaces      = set("", "holding", "input", "coil", "discrete")
	orders      = set("", "big", "little")
)

// Units are the units a point may carry after scaling ("" for none), and
// unitSuffix the vocabulary suffix each one requires (docs/points.md).
var (
	Units      = []string{"V", "A", "W", "VA", "Wh", "Ah", "Hz", "degC", "%", "s", "ohm", "count", "ppm"}
	unitSuffix = map[string]string{
		"volts": "V", "amps": "A", "watts": "W", "va": "VA", "wh": "Wh", "ah": "Ah",
		"hertz": "Hz", "celsius": "degC", "percent": "%", "seconds": "s",
		"ohms": "ohm", "count": "count", "ppm": "ppm",
	}
)

// sortedKeys returns m's keys in order, so that problems come out in a
// stable order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

func set(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

// validator carries what the checks of one profile share.
type validator struct {
	p  *Profile
	ps *Problems
	// budget bounds the names expanded for the duplicate check, so that
	// nested blocks with large counts cannot make validation slow.
	budget *int
}

// expansionBudget is how many expanded names the duplicate check visits.
const expansionBudget = 200_000

func (v *validator) add(key, format string, args ...any) {
	v.ps.Add(v.p.KeyLine(key), key, format, args...)
}

// validate reports every problem of a decoded profile.
func validate(p *Profile, ps *Problems) {
	budget := expansionBudget
	v := &validator{p: p, ps: ps, budget: &budget}
	v.header()
	switch p.Protocol {
	case "modbus":
		v.modbus()
	case "snmp":
		validateSNMP(p, ps)
	case "local":
		validateLocal(p, ps)
	}
	v.names()
}

func (v *validator) header() {
	p := v.p
	switch {
	case p.ID == "":
		v.add("id", "required")
	case !idRE.MatchString(p.ID):
		v.add("id", "%q must be lower-case letters, digits and single dashes ([a-z0-9-]+)", p.ID)
	}
	for _, f := range []struct{ key, val string }{
		{"vendor", p.Vendor}, {"model", p.Model}, {"firmware", p.Firmware}, {"source", p.Source},
	} {
		if strings.TrimSpace(f.val) == "" {
			v.add(f.key, "required")
		}
	}
	switch p.Protocol {
	case "":
		v.add("protocol", "required (modbus, snmp or local)")
	case "modbus", "snmp", "local":
	default:
		v.add("protocol", "%q is not one of modbus, snmp, local", p.Protocol)
	}
	if !chemistries[p.Chemistry] {
		v.add("chemistry", "%q is not one of nmc, lfp, lead_acid (or empty for unknown)", p.Chemistry)
	}
	if !signs[p.CurrentSign] {
		v.add("current_sign", "%q is not one of discharge_positive, charge_positive", p.CurrentSign)
	}
	for _, m := range []struct{ key, re string }{
		{"match.vendor", p.Match.Vendor}, {"match.model", p.Match.Model}, {"match.firmware", p.Match.Firmware},
	} {
		if m.re == "" {
			continue
		}
		if _, err := regexp.Compile("(?i)" + m.re); err != nil {
			v.add(m.key, "bad regular expression: %v", err)
		}
	}
	for _, name := range sortedKeys(p.Match.Extra) {
		if _, err := regexp.Compile("(?i)" + p.Match.Extra[name]); err != nil {
			v.add("match.extra."+name, "bad regular expression: %v", err)
		}
	}
	if p.Modbus != nil && p.Protocol != "modbus" {
		v.add("modbus", "only for protocol modbus")
	}
	if p.SunSpec != nil && p.Protocol != "modbus" {
		v.add("sunspec", "only for protocol modbus")
	}
	if p.SNMP != nil && p.Protocol != "snmp" {
		v.add("snmp", "only for protocol snmp")
	}
	if p.Local != nil && p.Protocol != "local" {
		v.add("local", "only for protocol local")
	}
}

// ---- Modbus ----

func (v *validator) modbus() {
	p := v.p
	if o := p.Modbus; o != nil {
		if o.MaxRegisters < 0 || o.MaxRegisters > 125 {
			v.add("modbus.max_registers", "%d is outside 1..125 (0 = default 125)", o.MaxRegisters)
		}
		if o.MaxGap < 0 {
			v.add("modbus.max_gap", "must not be negative")
		}
		if o.Pause < 0 {
			v.add("modbus.pause", "must not be negative")
		}
		if o.BusyRetries < 0 {
			v.add("modbus.busy_retries", "must not be negative")
		}
		if !orders[o.WordOrder] {
			v.add("modbus.word_order", "%q is not big or little", o.WordOrder)
		}
		if !orders[o.ByteOrder] {
			v.add("modbus.byte_order", "%q is not big or little", o.ByteOrder)
		}
		if o.Sentinels != "" && o.Sentinels != "sunspec" {
			v.add("modbus.sentinels", "%q is not sunspec (or empty)", o.Sentinels)
		}
		for i, r := range o.Unreadable {
			k := fmt.Sprintf("modbus.unreadable[%d]", i)
			if !spaces[r.Space] {
				v.add(k+".space", "%q is not one of holding, input, coil, discrete", r.Space)
			}
			if r.From > r.To {
				v.add(k, "from %d is after to %d", r.From, r.To)
			}
		}
	}
	if len(p.Points) == 0 && len(p.Blocks) == 0 && p.SunSpec == nil {
		v.add("points", "a modbus profile needs points, blocks or sunspec models")
	}
	top := &mbScope{sfs: p.ScaleFactors}
	v.mbScope("", top, p.Points, p.Blocks, false)
	if ss := p.SunSpec; ss != nil {
		if len(ss.Bases) == 0 {
			v.add("sunspec.bases", "required: base addresses to look for \"SunS\" (40000, 0, 50000)")
		}
		if len(ss.Models) == 0 {
			v.add("sunspec.models", "required: at least one model")
		}
		seen := map[uint16]int{}
		for i := range ss.Models {
			m := &ss.Models[i]
			k := fmt.Sprintf("sunspec.models[%d]", i)
			if m.ID == 0 || m.ID == 0xFFFF {
				v.add(k+".id", "%d is not a SunSpec model id", m.ID)
			}
			if j, dup := seen[m.ID]; dup {
				v.add(k+".id", "model %d is also described by sunspec.models[%d]", m.ID, j)
			}
			seen[m.ID] = i
			sc := &mbScope{sfs: m.ScaleFactors, vars: map[string]bool{}}
			for _, name := range sortedKeys(m.Index) {
				off := m.Index[name]
				if !identRE.MatchString(name) {
					v.add(k+".index."+name, "index name must be [a-z][a-z0-9_]*")
				}
				if off < 2 {
					v.add(k+".index."+name, "offset %d is the model's ID or L register", off)
				}
				sc.vars[name] = true
			}
			v.mbScope(k+".", sc, m.Points, m.Blocks, true)
		}
	}
}

// mbScope is one level of nesting during Modbus validation.
type mbScope struct {
	parent *mbScope
	sfs    map[string]uint16
	vars   map[string]bool // bound placeholders at this level (own block name, model index)
	points []Point
}

func (s *mbScope) hasSF(name string) bool {
	for ; s != nil; s = s.parent {
		if _, ok := s.sfs[name]; ok {
			return true
		}
	}
	return false
}

func (s *mbScope) bound(name string) bool {
	for ; s != nil; s = s.parent {
		if s.vars[name] {
			return true
		}
	}
	return false
}

// findPoint looks a count_from name up among the points of s and its parents.
func (s *mbScope) findPoint(name string) *Point {
	for ; s != nil; s = s.parent {
		for i := range s.points {
			if s.points[i].Name == name {
				return &s.points[i]
			}
		}
	}
	return nil
}

// extent is an address interval [from, to) of one item of a scope, for the
// overlap check.
type extent struct {
	space    string
	from, to int
	key      string
}

// mbScope checks the points and blocks of one scope and returns the number
// of registers an instance of it spans (highest end offset).
func (v *validator) mbScope(prefix string, s *mbScope, points []Point, blocks []Block, inSunSpec bool) int {
	s.points = points
	var ext []extent
	span := 0
	for i := range points {
		pt := &points[i]
		k := fmt.Sprintf("%spoints[%d]", prefix, i)
		v.mbPoint(k, s, pt)
		if pt.Address != nil {
			n := pt.RegCount()
			if n < 1 {
				n = 1
			}
			end := int(*pt.Address) + n
			if end > 0x10000 {
				v.add(k+".address", "%d + %d registers runs past 65535", *pt.Address, n)
			}
			ext = append(ext, extent{pt.SpaceOf(), int(*pt.Address), end, k})
			span = max(span, end)
		}
	}
	for i := range blocks {
		b := &blocks[i]
		k := fmt.Sprintf("%sblocks[%d]", prefix, i)
		inst := v.mbBlock(k, s, b, inSunSpec)
		n := b.Count
		if b.CountFrom != "" || b.Fit {
			n = b.MaxCount
		}
		if n < 1 {
			n = 1
		}
		end := int(b.Start) + (min(n, 0x10001)-1)*int(b.Stride) + inst
		if n > 0x10000 || end > 0x10000 {
			v.add(k, "%d instances of stride %d from %d run past register 65535", n, b.Stride, b.Start)
		}
		if inst > 0 {
			ext = append(ext, extent{blockSpace(b), int(b.Start), end, k})
			span = max(span, end)
		}
	}
	v.overlaps(ext)
	return span
}

// blockSpace returns the one space all of a block's points use, or "" when
// they mix spaces (the block is then checked against every space).
func blockSpace(b *Block) string {
	sp := ""
	var walk func(b *Block) bool
	walk = func(b *Block) bool {
		for i := range b.Points {
			ps := b.Points[i].SpaceOf()
			if sp != "" && ps != sp {
				return false
			}
			sp = ps
		}
		for i := range b.Blocks {
			if !walk(&b.Blocks[i]) {
				return false
			}
		}
		return true
	}
	if !walk(b) {
		return ""
	}
	return sp
}

// overlaps reports items of one scope whose address ranges overlap. Blocks
// (space "") are checked against every space.
func (v *validator) overlaps(ext []extent) {
	sort.SliceStable(ext, func(i, j int) bool { return ext[i].from < ext[j].from })
	for i := range ext {
		for j := i + 1; j < len(ext) && ext[j].from < ext[i].to; j++ {
			a, b := ext[i], ext[j]
			if a.space != "" && b.space != "" && a.space != b.space {
				continue
			}
			what := "address"
			if strings.Contains(b.key[strings.LastIndexByte(b.key, '.')+1:], "blocks[") {
				what = "start"
			}
			v.add(b.key+"."+what, "registers %d..%d overlap %s (%d..%d)", b.from, b.to-1, a.key, a.from, a.to-1)
		}
	}
}

var (
	numericTypes = set("u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64")
	integerTypes = set("u16", "s16", "u32", "s32", "u64", "s64")
)

func (v *validator) mbPoint(k string, s *mbScope, pt *Point) {
	if pt.Name == "" && len(pt.Bits) == 0 {
		v.add(k+".name", "required (or bits)")
	}
	if pt.OID != "" {
		v.add(k+".oid", "only for snmp profiles")
	}
	if pt.Channel != nil {
		v.add(k+".channel", "only for local profiles")
	}
	if pt.Address == nil {
		v.add(k+".address", "required")
	}
	if !spaces[pt.Space] {
		v.add(k+".space", "%q is not one of holding, input, coil, discrete", pt.Space)
	}
	if !orders[pt.WordOrder] {
		v.add(k+".word_order", "%q is not big or little", pt.WordOrder)
	}
	if !orders[pt.ByteOrder] {
		v.add(k+".byte_order", "%q is not big or little", pt.ByteOrder)
	}
	t := pt.Type
	_, known := modbusTypeRegs[t]
	switch {
	case t == "":
		v.add(k+".type", "required (u16 s16 u32 s32 u64 s64 f32 f64 string bitfield16 bitfield32 enum16 enum32 bool)")
		return
	case !known:
		v.add(k+".type", "%q is not a Modbus type (u16 s16 u32 s32 u64 s64 f32 f64 string bitfield16 bitfield32 enum16 enum32 bool)", t)
		return
	}
	bitSpace := pt.Space == "coil" || pt.Space == "discrete"
	if t == "bool" && !bitSpace {
		v.add(k+".type", "bool is for coil and discrete spaces; use bitfield16 with bits for a bit of a register")
	}
	if bitSpace && t != "bool" {
		v.add(k+".type", "a %s point must be bool", pt.Space)
	}
	if t == "string" {
		maxRegs := 125
		if o := v.p.Modbus; o != nil && o.MaxRegisters > 0 && o.MaxRegisters < 125 {
			maxRegs = o.MaxRegisters
		}
		switch {
		case pt.Length < 1:
			v.add(k+".length", "a string needs its length in registers")
		case pt.Length > maxRegs:
			v.add(k+".length", "%d registers do not fit one read (at most %d)", pt.Length, maxRegs)
		}
	} else if pt.Length != 0 {
		v.add(k+".length", "only for strings (%s occupies %d registers)", t, modbusTypeRegs[t])
	}
	numeric := numericTypes[t]
	if !numeric {
		if pt.Scale != nil {
			v.add(k+".scale", "only for numeric types, not %s", t)
		}
		if pt.Offset != 0 {
			v.add(k+".offset", "only for numeric types, not %s", t)
		}
		if pt.Range != nil {
			v.add(k+".range", "only for numeric types, not %s", t)
		}
		if pt.Sign != "" {
			v.add(k+".sign", "only for numeric types, not %s", t)
		}
	}
	if pt.Scale != nil && pt.Scale.SF != "" && !s.hasSF(pt.Scale.SF) {
		v.add(k+".scale.sf", "no scale factor %q in scale_factors here or in an enclosing scope", pt.Scale.SF)
	}
	if len(pt.Enum) > 0 && t != "enum16" && t != "enum32" {
		v.add(k+".enum", "only for enum16 and enum32, not %s", t)
	}
	isBits := t == "bitfield16" || t == "bitfield32"
	if len(pt.Bits) > 0 && !isBits {
		v.add(k+".bits", "only for bitfield16 and bitfield32, not %s", t)
	}
	if isBits {
		w := TypeBits(t)
		for _, bit := range sortedKeys(pt.Bits) {
			if bit < 0 || bit >= w {
				v.add(fmt.Sprintf("%s.bits.%d", k, bit), "bit %d is outside 0..%d of a %s", bit, w-1, t)
			}
		}
	}
	if len(pt.InvalidText) > 0 && t != "string" {
		v.add(k+".invalid_text", "only for strings")
	}
	if len(pt.Invalid) > 0 && (t == "string" || t == "bool") {
		v.add(k+".invalid", "not for %s points", t)
	}
	// Raw values: a w-bit register pattern may be written unsigned
	// (0xFFFF) or signed (-1); anything wider can never match.
	if w := TypeBits(t); w > 0 && w < 64 && t[0] != 'f' {
		lo, hi := -(int64(1) << (w - 1)), int64(1)<<w-1
		for i, x := range pt.Invalid {
			if x < lo || x > hi {
				v.add(fmt.Sprintf("%s.invalid[%d]", k, i), "%d does not fit a %s (%d..%d)", x, t, lo, hi)
			}
		}
	}
	if pt.Sign == "battery" && v.p.CurrentSign == "" {
		v.add(k+".sign", "sign: battery needs the profile's current_sign")
	}
}

func (v *validator) mbBlock(k string, s *mbScope, b *Block, inSunSpec bool) int {
	switch {
	case b.Name == "":
		v.add(k+".name", "required: the index variable the block's names use")
	case !identRE.MatchString(b.Name):
		v.add(k+".name", "%q must be [a-z][a-z0-9_]*", b.Name)
	case s.bound(b.Name):
		v.add(k+".name", "%q is already bound by an enclosing block or model index", b.Name)
	}
	if b.Table != "" {
		v.add(k+".table", "only for snmp profiles")
	}
	forms := 0
	if b.Count != 0 {
		forms++
	}
	if b.CountFrom != "" {
		forms++
	}
	if b.Fit {
		forms++
	}
	switch {
	case forms == 0:
		v.add(k, "needs count, count_from or fit")
	case forms > 1:
		v.add(k, "give only one of count, count_from, fit")
	}
	if b.Count < 0 {
		v.add(k+".count", "must be positive")
	}
	if b.Fit && !inSunSpec {
		v.add(k+".fit", "only inside sunspec models (as many as fit in the model's length)")
	}
	if (b.CountFrom != "" || b.Fit) && b.MaxCount < 1 {
		v.add(k+".max_count", "required with count_from or fit, to bound a garbage count")
	}
	if b.MaxCount < 0 {
		v.add(k+".max_count", "must not be negative")
	}
	if b.CountFrom != "" {
		cp := s.findPoint(b.CountFrom)
		switch {
		case cp == nil:
			v.add(k+".count_from", "no point named %q in an enclosing scope", b.CountFrom)
		case !integerTypes[cp.Type]:
			v.add(k+".count_from", "point %q is %s, not an integer", b.CountFrom, cp.Type)
		}
	}
	if b.Stride == 0 {
		v.add(k+".stride", "must not be zero")
	}
	child := &mbScope{parent: s, sfs: b.ScaleFactors, vars: map[string]bool{b.Name: true}}
	if len(b.Points) == 0 && len(b.Blocks) == 0 {
		v.add(k+".points", "a block needs points or blocks")
	}
	inst := v.mbScope(k+".", child, b.Points, b.Blocks, inSunSpec)
	if b.Stride != 0 && inst > int(b.Stride) && (b.Count > 1 || b.CountFrom != "" || b.Fit) {
		v.add(k+".stride", "%d is smaller than one instance (%d registers): instances overlap", b.Stride, inst)
	}
	return inst
}

// ---- every protocol ----

// names checks point names, units, ranges, scales and signs, that every
// {placeholder} is bound, and that no two points get the same name once
// blocks are expanded.
func (v *validator) names() {
	seen := map[string]seenName{}
	v.nameScope("", nil, v.p.Points, v.p.Blocks, nil, seen, map[string]int{})
	if ss := v.p.SunSpec; ss != nil {
		for i := range ss.Models {
			m := &ss.Models[i]
			bound := map[string]bool{}
			vars := map[string]int{}
			var idx []string
			for n := range m.Index {
				bound[n] = true
				vars[n] = 1
				idx = append(idx, n)
			}
			sort.Strings(idx)
			v.nameScope(fmt.Sprintf("sunspec.models[%d].", i), bound, m.Points, m.Blocks, idx, seen, vars)
		}
	}
}

func (v *validator) nameScope(prefix string, bound map[string]bool, points []Point, blocks []Block, index []string, seen map[string]seenName, vars map[string]int) {
	for i := range points {
		pt := &points[i]
		k := fmt.Sprintf("%spoints[%d]", prefix, i)
		if pt.Name != "" {
			if v.name(k+".name", pt.Name, bound, index) {
				v.unit(k, pt)
				if pt.Sign == "battery" && pt.Unit != "A" && pt.Unit != "W" {
					v.add(k+".sign", "sign: battery is for battery current (A) and power (W), not %q", pt.Unit)
				}
				v.unique(k+".name", ExpandName(pt.Name, vars), vars, seen)
			}
		} else if pt.Unit != "" {
			v.add(k+".unit", "a point without a name is not published; it has no unit")
		}
		for _, b := range sortedKeys(pt.Bits) {
			bk := fmt.Sprintf("%s.bits.%d", k, b)
			if v.name(bk, pt.Bits[b], bound, index) {
				v.unique(bk, ExpandName(pt.Bits[b], vars), vars, seen)
			}
		}
		for _, code := range sortedKeys(pt.Enum) {
			if n := pt.Enum[code]; strings.TrimSpace(n) == "" {
				v.add(fmt.Sprintf("%s.enum.%d", k, code), "empty name")
			}
		}
		if pt.Range != nil && !(pt.Range.Min < pt.Range.Max) {
			v.add(k+".range", "min %g must be below max %g", pt.Range.Min, pt.Range.Max)
		}
		switch pt.Sign {
		case "", "battery", "invert":
		default:
			v.add(k+".sign", "%q is not battery or invert", pt.Sign)
		}
		switch pt.Access {
		case "", "r", "rw":
		default:
			v.add(k+".access", "%q is not r or rw", pt.Access)
		}
		if sc := pt.Scale; sc != nil {
			switch {
			case sc.Factor != nil && *sc.Factor == 0:
				v.add(k+".scale", "must not be zero")
			case sc.Pow10 != nil && (*sc.Pow10 < -12 || *sc.Pow10 > 12):
				v.add(k+".scale.pow10", "%d is outside -12..12", *sc.Pow10)
			case sc.Pow2 != nil && (*sc.Pow2 < -32 || *sc.Pow2 > 32):
				v.add(k+".scale.pow2", "%d is outside -32..32", *sc.Pow2)
			}
		}
	}
	for i := range blocks {
		b := &blocks[i]
		k := fmt.Sprintf("%sblocks[%d]", prefix, i)
		nb := make(map[string]bool, len(bound)+1)
		for n := range bound {
			nb[n] = true
		}
		req := index
		if identRE.MatchString(b.Name) {
			nb[b.Name] = true
			req = append(append([]string(nil), index...), b.Name)
		}
		// Expand enough instances to catch names that miss the index.
		n := b.Count
		if n < 1 || b.CountFrom != "" || b.Fit {
			n = 2
		}
		n = min(n, 1000)
		for j := 0; j < n && *v.budget > 0; j++ {
			*v.budget -= len(b.Points) + 1
			iv := make(map[string]int, len(vars)+1)
			for kk, vv := range vars {
				iv[kk] = vv
			}
			if b.Name != "" {
				iv[b.Name] = b.IndexOf(j)
			}
			// Report per-point problems once, from the first instance.
			if j == 0 {
				v.nameScope(k+".", nb, b.Points, b.Blocks, req, seen, iv)
			} else {
				quiet := &validator{p: v.p, ps: &Problems{}, budget: v.budget}
				quiet.nameScope(k+".", nb, b.Points, b.Blocks, req, seen, iv)
				for _, pr := range quiet.ps.List {
					if strings.Contains(pr.Msg, "is also the name of") {
						v.ps.List = append(v.ps.List, Problem{File: v.ps.File, Line: pr.Line, Key: pr.Key, Msg: pr.Msg})
					}
				}
			}
		}
	}
}

// name checks the syntax of a vocabulary name template and its placeholders.
func (v *validator) name(k, name string, bound map[string]bool, index []string) bool {
	ok := true
	for _, ph := range Placeholders(name) {
		if !bound[ph] {
			v.add(k, "{%s} is not bound by an enclosing block or model index", ph)
			ok = false
		}
	}
	for _, ix := range index {
		if !strings.Contains(name, "{"+ix+"}") {
			v.add(k, "must use {%s}, or the instances of its block or model get the same name", ix)
			ok = false
		}
	}
	for _, seg := range strings.Split(name, ".") {
		if !nameSegRE.MatchString(seg) {
			v.add(k, "%q is not a vocabulary name (lower-case dot-separated segments, indices as [{var}] or [n])", name)
			return false
		}
	}
	return ok
}

// unit checks the point's unit, and that it agrees with the name's suffix;
// an empty unit is filled in from the suffix.
func (v *validator) unit(k string, pt *Point) {
	known := pt.Unit == ""
	for _, u := range Units {
		if pt.Unit == u {
			known = true
		}
	}
	if !known {
		v.add(k+".unit", "%q is not one of %s (or empty)", pt.Unit, strings.Join(Units, " "))
		return
	}
	last := pt.Name[strings.LastIndexByte(pt.Name, '.')+1:]
	want, hasSuffix := unitSuffix[last]
	if hasSuffix && pt.Unit == "" {
		pt.Unit = want // the name's suffix implies the unit
		return
	}
	switch {
	case hasSuffix && pt.Unit != want:
		v.add(k+".unit", "a .%s name needs unit %s, not %q", last, want, pt.Unit)
	case !hasSuffix && pt.Unit != "":
		v.add(k+".name", "a point with unit %s must end in .%s", pt.Unit, suffixFor(pt.Unit))
	}
}

func suffixFor(unit string) string {
	for s, u := range unitSuffix {
		if u == unit {
			return s
		}
	}
	return "?"
}

// seenName is the first point (key and instance) given an expanded name.
type seenName struct{ key, who string }

// unique reports a name already given to another point or instance.
func (v *validator) unique(k, name string, vars map[string]int, seen map[string]seenName) {
	who := k + fmt.Sprint(vars) // fmt prints maps sorted
	if prev, dup := seen[name]; dup && prev.who != who {
		v.add(k, "%q is also the name of %s", name, prev.key)
		return
	}
	seen[name] = seenName{k, who}
}
