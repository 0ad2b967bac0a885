package profile_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// head is a valid Modbus profile header; the cases' lines start at 7.
const head = `id: t
vendor: v
model: m
firmware: "*"
source: s
protocol: modbus
`

// TestBadProfiles checks the exact problems reported for broken profiles:
// every one of them, in order, as file:line: key: what.
func TestBadProfiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"syntax", "id: [t\n", []string{
			"bad.yaml:1: did not find expected ',' or ']'",
		}},
		{"not a mapping", "- a\n- b\n", []string{
			"bad.yaml:1: a profile must be a YAML mapping (id, vendor, model, ...)",
		}},
		{"header", "id: Bad_Id\nprotocol: can\nchemistry: lipo\ncurrent_sign: up\nmatch: {model: \"(\", extra: {lgpAgentDeviceId: \"[\"}}\n", []string{
			`bad.yaml:1: id: "Bad_Id" must be lower-case letters, digits and single dashes ([a-z0-9-]+)`,
			"bad.yaml:1: vendor: required",
			"bad.yaml:1: model: required",
			"bad.yaml:1: firmware: required",
			"bad.yaml:1: source: required",
			`bad.yaml:2: protocol: "can" is not one of modbus, snmp, local`,
			`bad.yaml:3: chemistry: "lipo" is not one of nmc, lfp, lead_acid (or empty for unknown)`,
			`bad.yaml:4: current_sign: "up" is not one of discharge_positive, charge_positive`,
			"bad.yaml:5: match.model: bad regular expression: error parsing regexp: missing closing ): `(?i)(`",
			"bad.yaml:5: match.extra.lgpAgentDeviceId: bad regular expression: error parsing regexp: missing closing ]: `[`",
		}},
		{"unknown keys", head + "colour: red\npoints:\n  - {name: a.b, address: 1, type: u16, adress: 2}\nmodbus: {max_regs: 3}\n", []string{
			"bad.yaml:7: colour: unknown key",
			"bad.yaml:9: points[0].adress: unknown key",
			"bad.yaml:10: modbus.max_regs: unknown key",
		}},
		{"wrong value types", head + "points:\n  - name: a.b\n    address: x\n    type: u16\n  - {name: c.d, address: 70000, type: u16}\n", []string{
			"bad.yaml:9: points[0].address: cannot unmarshal !!str `x` into uint16",
			"bad.yaml:11: points[1].address: cannot unmarshal !!int `70000` into uint16",
		}},
		{"scale forms", head + `points:
  - {name: a.volts, address: 1, type: u16, scale: {pow10: x}}
  - {name: b.volts, address: 2, type: u16, scale: {pow10: 1, pow2: 2}}
  - {name: c.volts, address: 3, type: u16, scale: {sf: NOPE}}
  - {name: d.volts, address: 4, type: u16, scale: {per: 3}}
  - {name: e.volts, address: 5, type: u16, scale: ten}
  - {name: f.volts, address: 6, type: u16, scale: 0}
  - {name: g.volts, address: 7, type: u16, scale: {pow10: 40}}
  - {name: h.volts, address: 8, type: enum16, scale: 0.1}
`, []string{
			`bad.yaml:8: points[0].scale.pow10: "x" is not an integer`,
			"bad.yaml:9: points[1].scale: give exactly one of pow10, pow2, sf, factor (got 2)",
			"bad.yaml:11: points[3].scale.per: unknown key (want one of pow10, pow2, sf, factor)",
			`bad.yaml:12: points[4].scale: "ten" is not a number; write 0.1, {pow10: -1}, {pow2: -9}, {sf: NAME} or {factor: 0.1}`,
			`bad.yaml:10: points[2].scale.sf: no scale factor "NOPE" in scale_factors here or in an enclosing scope`,
			"bad.yaml:15: points[7].scale: only for numeric types, not enum16",
			"bad.yaml:13: points[5].scale: must not be zero",
			"bad.yaml:14: points[6].scale.pow10: 40 is outside -12..12",
		}},
		{"types and lengths", head + `points:
  - {name: a.b, address: 1, type: u17}
  - {name: c.d, address: 2, type: string}
  - {name: e.f, address: 30, type: u32, length: 2}
  - {name: g.h, address: 40, type: bool}
  - {name: i.j, space: coil, address: 1, type: u16}
  - {name: k.l, space: attic, address: 50, type: u16}
  - {address: 60, type: u16}
  - {name: m.n, type: u16}
  - {name: o.p, address: 65535, type: u32}
  - {name: q.r, address: 70, type: u16, word_order: middle}
  - {name: s.t, address: 80, type: string, length: 126}
`, []string{
			`bad.yaml:8: points[0].type: "u17" is not a Modbus type (u16 s16 u32 s32 u64 s64 f32 f64 string bitfield16 bitfield32 enum16 enum32 bool)`,
			"bad.yaml:9: points[1].length: a string needs its length in registers",
			"bad.yaml:10: points[2].length: only for strings (u32 occupies 2 registers)",
			"bad.yaml:11: points[3].type: bool is for coil and discrete spaces; use bitfield16 with bits for a bit of a register",
			"bad.yaml:12: points[4].type: a coil point must be bool",
			`bad.yaml:13: points[5].space: "attic" is not one of holding, input, coil, discrete`,
			"bad.yaml:14: points[6].name: required (or bits)",
			"bad.yaml:15: points[7].address: required",
			"bad.yaml:16: points[8].address: 65535 + 2 registers runs past 65535",
			`bad.yaml:17: points[9].word_order: "middle" is not big or little`,
			"bad.yaml:18: points[10].length: 126 registers do not fit one read (at most 125)",
		}},
		{"overlaps", head + `points:
  - {name: a.b, address: 10, type: u32}
  - {name: c.d, address: 11, type: u16}
  - {name: e.f, address: 11, type: u16, space: input}
  - {name: g.h, address: 20, type: string, length: 4}
blocks:
  - name: cell
    count: 4
    start: 22
    stride: 1
    points:
      - {name: "cell[{cell}].voltage.volts", address: 0, type: u32}
  - name: inp
    count: 2
    start: 10
    stride: 1
    points:
      - {name: "inp[{inp}].volts", space: input, address: 0, type: u16}
`, []string{
			"bad.yaml:16: blocks[0].stride: 1 is smaller than one instance (2 registers): instances overlap",
			"bad.yaml:9: points[1].address: registers 11..11 overlap points[0] (10..11)",
			"bad.yaml:10: points[2].address: registers 11..11 overlap blocks[1] (10..11)",
			"bad.yaml:15: blocks[0].start: registers 22..26 overlap points[3] (20..23)",
		}},
		{"enum and bits", head + `points:
  - {name: a.b, address: 1, type: u16, enum: {1: on}}
  - {name: c.d, address: 2, type: u16, bits: {0: x.y}}
  - {address: 3, type: bitfield16, bits: {16: z.w, 1: ""}}
  - {address: 4, type: bitfield16}
  - {name: e.f, address: 5, type: enum16, enum: {1: ""}}
`, []string{
			"bad.yaml:8: points[0].enum: only for enum16 and enum32, not u16",
			"bad.yaml:9: points[1].bits: only for bitfield16 and bitfield32, not u16",
			"bad.yaml:10: points[2].bits.16: bit 16 is outside 0..15 of a bitfield16",
			"bad.yaml:11: points[3].name: required (or bits)",
			`bad.yaml:10: points[2].bits.1: "" is not a vocabulary name (lower-case dot-separated segments, indices as [{var}] or [n])`,
			"bad.yaml:12: points[4].enum.1: empty name",
		}},
		{"names units signs ranges", head + `points:
  - {name: Battery.Volts, address: 1, type: u16}
  - {name: a.volts, address: 2, type: u16, unit: A}
  - {name: a.thing, address: 3, type: u16, unit: V}
  - {name: b.volts, address: 4, type: u16, unit: kV}
  - {name: c.amps, address: 5, type: s16, sign: battery}
  - {name: d.amps, address: 6, type: s16, sign: up}
  - {name: e.volts, address: 7, type: u16, range: {min: 5, max: 1}}
  - {name: f.volts, address: 8, type: u16, access: w}
  - {name: a.volts, address: 9, type: u16}
  - {name: g.volts, address: 10, type: s16, invalid: [-1, 0xFFFF, 0x10000, -32769], sign: invert}
  - {name: h.volts, address: 11, type: u16, unit: V, sign: battery}
`, []string{
			"bad.yaml:12: points[4].sign: sign: battery needs the profile's current_sign",
			"bad.yaml:17: points[9].invalid[2]: 65536 does not fit a s16 (-32768..65535)",
			"bad.yaml:17: points[9].invalid[3]: -32769 does not fit a s16 (-32768..65535)",
			"bad.yaml:18: points[10].sign: sign: battery needs the profile's current_sign",
			`bad.yaml:8: points[0].name: "Battery.Volts" is not a vocabulary name (lower-case dot-separated segments, indices as [{var}] or [n])`,
			`bad.yaml:9: points[1].unit: a .volts name needs unit V, not "A"`,
			"bad.yaml:10: points[2].name: a point with unit V must end in .volts",
			`bad.yaml:11: points[3].unit: "kV" is not one of V A W VA Wh Ah Hz degC % s ohm count ppm (or empty)`,
			`bad.yaml:13: points[5].sign: "up" is not battery or invert`,
			"bad.yaml:14: points[6].range: min 5 must be below max 1",
			`bad.yaml:15: points[7].access: "w" is not r or rw`,
			`bad.yaml:16: points[8].name: "a.volts" is also the name of points[1].name`,
			`bad.yaml:18: points[10].sign: sign: battery is for battery current (A) and power (W), not "V"`,
		}},
		{"blocks", head + `points:
  - {name: n.count, address: 0, type: u16}
  - {name: label, address: 1, type: string, length: 2}
blocks:
  - {name: s, start: 10, stride: 2, points: [{name: "s[{s}].volts", address: 0, type: u16}]}
  - {name: t, count: 2, count_from: n.count, max_count: 4, start: 20, stride: 1, points: [{name: "t[{t}].volts", address: 0, type: u16}]}
  - {name: u, count: 2, start: 30, stride: 0, points: [{name: "u[{u}].volts", address: 0, type: u16}]}
  - {name: v, count_from: nope.count, start: 40, stride: 1, points: [{name: "v[{v}].volts", address: 0, type: u16}]}
  - {name: w, count_from: label, max_count: 3, start: 50, stride: 1, points: [{name: "w[{w}].volts", address: 0, type: u16}]}
  - {name: x, fit: true, max_count: 3, start: 60, stride: 1, points: [{name: "x[{x}].volts", address: 0, type: u16}]}
  - {name: Y, count: 1, start: 70, stride: 1, points: [{name: "y.volts", address: 0, type: u16}]}
  - {name: z, count: 1, start: 80, stride: 1}
`, []string{
			"bad.yaml:11: blocks[0]: needs count, count_from or fit",
			"bad.yaml:12: blocks[1]: give only one of count, count_from, fit",
			"bad.yaml:13: blocks[2].stride: must not be zero",
			"bad.yaml:14: blocks[3].max_count: required with count_from or fit, to bound a garbage count",
			`bad.yaml:14: blocks[3].count_from: no point named "nope.count" in an enclosing scope`,
			`bad.yaml:15: blocks[4].count_from: point "label" is string, not an integer`,
			"bad.yaml:16: blocks[5].fit: only inside sunspec models (as many as fit in the model's length)",
			`bad.yaml:17: blocks[6].name: "Y" must be [a-z][a-z0-9_]*`,
			"bad.yaml:18: blocks[7].points: a block needs points or blocks",
		}},
		{"placeholders and duplicates", head + `points:
  - {name: "s[{s}].volts", address: 0, type: u16}
blocks:
  - name: s
    count: 2
    start: 10
    stride: 1
    points:
      - {name: "cell.volts", address: 0, type: u16}
  - name: m
    count: 2
    start: 20
    stride: 2
    blocks:
      - name: m
        count: 2
        start: 0
        stride: 1
        points:
          - {name: "m[{m}].volts", address: 0, type: u16}
  - name: q
    count: 3
    start: 30
    stride: 1
    points:
      - {name: "q[{q}].volts", address: 0, type: u16}
  - name: q
    count: 3
    index_base: 3
    start: 40
    stride: 1
    points:
      - {name: "q[{q}].volts", address: 0, type: u16}
`, []string{
			"bad.yaml:21: blocks[1].blocks[0].name: \"m\" is already bound by an enclosing block or model index",
			"bad.yaml:8: points[0].name: {s} is not bound by an enclosing block or model index",
			"bad.yaml:15: blocks[0].points[0].name: must use {s}, or the instances of its block or model get the same name",
			`bad.yaml:39: blocks[3].points[0].name: "q[3].volts" is also the name of blocks[2].points[0].name`,
		}},
		{"protocol sections", head + `snmp: {max_oids: 10}
local: {}
points: [{name: a.b, address: 1, type: u16}]
`, []string{
			"bad.yaml:7: snmp: only for protocol snmp",
			"bad.yaml:8: local: only for protocol local",
		}},
		{"modbus sections elsewhere", "id: t\nvendor: v\nmodel: m\nfirmware: x\nsource: s\nprotocol: other\nmodbus: {}\nsunspec: {}\n", []string{
			`bad.yaml:6: protocol: "other" is not one of modbus, snmp, local`,
			"bad.yaml:7: modbus: only for protocol modbus",
			"bad.yaml:8: sunspec: only for protocol modbus",
		}},
		{"modbus options", head + `modbus:
  max_registers: 200
  max_gap: -1
  word_order: mixed
  sentinels: apc
  unreadable: [{space: holding, from: 10, to: 5}]
points: [{name: a.b, address: 1, type: u16, oid: 1.3.6}]
`, []string{
			"bad.yaml:8: modbus.max_registers: 200 is outside 1..125 (0 = default 125)",
			"bad.yaml:9: modbus.max_gap: must not be negative",
			`bad.yaml:10: modbus.word_order: "mixed" is not big or little`,
			`bad.yaml:11: modbus.sentinels: "apc" is not sunspec (or empty)`,
			"bad.yaml:12: modbus.unreadable[0]: from 10 is after to 5",
			"bad.yaml:13: points[0].oid: only for snmp profiles",
		}},
		{"empty modbus", head, []string{
			"bad.yaml:1: points: a modbus profile needs points, blocks or sunspec models",
		}},
		{"sunspec", head + `sunspec:
  bases: []
  models:
    - id: 804
      index: {string: 1}
      scale_factors: {A_SF: 41}
      points:
        - {name: "string[{string}].current.amps", address: 13, type: s16, scale: {sf: B_SF}}
        - {name: "bank.volts", address: 14, type: u16}
    - id: 804
      points: [{name: "x.count", address: 2, type: u16}]
`, []string{
			`bad.yaml:8: sunspec.bases: required: base addresses to look for "SunS" (40000, 0, 50000)`,
			"bad.yaml:11: sunspec.models[0].index.string: offset 1 is the model's ID or L register",
			`bad.yaml:14: sunspec.models[0].points[0].scale.sf: no scale factor "B_SF" in scale_factors here or in an enclosing scope`,
			"bad.yaml:16: sunspec.models[1].id: model 804 is also described by sunspec.models[0]",
			"bad.yaml:15: sunspec.models[0].points[1].name: must use {string}, or the instances of its block or model get the same name",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := profile.Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; profile %+v", p)
			}
			if p != nil {
				t.Errorf("a profile was returned with an error")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// Each line is one Problem, reachable with errors.As.
			var pr profile.Problem
			if !errors.As(err, &pr) || pr.File != "bad.yaml" {
				t.Errorf("errors.As Problem: %+v", pr)
			}
		})
	}
}

func TestLoadSources(t *testing.T) {
	prof := func(id, model string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("id: " + id + "\nvendor: v\nmodel: " + model + "\nfirmware: \"*\"\nsource: s\nprotocol: modbus\npoints: [{name: a.volts, address: 1, type: u16}]\n")}
	}
	builtin := fstest.MapFS{
		"x/a.yaml":   prof("a", "builtin"),
		"x/b.yml":    prof("b", "builtin"),
		"x/README":   &fstest.MapFile{Data: []byte("not a profile")},
		"y/deep.txt": &fstest.MapFile{Data: []byte("ignored")},
	}
	site := fstest.MapFS{"a.yaml": prof("a", "site")}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	set, err := profile.Load(log, builtin, site)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 {
		t.Fatalf("%d profiles, want 2", set.Len())
	}
	a, ok := set.Get("a")
	if !ok || a.Model != "site" || a.File != "a.yaml" {
		t.Errorf("a = %+v, want the site's", a)
	}
	if _, ok := set.Get("nope"); ok {
		t.Error("Get(nope) found something")
	}
	if all := set.All(); len(all) != 2 || all[0].ID != "a" || all[1].ID != "b" {
		t.Errorf("All() = %v", all)
	}
	if !strings.Contains(logBuf.String(), "profile overridden") || !strings.Contains(logBuf.String(), "replaces=x/a.yaml") {
		t.Errorf("override not logged: %s", logBuf.String())
	}

	// One id twice in one source is an error; so is a broken file, and
	// both are reported.
	dup := fstest.MapFS{
		"one.yaml":   prof("a", "1"),
		"two.yaml":   prof("a", "2"),
		"three.yaml": &fstest.MapFile{Data: []byte("id: c\n")},
	}
	_, err = profile.Load(nil, dup)
	want := []string{
		"three.yaml:1: vendor: required",
		"three.yaml:1: model: required",
		"three.yaml:1: firmware: required",
		"three.yaml:1: source: required",
		"three.yaml:1: protocol: required (modbus, snmp or local)",
		`two.yaml:1: id: profile "a" is also defined in one.yaml`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got %v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestLoadFile(t *testing.T) {
	p, err := profile.LoadFile("../../firmware-profiles/apc/smart-ups-modbus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "apc-smart-ups-modbus" || p.Points[0].Line == 0 || p.Blocks[0].Line == 0 {
		t.Errorf("id %q, lines %d %d", p.ID, p.Points[0].Line, p.Blocks[0].Line)
	}
	if _, err := profile.LoadFile("testdata/nope.yaml"); err == nil || !strings.Contains(err.Error(), "read profile") {
		t.Errorf("missing file: %v", err)
	}
}
