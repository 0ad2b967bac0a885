package profile

// Profile is one firmware profile as written in YAML: a device's points for
// one vendor, model and firmware range. See doc.go for the format.
type Profile struct {
	ID       string `yaml:"id"`       // unique, [a-z0-9-]+; devices name it in config
	Vendor   string `yaml:"vendor"`   // "APC by Schneider Electric"
	Model    string `yaml:"model"`    // "Smart-UPS SRT / SMT / SMX (Modbus)"
	Firmware string `yaml:"firmware"` // firmware range: "*", ">=9.0", "UPS 09.x"
	Source   string `yaml:"source"`   // the document the map was written from
	Protocol string `yaml:"protocol"` // modbus | snmp | local
	// Chemistry selects detection defaults: nmc, lfp, lead_acid, "" (unknown).
	Chemistry string `yaml:"chemistry,omitempty"`
	// CurrentSign states the convention of the device's raw battery current
	// and power: "discharge_positive" or "charge_positive". Points marked
	// sign: battery are flipped to the project's convention (+ = discharge).
	CurrentSign string `yaml:"current_sign,omitempty"`
	// Match helps emberctl probe propose this profile.
	Match Match `yaml:"match,omitempty"`

	Modbus *ModbusOptions `yaml:"modbus,omitempty"`
	SNMP   *SNMPOptions   `yaml:"snmp,omitempty"`
	Local  *LocalOptions  `yaml:"local,omitempty"`

	// ScaleFactors names scale-factor registers (Modbus) by name, for
	// points whose scale is {sf: NAME}. Addresses are relative to the
	// enclosing model or block, absolute at the top level.
	ScaleFactors map[string]uint16 `yaml:"scale_factors,omitempty"`
	Points       []Point           `yaml:"points,omitempty"`
	Blocks       []Block           `yaml:"blocks,omitempty"`
	// SunSpec describes a discovered model chain (Modbus only).
	SunSpec *SunSpec `yaml:"sunspec,omitempty"`

	// File is where the profile was loaded from (set by the loader).
	File string `yaml:"-"`
	// lines maps key paths ("points[3].scale") to their YAML line (set by
	// the loader); see KeyLine.
	lines map[string]int
}

// Match holds what a device's identity must look like for this profile.
// Every non-empty field must match (regular expressions, case-insensitive).
type Match struct {
	Vendor       string `yaml:"vendor,omitempty"`
	Model        string `yaml:"model,omitempty"`
	Firmware     string `yaml:"firmware,omitempty"`
	SysObjectID  string `yaml:"sys_object_id,omitempty"` // OID prefix
	SunSpecModel []int  `yaml:"sunspec_models,omitempty"`
	// Extra holds regular expressions on protocol-specific identity values
	// (drivers.Identity.Extra by name, e.g. lgpAgentDeviceId), for devices
	// whose vendor and model strings do not tell what they are.
	Extra map[string]string `yaml:"extra,omitempty"`
}

// Point is one quantity of a device.
type Point struct {
	// Name is the vocabulary name (docs/points.md). Inside blocks and models
	// it holds {block-name} placeholders: "string[{string}].voltage.volts".
	Name string `yaml:"name"`
	// Type of the raw value. Modbus: u16 s16 u32 s32 u64 s64 f32 f64 string
	// bitfield16 bitfield32 enum16 enum32 bool (coil/discrete). SNMP: int,
	// uint, counter32, counter64, timeticks, string, oid (values are decoded
	// by meaning, whatever the agent's ASN.1 tag).
	Type string `yaml:"type"`
	// Scale applies to the raw number: value = raw * scale + offset.
	Scale  *Scale  `yaml:"scale,omitempty"`
	Offset float64 `yaml:"offset,omitempty"`
	// Unit of the value after scaling: V A W VA Wh Hz degC % s ohm count ("" for none).
	Unit string `yaml:"unit,omitempty"`
	// Sign: "battery" marks a battery current/power that follows the
	// profile's current_sign; "invert" always flips.
	Sign string `yaml:"sign,omitempty"`
	// Invalid lists raw values meaning "not available", on top of the
	// type's defaults when Sentinels is "sunspec".
	Invalid []int64 `yaml:"invalid,omitempty"`
	// InvalidText lists string values meaning "not available" ("NOT SUPPORTED").
	InvalidText []string `yaml:"invalid_text,omitempty"`
	// Range bounds plausible values after scaling; outside it the reading is
	// a FaultRange.
	Range *Range `yaml:"range,omitempty"`
	// Enum maps raw codes to names.
	Enum map[int64]string `yaml:"enum,omitempty"`
	// Bits maps bit numbers (0 = LSB of the whole value) to boolean point
	// names; the point itself is then not published as a number unless
	// Name is set.
	Bits map[int]string `yaml:"bits,omitempty"`
	// Access is "r" (default) or "rw". The agent never writes; rw marks
	// command registers so that reads may skip them.
	Access string `yaml:"access,omitempty"`

	ModbusAddr `yaml:",inline"`
	SNMPAddr   `yaml:",inline"`
	LocalAddr  `yaml:",inline"`

	// Line is the YAML line of the point (set by the loader) for messages.
	Line int `yaml:"-"`
}

// Scale is a constant, a power of ten, a power of two, or a scale-factor
// register. In YAML: `scale: 0.1`, `scale: {pow10: -1}`, `scale: {pow2: -9}`,
// `scale: {sf: V_SF}`. Exactly one form is set.
type Scale struct {
	Factor *float64 `yaml:"factor,omitempty"`
	Pow10  *int     `yaml:"pow10,omitempty"`
	Pow2   *int     `yaml:"pow2,omitempty"`
	SF     string   `yaml:"sf,omitempty"` // names an entry of scale_factors
}

// Range is a closed interval of plausible values.
type Range struct {
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// Block is a repeating group at fixed addresses: strings, modules, cells.
type Block struct {
	// Name is the index variable: points use {Name} in their names.
	Name string `yaml:"name"`
	// Count is a fixed number of instances; CountFrom names a point (read
	// when the device is first planned) that holds it; "fit" (SunSpec only)
	// means as many as fit in the model's length.
	Count     int    `yaml:"count,omitempty"`
	CountFrom string `yaml:"count_from,omitempty"`
	Fit       bool   `yaml:"fit,omitempty"`
	// MaxCount bounds CountFrom/Fit against garbage counts.
	MaxCount int `yaml:"max_count,omitempty"`
	// Start is the first instance's address (relative to the enclosing block
	// or model; absolute at top level), Stride the distance between
	// instances, IndexBase the index of the first instance (default 1).
	Start     uint16 `yaml:"start"`
	Stride    uint16 `yaml:"stride"`
	IndexBase *int   `yaml:"index_base,omitempty"`
	// OID-based blocks (SNMP tables) use SNMPBlock instead of addresses.
	SNMPBlock `yaml:",inline"`

	ScaleFactors map[string]uint16 `yaml:"scale_factors,omitempty"`
	Points       []Point           `yaml:"points,omitempty"`
	Blocks       []Block           `yaml:"blocks,omitempty"`

	Line int `yaml:"-"`
}

// SunSpec describes a SunSpec device: the base addresses to try and the
// models to read from the discovered chain.
type SunSpec struct {
	Bases  []uint16       `yaml:"bases"` // e.g. [40000, 0, 50000]
	Models []SunSpecModel `yaml:"models"`
}

// SunSpecModel maps one SunSpec model's points. Addresses are offsets from
// the model's ID register. A model may occur several times in a chain (804
// per string, 805 per module); Index names the offsets whose values give
// each instance its indices.
type SunSpecModel struct {
	ID           uint16            `yaml:"id"`
	Index        map[string]uint16 `yaml:"index,omitempty"` // {string: 2, module: 3}
	ScaleFactors map[string]uint16 `yaml:"scale_factors,omitempty"`
	Points       []Point           `yaml:"points,omitempty"`
	Blocks       []Block           `yaml:"blocks,omitempty"`
	Line         int               `yaml:"-"`
}
