package agent

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestIntegrationTrapToAlert sends a UPS-MIB upsTrapOnBattery with Debian's
// snmptrap to the agent's trap receiver: it must reach NATS as an alert for
// the mapped device at once, and make the agent poll that device out of
// turn. The figure (send to NATS) is logged; BenchmarkTrapToNATS reports it.
func TestIntegrationTrapToAlert(t *testing.T) {
	snmptrap := testenv.Need(t, "snmptrap")
	s := newSite(t, twoRacksAndUPS)
	port := testenv.FreePorts(t, 1)[0]
	cfg := string(s.agentYAML(t, "10s", "ups-1")) + fmt.Sprintf("traps: {listen: \"udp://127.0.0.1:%d\", communities: [public], devices: {\"127.0.0.1\": ups-1}}\n", port)
	alerts := make(chan wire.Alert, 8)
	sub, err := s.nc.Subscribe("ember.test-site.alert.gw-1.>", func(m *nats.Msg) {
		var a wire.Alert
		if err := json.Unmarshal(m.Data, &a); err == nil {
			alerts <- a
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	a := s.startAgent(t, []byte(cfg))
	testenv.WaitFor(t, 10*time.Second, func() error {
		if roundsOf(a, "ups-1") == 0 {
			return fmt.Errorf("no first round yet")
		}
		return nil
	})
	before := roundsOf(a, "ups-1")
	time.Sleep(200 * time.Millisecond) // the receiver's socket is bound by now
	sent := time.Now()
	out, err := exec.Command(snmptrap, "-v2c", "-c", "public", fmt.Sprintf("127.0.0.1:%d", port), "",
		"1.3.6.1.2.1.33.2.0.1", "1.3.6.1.2.1.33.1.2.2.0", "i", "30").CombinedOutput()
	if err != nil {
		t.Fatalf("snmptrap: %v: %s", err, out)
	}
	select {
	case al := <-alerts:
		lat := time.Since(sent)
		t.Logf("trap sent to alert on NATS: %v", lat)
		if al.Device != "ups-1" || al.Category != wire.CategoryElectrical || al.Stage != wire.StageWatch || al.Component != "trap/upsTrapOnBattery" {
			t.Fatalf("alert %+v", al)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert for the trap within 5s")
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		if roundsOf(a, "ups-1") <= before {
			return fmt.Errorf("no out-of-turn poll after the trap (period is 10s)")
		}
		return nil
	})
}

// BenchmarkTrapToNATS sends b.N UPS-MIB traps with Debian's snmptrap and
// reports the time from sending each to its alert arriving on NATS.
func BenchmarkTrapToNATS(b *testing.B) {
	snmptrap := testenv.Need(b, "snmptrap")
	s := newSite(b, twoRacksAndUPS)
	port := testenv.FreePorts(b, 1)[0]
	cfg := string(s.agentYAML(b, "10s", "ups-1")) + fmt.Sprintf("traps: {listen: \"udp://127.0.0.1:%d\", communities: [public], devices: {\"127.0.0.1\": ups-1}}\n", port)
	got := make(chan time.Time, 16)
	sub, err := s.nc.Subscribe("ember.test-site.alert.gw-1.ups-1", func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil && strings.HasPrefix(a.Component, "trap/") {
			got <- time.Now()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	s.startAgent(b, []byte(cfg))
	time.Sleep(500 * time.Millisecond)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Alternate on-battery and power-restored so every trap is a
		// stage change.
		oid := "1.3.6.1.2.1.33.2.0.1"
		if i%2 == 1 {
			oid = "1.3.6.1.2.1.33.2.0.2"
		}
		sent := time.Now()
		if out, err := exec.Command(snmptrap, "-v2c", "-c", "public", fmt.Sprintf("127.0.0.1:%d", port), "", oid).CombinedOutput(); err != nil {
			b.Fatalf("snmptrap: %v: %s", err, out)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(sent))
		case <-time.After(5 * time.Second):
			b.Fatalf("trap %d: no alert within 5s", i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-trap-to-NATS-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-trap-to-NATS-ms")
}
