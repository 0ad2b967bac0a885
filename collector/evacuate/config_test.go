package evacuate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func parseSection(t *testing.T, dir, text string) (*FileConfig, error) {
	t.Helper()
	file := filepath.Join(dir, "collector.yaml")
	os.WriteFile(file, []byte(text), 0o600)
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		t.Fatal(err)
	}
	var sec *yaml.Node
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "evacuation" {
			sec = m.Content[i+1]
		}
	}
	return ParseConfig(file, sec, nil)
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	seed, _ := mustKP(t).Seed()
	os.WriteFile(filepath.Join(dir, "collector.nk"), seed, 0o600)
	os.WriteFile(filepath.Join(dir, "topo.yaml"), []byte("domains:\n  - {id: ups-1, batteries: [{agent: gw-01, device: b1}], hosts: [h1]}\n"), 0o600)
	fc, err := parseSection(t, dir, `site: s1
evacuation:
  signing_key: collector.nk
  topology_file: topo.yaml
  policy:
    hold: 10s
    corroboration: {families: 2, agents: 0, emergency_alone: true}
  hooks:
    - {name: drain, exec: [/bin/true], phases: [evacuate]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Policy.Hold.Seconds() != 10 || fc.Policy.Corroboration.Agents != 0 || fc.Policy.EvidenceWindow.Seconds() != 120 || len(fc.Topology.Domains) != 1 {
		t.Fatalf("config %+v", fc)
	}
	if fc.Hooks[0].Exec[0] != "/bin/true" {
		t.Fatalf("hooks %+v", fc.Hooks)
	}
	if fc, err := ParseConfig("x.yaml", nil, nil); fc != nil || err != nil {
		t.Fatal("absent section should mean off")
	}
}

func TestParseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := parseSection(t, dir, `site: s1
evacuation:
  lease_ttl: 100ms
  replicas: 2
  trusted_issuers: [nope]
  bogus: 1
`)
	if err == nil || !strings.Contains(err.Error(), "collector.yaml:6: evacuation.bogus: unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
	_, err = parseSection(t, dir, `site: s1
evacuation:
  lease_ttl: 100ms
  replicas: 2
  trusted_issuers: [nope]
  policy:
    hold: 20m
  topology:
    domains:
      - id: ups-1
        batteries: []
        hosts: [h1]
  hooks:
    - {name: x, type: exec, command: [sh, -c, "echo"]}
`)
	for _, w := range []string{
		"evacuation.signing_key: required",
		"collector.yaml:3: evacuation.lease_ttl: want 1s to 1m",
		"collector.yaml:4: evacuation.replicas",
		"collector.yaml:5: evacuation.trusted_issuers[0]",
		"collector.yaml:6: evacuation.policy.hold: want 0s to 10m",
		"collector.yaml:11: evacuation.topology.domains[0].batteries: domain \"ups-1\" has no battery",
		"collector.yaml:14: evacuation.hooks[0].command: exec hooks take argv",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}
