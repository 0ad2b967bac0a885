package collector

import (
	"strings"
	"testing"
	"time"
)

const goodConfig = `site: pangyo-a
collector_id: col-1
nats:
  servers: ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
  replicas: 3
  max_in_flight: 8192
influx:
  url: http://127.0.0.1:8086
  token: ${EMBER_TEST_TOKEN}
  database: telemetry
  retention_policy: raw
  retention: 30d
  create_database: true
  batch_size: 2000
  flush_interval: 500ms
http:
  listen: 127.0.0.1:0
heartbeat_timeout: 10s
noc:
  min_stage: warning
  webhooks:
    - url: https://noc.example/ember
      secret: s3cret
  alertmanager_url: http://127.0.0.1:9093
evacuation:
  topology: topology.yaml
  hold: 30s
`

func TestParseConfig(t *testing.T) {
	t.Setenv("EMBER_TEST_TOKEN", "admin:pw")
	c, err := ParseConfig("collector.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "pangyo-a" || c.NATS.Replicas != 3 || c.Influx.BatchSize != 2000 || c.Influx.Token != "admin:pw" {
		t.Errorf("decoded %+v", c)
	}
	if c.Influx.flushInterval != 500*time.Millisecond || c.heartbeatTimeout != 10*time.Second || c.NATS.ackWait != 30*time.Second {
		t.Errorf("durations: flush %v heartbeat %v ackwait %v", c.Influx.flushInterval, c.heartbeatTimeout, c.NATS.ackWait)
	}
	if c.NOC.minStage.String() != "warning" || len(c.NOC.Webhooks) != 1 {
		t.Errorf("noc %+v", c.NOC)
	}
	// The evacuation section is kept raw, with its lines, for its owner.
	var ev struct {
		Topology string `yaml:"topology"`
		Hold     string `yaml:"hold"`
	}
	if err := c.Evacuation.Decode(&ev); err != nil || ev.Topology != "topology.yaml" || c.Evacuation.Line != 26 {
		t.Errorf("evacuation node: %+v line %d err %v", ev, c.Evacuation.Line, err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("c.yaml", []byte("site: s1\nnats: {servers: [\"nats://127.0.0.1:4222\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.heartbeatTimeout != DefaultHeartbeatTimeout || c.Influx.BatchSize != DefaultBatchSize ||
		c.NATS.MaxInFlight != DefaultMaxInFlight || c.HTTP.Listen != "127.0.0.1:8080" || c.CollectorID == "" || *c.Influx.GZip != true {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Setenv("EMBER_UNSET_FOR_TEST", "")
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "site: s1\nnats:\n  servers: [nats://h:4222]\n  sever: x\n", []string{"c.yaml:4: nats.sever: unknown key"}},
		{"missing site", "nats:\n  servers: [nats://h:4222]\n", []string{"c.yaml:1: site: required"}},
		{"bad site", "site: Pangyo A\nnats: {servers: [nats://h:4222]}\n", []string{`c.yaml:1: site: "Pangyo A" is not a valid id`}},
		{"bad duration", "site: s1\nnats: {servers: [nats://h:4222]}\nheartbeat_timeout: soon\n", []string{`c.yaml:3: heartbeat_timeout: want a positive duration like 15s or 2m, got "soon"`}},
		{"type", "site: s1\nnats: {servers: [nats://h:4222]}\ninflux:\n  batch_size: many\n", []string{"c.yaml:4: influx.batch_size: cannot unmarshal !!str `many` into int"}},
		{"influx needs db", "site: s1\nnats: {servers: [nats://h:4222]}\ninflux:\n  url: http://h:8086\n", []string{"c.yaml:3: influx.database: required when influx.url is set"}},
		{"webhook secret", "site: s1\nnats: {servers: [nats://h:4222]}\nnoc:\n  webhooks:\n    - url: ftp://x\n", []string{
			`c.yaml:5: noc.webhooks[0].url: "ftp://x" is not an http(s) URL`, "noc.webhooks[0].secret: required"}},
		{"env secret", "site: s1\nnats: {servers: [nats://h:4222]}\ninflux:\n  url: http://h:8086\n  database: t\n  token: ${EMBER_NOT_SET_ANYWHERE}\n", []string{
			"c.yaml:6: influx.token: environment variable EMBER_NOT_SET_ANYWHERE is not set"}},
		{"stage", "site: s1\nnats: {servers: [nats://h:4222]}\nnoc: {min_stage: loud}\n", []string{`c.yaml:3: noc.min_stage: "loud"`}},
		{"no servers", "site: s1\n", []string{"nats.servers: at least one server URL is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigCheckInCode(t *testing.T) {
	c := &Config{Site: "s1"}
	err := c.Check()
	if err == nil || !strings.Contains(err.Error(), "nats.servers: at least one") {
		t.Fatalf("Check() = %v", err)
	}
}
