package profile

import (
	"fmt"
	"regexp"
)

var (
	oidRE = regexp.MustCompile(`^\.?[0-2](\.[0-9]+)+$`)
	// snmpTypes are the SNMP point types; values are decoded by meaning
	// whatever ASN.1 tag the agent sends.
	snmpTypes   = set("int", "uint", "gauge", "counter32", "counter64", "timeticks", "string", "oid", "flags", "bool", "enum")
	counterType = set("counter32", "counter64")
)

// validateSNMP checks what is specific to SNMP profiles: OIDs, SNMP types,
// fallbacks, rates and table blocks. The common checks (names, units,
// ranges, placeholders) are done by validate for every protocol.
func validateSNMP(p *Profile, ps *Problems) {
	v := &validator{p: p, ps: ps}
	if o := p.SNMP; o != nil {
		if o.MaxOIDs < 0 || o.MaxOIDs > 1000 {
			v.add("snmp.max_oids", "%d is outside 1..1000", o.MaxOIDs)
		}
		if o.MaxRepetitions < 0 || o.MaxRepetitions > 1000 {
			v.add("snmp.max_repetitions", "%d is outside 1..1000", o.MaxRepetitions)
		}
		if id := o.Identity; id != nil {
			for _, f := range []struct{ k, oid string }{{"vendor", id.Vendor}, {"model", id.Model}, {"firmware", id.Firmware}, {"serial", id.Serial}} {
				if f.oid != "" && !oidRE.MatchString(f.oid) {
					v.add("snmp.identity."+f.k, "%q is not a numeric OID", f.oid)
				}
			}
		}
	}
	if len(p.Points) == 0 && len(p.Blocks) == 0 {
		v.add("points", "an snmp profile needs points or table blocks")
	}
	if p.Match.SysObjectID != "" && !oidRE.MatchString(p.Match.SysObjectID) {
		v.add("match.sys_object_id", "%q is not a numeric OID prefix", p.Match.SysObjectID)
	}
	for i := range p.Points {
		v.snmpPoint(fmt.Sprintf("points[%d]", i), &p.Points[i])
	}
	for i := range p.Blocks {
		v.snmpBlock(fmt.Sprintf("blocks[%d]", i), &p.Blocks[i], false)
	}
}

func (v *validator) snmpPoint(k string, pt *Point) {
	switch {
	case pt.OID == "":
		v.add(k+".oid", "required for snmp points")
	case !oidRE.MatchString(pt.OID):
		v.add(k+".oid", "%q is not a numeric OID (1.3.6.1...)", pt.OID)
	}
	if pt.Address != nil || pt.Space != "" || pt.Length != 0 || pt.WordOrder != "" || pt.ByteOrder != "" {
		v.add(k, "modbus address fields (address, space, length, word_order, byte_order) are not for snmp points")
	}
	if pt.Channel != nil {
		v.add(k+".channel", "only for local profiles")
	}
	if !snmpTypes[pt.Type] {
		v.add(k+".type", "%q is not an snmp type (int uint gauge counter32 counter64 timeticks string oid flags bool enum)", pt.Type)
	}
	if pt.Scale != nil && pt.Scale.SF != "" {
		v.add(k+".scale", "scale-factor registers (sf) are Modbus only")
	}
	if pt.Rate && !counterType[pt.Type] {
		v.add(k+".rate", "only for counter32 and counter64 points")
	}
	switch pt.Type {
	case "flags":
		if len(pt.Bits) == 0 {
			v.add(k+".bits", "a flags point needs bits (flag number: name)")
		}
		if pt.Name != "" {
			v.add(k+".name", "a flags string is published through its bits only; leave name empty")
		}
	case "bool":
		if len(pt.True) == 0 {
			v.add(k+".true", "a bool point needs the raw values meaning true (true: [1])")
		}
	case "enum":
		if len(pt.Enum) == 0 {
			v.add(k+".enum", "an enum point needs its codes")
		}
	case "string", "oid":
		if pt.Scale != nil || pt.Offset != 0 || pt.Range != nil || pt.Unit != "" {
			v.add(k, "a %s point has no scale, offset, range or unit", pt.Type)
		}
	}
	if len(pt.True) > 0 && pt.Type != "bool" && pt.Type != "int" && pt.Type != "enum" {
		v.add(k+".true", "only for bool, int or enum points")
	}
	if pt.FlagBase != nil && pt.Type != "flags" {
		v.add(k+".flag_base", "only for flags points")
	}
	for j, fb := range pt.Fallback {
		fk := fmt.Sprintf("%s.fallback[%d]", k, j)
		if !oidRE.MatchString(fb.OID) {
			v.add(fk+".oid", "%q is not a numeric OID", fb.OID)
		}
		if fb.Type != "" && !snmpTypes[fb.Type] {
			v.add(fk+".type", "%q is not an snmp type", fb.Type)
		}
		if fb.Scale != nil && fb.Scale.SF != "" {
			v.add(fk+".scale", "scale-factor registers (sf) are Modbus only")
		}
		if fb.Scale != nil && fb.Scale.Factor != nil && *fb.Scale.Factor == 0 {
			v.add(fk+".scale", "must not be zero")
		}
	}
}

func (v *validator) snmpBlock(k string, b *Block, nested bool) {
	switch {
	case b.Table == "":
		v.add(k+".table", "required for snmp blocks (the table's entry OID)")
	case !oidRE.MatchString(b.Table):
		v.add(k+".table", "%q is not a numeric OID", b.Table)
	}
	if b.Count != 0 || b.CountFrom != "" || b.Fit || b.Start != 0 || b.Stride != 0 || len(b.ScaleFactors) > 0 {
		v.add(k, "count, count_from, fit, start, stride and scale_factors are Modbus only; snmp tables are walked")
	}
	if b.IndexColumn != "" && !oidRE.MatchString(b.IndexColumn) {
		v.add(k+".index_column", "%q is not a numeric OID", b.IndexColumn)
	}
	if b.IndexColumn != "" && b.IndexPart != 0 {
		v.add(k+".index_part", "use index_part or index_column, not both")
	}
	if b.IndexPart < 0 || b.IndexPart > 16 {
		v.add(k+".index_part", "%d is outside 1..16", b.IndexPart)
	}
	if s := b.Select; s != nil {
		if !oidRE.MatchString(s.Column) {
			v.add(k+".select.column", "%q is not a numeric OID", s.Column)
		}
		if s.Equals == "" {
			v.add(k+".select.equals", "required")
		}
	}
	switch {
	case nested && b.ParentColumn == "":
		v.add(k+".parent_column", "required for a nested table (the column naming the enclosing row)")
	case !nested && b.ParentColumn != "":
		v.add(k+".parent_column", "only for a table nested in another table block")
	case b.ParentColumn != "" && !oidRE.MatchString(b.ParentColumn):
		v.add(k+".parent_column", "%q is not a numeric OID", b.ParentColumn)
	}
	if b.MaxRows < 0 || b.MaxRows > 100000 {
		v.add(k+".max_rows", "%d is outside 1..100000", b.MaxRows)
	}
	if b.Name == "" && b.Select == nil {
		v.add(k+".name", "required (the row's placeholder); only a select block picking one row may go without")
	}
	for i := range b.Points {
		v.snmpPoint(fmt.Sprintf("%s.points[%d]", k, i), &b.Points[i])
	}
	for i := range b.Blocks {
		v.snmpBlock(fmt.Sprintf("%s.blocks[%d]", k, i), &b.Blocks[i], true)
	}
}
