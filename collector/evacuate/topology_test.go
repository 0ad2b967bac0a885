package evacuate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type inv map[string]bool

func (i inv) HasDevice(agent, device string) bool { return i[agent+"/"+device] }

func TestLoadTopology(t *testing.T) {
	topo, err := LoadTopology("testdata/topology.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := topo.DomainOf("gw-03", "rack-b1")
	if !ok || d.ID != "ups-2" {
		t.Fatalf("DomainOf = %v %v", d, ok)
	}
	if got := strings.Join(d.Targets(), ","); got != "host-c,node-1,selector:ember.io/power-domain=ups-2" {
		t.Fatalf("targets %s", got)
	}
	if topo.Capacity() != 70 {
		t.Fatalf("capacity %v", topo.Capacity())
	}
}

func TestLoadTopologyErrors(t *testing.T) {
	_, err := LoadTopology("testdata/topology-bad.yaml", inv{"gw-01/rack-a1": true})
	if err == nil {
		t.Fatal("bad topology accepted")
	}
	want := []string{
		"testdata/topology-bad.yaml:7: domains[0].racks[0].hosts[1]: wildcards",
		"testdata/topology-bad.yaml:8: domains[1].id: must match",
		"testdata/topology-bad.yaml:10: domains[1].batteries[0]: battery gw-01/rack-a1 already belongs to domain \"ups-1\"",
		"testdata/topology-bad.yaml:11: domains[1].batteries[1].device: unknown device gw-09/ghost",
		"testdata/topology-bad.yaml:12: domains[1].hosts[0]: host \"host-a\" is also fed by domain \"ups-1\"",
		"testdata/topology-bad.yaml:14: domains[2].batteries: domain \"ups-3\" has no battery device",
		"domains[2]: domain \"ups-3\" is empty",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestLoadTopologyUnknownKeyAndShared(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.yaml")
	os.WriteFile(p, []byte("domains:\n  - id: a\n    batteries: [{agent: g, device: d}]\n    hostz: [x]\n"), 0o600)
	_, err := LoadTopology(p, nil)
	if err == nil || !strings.Contains(err.Error(), p+":4: field hostz not found") {
		t.Fatalf("unknown key: %v", err)
	}
	os.WriteFile(p, []byte(`allow_shared_hosts: true
domains:
  - {id: a, batteries: [{agent: g, device: d}], hosts: [x, y]}
  - {id: b, batteries: [{agent: g, device: e}], hosts: [x, z]}
`), 0o600)
	if _, err := LoadTopology(p, nil); err != nil {
		t.Fatalf("shared host with allow_shared_hosts: %v", err)
	}
	os.WriteFile(p, []byte(`domains:
  - {id: a, batteries: [{agent: g, device: d}], hosts: [x]}
  - {id: b, batteries: [{agent: g, device: e}], hosts: [y]}
  - {id: c, batteries: [{agent: g, device: f}], hosts: [x, y]}
`), 0o600)
	if _, err := LoadTopology(p, nil); err == nil || !strings.Contains(err.Error(), "targets every host") {
		t.Fatalf("whole-site domain: %v", err)
	}
}
