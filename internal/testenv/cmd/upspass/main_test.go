package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(state, []byte(`{"2.4.0": 15, "1.2.0": "Other", "2.7.0": null, "2.3.0": {"type": "timeticks", "value": 17}, "1.3.6.1.2.1.33.1.9.5.0": 5000}`), 0o644)
	in := "PING\nget\n.1.3.6.1.2.1.33.1.2.4.0\nget\n.1.3.6.1.2.1.33.1.2.7.0\ngetnext\n.1.3.6.1.2.1.33.1.2.6.0\n" +
		"get\n.1.3.6.1.2.1.33.1.2.3.0\ngetnext\n.1.3.6.1.2.1.33.1.9.5.0\ngetnext\n.1.3.6.1.2.1.33.1.9.6.0\nset\n.1.3.6.1.2.1.33.1.1.5.0\nstring x\n\n"
	var out bytes.Buffer
	if err := serve(strings.NewReader(in), &out, state); err != nil {
		t.Fatal(err)
	}
	want := "PONG\n" +
		".1.3.6.1.2.1.33.1.2.4.0\ninteger\n15\n" +
		"NONE\n" + // 2.7.0 removed by null
		".1.3.6.1.2.1.33.1.3.1.0\ncounter\n3\n" + // getnext skips the removed 2.7.0
		".1.3.6.1.2.1.33.1.2.3.0\ntimeticks\n17\n" +
		".1.3.6.1.2.1.33.1.9.6.0\ninteger\n2700\n" +
		"NONE\n" +
		"not-writable\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
