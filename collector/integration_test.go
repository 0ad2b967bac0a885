package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func cellTemp(round int) func(int) float64 {
	return func(cell int) float64 { return 25 + float64(cell)/10 + float64(round)/100 }
}

// countSamples returns how many distinct (series, time) points of
// temperature.celsius InfluxDB holds for the device.
func countPoints(t *testing.T, in *testenv.Influx, device string) int {
	t.Helper()
	rows := in.Query(t, fmt.Sprintf(`SELECT count("temperature.celsius") FROM ember WHERE device='%s'`, device))
	if len(rows) == 0 {
		return 0
	}
	n, _ := rows[0][1].(json.Number).Int64()
	return int(n)
}

// Points written through NATS and the collector are read back equal
// (gzip forced on: the default is off for a loopback InfluxDB).
func TestStoreRoundTrip(t *testing.T) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	gz := true
	c := startCollector(t, srv.ClientURL(), in, func(cfg *Config) { cfg.Influx.GZip = &gz })
	_, js := connect(t, srv.ClientURL())

	base := time.Date(2026, 11, 22, 4, 0, 0, 250_000_000, time.UTC)
	const rounds, cells = 20, 8
	for r := range rounds {
		publishTelemetry(t, js, "s1", "gw-01", "rack-a1", base.Add(time.Duration(r)*time.Second),
			telemetry("s1", "gw-01", "rack-a1", "07", base.Add(time.Duration(r)*time.Second), cells, cellTemp(r)))
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != rounds*cells {
			return fmt.Errorf("%d cell points in influx, want %d", n, rounds*cells)
		}
		return nil
	})
	rows := in.Query(t, `SELECT "temperature.celsius", "voltage.volts", rack, room FROM ember WHERE component='string/1/module/1/cell/3' ORDER BY time`)
	if len(rows) != rounds {
		t.Fatalf("%d rows for cell 3, want %d", len(rows), rounds)
	}
	for r, row := range rows {
		ts, _ := row[0].(json.Number).Int64()
		temp, _ := row[1].(json.Number).Float64()
		volts, _ := row[2].(json.Number).Float64()
		if ts != base.Add(time.Duration(r)*time.Second).UnixNano() || temp != cellTemp(r)(3) || volts != 3.903 || row[3] != "07" || row[4] != "ups-2" {
			t.Errorf("row %d = %v, want ts %d temp %v volts 3.903 rack 07 room ups-2", r, row, base.Add(time.Duration(r)*time.Second).UnixNano(), cellTemp(r)(3))
		}
	}
	// Device-level fields too.
	dev := in.Query(t, `SELECT "battery.charge.percent" FROM ember WHERE device='rack-a1' AND component='' ORDER BY time LIMIT 1`)
	if len(dev) != 1 || dev[0][1].(json.Number).String() != "97" {
		t.Errorf("device-level row %v", dev)
	}
	// Nothing pending in the durable consumer once stored.
	testenv.WaitFor(t, 5*time.Second, func() error {
		ci, err := js.Consumer(context.Background(), StreamTelemetry, c.consumerName("telemetry"))
		if err != nil {
			return err
		}
		info, err := ci.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer pending %d ack-pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// Bad lines never reach the ember measurement: they are kept in
// ember_quarantine with the reason, and the good lines of the message are
// stored.
func TestQuarantine(t *testing.T) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), in, nil)
	_, js := connect(t, srv.ClientURL())
	now := time.Now()
	payload := fmt.Sprintf("ember,site=s1,agent=gw-01,device=d1 v=1 %d\n", now.UnixNano()) +
		"ember,site=s1,agent=gw-01,device=d1 v=2\n" + // no timestamp
		fmt.Sprintf("ember,site=s1,agent=gw-01,device=d1 v=3 %d\n", now.Add(time.Hour).UnixNano()) +
		"ember,site=s1,agent=gw-01,device=d1 v=4 1000\n" + // 1970: RTC unset
		fmt.Sprintf("ember,site=s1,agent=evil,device=d1 v=5 %d\n", now.UnixNano()+1) + // forged agent tag
		fmt.Sprintf("ember,site=s1,agent=gw-01,device=d1 v= %d\n", now.UnixNano()+2) + // malformed
		fmt.Sprintf("ember v=7 %d\n", now.UnixNano()+3) // tags filled from the subject
	publishTelemetry(t, js, "s1", "gw-01", "d1", now, []byte(payload))
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := c.Stats().LinesStored; got != 7 {
			return fmt.Errorf("lines stored %d", got)
		}
		return nil
	})
	rows := in.Query(t, `SELECT v, agent, device FROM ember ORDER BY time`)
	if len(rows) != 2 || rows[0][1].(json.Number).String() != "1" || rows[1][1].(json.Number).String() != "7" ||
		rows[1][2] != "gw-01" || rows[1][3] != "d1" {
		t.Errorf("ember rows %v, want v=1 and v=7 (with agent/device tags added)", rows)
	}
	reasons := map[string]int{}
	for _, s := range in.Series(t, `SELECT count(line) FROM ember_quarantine GROUP BY reason`) {
		n, _ := s.Values[0][1].(json.Number).Int64()
		reasons[s.Tags["reason"]] = int(n)
	}
	want := map[string]int{"no_timestamp": 1, "future_timestamp": 1, "clock_unset": 1, "tag_mismatch": 1, "malformed": 1}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("quarantine reasons %v, want %v", reasons, want)
	}
}

// publishRounds publishes rounds of telemetry in the background, at most
// every gap, and returns when done.
func publishRounds(t *testing.T, js jetstream.JetStream, device string, base time.Time, rounds, cells int, gap time.Duration) {
	for r := range rounds {
		ts := base.Add(time.Duration(r) * time.Second)
		publishTelemetry(t, js, "s1", "gw-01", device, ts, telemetry("s1", "gw-01", device, "07", ts, cells, cellTemp(r)))
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

func outageTest(t *testing.T, outage time.Duration) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), in, func(cfg *Config) {
		cfg.NATS.AckWait = "2s" // shorter than the outage: in-progress keeps messages from redelivery
		cfg.NATS.MaxInFlight = 64
	})
	_, js := connect(t, srv.ClientURL())
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	const cells = 4
	publishRounds(t, js, "rack-a1", base, 10, cells, 0)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != 10*cells {
			return fmt.Errorf("%d points before the outage", n)
		}
		return nil
	})
	in.Stop()
	rounds := 10 + int(outage/(50*time.Millisecond))
	start := time.Now()
	for r := 10; r < rounds; r++ {
		ts := base.Add(time.Duration(r) * time.Second)
		publishTelemetry(t, js, "s1", "gw-01", "rack-a1", ts, telemetry("s1", "gw-01", "rack-a1", "07", ts, cells, cellTemp(r)))
		time.Sleep(time.Until(start.Add(time.Duration(r-10) * outage / time.Duration(rounds-10))))
	}
	if !c.Stats().InfluxDown {
		t.Error("collector does not report InfluxDB down during the outage")
	}
	// Backpressure: the collector holds at most max_in_flight messages;
	// the backlog waits in JetStream.
	cons, err := js.Consumer(context.Background(), StreamTelemetry, c.consumerName("telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("during the outage: %d messages held by the collector, %d waiting in JetStream", info.NumAckPending, info.NumPending)
	if info.NumAckPending > 64 || info.NumPending == 0 && rounds-10 > 64 {
		t.Errorf("collector holds %d messages (max_in_flight 64), JetStream %d", info.NumAckPending, info.NumPending)
	}
	in.Start()
	testenv.WaitFor(t, 60*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != rounds*cells {
			return fmt.Errorf("%d points after the outage, want %d", n, rounds*cells)
		}
		return nil
	})
	// None twice: one row per (cell, round).
	rows := in.Series(t, `SELECT count("temperature.celsius") FROM ember WHERE device='rack-a1' GROUP BY component`)
	for _, s := range rows {
		if n := s.Values[0][1].(json.Number).String(); n != strconv.Itoa(rounds) {
			t.Errorf("component %s: %s points, want %d", s.Tags["component"], n, rounds)
		}
	}
	if len(rows) != cells {
		t.Errorf("%d cell series, want %d", len(rows), cells)
	}
}

// InfluxDB stops while telemetry keeps coming, then comes back: every
// sample arrives once.
func TestInfluxOutage(t *testing.T) { outageTest(t, 5*time.Second) }

func TestInfluxOutageLong(t *testing.T) {
	if testing.Short() {
		t.Skip("60 s outage; skipped with -short")
	}
	outageTest(t, 60*time.Second)
}

// Two collectors share the telemetry consumer; one crashes mid-stream
// (its connection dies without acking what it holds): nothing is lost.
func TestTwoCollectorsOneCrashes(t *testing.T) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	mod := func(id string) func(*Config) {
		return func(cfg *Config) {
			cfg.CollectorID = id
			cfg.NATS.AckWait = "2s"
			cfg.NATS.MaxInFlight = 32
			cfg.Influx.FlushInterval = "200ms"
		}
	}
	a := startCollector(t, srv.ClientURL(), in, mod("col-a"))
	b := startCollector(t, srv.ClientURL(), in, mod("col-b"))
	_, js := connect(t, srv.ClientURL())
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	const rounds, cells = 400, 4
	var published atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range rounds {
			ts := base.Add(time.Duration(r) * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := js.Publish(ctx, wire.TelemetrySubject("s1", "gw-01", "rack-a1"),
				telemetry("s1", "gw-01", "rack-a1", "07", ts, cells, cellTemp(r)), jetstream.WithMsgID(strconv.Itoa(r)))
			cancel()
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			published.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if published.Load() < rounds/3 || a.Stats().LinesStored == 0 || b.Stats().LinesStored == 0 {
			return fmt.Errorf("published %d, a stored %d, b stored %d", published.Load(), a.Stats().LinesStored, b.Stats().LinesStored)
		}
		return nil
	})
	a.crash()
	a.stop(t)
	<-done
	testenv.WaitFor(t, 30*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != rounds*cells {
			return fmt.Errorf("%d points, want %d", n, rounds*cells)
		}
		return nil
	})
	t.Logf("lines stored: a %d, b %d", a.Stats().LinesStored, b.Stats().LinesStored)
}

// crash cuts the collector's NATS connection without draining: what it
// pulled and did not ack is redelivered to the other collector.
func (c *Collector) crash() {
	if nc := c.nc.Load(); nc != nil {
		nc.Close()
	}
}

// An agent that stops sending heartbeats becomes a comms alert from the
// collector; when it comes back the alert clears.
func TestHeartbeatTimeout(t *testing.T) {
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, func(cfg *Config) { cfg.HeartbeatTimeout = "600ms" })
	nc, _ := connect(t, srv.ClientURL())
	alerts := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(wire.Wildcard("s1", wire.KindAlert), alerts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	beat := func() {
		b, _ := json.Marshal(wire.Heartbeat{Agent: "gw-07", Site: "s1", Version: "test", Time: time.Now(),
			Devices: []wire.DeviceHealth{{Device: "ups-1", Health: wire.HealthOK}}})
		if err := nc.Publish(wire.HeartbeatSubject("s1", "gw-07"), b); err != nil {
			t.Fatal(err)
		}
	}
	var silentSince time.Time
	for range 5 {
		beat()
		silentSince = time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	var a wire.Alert
	select {
	case m := <-alerts:
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatal(err)
		}
		if m.Subject != wire.AlertSubject("s1", "col-1", "gw-07") {
			t.Errorf("subject %s", m.Subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no comms alert 5s after heartbeats stopped")
	}
	took := time.Since(silentSince)
	if a.Category != wire.CategoryComms || a.Stage != wire.StageWatch || a.Agent != "col-1" || a.Device != "gw-07" ||
		len(a.Signatures) != 1 || a.Signatures[0].Kind != "heartbeat_age" || a.Signatures[0].Value < 0.6 {
		t.Errorf("comms alert %+v", a)
	}
	if took < 600*time.Millisecond || took > 2*time.Second {
		t.Errorf("comms alert %v after the last heartbeat, want about 0.6-0.8 s", took)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		s := c.State().Snapshot(false)
		if ag, ok := agentView(s, "gw-07"); !ok || !ag.Silent || len(s.Active) != 1 {
			return fmt.Errorf("state %+v", s)
		}
		return nil
	})
	beat()
	select {
	case m := <-alerts:
		var clr wire.Alert
		json.Unmarshal(m.Data, &clr)
		if clr.Stage != wire.StageNormal || clr.PreviousStage != wire.StageWatch || clr.Category != wire.CategoryComms {
			t.Errorf("clear alert %+v", clr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no clearing alert after the heartbeat came back")
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		s := c.State().Snapshot(false)
		if ag, _ := agentView(s, "gw-07"); len(s.Active) != 0 || ag.Silent {
			return fmt.Errorf("state after recovery %+v", s)
		}
		return nil
	})
	// The collector's own heartbeat is there too, never reported silent.
	if ag, ok := agentView(c.State().Snapshot(false), "col-1"); !ok || ag.Version != HeartbeatVersion || ag.Silent {
		t.Errorf("collector's own heartbeat: %+v %v", ag, ok)
	}
}

func agentView(s Snapshot, id string) (AgentView, bool) {
	for _, a := range s.Agents {
		if a.Agent == id {
			return a, true
		}
	}
	return AgentView{}, false
}

// An alert whose JSON names another agent than its subject is refused:
// it neither changes the state nor reaches InfluxDB or the NOC.
func TestForgedAlertRefused(t *testing.T) {
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, nil)
	_, js := connect(t, srv.ClientURL())
	forged := criticalAlert(time.Now())
	b, _ := forged.Marshal()
	if _, err := js.Publish(context.Background(), wire.AlertSubject("s1", "gw-02", "rack-a1"), b); err != nil {
		t.Fatal(err)
	}
	good := forged
	good.ID, good.Category = "01GOOD", wire.CategoryGas
	b, _ = good.Marshal()
	if _, err := js.Publish(context.Background(), wire.AlertSubject("s1", "gw-01", "rack-a1"), b); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		if n := len(c.State().Alerts(time.Time{}, 0)); n != 1 {
			return fmt.Errorf("%d alerts in state", n)
		}
		return nil
	})
	if a := c.State().Alerts(time.Time{}, 0); a[0].ID != "01GOOD" {
		t.Errorf("state holds %+v", a)
	}
}

// The NATS server restarts under the collector: it reconnects, its
// consumers resume, and every sample of both sides of the gap is stored.
func TestNATSRestart(t *testing.T) {
	in := testenv.StartInflux(t)
	dir := t.TempDir()
	port := testenv.FreePorts(t, 1)[0]
	srv := testenv.NATSWithStore(t, dir, port)
	c := startCollector(t, srv.ClientURL(), in, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	_, js := connect(t, srv.ClientURL())
	publishRounds(t, js, "rack-a1", base, 10, 4, 0)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != 40 {
			return fmt.Errorf("%d points before the restart", n)
		}
		return nil
	})
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(500 * time.Millisecond)
	srv = testenv.NATSWithStore(t, dir, port)
	_, js = connect(t, srv.ClientURL())
	for r := 10; r < 20; r++ {
		ts := base.Add(time.Duration(r) * time.Second)
		publishTelemetry(t, js, "s1", "gw-01", "rack-a1", ts, telemetry("s1", "gw-01", "rack-a1", "07", ts, 4, cellTemp(r)))
	}
	testenv.WaitFor(t, 20*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != 80 {
			return fmt.Errorf("%d points after the restart, want 80", n)
		}
		if s := c.State().Snapshot(false); len(s.Racks) != 1 || s.Racks[0].Hottest == nil || s.Racks[0].Hottest.Celsius != cellTemp(19)(4) {
			return fmt.Errorf("state not following: %+v", s.Racks)
		}
		return nil
	})
}

// Two collectors watch one agent: the silence gives one comms alert on the
// stream, the return one clear, and both states end clear.
func TestHeartbeatTimeoutTwoCollectors(t *testing.T) {
	srv := testenv.NATS(t)
	mod := func(id string) func(*Config) {
		return func(cfg *Config) { cfg.CollectorID, cfg.HeartbeatTimeout = id, "500ms" }
	}
	a := startCollector(t, srv.ClientURL(), nil, mod("col-a"))
	b := startCollector(t, srv.ClientURL(), nil, mod("col-b"))
	nc, js := connect(t, srv.ClientURL())
	beat := func() {
		p, _ := json.Marshal(wire.Heartbeat{Agent: "gw-07", Site: "s1", Time: time.Now()})
		nc.Publish(wire.HeartbeatSubject("s1", "gw-07"), p)
	}
	for range 3 {
		beat()
		time.Sleep(100 * time.Millisecond)
	}
	silent := func(want bool) func() error {
		return func() error {
			for _, c := range []*running{a, b} {
				s := c.State().Snapshot(false)
				if ag, ok := agentView(s, "gw-07"); !ok || ag.Silent != want || (len(s.Active) == 1) != want {
					return fmt.Errorf("%s: agents %+v active %d", c.cfg.CollectorID, s.Agents, len(s.Active))
				}
			}
			return nil
		}
	}
	testenv.WaitFor(t, 5*time.Second, silent(true))
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() { // the agent is back for good
		defer close(beating)
		for {
			beat()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-beating }()
	testenv.WaitFor(t, 5*time.Second, silent(false))
	time.Sleep(300 * time.Millisecond) // a second collector's duplicate would have arrived by now
	st, err := js.Stream(context.Background(), StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 {
		t.Errorf("%d alerts on the stream, want 2 (one raise, one clear)", info.State.Msgs)
	}
	// Collector b dies: a reports it (collectors watch each other).
	b.crash()
	b.stop(t)
	testenv.WaitFor(t, 5*time.Second, func() error {
		for _, c := range a.State().Snapshot(false).Active {
			if c.Category == wire.CategoryComms && c.Device == "col-b" && c.Agent == "col-a" {
				return nil
			}
		}
		return fmt.Errorf("no comms alert for the dead collector")
	})
}

// With auth on, the token "user:password" writes and creates the database
// and retention policy; a wrong token loses nothing: the messages stay
// unacked in JetStream.
func TestInfluxAuthAndCreate(t *testing.T) {
	in := testenv.StartInfluxWith(t, testenv.InfluxOptions{User: "admin", Password: "s3cret"})
	srv := testenv.NATS(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	c := startCollector(t, srv.ClientURL(), in, func(cfg *Config) {
		cfg.Influx.Token = "admin:s3cret"
		cfg.Influx.Database, cfg.Influx.RetentionPolicy, cfg.Influx.Retention = "ember2", "raw", "7d"
		cfg.Influx.CreateDatabase = true
	})
	_, js := connect(t, srv.ClientURL())
	publishRounds(t, js, "rack-a1", base, 5, 2, 0)
	in.Database = "ember2"
	testenv.WaitFor(t, 10*time.Second, func() error {
		rows := in.Query(t, `SELECT count("temperature.celsius") FROM "raw"."ember"`)
		if len(rows) != 1 || rows[0][1].(json.Number).String() != "10" {
			return fmt.Errorf("rows %v", rows)
		}
		return nil
	})
	rps := in.Query(t, `SHOW RETENTION POLICIES ON "ember2"`)
	found := false
	for _, r := range rps {
		if r[0] == "raw" && r[1] == "168h0m0s" {
			found = true
		}
	}
	if !found {
		t.Errorf("retention policies %v", rps)
	}
	c.stop(t)

	// Wrong password: nothing stored, nothing acked, InfluxDB reported down.
	bad := startCollector(t, srv.ClientURL(), in, func(cfg *Config) {
		cfg.CollectorID = "col-bad"
		cfg.Influx.Token = "admin:wrong"
		cfg.Influx.Database, cfg.Influx.RetentionPolicy = "ember2", "raw"
	})
	publishRounds(t, js, "rack-a2", base, 5, 2, 0)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !bad.Stats().InfluxDown || bad.Stats().InfluxRetries < 2 {
			return fmt.Errorf("stats %+v", bad.Stats())
		}
		return nil
	})
	cons, _ := js.Consumer(context.Background(), StreamTelemetry, bad.consumerName("telemetry"))
	info, _ := cons.Info(context.Background())
	if info.NumAckPending+int(info.NumPending) != 5 || bad.Stats().LinesStored != 0 {
		t.Errorf("unacked %d + pending %d, want the 5 messages kept; stored %d", info.NumAckPending, info.NumPending, bad.Stats().LinesStored)
	}
}

// Black boxes (the agent's raw history published on an alert) are stored
// like telemetry: same measurement, sample times, identity checks.
func TestBlackBoxStored(t *testing.T) {
	in := testenv.StartInflux(t)
	srv := testenv.NATS(t)
	_, js := connect(t, srv.ClientURL())
	// The agent makes this stream with its first black box.
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EMBER_BLACKBOX",
		Subjects: []string{"ember.*.blackbox.>"}, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, srv.ClientURL(), in, nil)
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	var payload []byte
	for r := range 40 { // 10 s at 250 ms
		ts := base.Add(time.Duration(r) * 250 * time.Millisecond)
		payload = append(payload, telemetry("s1", "gw-01", "rack-a1", "07", ts, 4, cellTemp(r))...)
	}
	if _, err := js.Publish(context.Background(), "ember.s1.blackbox.gw-01.rack-a1", payload, jetstream.WithMsgID("bb-1.0")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := countPoints(t, in, "rack-a1"); n != 160 {
			return fmt.Errorf("%d black-box cell points, want 160", n)
		}
		return nil
	})
	if q := c.Stats().Quarantined; q != 0 {
		t.Errorf("%d black-box lines quarantined", q)
	}
}

// Without a reachable NATS the collector keeps trying, serves /healthz as
// 503, and still stops cleanly.
func TestNoNATSStopsCleanly(t *testing.T) {
	port := testenv.FreePorts(t, 1)[0]
	cfg := &Config{Site: "s1", NATS: NATSConfig{Servers: []string{fmt.Sprintf("nats://127.0.0.1:%d", port)}},
		HTTP: HTTPConfig{Listen: "127.0.0.1:0"}}
	c, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, err := http.Get("http://" + c.HTTPAddr() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("healthz %d without NATS", resp.StatusCode)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
