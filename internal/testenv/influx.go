package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Influx is a real InfluxDB 1.8 server (influxd) started for one test, on
// loopback ports picked at start. Stop and Start keep its data directory
// and ports, so that tests can simulate an outage.
type Influx struct {
	URL      string // http://127.0.0.1:PORT
	Database string // created at start

	t              testing.TB
	user, password string
	bin            string
	dir            string
	conf           string
	cmd            *exec.Cmd
	log            *os.File
}

// StartInflux starts influxd (from TOOLS_BIN or PATH; skips the test when
// missing, fails under CI), waits for /ping, and creates the database
// "telemetry". It is killed by PID at the end of the test; its log is
// printed if the test failed.
func StartInflux(t testing.TB) *Influx {
	t.Helper()
	return StartInfluxWith(t, InfluxOptions{})
}

// InfluxOptions changes how StartInfluxWith sets influxd up.
type InfluxOptions struct {
	// User and Password, when set, turn auth-enabled on and create this
	// admin user; queries of the harness then authenticate as it.
	User, Password string
}

// StartInfluxWith is StartInflux with options.
func StartInfluxWith(t testing.TB, opt InfluxOptions) *Influx {
	t.Helper()
	bin := Need(t, "influxd")
	dir := t.TempDir()
	ports := FreePorts(t, 2)
	conf := filepath.Join(dir, "influxdb.conf")
	cfg := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  flux-enabled = false
  auth-enabled = %t
  log-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
`, ports[0], filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), ports[1], opt.User != "")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatalf("influx config: %v", err)
	}
	in := &Influx{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), Database: "telemetry",
		t: t, bin: bin, dir: dir, conf: conf}
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "influxd.log")); err == nil && len(b) > 0 {
				t.Logf("influxd log:\n%s", b)
			}
		}
	})
	in.Start()
	if opt.User != "" {
		// Allowed without credentials while no user exists.
		in.Exec(t, fmt.Sprintf(`CREATE USER "%s" WITH PASSWORD '%s' WITH ALL PRIVILEGES`, opt.User, opt.Password))
		in.user, in.password = opt.User, opt.Password
	}
	in.Exec(t, `CREATE DATABASE "telemetry"`)
	return in
}

// Start (re)starts influxd on the same ports and data, waiting for /ping.
func (in *Influx) Start() {
	in.t.Helper()
	if in.cmd != nil {
		in.t.Fatal("influxd already running")
	}
	lf, err := os.OpenFile(filepath.Join(in.dir, "influxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		in.t.Fatalf("influx log: %v", err)
	}
	cmd := exec.Command(in.bin, "run", "-config", in.conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		in.t.Fatalf("start influxd: %v", err)
	}
	in.cmd, in.log = cmd, lf
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(in.URL + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.Stop()
	in.t.Fatalf("influxd not ready on %s after 30s", in.URL)
}

// Stop kills influxd (by its PID) and waits for it. The data stays.
func (in *Influx) Stop() {
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Kill()
	in.cmd.Wait()
	in.log.Close()
	in.cmd, in.log = nil, nil
}

// Exec runs InfluxQL statements that return no rows (CREATE, DROP).
func (in *Influx) Exec(t testing.TB, q string) {
	t.Helper()
	if _, err := in.query(q); err != nil {
		t.Fatalf("influx %q: %v", q, err)
	}
}

// Query runs an InfluxQL query against Database and returns the rows of
// the first series of the first statement (nil when empty). Numbers are
// json.Number.
func (in *Influx) Query(t testing.TB, q string) [][]any {
	t.Helper()
	res, err := in.query(q)
	if err != nil {
		t.Fatalf("influx %q: %v", q, err)
	}
	if len(res) == 0 || len(res[0].Series) == 0 {
		return nil
	}
	return res[0].Series[0].Values
}

// Series returns every series of the first statement's result.
func (in *Influx) Series(t testing.TB, q string) []InfluxSeries {
	t.Helper()
	res, err := in.query(q)
	if err != nil {
		t.Fatalf("influx %q: %v", q, err)
	}
	if len(res) == 0 {
		return nil
	}
	return res[0].Series
}

// InfluxSeries is one series of an InfluxQL answer.
type InfluxSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

type influxResult struct {
	Series []InfluxSeries `json:"series"`
	Error  string         `json:"error"`
}

func (in *Influx) query(q string) ([]influxResult, error) {
	form := url.Values{"q": {q}, "db": {in.Database}, "epoch": {"ns"}}
	req, err := http.NewRequest(http.MethodPost, in.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if in.user != "" {
		req.SetBasicAuth(in.user, in.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Results []influxResult `json:"results"`
		Error   string         `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode %q: %w", body, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("%s", out.Error)
	}
	for _, r := range out.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%s", r.Error)
		}
	}
	return out.Results, nil
}
