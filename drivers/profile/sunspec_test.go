package profile_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

// jsonGroup is the part of a SunSpec model JSON file the test reads.
type jsonGroup struct {
	Name   string      `json:"name"`
	Count  any         `json:"count"` // number or count point name
	Points []jsonPoint `json:"points"`
	Groups []jsonGroup `json:"groups"`
}

type jsonPoint struct {
	Name      string `json:"name"`
	Mandatory string `json:"mandatory"`
	Type      string `json:"type"`
	Size      int    `json:"size"`
	SF        any    `json:"sf"` // name, or a number in some models
	Units     string `json:"units"`
	Access    string `json:"access"`
	Symbols   []struct {
		Name  string `json:"name"`
		Value int64  `json:"value"`
	} `json:"symbols"`
}

// layout is a group flattened to offsets.
type layout struct {
	byOff  map[int]jsonPoint
	byName map[string]int // point name -> offset
	size   int
	groups map[int]jsonGroupAt // group start offset -> group
}

type jsonGroupAt struct {
	g      jsonGroup
	lay    *layout
	stride int
}

func flatten(g jsonGroup) *layout {
	l := &layout{byOff: map[int]jsonPoint{}, byName: map[string]int{}, groups: map[int]jsonGroupAt{}}
	off := 0
	for _, p := range g.Points {
		l.byOff[off] = p
		l.byName[p.Name] = off
		off += p.Size
	}
	for _, sub := range g.Groups {
		sl := flatten(sub)
		l.groups[off] = jsonGroupAt{g: sub, lay: sl, stride: sl.size}
		// Repeating groups come last in these models; the fixed size
		// does not include them.
	}
	l.size = off
	return l
}

var sunspecTypes = map[string]string{
	"uint16": "u16", "int16": "s16", "uint32": "u32", "int32": "s32",
	"uint64": "u64", "int64": "s64", "float32": "f32", "float64": "f64",
	"string": "string", "enum16": "enum16", "enum32": "enum32",
	"bitfield16": "bitfield16", "bitfield32": "bitfield32",
	"acc16": "u16", "acc32": "u32", "acc64": "u64",
}

var sunspecUnits = map[string]string{
	"V": "V", "A": "A", "W": "W", "Ah": "Ah", "Wh": "Wh", "C": "degC", "%": "%", "%WHRtg": "%",
}

func TestSunSpecProfile(t *testing.T) {
	p, err := profile.Parse("sunspec-battery.yaml", mustRead(t, firmwareprofiles.FS, "sunspec/sunspec-battery.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "sunspec" || p.SunSpec == nil {
		t.Fatalf("id %q, sunspec %v", p.ID, p.SunSpec)
	}
	if !slices.Equal(p.SunSpec.Bases, []uint16{40000, 0, 50000}) {
		t.Errorf("bases = %v, want [40000 0 50000]", p.SunSpec.Bases)
	}
	var ids []uint16
	for i := range p.SunSpec.Models {
		m := &p.SunSpec.Models[i]
		ids = append(ids, m.ID)
		t.Run(fmt.Sprint(m.ID), func(t *testing.T) {
			var doc struct {
				ID    int       `json:"id"`
				Group jsonGroup `json:"group"`
			}
			data, err := os.ReadFile(fmt.Sprintf("testdata/sunspec/model_%d.json", m.ID))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.ID != int(m.ID) {
				t.Fatalf("json id %d", doc.ID)
			}
			lay := flatten(doc.Group)
			for name, off := range m.Index {
				jp, ok := lay.byOff[int(off)]
				want := map[string][]string{"string": {"Idx", "StrIdx"}, "module": {"ModIdx"}}[name]
				if !ok || !slices.Contains(want, jp.Name) {
					t.Errorf("index %s at offset %d is %q, want one of %v", name, off, jp.Name, want)
				}
			}
			checkScope(t, fmt.Sprintf("model %d", m.ID), m.Scope(), lay, m.Points, nil)
			checkMandatory(t, m, doc.Group)
			for bi := range m.Blocks {
				b := &m.Blocks[bi]
				ga, ok := lay.groups[int(b.Start)]
				if !ok {
					t.Errorf("block %s starts at %d: no repeating group there", b.Name, b.Start)
					continue
				}
				if int(b.Stride) != ga.stride {
					t.Errorf("block %s stride %d, group %s is %d registers", b.Name, b.Stride, ga.g.Name, ga.stride)
				}
				switch c := ga.g.Count.(type) {
				case float64:
					if c == 0 && !b.Fit {
						t.Errorf("block %s: group count 0 means fit", b.Name)
					}
				case string:
					// count_from names a profile point; it must sit at
					// the count point's offset.
					cp := findPoint(m.Points, b.CountFrom)
					if cp == nil || int(*cp.Address) != lay.byName[c] {
						t.Errorf("block %s: count_from %q is not the point at %s's offset %d", b.Name, b.CountFrom, c, lay.byName[c])
					}
				}
				checkScope(t, fmt.Sprintf("model %d block %s", m.ID, b.Name), b.Scope(), ga.lay, b.Points, &m.ScaleFactors)
			}
		})
	}
	if !slices.Equal(ids, []uint16{1, 802, 803, 804, 805}) {
		t.Errorf("models = %v, want 1 802 803 804 805", ids)
	}
}

// elsewhere lists the mandatory SunSpec points the profile reads from
// another model on purpose (one vocabulary name, one source: the parent's
// repeating group), and the registers that are not points.
var elsewhere = map[string]string{
	"ID": "model header", "L": "model header",
	"Idx": "index", "StrIdx": "index", "ModIdx": "index",
	"803.string.StrNMod": "804 NMod drives 804's module group",
	"804.St":             "803 string group StrSt",
	"804.SoC":            "803 string group StrSoC",
	"804.A":              "803 string group StrA",
	"804.CellVMax":       "803 string group StrCellVMax",
	"804.CellVMin":       "803 string group StrCellVMin",
	"804.CellVAvg":       "803 string group StrCellVAvg",
	"804.ModTmpMax":      "803 string group StrModTmpMax",
	"804.ModTmpMaxMod":   "803 string group StrModTmpMaxMod",
	"804.ModTmpMin":      "803 string group StrModTmpMin",
	"804.ModTmpMinMod":   "803 string group StrModTmpMinMod",
	"804.ModTmpAvg":      "803 string group StrModTmpAvg",
	"804.Evt1":           "803 string group StrEvt1",
	"805.NCell":          "804 module group ModNCell",
	"805.CellVMax":       "804 module group ModCellVMax",
	"805.CellVMin":       "804 module group ModCellVMin",
	"805.CellVAvg":       "804 module group ModCellVAvg",
	"805.CellTmpMax":     "804 module group ModCellTmpMax",
	"805.CellTmpMin":     "804 module group ModCellTmpMin",
	"805.CellTmpAvg":     "804 module group ModCellTmpAvg",
}

// checkMandatory checks that every mandatory, read-only SunSpec point is in
// the profile, or listed in elsewhere.
func checkMandatory(t *testing.T, m *profile.SunSpecModel, g jsonGroup) {
	t.Helper()
	covered := func(pts []profile.Point, lay *layout, name string) bool {
		for _, pt := range pts {
			if jp, ok := lay.byOff[int(*pt.Address)]; ok && jp.Name == name {
				return true
			}
		}
		return false
	}
	lay := flatten(g)
	check := func(prefix string, pts []profile.Point, lay *layout, jps []jsonPoint) {
		for _, jp := range jps {
			if jp.Mandatory != "M" || jp.Type == "pad" || jp.Type == "sunssf" || strings.EqualFold(jp.Access, "RW") {
				continue
			}
			if elsewhere[jp.Name] != "" || elsewhere[prefix+jp.Name] != "" || covered(pts, lay, jp.Name) {
				continue
			}
			t.Errorf("model %d: mandatory point %s%s is not in the profile", m.ID, prefix, jp.Name)
		}
	}
	check(fmt.Sprintf("%d.", m.ID), m.Points, lay, g.Points)
	for off, ga := range lay.groups {
		var pts []profile.Point
		for _, b := range m.Blocks {
			if int(b.Start) == off {
				pts = b.Points
			}
		}
		check(fmt.Sprintf("%d.%s.", m.ID, ga.g.Name), pts, ga.lay, ga.g.Points)
	}
}

func findPoint(pts []profile.Point, name string) *profile.Point {
	for i := range pts {
		if pts[i].Name == name {
			return &pts[i]
		}
	}
	return nil
}

// checkScope checks each profile point against the JSON point at its offset.
// Scale factors are looked up in the scope and then in the model (outer).
func checkScope(t *testing.T, where string, s profile.Scope, lay *layout, points []profile.Point, outer *map[string]uint16) {
	t.Helper()
	sfAddr := func(name string) (uint16, bool) {
		if a, ok := s.ScaleFactors[name]; ok {
			return a, true
		}
		if outer != nil {
			a, ok := (*outer)[name]
			return a, ok
		}
		return 0, false
	}
	for _, pt := range points {
		off := int(*pt.Address)
		jp, ok := lay.byOff[off]
		if !ok {
			t.Errorf("%s: %s at offset %d: no SunSpec point starts there", where, pt.Name, off)
			continue
		}
		if want := sunspecTypes[jp.Type]; pt.Type != want {
			t.Errorf("%s: %s (%s at %d) type %s, want %s", where, pt.Name, jp.Name, off, pt.Type, want)
		}
		if pt.RegCount() != jp.Size {
			t.Errorf("%s: %s (%s) occupies %d registers, want %d", where, pt.Name, jp.Name, pt.RegCount(), jp.Size)
		}
		jsf, _ := jp.SF.(string)
		psf := ""
		if pt.Scale != nil {
			psf = pt.Scale.SF
		}
		if jsf != psf {
			t.Errorf("%s: %s (%s) scale factor %q, want %q", where, pt.Name, jp.Name, psf, jsf)
		}
		if psf != "" {
			a, ok := sfAddr(psf)
			// Scale factors of a group's points live in the model.
			want, wok := lay.byName[psf]
			if outer != nil {
				want, wok = -1, true
				if ma, ok := (*outer)[psf]; ok {
					want = int(ma)
				}
			}
			if !ok || !wok || int(a) != want {
				t.Errorf("%s: scale factor %s at %d, want %d", where, psf, a, want)
			}
		}
		if u, ok := sunspecUnits[jp.Units]; ok && pt.Name != "" && pt.Unit != u {
			t.Errorf("%s: %s (%s) unit %q, want %q", where, pt.Name, jp.Name, pt.Unit, u)
		}
		if strings.EqualFold(jp.Access, "RW") != (pt.Access == "rw") {
			t.Errorf("%s: %s (%s) access %q, json %q", where, pt.Name, jp.Name, pt.Access, jp.Access)
		}
		codes := map[int64]bool{}
		for _, sym := range jp.Symbols {
			codes[sym.Value] = true
		}
		for c := range pt.Enum {
			if !codes[c] {
				t.Errorf("%s: %s enum code %d is not a symbol of %s", where, pt.Name, c, jp.Name)
			}
		}
		if len(pt.Enum) > 0 && len(pt.Enum) != len(codes) {
			t.Errorf("%s: %s maps %d enum codes, %s has %d symbols", where, pt.Name, len(pt.Enum), jp.Name, len(codes))
		}
		for b := range pt.Bits {
			if !codes[int64(b)] {
				t.Errorf("%s: %s bit %d is not a symbol of %s", where, pt.Name, b, jp.Name)
			}
		}
	}
	// Every scale factor named in the scope must be the sunssf point of
	// that name.
	for name, a := range s.ScaleFactors {
		jp, ok := lay.byOff[int(a)]
		if !ok || jp.Name != name || jp.Type != "sunssf" {
			t.Errorf("%s: scale_factors %s: %d is %q (%s)", where, name, a, jp.Name, jp.Type)
		}
	}
}

func mustRead(t testing.TB, fsys fs.FS, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
