package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigErrorsNameFileLineKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"missing site", "agent_id: gw-1\ndevices:\n  - {id: r1, profile: sunspec, modbus: {url: \"tcp://127.0.0.1:502\"}}\n",
			[]string{"agent.yaml: site: is required"}},
		{"bad ids and period", "site: Pangyo A\nagent_id: gw-1\ndevices:\n  - id: r1\n    profile: sunspec\n    period: 1ms\n    modbus: {url: \"tcp://127.0.0.1:502\"}\n  - id: r1\n    profile: sunspec\n    modbus: {url: \"tcp://127.0.0.1:502\"}\n",
			[]string{`agent.yaml:1: site: "Pangyo A" must match [a-z0-9-]+`, "agent.yaml:6: devices[0].period: must be at least 10ms, got 1ms", `agent.yaml:8: devices[1].id: "r1" is already used by devices[0]`}},
		{"unknown key", "site: s\nagent_id: gw-1\ndevices:\n  - id: r1\n    profile: sunspec\n    perod: 1s\n    modbus: {url: \"tcp://127.0.0.1:502\"}\n",
			[]string{"agent.yaml:6: devices[0].perod: field perod not found"}},
		{"two protocols", "site: s\nagent_id: gw-1\ndevices:\n  - id: r1\n    profile: sunspec\n    modbus: {url: \"tcp://127.0.0.1:502\"}\n    snmp: {target: \"udp://127.0.0.1:161\"}\n",
			[]string{"agent.yaml:4: devices[0]: needs exactly one of modbus, snmp or local, has 2"}},
		{"bad modbus url", "site: s\nagent_id: gw-1\ndevices:\n  - id: r1\n    profile: sunspec\n    modbus:\n      url: \"ftp://x\"\n",
			[]string{"agent.yaml:7: devices[0].modbus.url:"}},
		{"heartbeat too slow", "site: s\nagent_id: gw-1\nheartbeat: 10s\ndevices:\n  - {id: r1, profile: sunspec, modbus: {url: \"tcp://127.0.0.1:502\"}}\n",
			[]string{"agent.yaml:3: heartbeat: must be between 0 and 5s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	tight := filepath.Join(dir, "tight")
	os.WriteFile(loose, []byte("s3cret-auth-pass\n"), 0o644)
	os.WriteFile(tight, []byte("s3cret-auth-pass\n"), 0o600)
	t.Setenv("EMBER_TEST_PRIV", "privpass123")
	base := "site: s\nagent_id: gw-1\ndevices:\n  - id: u1\n    profile: ups-mib\n    snmp:\n      target: udp://127.0.0.1:161\n      version: \"3\"\n      v3: {user: u, auth_protocol: SHA256, auth_passphrase: \"file:%s\", priv_protocol: AES, priv_passphrase: \"${EMBER_TEST_PRIV}\"}\n"
	cfg, err := ParseConfig("agent.yaml", []byte(strings.Replace(base, "%s", tight, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if v3 := cfg.Devices[0].SNMP.V3; v3.AuthPassphrase != "s3cret-auth-pass" || v3.PrivPassphrase != "privpass123" {
		t.Fatalf("secrets not resolved: %+v", v3)
	}
	_, err = ParseConfig("agent.yaml", []byte(strings.Replace(base, "%s", loose, 1)))
	if err == nil || !strings.Contains(err.Error(), "world-readable") || !strings.Contains(err.Error(), "devices[0].snmp.v3.auth_passphrase") {
		t.Fatalf("world-readable secret file accepted or badly reported: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatal("a secret leaked into an error message")
	}
}

func TestExampleConfigParses(t *testing.T) {
	data, err := os.ReadFile("../deploy/agent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("UPS1_PRIV", "priv-pass-123")
	_, err = ParseConfig("agent.example.yaml", data)
	// The example names secret files that exist only on a gateway.
	for _, e := range strings.Split(fmtErr(err), "\n") {
		if e != "" && !strings.Contains(e, "no such file") {
			t.Errorf("example config: %s", e)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
