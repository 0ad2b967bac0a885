package deploycheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/collector"
)

const root = "../../.."

// manifests decodes every document of the deploy/k8s YAML files, by kind.
func manifests(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, _ := doc["kind"].(string)
			if kind == "" {
				t.Fatalf("%s: a document without kind", f)
			}
			out[kind] = append(out[kind], doc)
		}
	}
	return out
}

// at walks a decoded YAML tree by map keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func one(t *testing.T, m map[string][]map[string]any, kind string) map[string]any {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("want exactly one %s, have %d", kind, len(m[kind]))
	}
	return m[kind][0]
}

func TestK8sCollectors(t *testing.T) {
	m := manifests(t)
	sts := one(t, m, "StatefulSet")
	pod := at(t, sts, "spec", "template")
	labels := at(t, pod, "metadata", "labels").(map[string]any)
	matches := func(sel any) bool {
		for k, v := range sel.(map[string]any) {
			if labels[k] != v {
				return false
			}
		}
		return true
	}

	if r := at(t, sts, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %v, want 2 collectors", r)
	}
	if !matches(at(t, sts, "spec", "selector", "matchLabels")) {
		t.Error("StatefulSet selector does not match its pod labels")
	}
	req := at(t, pod, "spec", "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0)
	if at(t, req, "topologyKey") != "kubernetes.io/hostname" || !matches(at(t, req, "labelSelector", "matchLabels")) {
		t.Errorf("required anti-affinity per node missing or not selecting the collectors: %v", req)
	}

	c := at(t, pod, "spec", "containers", 0)
	port := at(t, c, "ports", 0)
	if at(t, port, "name") != "http" || at(t, port, "containerPort") != 8080 {
		t.Errorf("container port %v, want http 8080", port)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if at(t, c, probe, "httpGet", "path") != "/healthz" || at(t, c, probe, "httpGet", "port") != "http" {
			t.Errorf("%s is not GET /healthz on port http", probe)
		}
	}
	sc := at(t, c, "securityContext")
	if at(t, sc, "readOnlyRootFilesystem") != true || at(t, sc, "allowPrivilegeEscalation") != false {
		t.Errorf("container security context too loose: %v", sc)
	}
	if pc := at(t, pod, "spec", "priorityClassName"); pc != at(t, one(t, m, "PriorityClass"), "metadata", "name") {
		t.Errorf("priorityClassName %v is not the PriorityClass defined alongside", pc)
	}

	pdb := one(t, m, "PodDisruptionBudget")
	if at(t, pdb, "spec", "minAvailable") != 1 || !matches(at(t, pdb, "spec", "selector", "matchLabels")) {
		t.Errorf("PDB must keep one collector: %v", at(t, pdb, "spec"))
	}
	svc := one(t, m, "Service")
	if !matches(at(t, svc, "spec", "selector")) || at(t, svc, "spec", "ports", 0, "targetPort") != "http" {
		t.Errorf("Service does not route to the collectors' http port: %v", at(t, svc, "spec"))
	}

	// The Secret keys the pod uses exist in the example Secret.
	secret := at(t, one(t, m, "Secret"), "stringData").(map[string]any)
	for _, e := range at(t, c, "env").([]any) {
		key := at(t, e, "valueFrom", "secretKeyRef", "key").(string)
		if _, ok := secret[key]; !ok {
			t.Errorf("env %v uses secret key %q the example Secret lacks", at(t, e, "name"), key)
		}
		t.Setenv(at(t, e, "name").(string), "test-"+key)
	}
	for _, v := range at(t, pod, "spec", "volumes").([]any) {
		sec, _ := at(t, v, "secret").(map[string]any)
		if items, ok := sec["items"].([]any); ok {
			for _, it := range items {
				if _, ok := secret[at(t, it, "key").(string)]; !ok {
					t.Errorf("volume uses secret key %v the example Secret lacks", at(t, it, "key"))
				}
			}
		}
	}

	// The collector accepts its ConfigMap, and listens where the probes look.
	data := at(t, one(t, m, "ConfigMap"), "data", "collector.yaml").(string)
	cfg, err := collector.ParseConfig("configmap:collector.yaml", []byte(data))
	if err != nil {
		t.Fatalf("collector rejects the ConfigMap: %v", err)
	}
	if !strings.HasSuffix(cfg.HTTP.Listen, ":8080") || strings.HasPrefix(cfg.HTTP.Listen, "127.") {
		t.Errorf("collector listens on %q; probes need :8080 on all interfaces", cfg.HTTP.Listen)
	}
	args := at(t, c, "args").([]any)
	if i := slices.Index(args, any("-config")); i < 0 || args[i+1] != "/etc/ember/collector.yaml" {
		t.Errorf("container args %v do not load the mounted collector.yaml", args)
	}
}

// unit reads a systemd unit into key -> values (repeated keys accumulate).
func unit(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "deploy/systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not Key=Value", name, line)
		}
		u[k] = append(u[k], v)
	}
	return u
}

func TestSystemdUnits(t *testing.T) {
	common := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "Restart": "always", "User": "ember", "Group": "ember",
		"ProtectSystem": "strict", "ReadWritePaths": "/var/lib/ember", "ProtectHome": "yes", "PrivateTmp": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "SystemCallFilter": "@system-service",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
	}
	for _, name := range []string{"ember-agent.service", "ember-collector.service"} {
		u := unit(t, name)
		for k, want := range common {
			if got := u[k]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s=%q, want %q", name, k, got, want)
			}
		}
		for _, k := range []string{"WatchdogSec", "MemoryMax", "ExecStart"} {
			if len(u[k]) == 0 {
				t.Errorf("%s: no %s", name, k)
			}
		}
	}
	a := unit(t, "ember-agent.service")
	if a["WatchdogSec"][0] != "10s" {
		t.Errorf("agent WatchdogSec %v, want 10s (reliability-security T22)", a["WatchdogSec"])
	}
	if a["SupplementaryGroups"][0] != "dialout gpio i2c" || a["DevicePolicy"][0] != "closed" {
		t.Errorf("agent device access: groups %v policy %v", a["SupplementaryGroups"], a["DevicePolicy"])
	}
	for _, dev := range []string{"char-ttyUSB rw", "char-i2c rw", "char-gpiochip rw"} {
		if !slices.Contains(a["DeviceAllow"], dev) {
			t.Errorf("agent: no DeviceAllow=%s", dev)
		}
	}
	// The groups the agent needs are created by the sysusers snippet, or
	// systemd refuses to start the unit on hosts without them.
	sysusers, err := os.ReadFile(filepath.Join(root, "deploy/systemd/ember.sysusers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range strings.Fields(a["SupplementaryGroups"][0]) {
		if !regexp.MustCompile(`(?m)^g `+g+` `).Match(sysusers) || !regexp.MustCompile(`(?m)^m ember `+g+`$`).Match(sysusers) {
			t.Errorf("sysusers does not create group %s with ember in it", g)
		}
	}
}

// TestSystemdVerify runs systemd's own checks (deploy/systemd/verify.sh).
func TestSystemdVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(root, "deploy/systemd/verify.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("verify.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"ok   ember-agent.service", "ok   ember-collector.service", "ok   ember.sysusers.conf", "ok   ember.tmpfiles.conf"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("verify.sh output lacks %q:\n%s", want, out)
		}
	}
}

// TestPiGuideConfig parses the agent.yaml shown in docs/install-pi.md.
func TestPiGuideConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs/install-pi.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 1 {
		t.Fatalf("want one yaml block in install-pi.md, found %d", len(blocks))
	}
	cfg, err := agent.ParseConfig("install-pi.md", blocks[0][1])
	if err != nil {
		t.Fatalf("the guide's agent.yaml is rejected: %v", err)
	}
	if cfg.Site != "pangyo-a" || cfg.AgentID != "gw-01" || len(cfg.Devices) != 2 {
		t.Fatalf("parsed %q/%q with %d devices", cfg.Site, cfg.AgentID, len(cfg.Devices))
	}
}
