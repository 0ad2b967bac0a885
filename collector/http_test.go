package collector

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}

func publishAlert(t *testing.T, js jetstream.JetStream, a wire.Alert) {
	t.Helper()
	b, _ := a.Marshal()
	if _, err := js.Publish(context.Background(), wire.AlertSubject(a.Site, a.Agent, a.Device), b, jetstream.WithMsgID(a.ID)); err != nil {
		t.Fatal(err)
	}
}

func criticalAlert(now time.Time) wire.Alert {
	return wire.Alert{ID: "01TESTCRIT", Site: "s1", Agent: "gw-01", Device: "rack-a1", Component: "string/1/module/1/cell/3",
		Category: wire.CategoryThermal, Stage: wire.StageCritical, PreviousStage: wire.StageWarning,
		Signatures: []wire.Signature{{Kind: "cell_temp_rate", Value: 3.2, Unit: "degC/min", Threshold: 2},
			{Kind: "gas_h2", Value: 40, Unit: "ppm", Threshold: 25}},
		SampleTime: now.Add(-time.Second), Time: now, Summary: "cell 3 heating fast with H2"}
}

// siteWithTwoRacks publishes rounds for rack 07 (heating) and rack 08.
func siteWithTwoRacks(t *testing.T, js jetstream.JetStream) time.Time {
	base := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	for r := range 30 {
		ts := base.Add(time.Duration(r) * time.Second)
		publishTelemetry(t, js, "s1", "gw-01", "rack-a1", ts, telemetry("s1", "gw-01", "rack-a1", "07", ts, 4,
			func(cell int) float64 { return 25 + float64(cell) + float64(r)*0.1 })) // hottest cell 4, +6 degC/min
		publishTelemetry(t, js, "s1", "gw-01", "rack-a2", ts, telemetry("s1", "gw-01", "rack-a2", "08", ts, 4,
			func(cell int) float64 { return 24 })) // flat
	}
	return base
}

func TestHTTPAPI(t *testing.T) {
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, nil)
	nc, js := connect(t, srv.ClientURL())
	base := "http://" + c.HTTPAddr()
	siteWithTwoRacks(t, js)
	now := time.Now().UTC()
	publishAlert(t, js, criticalAlert(now))

	var snap Snapshot
	testenv.WaitFor(t, 10*time.Second, func() error {
		getJSON(t, base+"/api/v1/state", &snap)
		if len(snap.Racks) != 2 || len(snap.Active) != 1 || snap.Racks[0].Hottest == nil || snap.Racks[0].Hottest.TrendPerMin == nil {
			return fmt.Errorf("state %+v", snap)
		}
		if snap.Racks[0].Hottest.Celsius < 31.8 {
			return fmt.Errorf("rack 07 hottest %.2f, not caught up", snap.Racks[0].Hottest.Celsius)
		}
		return nil
	})
	r07, r08 := snap.Racks[0], snap.Racks[1]
	if r07.Rack != "07" || r07.Room != "ups-2" || r07.Row != "b" || r07.Stage != wire.StageCritical || r07.Hottest.Component != "string/1/module/1/cell/4" {
		t.Errorf("rack 07 %+v hottest %+v", r07, r07.Hottest)
	}
	if tr := *r07.Hottest.TrendPerMin; tr < 5.5 || tr > 6.5 {
		t.Errorf("rack 07 trend %.2f degC/min, want 6", tr)
	}
	if r08.Stage != wire.StageNormal || math.Abs(*r08.Hottest.TrendPerMin) > 1e-9 || r08.Hottest.Celsius != 24 {
		t.Errorf("rack 08 %+v %+v", r08, r08.Hottest)
	}
	var dev *DeviceView
	for i := range snap.Devices {
		if snap.Devices[i].Device == "rack-a1" {
			dev = &snap.Devices[i]
		}
	}
	if dev == nil || dev.Values["string[1].module[1].cell[3].voltage.volts"] != 3.903 || dev.Values["battery.charge.percent"] != 97 || dev.Stage != wire.StageCritical {
		t.Errorf("device view %+v", dev)
	}

	// Health.
	var health map[string]any
	if code := getJSON(t, base+"/healthz", &health); code != 200 || health["status"] != "ok" {
		t.Errorf("healthz %d %v", code, health)
	}
	// Alerts since.
	var alerts []wire.Alert
	if code := getJSON(t, base+"/api/v1/alerts?since="+now.Add(-time.Minute).Format(time.RFC3339), &alerts); code != 200 || len(alerts) != 1 || alerts[0].ID != "01TESTCRIT" {
		t.Errorf("alerts %d %+v", code, alerts)
	}
	if code := getJSON(t, base+"/api/v1/alerts?since="+now.Add(time.Minute).Format(time.RFC3339), &alerts); code != 200 || len(alerts) != 0 {
		t.Errorf("alerts in the future %d %+v", code, alerts)
	}
	var apiErr apiError
	if code := getJSON(t, base+"/api/v1/alerts?since=yesterday", &apiErr); code != 400 || !strings.Contains(apiErr.Error, "since") {
		t.Errorf("bad since: %d %+v", code, apiErr)
	}
	// Evacuations: empty without a source, then what the source gives.
	var evs []wire.Evacuation
	if code := getJSON(t, base+"/api/v1/evacuations", &evs); code != 200 || len(evs) != 0 {
		t.Errorf("evacuations %d %v", code, evs)
	}

	// Ack: published on NATS with who/when, and shown in the state.
	acks := make(chan []byte, 4)
	sub, _ := nc.Subscribe(wire.AlertSubject("s1", "gw-01", "rack-a1"), func(m *nats.Msg) { acks <- m.Data })
	defer sub.Unsubscribe()
	post := func(body string) (int, []byte) {
		resp, err := http.Post(base+"/api/v1/ack", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := post(`{"id":"01TESTCRIT"}`); code != 400 || !bytes.Contains(b, []byte("by is required")) {
		t.Errorf("ack without by: %d %s", code, b)
	}
	if code, b := post(`{"id":"nope","by":"kim"}`); code != 404 {
		t.Errorf("ack unknown: %d %s", code, b)
	}
	if code, b := post(`{"id":"01TESTCRIT","by":"kim","note":"on site"}`); code != 200 {
		t.Fatalf("ack: %d %s", code, b)
	}
	select {
	case b := <-acks:
		var a wire.Alert
		json.Unmarshal(b, &a)
		if a.ID != "01TESTCRIT" || a.Ack == nil || a.Ack.By != "kim" || a.Ack.Note != "on site" || a.Ack.Time.IsZero() {
			t.Errorf("ack on NATS %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ack published")
	}
	snap = Snapshot{}
	getJSON(t, base+"/api/v1/state?values=0", &snap)
	if len(snap.Active) != 1 || snap.Active[0].Acked == nil || snap.Active[0].Acked.By != "kim" || snap.Devices != nil {
		t.Errorf("state after ack %+v", snap.Active)
	}

	// Prometheus metrics.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ember_collector_active_alerts{collector="col-1",site="s1"} 1`, `ember_collector_nats_connected{collector="col-1",site="s1"} 1`,
		`ember_collector_lines_stored_total{collector="col-1",site="s1"}`} {
		if !bytes.Contains(mb, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The status page and its assets are served, without external URLs.
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || bytes.Contains(b, []byte("http://")) || bytes.Contains(b, []byte("https://")) {
			t.Errorf("GET %s: %d, external URL present: %v", p, resp.StatusCode, bytes.Contains(b, []byte("http")))
		}
		if p == "/" && (!bytes.Contains(b, []byte(`id="rooms"`)) || !bytes.Contains(b, []byte(`<script src="app.js">`))) {
			t.Errorf("index.html lacks the rooms section or the script: %s", b)
		}
		if p == "/app.js" && !bytes.Contains(b, []byte(`new EventSource("api/v1/events")`)) {
			t.Error("app.js does not follow the event stream")
		}
	}
}

// The event stream sends the state at once and again when a rack turns
// critical.
func TestEventStream(t *testing.T) {
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, nil)
	_, js := connect(t, srv.ClientURL())
	siteWithTwoRacks(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.HTTPAddr()+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	published := false
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var s Snapshot
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatalf("event data: %v", err)
		}
		if !published {
			published = true
			publishAlert(t, js, criticalAlert(time.Now()))
		}
		for _, r := range s.Racks {
			if r.Rack == "07" && r.Stage == wire.StageCritical {
				return
			}
		}
	}
	t.Fatalf("stream ended without rack 07 turning critical: %v", sc.Err())
}

// The state survives a restart: it is rebuilt from the streams.
func TestStateSurvivesRestart(t *testing.T) {
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, nil)
	_, js := connect(t, srv.ClientURL())
	siteWithTwoRacks(t, js)
	publishAlert(t, js, criticalAlert(time.Now()))
	testenv.WaitFor(t, 10*time.Second, func() error {
		s := c.State().Snapshot(false)
		if len(s.Active) != 1 || len(s.Racks) != 2 || s.Racks[0].Hottest == nil || s.Racks[0].Hottest.Celsius < 31.85 {
			return fmt.Errorf("state not caught up: %+v", s)
		}
		return nil
	})
	if _, err := c.Ack(context.Background(), "01TESTCRIT", "lee", ""); err != nil {
		t.Fatal(err)
	}
	before := c.State().Snapshot(true)
	c.stop(t)

	c2 := startCollector(t, srv.ClientURL(), nil, nil)
	testenv.WaitFor(t, 10*time.Second, func() error {
		s := c2.State().Snapshot(true)
		if len(s.Racks) != 2 || len(s.Active) != 1 || s.Active[0].Acked == nil || s.Active[0].Acked.By != "lee" {
			return fmt.Errorf("rebuilt state %+v", s)
		}
		for i, d := range s.Devices {
			if fmt.Sprint(d.Values) != fmt.Sprint(before.Devices[i].Values) {
				return fmt.Errorf("device %s values differ", d.Device)
			}
		}
		if s.Racks[0].Stage != wire.StageCritical || s.Racks[0].Hottest.Celsius != before.Racks[0].Hottest.Celsius {
			return fmt.Errorf("rack %+v", s.Racks[0])
		}
		return nil
	})
}

type fakeEvac []wire.Evacuation

func (f fakeEvac) Evacuations(context.Context) ([]wire.Evacuation, error) { return f, nil }

func TestEvacuationsFromSource(t *testing.T) {
	srv := testenv.NATS(t)
	cfg := &Config{Site: "s1", NATS: NATSConfig{Servers: []string{srv.ClientURL()}}, HTTP: HTTPConfig{Listen: "127.0.0.1:0"}}
	c, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := wire.Evacuation{ID: "ev-1", Site: "s1", Domain: "ups-2", Phase: wire.PhasePrestage, Urgency: wire.UrgencyNormal, Time: time.Now().UTC()}
	c.SetEvacuations(fakeEvac{ev})
	partRan := make(chan bool, 1)
	c.AddPart("test part", func(ctx context.Context, nc *nats.Conn) error {
		partRan <- nc.IsConnected()
		<-ctx.Done()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var got []wire.Evacuation
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, err := http.Get("http://" + c.HTTPAddr() + "/api/v1/evacuations")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&got)
	})
	if len(got) != 1 || got[0].ID != "ev-1" || got[0].Domain != "ups-2" {
		t.Errorf("evacuations %+v", got)
	}
	select {
	case ok := <-partRan:
		if !ok {
			t.Error("part started without a NATS connection")
		}
	case <-time.After(5 * time.Second):
		t.Error("part not started")
	}
	// The engine's own API replaces the list, under the same prefix.
	resp, _ := http.Post("http://"+c.HTTPAddr()+"/api/v1/evacuations/ev-1/approve", "application/json", strings.NewReader(`{}`))
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("approve without an engine: %d", resp.StatusCode)
	}
	c.SetEvacuationHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, r.Method+" "+r.URL.Path)
	}))
	resp, _ = http.Post("http://"+c.HTTPAddr()+"/api/v1/evacuations/ev-1/approve", "application/json", strings.NewReader(`{}`))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || string(b) != "POST /api/v1/evacuations/ev-1/approve" {
		t.Errorf("engine handler: %d %s", resp.StatusCode, b)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ember-collector test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With http.token, changes need the bearer token and reads stay open; with
// tls_cert/tls_key the API is HTTPS.
func TestHTTPTokenAndTLS(t *testing.T) {
	srv := testenv.NATS(t)
	certFile, keyFile, pool := selfSigned(t)
	c := startCollector(t, srv.ClientURL(), nil, func(cfg *Config) {
		cfg.HTTP.Token, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = "t0ken", certFile, keyFile
	})
	_, js := connect(t, srv.ClientURL())
	publishAlert(t, js, criticalAlert(time.Now()))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if len(c.State().Snapshot(false).Active) != 1 {
			return fmt.Errorf("alert not in state")
		}
		return nil
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + c.HTTPAddr()
	resp, err := hc.Get(base + "/api/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET state over TLS without token: %d", resp.StatusCode)
	}
	ack := func(auth string) int {
		req, _ := http.NewRequest("POST", base+"/api/v1/ack", strings.NewReader(`{"id":"01TESTCRIT","by":"kim"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ack(""); code != 401 {
		t.Errorf("ack without token: %d", code)
	}
	if code := ack("Bearer wrong"); code != 401 {
		t.Errorf("ack with a wrong token: %d", code)
	}
	if code := ack("Bearer t0ken"); code != 200 {
		t.Errorf("ack with the token: %d", code)
	}
	if _, err := http.Get("http://" + c.HTTPAddr() + "/healthz"); err == nil {
		// Plain HTTP to a TLS listener gets a 400 answer, not data.
		r, _ := http.Get("http://" + c.HTTPAddr() + "/healthz")
		if r.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS listener")
		}
		r.Body.Close()
	}
}
