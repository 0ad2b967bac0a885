package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	dup := filepath.Join(dir, "dup.yaml")
	const ok = "id: good\nvendor: v\nmodel: m\nfirmware: \"*\"\nsource: s\nprotocol: modbus\npoints: [{name: a.volts, address: 1, type: u16}]\n"
	for name, data := range map[string]string{
		good: ok,
		dup:  ok,
		bad:  "id: bad\nvendor: v\nmodel: m\nfirmware: \"*\"\nsource: s\nprotocol: modbus\npoints:\n  - {name: a.volts, address: 1, type: u17}\n  - {name: b.volts, adress: 2, type: u16}\n",
	} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var out, errb bytes.Buffer
	if err := cmdProfile(t.Context(), []string{"lint", good}, &out, &errb); err != nil {
		t.Fatalf("good profile: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "good.yaml: ok (good, modbus)") {
		t.Errorf("output %q", out.String())
	}

	out.Reset()
	err := cmdProfile(t.Context(), []string{"lint", "-q", good, bad, dup}, &out, &errb)
	if err == nil || err.Error() != "4 problem(s) in 2 of 3 file(s)" {
		t.Errorf("err = %v", err)
	}
	want := []string{
		bad + ":9: points[1].adress: unknown key",
		bad + `:8: points[0].type: "u17" is not a Modbus type (u16 s16 u32 s32 u64 s64 f32 f64 string bitfield16 bitfield32 enum16 enum32 bool)`,
		bad + ":9: points[1].address: required",
		dup + `:1: id: profile "good" is also defined in ` + good,
	}
	if got := strings.TrimSpace(out.String()); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	if err := cmdProfile(t.Context(), []string{"lint"}, &out, &errb); err == nil {
		t.Error("lint without files succeeded")
	}
	if err := cmdProfile(t.Context(), []string{"frobnicate"}, &out, &errb); err == nil {
		t.Error("unknown sub-command succeeded")
	}
}

func TestProfileList(t *testing.T) {
	dir := t.TempDir()
	// A site profile overriding a built-in one by id.
	site := "id: sunspec\nvendor: Site\nmodel: override\nfirmware: \"1.0\"\nsource: s\nprotocol: modbus\npoints: [{name: a.volts, address: 1, type: u16}]\n"
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := cmdProfile(t.Context(), []string{"list"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "sunspec", "apc-smart-ups-modbus", "discover-aes-rack", "SunSpec Alliance"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := cmdProfile(t.Context(), []string{"list", "-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Site") || strings.Contains(out.String(), "SunSpec Alliance") {
		t.Errorf("override not listed:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "profile overridden") {
		t.Errorf("override not logged: %s", errb.String())
	}
}

func TestProfileShow(t *testing.T) {
	var out, errb bytes.Buffer
	if err := cmdProfile(t.Context(), []string{"show", "-count", "2", "sunspec"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"current_sign: charge_positive",
		"# SunSpec model 805",
		"string[1].module[1].cell[2].temperature.celsius",
		"holding 45",   // cell 1 temperature: 44 + 1
		"sf:Tmp_SF@43", // its scale factor register
		"string[1].module[1].cell[2].balancing",
		"battery.current.amps",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "negated") {
		t.Error("battery current not shown as negated")
	}
	if err := cmdProfile(t.Context(), []string{"show", "nope"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `no profile "nope"`) {
		t.Errorf("unknown id: %v", err)
	}
}
