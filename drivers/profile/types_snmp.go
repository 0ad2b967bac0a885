package profile

// SNMPOptions are an SNMP profile's request defaults.
// Owned by the SNMP driver's authors: extend as the driver needs.
type SNMPOptions struct {
	// MaxOIDs per Get (default 60).
	MaxOIDs int `yaml:"max_oids,omitempty"`
	// MaxRepetitions for GetBulk walks (default 20).
	MaxRepetitions int `yaml:"max_repetitions,omitempty"`
	// Identity lists the OIDs emberctl probe and Identify read to name the
	// device (vendor model, serial, firmware), on top of MIB-II system and
	// the UPS-MIB ident group which are always read.
	Identity *SNMPIdentity `yaml:"identity,omitempty"`
}

// SNMPIdentity names the vendor objects holding a device's identity.
// Each is a scalar OID with its .0 instance; empty = not available.
type SNMPIdentity struct {
	Vendor   string `yaml:"vendor,omitempty"`
	Model    string `yaml:"model,omitempty"`
	Firmware string `yaml:"firmware,omitempty"`
	Serial   string `yaml:"serial,omitempty"`
}

// SNMPAddr locates an SNMP point: a scalar OID, or a column of the
// enclosing table block.
type SNMPAddr struct {
	// OID of a scalar (with its .0 instance), or of a table column (without
	// the row index) inside a table block.
	OID string `yaml:"oid,omitempty"`
	// Fallback lists other objects carrying the same quantity, tried in
	// order when the OID is absent on the device or answers a sentinel
	// (APC upsHighPrec* -> upsAdv*, Eaton XUPS -> MGE). Each has its own
	// scale and sentinels; the point's unit, range and name are shared.
	Fallback []SNMPFallback `yaml:"fallback,omitempty"`
	// Rate turns a Counter32/Counter64 point into a per-second rate,
	// computed modulo the counter's width between two rounds (a wrap), or
	// dropped for one round when the counter went back (an agent reset).
	Rate bool `yaml:"rate,omitempty"`
	// True lists raw values meaning true; set, the point is a boolean
	// (MGE yes(1)/no(2) objects: true: [1]).
	True []int64 `yaml:"true,omitempty"`
	// FlagBase is the number of the first character of a "flags" string
	// (APC upsBasicStateOutputState numbers its flags from 1, leftmost);
	// Bits keys are flag numbers. Default 1.
	FlagBase *int `yaml:"flag_base,omitempty"`
}

// SNMPFallback is one alternative source of a point's value.
type SNMPFallback struct {
	OID         string   `yaml:"oid"`
	Type        string   `yaml:"type,omitempty"` // default: the point's type
	Scale       *Scale   `yaml:"scale,omitempty"`
	Offset      float64  `yaml:"offset,omitempty"`
	Invalid     []int64  `yaml:"invalid,omitempty"`
	InvalidText []string `yaml:"invalid_text,omitempty"`
	Line        int      `yaml:"-"`
}

// SNMPBlock is a table walked with GetBulk; each row becomes an instance.
//
// A row's instance number (the value of the block's {name} placeholder) is
// by default the last component of the row index. IndexPart picks another
// component (tables indexed by two numbers, like Liebert's line
// measurements), IndexColumn takes it from a column's value (APC battery
// cabinet tables carry a local index within the parent). Select keeps only
// the rows whose column holds a given value (Liebert well-known
// measurement points). A table block nested in another one is a child
// table: ParentColumn holds, in each child row, the index of its parent
// row (APC cell rows name their module row, module rows their string
// row), so a cell gets its module's and string's placeholders too.
type SNMPBlock struct {
	// Table is the OID of the table's entry (e.g. upsInputEntry).
	Table string `yaml:"table,omitempty"`
	// IndexPart is the 1-based component of the row index giving the
	// instance number; 0 = the last one.
	IndexPart int `yaml:"index_part,omitempty"`
	// IndexColumn is a column whose value is the instance number.
	IndexColumn string `yaml:"index_column,omitempty"`
	// Select keeps the rows whose Column equals Equals (a number, a string
	// or an OID, compared as text). A select block without a name takes
	// the first matching row only, so its points need no placeholder
	// (Liebert's battery measurement point -> battery.voltage.volts).
	Select *SNMPSelect `yaml:"select,omitempty"`
	// ParentColumn (nested table blocks only) holds, in each row, the
	// index of the enclosing block's row it belongs to.
	ParentColumn string `yaml:"parent_column,omitempty"`
	// MaxRows bounds the rows taken from a table against a runaway agent
	// (default 1024).
	MaxRows int `yaml:"max_rows,omitempty"`
}

// SNMPSelect keeps table rows whose column equals a value.
type SNMPSelect struct {
	Column string `yaml:"column"`
	Equals string `yaml:"equals"`
}
