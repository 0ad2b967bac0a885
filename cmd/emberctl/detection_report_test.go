package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDetectionReportTable(t *testing.T) {
	var out, errb bytes.Buffer
	err := cmdDetectionReport(context.Background(), []string{"-rack", "1x2x16", "-seeds", "1", "-periods", "1s,10s",
		"-scenario", "internal_short,heavy_discharge,single_spike"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"| internal_short | real | 1s |", "| heavy_discharge | benign | 10s |", "FALSE ALARM", "**6/6 runs pass.**"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "\n| ") != 1+6 { // header + one row per scenario and period
		t.Errorf("want 7 table rows:\n%s", s)
	}
}

func TestDetectionReportBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-rack", "8x16"}, {"-periods", "fast"}, {"-scenario", "nope"}, {"-seeds", "0"}} {
		if err := cmdDetectionReport(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
