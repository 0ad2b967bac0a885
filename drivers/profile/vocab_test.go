package profile_test

import (
	"os"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

// vocabForm writes a name's indices as [i], [j], [k] by depth, the form
// docs/points.md lists names in.
func vocabForm(name string) string {
	var b strings.Builder
	depth := 0
	for {
		i := strings.IndexByte(name, '[')
		if i < 0 {
			b.WriteString(name)
			return b.String()
		}
		j := strings.IndexByte(name[i:], ']')
		if j < 0 {
			b.WriteString(name)
			return b.String()
		}
		b.WriteString(name[:i+1])
		b.WriteByte("ijklmn"[min(depth, 5)])
		b.WriteByte(']')
		depth++
		name = name[i+j+1:]
	}
}

// TestVocabularyDocumented checks that docs/points.md lists every name the
// built-in profiles publish (failing for the Modbus profiles, logging for
// the SNMP and local ones, whose owners add their names).
func TestVocabularyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/points.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(doc), "## Every name the built-in profiles publish")
	if !ok {
		t.Fatal("docs/points.md has no full list")
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(list, "\n") {
		listed[strings.TrimSpace(l)] = true
	}
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.All() {
		var check func(pts []profile.Point, bl []profile.Block)
		check = func(pts []profile.Point, bl []profile.Block) {
			for _, pt := range pts {
				names := []string{pt.Name}
				for _, b := range pt.Bits {
					names = append(names, b)
				}
				for _, n := range names {
					if n == "" || listed[vocabForm(n)] {
						continue
					}
					// SNMP and local profiles have their own owners:
					// report their new names without failing.
					if strings.HasPrefix(p.File, "snmp/") || strings.HasPrefix(p.File, "local/") {
						t.Logf("%s: %s (%s) is not in docs/points.md yet", p.File, n, vocabForm(n))
						continue
					}
					t.Errorf("%s: %s (%s) is not in docs/points.md", p.File, n, vocabForm(n))
				}
			}
			for _, b := range bl {
				check(b.Points, b.Blocks)
			}
		}
		check(p.Points, p.Blocks)
		if p.SunSpec != nil {
			for _, m := range p.SunSpec.Models {
				check(m.Points, m.Blocks)
			}
		}
	}
}
