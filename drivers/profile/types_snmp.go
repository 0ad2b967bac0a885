package profile

// SNMPOptions are an SNMP profile's request defaults.
// Owned by the SNMP driver's authors: extend as the driver needs.
type SNMPOptions struct {
	// MaxOIDs per Get (default 60).
	MaxOIDs int `yaml:"max_oids,omitempty"`
	// MaxRepetitions for GetBulk walks (default 20).
	MaxRepetitions int `yaml:"max_repetitions,omitempty"`
}

// SNMPAddr locates an SNMP point: a scalar OID, or a column of the
// enclosing table block.
type SNMPAddr struct {
	// OID of a scalar (with its .0 instance), or of a table column (without
	// the row index) inside a table block.
	OID string `yaml:"oid,omitempty"`
}

// SNMPBlock is a table walked with GetBulk; each row becomes an instance.
type SNMPBlock struct {
	// Table is the OID of the table's entry (e.g. upsInputEntry).
	Table string `yaml:"table,omitempty"`
}
