package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// FileConfig is the `evacuation:` section of collector.yaml:
//
//	evacuation:
//	  signing_key: /etc/ember/collector.nk   # nkey seed (nk -gen user)
//	  trusted_issuers: [UB..., UC...]        # the other collectors' public keys
//	  lease_ttl: 3s
//	  replicas: 1
//	  hook_rate_per_minute: 60               # token bucket over all hook attempts (0: none)                            # 3 on a NATS cluster
//	  topology_file: topology.yaml           # or an inline `topology:` mapping
//	  policy: {hold: 30s, corroboration: {families: 2, agents: 2, emergency_alone: true}}
//	  hooks:
//	    - {name: k8s-drain, command: [/usr/local/lib/ember/k8s-drain.sh], phases: [prestage, evacuate, abort], timeout: 10m}
//	    - {name: itsm, url: "https://itsm.example/hooks/ember", secret: "${EMBER_ITSM_SECRET}"}
type FileConfig struct {
	SigningKey     string        `yaml:"signing_key"`
	TrustedIssuers []string      `yaml:"trusted_issuers"`
	LeaseTTL       time.Duration `yaml:"lease_ttl"`
	Replicas       int           `yaml:"replicas"`
	TopologyFile   string        `yaml:"topology_file"`
	Topology       *Topology     `yaml:"topology"`
	Policy         PolicyConfig  `yaml:"policy"`
	Hooks          []hooks.Spec  `yaml:"hooks"`
	// HookRatePerMinute bounds hook attempts (0: no limit).
	HookRatePerMinute int `yaml:"hook_rate_per_minute"`
}

// ParseConfig decodes and validates the `evacuation:` section (node is
// the mapping under the key; file is for messages). A missing section
// (nil or zero node) returns nil, nil: evacuation is off. Relative paths
// are relative to the file's directory.
func ParseConfig(file string, node *yaml.Node, inv Inventory) (*FileConfig, error) {
	if node == nil || node.Kind == 0 {
		return nil, nil
	}
	fc := FileConfig{Policy: DefaultPolicy(), LeaseTTL: 3 * time.Second, Replicas: 1}
	// Decode field by field checking unknown keys ourselves: yaml.v3's
	// Node.Decode ignores KnownFields.
	if err := knownKeys(file, node, fc); err != nil {
		return nil, err
	}
	if err := node.Decode(&fc); err != nil {
		return nil, yamlErr(file, err)
	}
	var errs []string
	at := func(key string) string {
		n := nodeAt(node, strings.Split(key, ".")[0])
		if n != nil && n != node {
			return file + ":" + strconv.Itoa(n.Line) + ": evacuation." + key
		}
		return file + ": evacuation." + key
	}
	if fc.SigningKey == "" {
		errs = append(errs, at("signing_key")+": required: evacuation messages must be signed (nkey seed file, nk -gen user)")
	} else {
		fc.SigningKey = rel(file, fc.SigningKey)
		if _, err := hooks.LoadSigner(fc.SigningKey); err != nil {
			errs = append(errs, at("signing_key")+": "+err.Error())
		}
	}
	for i, k := range fc.TrustedIssuers {
		if !strings.HasPrefix(k, "U") || len(k) != 56 {
			errs = append(errs, fmt.Sprintf("%s[%d]: want an nkey user public key (U..., 56 characters), got %q", at("trusted_issuers"), i, k))
		}
	}
	if fc.LeaseTTL < time.Second || fc.LeaseTTL > time.Minute {
		errs = append(errs, fmt.Sprintf("%s: want 1s to 1m, got %v", at("lease_ttl"), fc.LeaseTTL))
	}
	if fc.HookRatePerMinute < 0 {
		errs = append(errs, at("hook_rate_per_minute")+": must not be negative")
	}
	if fc.Replicas != 1 && fc.Replicas != 3 && fc.Replicas != 5 {
		errs = append(errs, fmt.Sprintf("%s: want 1, 3 or 5, got %d", at("replicas"), fc.Replicas))
	}
	switch {
	case fc.Topology != nil && fc.TopologyFile != "":
		errs = append(errs, at("topology")+": give topology or topology_file, not both")
	case fc.TopologyFile != "":
		t, err := LoadTopology(rel(file, fc.TopologyFile), inv)
		if err != nil {
			errs = append(errs, err.Error())
		}
		fc.Topology = t
	case fc.Topology != nil:
		var tn *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == "topology" {
				tn = node.Content[i+1]
			}
		}
		if err := fc.Topology.Check(file, tn, inv); err != nil {
			errs = append(errs, prefixKeys(err.Error(), "evacuation.topology."))
		}
	default:
		errs = append(errs, at("topology")+": required (topology or topology_file)")
	}
	if err := fc.Policy.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			errs = append(errs, at("policy")+"."+e)
		}
	}
	for _, p := range hooks.Validate(fc.Hooks) {
		loc := file
		if n := nodeAt(node, "hooks", p.Index, p.Key); n != nil && n != node {
			loc += ":" + strconv.Itoa(n.Line)
		}
		errs = append(errs, loc+": evacuation."+p.Error())
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return &fc, nil
}

// prefixKeys inserts a key prefix after "file:line: " in each line.
func prefixKeys(msg, prefix string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		// "file:line: key: what" -> "file:line: prefix.key: what"
		parts := strings.SplitN(l, ": ", 2)
		if len(parts) == 2 {
			lines[i] = parts[0] + ": " + prefix + parts[1]
		}
	}
	return strings.Join(lines, "\n")
}

func rel(file, p string) string {
	if p == "" || filepath.IsAbs(p) || file == "" {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}

// knownKeys rejects keys FileConfig does not have, with their line.
func knownKeys(file string, node *yaml.Node, _ FileConfig) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: evacuation: want a mapping", file, node.Line)
	}
	known := map[string]bool{"signing_key": true, "trusted_issuers": true, "lease_ttl": true, "replicas": true,
		"topology_file": true, "topology": true, "policy": true, "hooks": true, "hook_rate_per_minute": true}
	var errs []string
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if !known[k.Value] {
			errs = append(errs, fmt.Sprintf("%s:%d: evacuation.%s: unknown key", file, k.Line, k.Value))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// NewEngine builds the engine from a parsed section. site and id are the
// collector's; onAudit may be nil. The engine subscribes to the site's
// alerts itself; the collector may also feed its stream replay through
// OnAlert (duplicates are ignored by alert id).
func (fc *FileConfig) NewEngine(site, id string, nc *nats.Conn, log *slog.Logger, onAudit func(AuditRecord)) (*Engine, error) {
	signer, err := hooks.LoadSigner(fc.SigningKey)
	if err != nil {
		return nil, err
	}
	return New(Config{Site: site, ID: id, Topology: fc.Topology, Policy: fc.Policy, Hooks: fc.Hooks, Signer: signer,
		TrustedIssuers: fc.TrustedIssuers, LeaseTTL: fc.LeaseTTL, Replicas: fc.Replicas,
		HookRatePerMinute: fc.HookRatePerMinute, OnAudit: onAudit}, nc, log)
}

// Evacuations implements the collector's EvacuationSource: each known
// evacuation as its latest phase message (unsigned; the signed ones are
// on NATS).
func (e *Engine) Evacuations(ctx context.Context) ([]wire.Evacuation, error) {
	evs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Evacuation, 0, len(evs))
	for _, ev := range evs {
		phase := ""
		if n := len(ev.Phases); n > 0 {
			phase = ev.Phases[n-1]
		}
		out = append(out, wire.Evacuation{ID: ev.ID, Site: ev.Site, Domain: ev.Domain, Phase: phase, Urgency: ev.Urgency,
			Reason:  wire.EvacReason{AlertIDs: ev.AlertIDs, Summary: ev.Summary + " [" + ev.State + "]"},
			Targets: ev.Targets, Time: ev.Updated, Drill: ev.Drill, DryRun: ev.DryRun})
	}
	return out, nil
}
