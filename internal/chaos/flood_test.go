package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestChaosT18bAlarmFlood: 500 low-priority alarms from 50 racks arrive at
// the collector within a few seconds (design: 60 s), with one emergency in
// the middle. The emergency must reach the NOC webhook promptly however
// deep the flood. The number of individual notifications is measured
// against the ISA-18.2 target (<= 10 per 10 min plus a summary); the
// collector has no flood mode yet, so that figure is reported, not
// asserted.
func TestChaosT18bAlarmFlood(t *testing.T) {
	// Setup: a collector whose NOC consumer is a signed webhook.
	s := testenv.NATS(t)
	secret := "noc-secret"
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	deliveries := 0
	noc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := collector.VerifySignature([]byte(secret), r.Header.Get("Ember-Signature"), b, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var a wire.Alert
		if json.Unmarshal(b, &a) == nil {
			mu.Lock()
			deliveries++
			if _, ok := arrived[a.ID]; !ok {
				arrived[a.ID] = time.Now()
			}
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer noc.Close()
	cfg := collectorConfig("col-1", s.ClientURL(), "")
	cfg.NOC = collector.NOCConfig{Webhooks: []collector.WebhookConfig{{URL: noc.URL, Secret: secret}}}
	runCollector(t, cfg)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// Inject: 500 watch/warning alarms from 50 racks over 5 s, the
	// emergency after 250 of them.
	const racks, flood = 50, 500
	span := 5 * time.Second
	start := time.Now()
	var emergencySent time.Time
	publish := func(a wire.Alert) {
		b, _ := a.Marshal()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.Publish(ctx, wire.AlertSubject(a.Site, a.Agent, a.Device), b, jetstream.WithMsgID(a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range flood {
		now := time.Now().UTC()
		rack := i % racks
		cat, stage := wire.CategoryEnvironment, wire.StageWatch
		if i%3 == 0 {
			cat, stage = wire.CategorySensorFault, wire.StageWatch
		}
		if i%10 == 0 {
			cat, stage = wire.CategoryElectrical, wire.StageWarning
		}
		publish(wire.Alert{ID: fmt.Sprintf("flood-%d", i), Site: "chaos", Agent: fmt.Sprintf("gw-%02d", rack/10), Device: fmt.Sprintf("rack-%02d", rack),
			Component: fmt.Sprintf("string/1/module/1/cell/%d", 1+i/racks), Category: cat, Stage: stage, PreviousStage: wire.StageNormal,
			SampleTime: now, Time: now, Summary: "bus noise"})
		if i == flood/2 {
			emergencySent = time.Now()
			publish(wire.Alert{ID: "runaway-1", Site: "chaos", Agent: "gw-02", Device: "rack-27", Component: "string/1/module/2/cell/5",
				Category: wire.CategoryThermal, Stage: wire.StageEmergency, PreviousStage: wire.StageCritical,
				Families: []string{"thermal", "gas"}, SampleTime: now, Time: now, Summary: "cell 5 runaway"})
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * span / flood)))
	}

	// WaitPropagate.
	var emergencyLat time.Duration
	testenv.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		at, ok := arrived["runaway-1"]
		if !ok {
			return fmt.Errorf("emergency not delivered (%d deliveries so far)", deliveries)
		}
		emergencyLat = at.Sub(emergencySent)
		return nil
	})
	time.Sleep(2 * time.Second) // let the rest of the flood land

	// Check.
	mu.Lock()
	n, distinct := deliveries, len(arrived)
	mu.Unlock()
	t.Logf("T18b: %d low-priority alarms from %d racks in %v plus 1 emergency: emergency at the NOC webhook %v after it was published (criterion <= 1s); %d notifications for %d distinct alarms reaching the collector (criterion <= 10 per 10 min + 1 summary, plus the emergency)",
		flood, racks, span, emergencyLat.Round(time.Millisecond), n, distinct)
	if n > 12 {
		t.Errorf("%d notifications in one flood window, want at most 10 + 1 summary + the emergency", n)
	}
	if emergencyLat > 5*time.Second {
		t.Errorf("emergency delivered %v after publish, behind the flood", emergencyLat)
	}
}
