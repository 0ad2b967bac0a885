package evacuate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Topology says which power domain (a UPS or battery system) feeds what.
// It is the `topology:` section of the collector's configuration, or a
// file of its own read with LoadTopology.
//
//	allow_shared_hosts: false
//	domains:
//	  - id: ups-2
//	    description: UPS-2 Li-ion cabinet, room B
//	    capacity: 120            # any unit, the same for all domains; default: number of targets
//	    batteries: [{agent: gw-01, device: rack-a1}]
//	    racks: [{id: b07, hosts: [host-a, host-b]}]
//	    hosts: [host-c]
//	    kubernetes: {nodes: [node-1], selector: "ember.io/power-domain=ups-2"}
type Topology struct {
	// AllowSharedHosts permits a host fed by two domains (dual-corded
	// racks on two UPSes). Otherwise it is an error.
	AllowSharedHosts bool     `yaml:"allow_shared_hosts,omitempty" json:"allow_shared_hosts,omitempty"`
	Domains          []Domain `yaml:"domains" json:"domains"`
}

// Domain is one power domain.
type Domain struct {
	ID          string      `yaml:"id" json:"id"`
	Description string      `yaml:"description,omitempty" json:"description,omitempty"`
	Capacity    float64     `yaml:"capacity,omitempty" json:"capacity,omitempty"`
	Batteries   []Battery   `yaml:"batteries" json:"batteries"`
	Racks       []Rack      `yaml:"racks,omitempty" json:"racks,omitempty"`
	Hosts       []string    `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	Kubernetes  *Kubernetes `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
}

// Battery is a monitored battery device (as named by its agent).
type Battery struct {
	Agent  string `yaml:"agent" json:"agent"`
	Device string `yaml:"device" json:"device"`
}

// Rack is a rack and the hosts in it.
type Rack struct {
	ID    string   `yaml:"id" json:"id"`
	Hosts []string `yaml:"hosts" json:"hosts"`
}

// Kubernetes names the nodes of a domain, by name or label selector.
type Kubernetes struct {
	Nodes    []string `yaml:"nodes,omitempty" json:"nodes,omitempty"`
	Selector string   `yaml:"selector,omitempty" json:"selector,omitempty"`
}

// SelectorPrefix marks a Kubernetes label selector in a target list.
const SelectorPrefix = "selector:"

// Targets is the domain's evacuation target list: every host of its racks,
// its hosts, its Kubernetes nodes and "selector:<label selector>", sorted
// and without duplicates.
func (d *Domain) Targets() []string {
	set := map[string]bool{}
	for _, r := range d.Racks {
		for _, h := range r.Hosts {
			set[h] = true
		}
	}
	for _, h := range d.Hosts {
		set[h] = true
	}
	if d.Kubernetes != nil {
		for _, n := range d.Kubernetes.Nodes {
			set[n] = true
		}
		if d.Kubernetes.Selector != "" {
			set[SelectorPrefix+d.Kubernetes.Selector] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// capacity is Capacity, or the number of targets.
func (d *Domain) capacity() float64 {
	if d.Capacity > 0 {
		return d.Capacity
	}
	return float64(len(d.Targets()))
}

// Inventory tells validation which battery devices exist; the collector
// passes what its agents announce, or nil to skip that check.
type Inventory interface {
	HasDevice(agent, device string) bool
}

// DomainOf returns the domain fed by the battery (agent, device).
func (t *Topology) DomainOf(agent, device string) (*Domain, bool) {
	for i := range t.Domains {
		for _, b := range t.Domains[i].Batteries {
			if b.Agent == agent && b.Device == device {
				return &t.Domains[i], true
			}
		}
	}
	return nil, false
}

// Domain returns the domain with an id.
func (t *Topology) Domain(id string) (*Domain, bool) {
	for i := range t.Domains {
		if t.Domains[i].ID == id {
			return &t.Domains[i], true
		}
	}
	return nil, false
}

// Capacity is the site's total capacity.
func (t *Topology) Capacity() float64 {
	var c float64
	for i := range t.Domains {
		c += t.Domains[i].capacity()
	}
	return c
}

// AllTargets is every target of the site.
func (t *Topology) AllTargets() []string {
	set := map[string]bool{}
	for i := range t.Domains {
		for _, h := range t.Domains[i].Targets() {
			set[h] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// LoadTopology reads and validates a topology file. Errors are
// "file:line: key: what is wrong", one per line.
func LoadTopology(path string, inv Inventory) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, yamlErr(path, err)
	}
	var t Topology
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, yamlErr(path, err)
	}
	var body *yaml.Node
	if len(root.Content) > 0 {
		body = root.Content[0]
	}
	if err := t.Check(path, body, inv); err != nil {
		return nil, err
	}
	return &t, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlErr rewrites yaml.v3's "yaml: line N: msg" as "file:N: msg".
func yamlErr(file string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		if g := yamlLineRE.FindStringSubmatch(m); g != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", file, g[1], g[2]))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", file, strings.TrimPrefix(m, "yaml: ")))
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

// Validate checks the topology without line information.
func (t *Topology) Validate(inv Inventory) error { return t.Check("", nil, inv) }

// Check validates the topology. node is the YAML mapping it was decoded
// from (nil if unknown) and file its file name, used for
// "file:line: key: what" errors. Every problem is reported.
func (t *Topology) Check(file string, node *yaml.Node, inv Inventory) error {
	var errs []string
	add := func(path []any, f string, a ...any) {
		loc := file
		if n := nodeAt(node, path...); n != nil && file != "" {
			loc = file + ":" + strconv.Itoa(n.Line)
		}
		msg := keyPath(path) + ": " + fmt.Sprintf(f, a...)
		if loc != "" {
			msg = loc + ": " + msg
		}
		errs = append(errs, msg)
	}
	if len(t.Domains) == 0 {
		add([]any{"domains"}, "at least one power domain is needed")
	}
	domIDs := map[string]int{}
	battery := map[string]string{} // agent/device -> domain
	hostDomain := map[string]string{}
	for i := range t.Domains {
		d := &t.Domains[i]
		p := func(rest ...any) []any { return append([]any{"domains", i}, rest...) }
		if !wire.ValidID(d.ID) {
			add(p("id"), "must match [a-z0-9-]+, got %q", d.ID)
		} else if j, dup := domIDs[d.ID]; dup {
			add(p("id"), "duplicate domain id %q (also domains[%d])", d.ID, j)
		}
		domIDs[d.ID] = i
		if d.Capacity < 0 {
			add(p("capacity"), "must not be negative")
		}
		if len(d.Batteries) == 0 {
			add(p("batteries"), "domain %q has no battery device: nothing could trigger it", d.ID)
		}
		for j, b := range d.Batteries {
			if !wire.ValidID(b.Agent) {
				add(p("batteries", j, "agent"), "must match [a-z0-9-]+, got %q", b.Agent)
			}
			if !wire.ValidID(b.Device) {
				add(p("batteries", j, "device"), "must match [a-z0-9-]+, got %q", b.Device)
			}
			k := b.Agent + "/" + b.Device
			if other, dup := battery[k]; dup {
				add(p("batteries", j), "battery %s already belongs to domain %q", k, other)
			}
			battery[k] = d.ID
			if inv != nil && wire.ValidID(b.Agent) && wire.ValidID(b.Device) && !inv.HasDevice(b.Agent, b.Device) {
				add(p("batteries", j, "device"), "unknown device %s (no agent announces it)", k)
			}
		}
		checkHost := func(path []any, h string) {
			if h == "*" || strings.EqualFold(h, "all") || strings.ContainsAny(h, "*?") {
				add(path, "wildcards and \"all\" are not targets; list hosts")
				return
			}
			if !hostRE.MatchString(h) {
				add(path, "invalid host name %q", h)
				return
			}
			if other, dup := hostDomain[h]; dup && other != d.ID && !t.AllowSharedHosts {
				add(path, "host %q is also fed by domain %q (set allow_shared_hosts for dual-fed hosts)", h, other)
			}
			hostDomain[h] = d.ID
		}
		rackIDs := map[string]bool{}
		for j, r := range d.Racks {
			if r.ID == "" {
				add(p("racks", j, "id"), "rack needs an id")
			} else if rackIDs[r.ID] {
				add(p("racks", j, "id"), "duplicate rack %q", r.ID)
			}
			rackIDs[r.ID] = true
			if len(r.Hosts) == 0 {
				add(p("racks", j, "hosts"), "rack %q lists no hosts", r.ID)
			}
			for k, h := range r.Hosts {
				checkHost(p("racks", j, "hosts", k), h)
			}
		}
		for k, h := range d.Hosts {
			checkHost(p("hosts", k), h)
		}
		if d.Kubernetes != nil {
			for k, n := range d.Kubernetes.Nodes {
				checkHost(p("kubernetes", "nodes", k), n)
			}
			if s := d.Kubernetes.Selector; s != "" && (!strings.Contains(s, "=") || strings.ContainsAny(s, " *")) {
				add(p("kubernetes", "selector"), "want a label selector key=value, got %q", s)
			}
		}
		if len(d.Targets()) == 0 {
			add(p(), "domain %q is empty: it feeds no rack, host or node", d.ID)
		}
	}
	if len(t.Domains) > 1 {
		all := len(t.AllTargets())
		for i := range t.Domains {
			if n := len(t.Domains[i].Targets()); n > 0 && n == all {
				add([]any{"domains", i}, "domain %q targets every host of the site; split the topology", t.Domains[i].ID)
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func keyPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		}
	}
	return b.String()
}

// nodeAt walks a YAML node by mapping keys and sequence indexes and
// returns the deepest node found (for its line).
func nodeAt(n *yaml.Node, path ...any) *yaml.Node {
	if n == nil {
		return nil
	}
	best := n
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return best
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == v {
					best = n.Content[i] // the key's line
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return best
			}
			n = next
			if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
				best = n
			}
		case int:
			if n.Kind != yaml.SequenceNode || v >= len(n.Content) {
				return best
			}
			n = n.Content[v]
			best = n
		}
	}
	return best
}
