// Package profile loads and validates firmware profiles: YAML files that
// describe one device family's points (vendor, model, firmware range) for the
// Modbus, SNMP and local sensor drivers and for the simulator. A profile is
// data, never code; drivers compile it once per device into their request
// plans and decoders.
//
// # Loading
//
//	set, err := profile.Load(log, firmwareprofiles.FS, os.DirFS(profilesDir))
//	p, ok := set.Get("sunspec")
//
// Load walks every source for *.yaml / *.yml files. A later source overrides
// an earlier one's profile with the same id (logged), so a site's
// profiles_dir can replace a built-in profile; two files with one id in a
// single source are an error. Parse and LoadFile handle one file.
//
// Every problem of every file is reported in one go, one per line, as
//
//	file:line: key.path: what is wrong
//	apc/srt.yaml:12: points[3].scale: must not be zero
//
// Each line is a Problem (errors.As works on the joined error). The file is
// decoded twice: strictly into the structs (yaml.v3 KnownFields), and into a
// yaml.Node tree walked against the struct types to record the line of
// every key path (Profile.KeyLine, Point.Line, Block.Line,
// SunSpecModel.Line) and to report unknown keys with their full path.
// Scale has its own UnmarshalYAML that checks its keys itself, because
// node.Decode would lose KnownFields.
//
// # Format (summary; docs/profiles.md has the full reference)
//
//	id: apc-smart-ups-modbus          # [a-z0-9-]+, named by devices in config
//	vendor, model, firmware, source   # required; source = the document read
//	protocol: modbus                  # modbus | snmp | local
//	chemistry: lfp                    # nmc | lfp | lead_acid | "" (unknown)
//	current_sign: charge_positive     # raw battery current convention
//	match: {vendor: re, model: re, firmware: re, sys_object_id: oid, sunspec_models: [802]}
//	modbus: {max_registers, max_gap, unreadable, pause, close_after_round,
//	           busy_retries, word_order, byte_order, sentinels: sunspec}
//	scale_factors: {V_SF: 59}         # {sf: V_SF} scales read this register
//	points: [...]
//	blocks: [...]                     # repeating groups
//	sunspec: {bases: [40000, 0, 50000], models: [...]}
//
// A point:
//
//	points:
//	  - name: "string[{string}].current.amps"  # vocabulary name (docs/points.md)
//	    address: 13          # 0-based wire address, relative to its block/model
//	    space: holding       # holding (default) | input | coil | discrete
//	    type: s16            # u16 s16 u32 s32 u64 s64 f32 f64 string
//	                         # bitfield16 bitfield32 enum16 enum32 bool
//	    length: 8            # registers, strings only
//	    scale: {sf: A_SF}    # 0.1 | {pow10: n} | {pow2: n} | {sf: NAME} | {factor: x}
//	    offset: -3200        # value = raw x scale + offset
//	    unit: A              # V A W VA Wh Ah Hz degC % s ohm count ppm; implied by the name's suffix
//	    sign: battery        # battery: follows current_sign; invert: always flipped
//	    invalid: [0xFFFF]    # raw values meaning "not available"
//	    range: {min: 0, max: 6}   # plausible values after scaling, else FaultRange
//	    enum: {1: "off", 4: charging}          # enum16/enum32
//	    bits: {0: "...balancing"}              # bitfield16/bitfield32: bit -> bool point
//	    access: rw           # r (default) | rw: a setting or command; never written
//	    word_order: little   # big (default) | little, overrides modbus.word_order
//
// A block repeats its points and nested blocks:
//
//	blocks:
//	  - name: cell            # the {cell} placeholder its names use
//	    count: 16             # or count_from: <point name>, or fit: true (SunSpec)
//	    max_count: 256        # required with count_from / fit
//	    start: 44             # first instance, relative to the enclosing scope
//	    stride: 4             # registers between instances
//	    index_base: 1         # index of the first instance (default 1)
//
// A SunSpec model (protocol modbus) maps one model of the discovered chain;
// addresses are offsets from its ID register, and index names the registers
// whose values give each instance of a repeated model its indices:
//
//	models:
//	  - id: 805
//	    index: {string: 2, module: 3}
//	    scale_factors: {CellV_SF: 42, Tmp_SF: 43}
//	    points: [...]
//	    blocks: [{name: cell, fit: true, max_count: 256, start: 44, stride: 4, points: [...]}]
//
// # Validation
//
// Beyond unknown keys and wrong value types, validate checks: id format and
// required fields; protocol sections (modbus/sunspec only for modbus, snmp,
// local); Modbus types, spaces, string lengths, addresses within 0..65535,
// overlapping points in one scope and instances wider than their stride;
// scale forms and scale-factor names (looked up from the innermost scope
// outwards); blocks with no or several count forms, zero stride, count_from
// naming no integer point of an enclosing scope, missing max_count; names:
// vocabulary syntax, every {placeholder} bound by an enclosing block or model
// index and every enclosing index used, units known and matching the name's
// suffix, no two points with one name once blocks are expanded; enum and bits
// only on enum and bitfield types, bits within the width; sign and
// current_sign values; range min < max. SNMP and local profiles get the
// common checks here plus validateSNMP / validateLocal (owned by those
// drivers' authors).
//
// # Helpers for drivers and the simulator
//
// Expand walks a Scope (Profile.TopScope, SunSpecModel.Scope, Block.Scope)
// and yields every point Instance with its expanded name and bit names, its
// absolute address and the absolute address of its scale-factor register;
// blocks with count_from or fit ask a CountFunc. ExpandName fills a name
// template; Point.RegCount, TypeBits, TypeSigned, Point.SpaceOf,
// Profile.EffectiveWordOrder / EffectiveByteOrder, Profile.Negate,
// Scale.Const, SunSpecSentinel and Profile.UsesSunSpecSentinels answer the
// codec's questions, so that every consumer reads a profile the same way.
//
// A Set and its profiles are read-only after Load and safe to share.
package profile
