package profile_test

import (
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic or hang, an
// error must name the file, and a profile it accepts must expand.
func FuzzParse(f *testing.F) {
	fs.WalkDir(firmwareprofiles.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			// The heads of the real profiles: whole files (20 KB) make
			// the fuzzer's minimization crawl.
			b := mustRead(f, firmwareprofiles.FS, name)
			f.Add(b[:min(len(b), 1500)])
		}
		return nil
	})
	for _, s := range []string{
		head + "points: [{name: a.volts, address: 1, type: u16, scale: {pow2: -9}}]\n",
		head + "blocks: [{name: c, count: 3, start: 1, stride: 2, points: [{name: \"c[{c}].volts\", address: 0, type: u16}]}]\n",
		head + "points: [{name: a.b, address: 1, type: bitfield32, bits: {31: x.y}}]\n",
		"a: &a [*a]\n",
		"id: [\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := profile.Parse("fuzz.yaml", data)
		if err != nil {
			if p != nil {
				t.Fatal("profile returned with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("problem without the file name: %q", line)
				}
			}
			return
		}
		if p.ID == "" || p.Protocol == "" {
			t.Fatalf("accepted a profile without id/protocol: %+v", p)
		}
		count := func(b *profile.Block, vars map[string]int, start uint16) (int, error) {
			return min(b.MaxCount, 3), nil
		}
		n := 0
		yield := func(profile.Instance) error { n++; return nil }
		if err := profile.Expand(p.TopScope(), 0, nil, count, yield); err != nil {
			t.Fatalf("expand an accepted profile: %v", err)
		}
		if p.SunSpec != nil {
			for i := range p.SunSpec.Models {
				if err := profile.Expand(p.SunSpec.Models[i].Scope(), 40002, map[string]int{"string": 1, "module": 1}, count, yield); err != nil {
					t.Fatalf("expand model: %v", err)
				}
			}
		}
	})
}

func BenchmarkLoadEmbedded(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := profile.Load(log, firmwareprofiles.FS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSunSpec(b *testing.B) {
	data := mustRead(b, firmwareprofiles.FS, "sunspec/sunspec-battery.yaml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := profile.Parse("sunspec-battery.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExpandName(b *testing.B) {
	vars := map[string]int{"string": 2, "module": 14, "cell": 7}
	b.ReportAllocs()
	for b.Loop() {
		_ = profile.ExpandName("string[{string}].module[{module}].cell[{cell}].voltage.volts", vars)
	}
}
