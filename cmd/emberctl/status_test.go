package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startSite runs an in-process NATS and a collector, with one rack's
// telemetry and a critical alert published.
func startSite(t *testing.T, token ...string) (natsURL, httpURL string, js jetstream.JetStream) {
	t.Helper()
	srv := testenv.NATS(t)
	cfg := &collector.Config{Site: "s1", CollectorID: "col-1",
		NATS: collector.NATSConfig{Servers: []string{srv.ClientURL()}}, HTTP: collector.HTTPConfig{Listen: "127.0.0.1:0"}}
	if len(token) > 0 {
		cfg.HTTP.Token = token[0]
	}
	c, err := collector.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ = jetstream.New(nc)
	ts := time.Now().UTC()
	line := fmt.Sprintf("ember,agent=gw-01,component=string/1/cell/5,device=rack-a1,rack=07,room=ups-2,row=b,site=s1 temperature.celsius=48.5 %d\n", ts.UnixNano())
	testenv.WaitFor(t, 10*time.Second, func() error {
		_, err := js.Publish(context.Background(), wire.TelemetrySubject("s1", "gw-01", "rack-a1"), []byte(line), jetstream.WithMsgID("t1"))
		return err // fails until the collector has created the streams
	})
	a := wire.Alert{ID: "01CRIT", Site: "s1", Agent: "gw-01", Device: "rack-a1", Component: "string/1/cell/5",
		Category: wire.CategoryThermal, Stage: wire.StageCritical, PreviousStage: wire.StageWarning,
		Signatures: []wire.Signature{{Kind: "cell_temp", Value: 48.5, Unit: "degC", Threshold: 45}}, Time: ts, SampleTime: ts}
	b, _ := a.Marshal()
	if _, err := js.Publish(context.Background(), wire.AlertSubject("s1", "gw-01", "rack-a1"), b, jetstream.WithMsgID(a.ID)); err != nil {
		t.Fatal(err)
	}
	httpURL = "http://" + c.HTTPAddr()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if s := c.State().Snapshot(false); len(s.Racks) != 1 || len(s.Active) != 1 {
			return fmt.Errorf("state %+v", s)
		}
		return nil
	})
	return srv.ClientURL(), httpURL, js
}

func TestStatusAndAck(t *testing.T) {
	_, url, _ := startSite(t)
	var out, errb bytes.Buffer
	if code := run([]string{"status", "-collector", url}, &out, &errb); code != 0 {
		t.Fatalf("status: %d %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"site s1", "ups-2", "07", "critical", "48.5°C", "rack-a1 string/1/cell/5", "01CRIT", "thermal", "gw-01/rack-a1"} {
		if !strings.Contains(s, want) {
			t.Errorf("status output lacks %q:\n%s", want, s)
		}
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"ack", "01CRIT"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-by NAME is required") {
		t.Errorf("ack without -by: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"ack", "01CRIT", "-by", "kim", "-note", "fire brigade called", "-collector", url}, &out, &errb); code != 0 {
		t.Fatalf("ack: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "acked 01CRIT (critical thermal gw-01/rack-a1) by kim") {
		t.Errorf("ack output %q", out.String())
	}
	errb.Reset()
	if code := run([]string{"ack", "-collector", url, "-by", "kim", "nope"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "404") || !strings.Contains(errb.String(), "unknown alert") {
		t.Errorf("ack unknown: %d %q", code, errb.String())
	}
	out.Reset()
	run([]string{"status", "-collector", url}, &out, &errb)
	if !strings.Contains(out.String(), "kim") {
		t.Errorf("status after ack does not show who acked:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"status", "-collector", url, "-device", "rack-a1"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "string[1].cell[5].temperature.celsius  48.5") || !strings.Contains(out.String(), "stage critical") {
		t.Errorf("status -device: %d\n%s%s", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"status", "-collector", url, "-device", "nope"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `no device "nope"`) {
		t.Errorf("status -device nope: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"status", "-collector", "http://127.0.0.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "collector 127.0.0.1:1") {
		t.Errorf("status with no collector: %d %q", code, errb.String())
	}
}

func TestTail(t *testing.T) {
	natsURL, _, js := startSite(t)
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run([]string{"tail", "-nats", natsURL, "-site", "s1", "-stage", "warning", "-category", "thermal,gas", "-n", "2"}, &out, &errb)
	}()
	pub := func(a wire.Alert) {
		b, _ := a.Marshal()
		js.Publish(context.Background(), wire.AlertSubject(a.Site, a.Agent, a.Device), b, jetstream.WithMsgID(a.ID))
	}
	now := time.Now().UTC()
	base := wire.Alert{Site: "s1", Agent: "gw-01", Device: "rack-a1", Time: now, SampleTime: now}
	watch, env, warn, clear := base, base, base, base
	watch.ID, watch.Category, watch.Stage = "w1", wire.CategoryThermal, wire.StageWatch
	env.ID, env.Category, env.Stage = "e1", wire.CategoryEnvironment, wire.StageCritical
	warn.ID, warn.Category, warn.Stage = "g1", wire.CategoryGas, wire.StageWarning
	warn.Signatures = []wire.Signature{{Kind: "gas_h2", Value: 30, Unit: "ppm", Threshold: 25}}
	clear.ID, clear.Category, clear.Stage, clear.PreviousStage = "c1", wire.CategoryGas, wire.StageNormal, wire.StageWarning
	// tail subscribes asynchronously: publish until it has printed both.
	deadline := time.After(10 * time.Second)
	for {
		pub(watch)
		pub(env)
		pub(warn)
		pub(clear)
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("tail: %d %s", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			// The subscription may start between two publishes: the two
			// lines are one warning and one clear, in either order.
			all := out.String()
			if len(lines) != 2 || strings.Count(all, "WARNING") != 1 || !strings.Contains(all, "gas_h2=30ppm(>25)") ||
				!strings.Contains(all, "id=g1") || strings.Count(all, "CLEARED(warning)") != 1 || strings.Contains(all, "environment") {
				t.Errorf("tail output:\n%s", out.String())
			}
			return
		case <-deadline:
			t.Fatal("tail printed nothing in 10s")
		case <-time.After(200 * time.Millisecond):
			watch.ID += "x"
			env.ID += "x"
			warn.ID += "x"
			clear.ID += "x"
		}
	}
}

// tail -since replays the alert stream: the critical alert published before
// tail started is printed.
func TestTailSince(t *testing.T) {
	natsURL, _, _ := startSite(t)
	var out, errb bytes.Buffer
	if code := run([]string{"tail", "-nats", natsURL, "-site", "s1", "-since", "1h", "-n", "1", "-json"}, &out, &errb); code != 0 {
		t.Fatalf("tail -since: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"id":"01CRIT"`) {
		t.Errorf("tail -since output %q", out.String())
	}
	errb.Reset()
	if code := run([]string{"tail", "-nats", natsURL, "-stage", "hot"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-stage") {
		t.Errorf("bad -stage: %d %q", code, errb.String())
	}
}

// A collector with http.token refuses an ack without it; -token or
// $EMBER_TOKEN gives it.
func TestAckToken(t *testing.T) {
	_, url, _ := startSite(t, "s3")
	var out, errb bytes.Buffer
	if code := run([]string{"ack", "01CRIT", "-by", "kim", "-collector", url}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("without token: %d %q", code, errb.String())
	}
	t.Setenv("EMBER_TOKEN", "s3")
	if code := run([]string{"ack", "01CRIT", "-by", "kim", "-collector", url}, &out, &errb); code != 0 || !strings.Contains(out.String(), "acked 01CRIT") {
		t.Errorf("with $EMBER_TOKEN: %d %q %q", code, out.String(), errb.String())
	}
}
