package collector

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// The single-server NATS configuration (with the shared accounts) is
// accepted by the server.
func TestDeployNATSConfigs(t *testing.T) {
	for _, v := range []string{"SYS", "NOC", "OPS", "PANGYO_A_COL_1", "PANGYO_A_COL_2", "PANGYO_A_GW_01", "PANGYO_A_GW_02"} {
		t.Setenv("EMBER_PW_"+v, "pw-"+v)
	}
	// cluster/ and leaf/ are run by internal/selfmon with their secrets.
	files, _ := filepath.Glob("../deploy/nats/*.conf")
	if len(files) < 1 {
		t.Fatalf("deploy/nats has %d configs", len(files))
	}
	for _, f := range files {
		o, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !o.JetStream {
			t.Errorf("%s: JetStream not enabled", f)
		}
	}
}

// deploy/nats/streams/*.json are the collector's own stream definitions
// with 3 replicas.
func TestDeployStreamFiles(t *testing.T) {
	c := &Config{Site: "x", NATS: NATSConfig{Servers: []string{"nats://h:1"}, Replicas: 3}}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	for _, want := range streamSpecs(c) {
		b, err := os.ReadFile("../deploy/nats/streams/" + want.Name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var got jetstream.StreamConfig
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", want.Name, err)
		}
		if got.Name != want.Name || !slices.Equal(got.Subjects, want.Subjects) || got.MaxAge != want.MaxAge ||
			got.Duplicates != want.Duplicates || got.Replicas != 3 || got.Storage != want.Storage || got.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
			t.Errorf("%s.json differs from the collector's stream:\n got %+v\nwant %+v", want.Name, got, want)
		}
	}
}

func iqlStatements(t *testing.T) []string {
	b, err := os.ReadFile("../deploy/influxdb/setup.iql")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			out = append(out, l)
		}
	}
	return out
}

// setup.iql runs on InfluxDB 1.8; its rollup query works on collector
// data; every query of the Grafana dashboard runs and the main panels find
// data.
func TestDeployInfluxAndGrafana(t *testing.T) {
	in := testenv.StartInflux(t)
	for _, q := range iqlStatements(t) {
		in.Exec(t, q)
	}
	cqs := in.Series(t, `SHOW CONTINUOUS QUERIES`)
	var names []string
	for _, s := range cqs {
		for _, v := range s.Values {
			names = append(names, v[0].(string))
		}
	}
	if !slices.Contains(names, "cq_ember_1m") || !slices.Contains(names, "cq_ember_1h") {
		t.Errorf("continuous queries %v", names)
	}

	srv := testenv.NATS(t)
	startCollector(t, srv.ClientURL(), in, func(c *Config) {
		c.Influx.RetentionPolicy = "raw"
		c.Influx.EventsRetentionPolicy = "events"
	})
	_, js := connect(t, srv.ClientURL())
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	for r := range 120 {
		ts := base.Add(time.Duration(r) * time.Second)
		publishTelemetry(t, js, "s1", "gw-01", "rack-a1", ts, telemetry("s1", "gw-01", "rack-a1", "07", ts, 4, cellTemp(r)))
	}
	a := criticalAlert(base.Add(time.Minute))
	b, _ := a.Marshal()
	js.Publish(t.Context(), wire.AlertSubject("s1", "gw-01", "rack-a1"), b, jetstream.WithMsgID(a.ID))
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := len(in.Query(t, `SELECT * FROM "raw"."ember_alert"`)) + len(in.Query(t, `SELECT * FROM "events"."ember_alert"`)); n != 1 {
			return fmt.Errorf("%d alert points in raw+events", n)
		}
		if n := len(in.Query(t, `SELECT * FROM "events"."ember_alert"`)); n != 1 {
			return fmt.Errorf("alert not in the events policy")
		}
		if n := len(in.Query(t, `SELECT "temperature.celsius" FROM "raw"."ember" WHERE component =~ /cell/`)); n != 480 {
			return fmt.Errorf("%d raw cell points", n)
		}
		return nil
	})
	// The CQ's SELECT INTO, run by hand over the data's range.
	cq := regexp.MustCompile(`BEGIN (SELECT .*) GROUP BY (.*) END`).FindStringSubmatch(iqlStatements(t)[5])
	if cq == nil {
		t.Fatalf("no CQ body in %q", iqlStatements(t)[5])
	}
	in.Exec(t, fmt.Sprintf("%s WHERE time >= %d AND time < %d GROUP BY %s", cq[1], base.UnixNano(), base.Add(2*time.Minute).UnixNano(), cq[2]))
	rows := in.Query(t, `SELECT "mean_temperature.celsius", "max_temperature.celsius" FROM "rollup_1m"."ember" WHERE component = 'string/1/module/1/cell/2' AND rack = '07'`)
	if len(rows) != 2 {
		t.Fatalf("rollup rows %v", rows)
	}
	if m, _ := rows[0][1].(json.Number).Float64(); m < 25.2 || m > 25.6 {
		t.Errorf("rollup mean %v", rows[0])
	}

	// Grafana queries.
	db, err := os.ReadFile("../deploy/grafana/emberwatch.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Query string `json:"query"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"annotations"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(db, &dash); err != nil {
		t.Fatal(err)
	}
	subst := strings.NewReplacer("$timeFilter", fmt.Sprintf("time >= %d", base.Add(-time.Hour).UnixNano()),
		"$__interval", "10s", "$site", "s1", "$room", "ups-2", "$rack", "07", "$events_rp", "events")
	run := func(what, q string, wantRows bool) {
		q = subst.Replace(q)
		series := in.Series(t, q)
		if wantRows && len(series) == 0 {
			t.Errorf("%s: no data for %s", what, q)
		}
	}
	withData := map[string]bool{"Hottest cell per rack": true, "Battery charge": true, "Cell temperature, rack $rack": true,
		"Alerts": true, "Racks by alert stage (now)": true, "Cell voltage spread (max - min), rack $rack": true}
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			run("panel "+p.Title, tg.Query, withData[p.Title])
			n++
		}
	}
	for _, a := range dash.Annotations.List {
		if a.Query != "" {
			run("annotation "+a.Name, a.Query, a.Name == "ember alerts")
			n++
		}
	}
	for _, v := range dash.Templating.List {
		if v.Name == "events_rp" {
			continue // a custom list, not a query
		}
		run("variable "+v.Name, v.Query, true)
		n++
	}
	if n < 15 {
		t.Errorf("only %d queries in the dashboard", n)
	}
}
