package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func TestSignature(t *testing.T) {
	secret := []byte("k")
	now := time.Unix(1763784000, 0)
	body := []byte(`{"id":"x"}`)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1763784000,v1=") || len(h) != len("t=1763784000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := VerifySignature(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("verify: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, body []byte
		at           time.Time
	}{
		"other secret": {[]byte("j"), body, now},
		"other body":   {secret, []byte(`{"id":"y"}`), now},
		"too old":      {secret, body, now.Add(10 * time.Minute)},
	} {
		if err := VerifySignature(tc.secret, h, tc.body, tc.at, 5*time.Minute); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type received struct {
	mu     sync.Mutex
	calls  int
	bodies [][]byte
}

func (r *received) add(b []byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.bodies = append(r.bodies, b)
	return r.calls
}

func (r *received) get() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// Alerts go to a signed webhook (retried after a failure), to an
// Alertmanager-compatible endpoint, and into InfluxDB as ember_alert;
// evacuations become ember_evac points.
func TestNOCFanOutAndAnnotations(t *testing.T) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	secret := "hook-secret"
	var hook, am, dog received
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := VerifySignature([]byte(secret), r.Header.Get("Ember-Signature"), b, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			http.Error(w, err.Error(), 401)
			return
		}
		if n := hook.add(b); n == 1 {
			http.Error(w, "try again", 503) // the first delivery fails: must be retried
			return
		}
		w.WriteHeader(204)
	}))
	defer hookSrv.Close()
	amSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != "POST" {
			http.Error(w, "not found", 404)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte(`"alertname":"`+WatchdogAlertName+`"`)) {
			dog.add(b)
		} else {
			am.add(b)
		}
		w.WriteHeader(200)
	}))
	defer amSrv.Close()

	startCollector(t, srv.ClientURL(), in, func(c *Config) {
		c.NOC = NOCConfig{Webhooks: []WebhookConfig{{URL: hookSrv.URL, Secret: secret}}, AlertmanagerURL: amSrv.URL, MinStage: "warning"}
	})
	nc, js := connect(t, srv.ClientURL())
	now := time.Now().UTC().Truncate(time.Millisecond)
	crit := criticalAlert(now)
	publishAlert(t, js, crit)
	watch := crit
	watch.ID, watch.Category, watch.Stage, watch.Time = "01WATCH", wire.CategoryEnvironment, wire.StageWatch, now.Add(time.Millisecond)
	publishAlert(t, js, watch) // below min_stage: not forwarded, still stored
	clear := crit
	clear.ID, clear.Stage, clear.PreviousStage, clear.Time = "01CLEAR", wire.StageNormal, wire.StageCritical, now.Add(2*time.Second)
	publishAlert(t, js, clear)

	testenv.WaitFor(t, 15*time.Second, func() error {
		if len(hook.get()) < 3 || len(am.get()) < 2 {
			return fmt.Errorf("webhook calls %d, alertmanager calls %d", len(hook.get()), len(am.get()))
		}
		return nil
	})
	var first, retried, second wire.Alert
	hb := hook.get()
	json.Unmarshal(hb[0], &first)
	json.Unmarshal(hb[1], &retried)
	json.Unmarshal(hb[2], &second)
	if first.ID != "01TESTCRIT" || retried.ID != "01TESTCRIT" || second.ID != "01CLEAR" {
		t.Errorf("webhook order: %s %s %s", first.ID, retried.ID, second.ID)
	}
	var fire, resolve []AMAlert
	json.Unmarshal(am.get()[0], &fire)
	json.Unmarshal(am.get()[1], &resolve)
	if len(fire) != 1 || fire[0].Labels["alertname"] != "ember_thermal" || fire[0].Labels["severity"] != "critical" ||
		fire[0].Labels["device"] != "rack-a1" || fire[0].EndsAt != nil || !strings.Contains(fire[0].Annotations["signatures"], "cell_temp_rate=3.2degC/min") {
		t.Errorf("alertmanager firing %+v", fire)
	}
	if len(resolve) != 1 || resolve[0].EndsAt == nil || resolve[0].Labels["component"] != crit.Component {
		t.Errorf("alertmanager resolve %+v", resolve)
	}
	// The dead-man's switch was posted at start, beside the alerts.
	var wd []AMAlert
	if d := dog.get(); len(d) == 0 || json.Unmarshal(d[0], &wd) != nil || len(wd) != 1 ||
		wd[0].Labels["collector"] != "col-1" || wd[0].EndsAt == nil || !wd[0].EndsAt.After(time.Now()) {
		t.Errorf("watchdog alert %+v", wd)
	}

	// Annotations in InfluxDB.
	testenv.WaitFor(t, 10*time.Second, func() error {
		rows := in.Query(t, `SELECT id, stage, title, text FROM ember_alert ORDER BY time`)
		if len(rows) != 3 {
			return fmt.Errorf("ember_alert rows %v", rows)
		}
		if rows[0][1] != "01TESTCRIT" || rows[0][2] != "critical" || !strings.Contains(rows[0][4].(string), "gas_h2=40ppm>25") {
			return fmt.Errorf("ember_alert row %v", rows[0])
		}
		return nil
	})
	ev := wire.Evacuation{ID: "ev-1", Site: "s1", Domain: "ups-2", Phase: wire.PhasePrestage, Urgency: wire.UrgencyNormal,
		Reason:  wire.EvacReason{AlertIDs: []string{"01TESTCRIT"}, Summary: "thermal runaway precursor"},
		Targets: []string{"host-a"}, Time: now, Drill: true}
	b, _ := json.Marshal(ev)
	testenv.WaitFor(t, 10*time.Second, func() error {
		nc.Publish(wire.EvacSubject("s1", "ups-2"), b) // core NATS: retry until the subscription is up
		rows := in.Query(t, `SELECT id, phase, drill, title FROM ember_evac`)
		if len(rows) != 1 || rows[0][1] != "ev-1" || rows[0][2] != "prestage" || rows[0][3] != "true" {
			return fmt.Errorf("ember_evac rows %v", rows)
		}
		return nil
	})
}

// T23: the always-firing watchdog alert reaches Alertmanager every
// interval while the collector runs, and stops when it dies, so a
// dead-man's-switch receiver pages within its timeout.
func TestWatchdogAlertStopsWithCollector(t *testing.T) {
	srv := testenv.NATS(t)
	var mu sync.Mutex
	var posts []time.Time
	var last []AMAlert
	amSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var as []AMAlert
		if json.Unmarshal(b, &as) == nil && len(as) == 1 && as[0].Labels["alertname"] == WatchdogAlertName {
			mu.Lock()
			posts, last = append(posts, time.Now()), as
			mu.Unlock()
		}
		w.WriteHeader(200)
	}))
	defer amSrv.Close()
	got := func() (int, []AMAlert) {
		mu.Lock()
		defer mu.Unlock()
		return len(posts), last
	}
	c := startCollector(t, srv.ClientURL(), nil, func(c *Config) {
		c.NOC = NOCConfig{AlertmanagerURL: amSrv.URL, Watchdog: time.Second}
	})
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n, _ := got(); n < 3 {
			return fmt.Errorf("%d watchdog posts", n)
		}
		return nil
	})
	_, a := got()
	if a[0].Labels["site"] != "s1" || a[0].Labels["severity"] != "none" || a[0].EndsAt == nil ||
		a[0].EndsAt.Sub(time.Now()) > 3*time.Second || a[0].EndsAt.Sub(time.Now()) < time.Second {
		t.Fatalf("watchdog alert %+v: want site s1, severity none, ending about 3 intervals after its post", a[0])
	}
	c.stop(t)
	n, _ := got()
	time.Sleep(2500 * time.Millisecond)
	if m, _ := got(); m != n {
		t.Fatalf("%d watchdog posts after the collector stopped", m-n)
	}
}
