package snmp_test

import (
	"context"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

const trapEngineID = "0x8000000001020304"

// startReceiver runs a TrapReceiver on a free loopback port.
func startReceiver(t testing.TB, communities []string) (port int, events chan snmp.TrapEvent) {
	t.Helper()
	events = make(chan snmp.TrapEvent, 16)
	for range 3 {
		port = testenv.FreeUDPPort(t)
		r, err := snmp.NewTrapReceiver(snmp.TrapConfig{
			Listen:      "udp://127.0.0.1:" + strconv.Itoa(port),
			Communities: communities,
			Users: []snmp.TrapUser{{EngineID: trapEngineID, V3: snmp.V3{User: "upstrap",
				AuthProtocol: "SHA", AuthPassphrase: "authpass123", PrivProtocol: "AES", PrivPassphrase: "privpass123"}}},
			Devices: map[string]string{"127.0.0.1": "ups-1", "10.9.8.7": "ups-9"},
		}, func(ev snmp.TrapEvent) { events <- ev }, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- r.Run(ctx) }()
		// Run returns early only when it cannot bind.
		select {
		case err := <-errc:
			cancel()
			t.Logf("listen on %d: %v; retrying", port, err)
			continue
		case <-time.After(50 * time.Millisecond):
		}
		t.Cleanup(func() { cancel(); <-errc })
		return port, events
	}
	t.Fatal("trap receiver could not bind")
	return 0, nil
}

func snmptrap(t testing.TB, args ...string) {
	t.Helper()
	bin := testenv.Need(t, "snmptrap")
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("snmptrap %v: %v\n%s", args, err, b)
	}
}

func waitEvent(t testing.TB, events chan snmp.TrapEvent) snmp.TrapEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no trap received within 5 s")
	}
	return snmp.TrapEvent{}
}

func TestTrapsFromSnmptrap(t *testing.T) {
	port, events := startReceiver(t, []string{"public"})
	to := "127.0.0.1:" + strconv.Itoa(port)

	// v2c upsTrapOnBattery with its varbinds.
	snmptrap(t, "-v2c", "-c", "public", to, "", "1.3.6.1.2.1.33.2.1",
		"1.3.6.1.2.1.33.1.2.3.0", "i", "12", "1.3.6.1.2.1.33.1.2.2.0", "i", "40")
	ev := waitEvent(t, events)
	if ev.Name != "upsTrapOnBattery" || ev.Severity != snmp.SeverityWarning || ev.Device != "ups-1" || ev.Version != "2c" {
		t.Errorf("v2c on battery: %+v", ev)
	}
	if len(ev.Vars) != 2 || ev.Vars[0].Name != "upsEstimatedMinutesRemaining" || ev.Vars[0].Value != "12" {
		t.Errorf("varbinds = %+v", ev.Vars)
	}

	// v2c alarm added: the alarm's own severity (low battery = critical).
	snmptrap(t, "-v2c", "-c", "public", to, "", "1.3.6.1.2.1.33.2.3",
		"1.3.6.1.2.1.33.1.6.2.1.1.7", "i", "7", "1.3.6.1.2.1.33.1.6.2.1.2.7", "o", "1.3.6.1.2.1.33.1.6.3.3")
	ev = waitEvent(t, events)
	if ev.Name != "upsTrapAlarmEntryAdded" || ev.Alarm != "upsAlarmLowBattery" || ev.Severity != snmp.SeverityCritical {
		t.Errorf("alarm added: %+v", ev)
	}

	// v3 authPriv trap (sender authoritative, engine id known).
	snmptrap(t, "-v3", "-e", trapEngineID, "-l", "authPriv", "-u", "upstrap", "-a", "SHA", "-A", "authpass123",
		"-x", "AES", "-X", "privpass123", to, "", "1.3.6.1.2.1.33.2.2",
		"1.3.6.1.2.1.33.1.7.3.0", "i", "3")
	ev = waitEvent(t, events)
	if ev.Name != "upsTrapTestCompleted" || ev.Version != "3" || ev.User != "upstrap" {
		t.Errorf("v3 test completed: %+v", ev)
	}

	// v2c inform (snmpinform waits for the receiver's response).
	snmptrap(t, "-Ci", "-t", "2", "-r", "0", "-v2c", "-c", "public", to, "", "1.3.6.1.4.1.534.1.7.4")
	ev = waitEvent(t, events)
	if !ev.Inform || ev.Name != "xupsLowBattery" || ev.Severity != snmp.SeverityCritical {
		t.Errorf("inform: %+v", ev)
	}

	// v1 trap from the Liebert tree (enterprise + specific).
	snmptrap(t, "-v1", "-c", "public", to, "1.3.6.1.4.1.476.1.42.3.3", "127.0.0.1", "6", "11", "")
	ev = waitEvent(t, events)
	if ev.Name != "lgpEventBatteryModuleFailure" || ev.Version != "1" || ev.Severity != snmp.SeverityCritical {
		t.Errorf("v1 liebert: %+v", ev)
	}
	// The v1 agent-addr field maps a device when the source does not.
	snmptrap(t, "-v1", "-c", "public", to, "1.3.6.1.2.1.33.2", "10.9.8.7", "6", "1", "")
	ev = waitEvent(t, events)
	if ev.Name != "upsTrapOnBattery" || ev.Device != "ups-9" {
		t.Errorf("v1 upsTraps.0.1 via agent-addr: %+v", ev)
	}

	// A wrong community is dropped; a wrong v3 passphrase too.
	snmptrap(t, "-v2c", "-c", "guess", to, "", "1.3.6.1.2.1.33.2.1")
	snmptrap(t, "-v3", "-e", trapEngineID, "-l", "authPriv", "-u", "upstrap", "-a", "SHA", "-A", "wrongpass99",
		"-x", "AES", "-X", "privpass123", to, "", "1.3.6.1.2.1.33.2.1")
	select {
	case ev := <-events:
		t.Errorf("forged trap delivered: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestTrapLatency measures snmptrap send -> callback. snmptrap's own
// process start is inside the figure, so the receiver's share is smaller.
func TestTrapLatency(t *testing.T) {
	port, events := startReceiver(t, nil)
	to := "127.0.0.1:" + strconv.Itoa(port)
	bin := testenv.Need(t, "snmptrap")
	var lat []time.Duration
	for i := range 10 {
		start := time.Now()
		if b, err := exec.Command(bin, "-v2c", "-c", "public", to, "", "1.3.6.1.2.1.33.2.1",
			"1.3.6.1.2.1.33.1.2.2.0", "i", strconv.Itoa(i)).CombinedOutput(); err != nil {
			t.Fatalf("snmptrap: %v %s", err, b)
		}
		ev := waitEvent(t, events)
		lat = append(lat, ev.Time.Sub(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("snmptrap exec -> callback: min %v p50 %v max %v", lat[0], lat[len(lat)/2], lat[len(lat)-1])
	if lat[len(lat)/2] > 100*time.Millisecond {
		t.Errorf("p50 latency %v, want well under 100 ms", lat[len(lat)/2])
	}
}

// TestTrapsFromSNMPD: Debian snmpd's own notifications (coldStart on
// start-up, sent by trap2sink and as an inform by informsink) reach the
// receiver.
func TestTrapsFromSNMPD(t *testing.T) {
	port, events := startReceiver(t, []string{"public"})
	sink := "127.0.0.1:" + strconv.Itoa(port)
	testenv.StartSNMPD(t, testenv.SNMPDOptions{ExtraConfig: "trap2sink " + sink + " public\ninformsink " + sink + " public\n"})
	got := map[bool]bool{}
	for len(got) < 2 {
		ev := waitEvent(t, events)
		if ev.Name != "coldStart" || ev.Device != "ups-1" || ev.Severity != snmp.SeverityInfo {
			t.Errorf("event %+v", ev)
		}
		got[ev.Inform] = true
	}
}
