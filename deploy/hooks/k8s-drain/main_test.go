package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// fakeKubectl stands in for kubectl (no API server runs here): it logs its
// argv and answers the read-only queries the hook makes.
func fakeKubectl(t *testing.T, annotationValue string) (bin, log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	bin = filepath.Join(dir, "kubectl")
	script := `#!/bin/sh
echo "$*" >> "` + log + `"
case "$*" in
  "get nodes -o jsonpath={.items[*].metadata.name}") echo "node-1 node-2 node-3";;
  "get nodes -l ember.io/power-domain=ups-2 -o jsonpath={.items[*].metadata.name}") echo "node-2";;
  "get node "*) echo "` + annotationValue + `";;
esac
`
	os.WriteFile(bin, []byte(script), 0o755)
	return bin, log
}

func runHook(t *testing.T, bin string, ev wire.Evacuation) (int, string) {
	b, _ := json.Marshal(ev)
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"-kubectl", bin, "-timeout", "2m"}, bytes.NewReader(b), &out, &errb)
	return code, out.String() + errb.String()
}

func calls(log string) string { b, _ := os.ReadFile(log); return string(b) }

func TestPhases(t *testing.T) {
	bin, log := fakeKubectl(t, "ev-1")
	ev := wire.Evacuation{ID: "ev-1", Phase: wire.PhasePrestage, Targets: []string{"host-a", "node-1", "selector:ember.io/power-domain=ups-2"}}
	if code, out := runHook(t, bin, ev); code != 0 {
		t.Fatalf("prestage: %d %s", code, out)
	}
	c := calls(log)
	for _, want := range []string{"cordon node-1\n", "cordon node-2\n", "annotate --overwrite node node-1 ember.io/cordoned-by=ev-1\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("prestage calls lack %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "host-a") {
		t.Errorf("acted on a non-node target:\n%s", c)
	}
	os.Remove(log)
	ev.Phase, ev.Urgency = wire.PhaseEvacuate, wire.UrgencyEmergency
	if code, out := runHook(t, bin, ev); code != 0 {
		t.Fatalf("evacuate: %d %s", code, out)
	}
	c = calls(log)
	if !strings.Contains(c, "drain node-1 --ignore-daemonsets --delete-emptydir-data --timeout=2m0s --grace-period=30") ||
		strings.Contains(c, "--disable-eviction") || strings.Contains(c, "--force") {
		t.Fatalf("drain calls:\n%s", c)
	}
	os.Remove(log)
	ev.Phase = wire.PhaseAbort
	runHook(t, bin, ev)
	if c := calls(log); !strings.Contains(c, "uncordon node-1") {
		t.Fatalf("abort calls:\n%s", c)
	}
}

func TestAbortLeavesOthersCordons(t *testing.T) {
	bin, log := fakeKubectl(t, "someone-else")
	code, out := runHook(t, bin, wire.Evacuation{ID: "ev-1", Phase: wire.PhaseAbort, Targets: []string{"node-1"}})
	if code != 0 || strings.Contains(calls(log), "uncordon") || !strings.Contains(out, "leaving it") {
		t.Fatalf("%d %s\n%s", code, out, calls(log))
	}
}

func TestDryRunOnlyReads(t *testing.T) {
	bin, log := fakeKubectl(t, "ev-1")
	code, out := runHook(t, bin, wire.Evacuation{ID: "ev-1", Phase: wire.PhaseEvacuate, DryRun: true, Targets: []string{"node-1"}})
	if code != 0 || !strings.Contains(out, "dry run: would run: "+bin+" drain node-1") {
		t.Fatalf("%d %s", code, out)
	}
	if c := calls(log); strings.Contains(c, "drain") || strings.Contains(c, "cordon") {
		t.Fatalf("dry run mutated:\n%s", c)
	}
}

func TestRefusals(t *testing.T) {
	bin, log := fakeKubectl(t, "")
	for _, ev := range []wire.Evacuation{
		{ID: "e", Phase: wire.PhaseEvacuate},
		{ID: "e", Phase: wire.PhaseEvacuate, Targets: []string{"--all"}},
		{ID: "e", Phase: wire.PhaseEvacuate, Targets: []string{"node-1", "node-2", "node-3"}},
		{ID: "e", Phase: wire.PhaseEvacuate, Targets: []string{"selector:a=b; rm -rf /"}},
	} {
		if code, out := runHook(t, bin, ev); code == 0 {
			t.Errorf("targets %q accepted: %s", ev.Targets, out)
		}
	}
	if c := calls(log); strings.Contains(c, "drain") {
		t.Fatalf("refused evacuation drained:\n%s", c)
	}
}
