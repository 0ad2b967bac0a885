package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("EMBER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type running struct {
	*Collector
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop stops the collector cleanly and waits for Run to return.
func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("collector run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("collector did not stop within 20s")
		}
	})
}

// startCollector runs a collector for site "s1" against natsURL and, when
// influx is not nil, InfluxDB.
func startCollector(t testing.TB, natsURL string, influx *testenv.Influx, mod func(*Config)) *running {
	t.Helper()
	cfg := &Config{Site: "s1", CollectorID: "col-1",
		NATS:             NATSConfig{Servers: []string{natsURL}, AckWait: "3s"},
		HTTP:             HTTPConfig{Listen: "127.0.0.1:0"},
		HeartbeatTimeout: "15s",
	}
	if influx != nil {
		cfg.Influx = InfluxConfig{URL: influx.URL, Database: influx.Database, FlushInterval: "100ms", MaxBackoff: "500ms"}
	}
	if mod != nil {
		mod(cfg)
	}
	c, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("collector.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Collector: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	// Wait until the streams exist and consumers are attached.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if c.js.Load() == nil {
			return fmt.Errorf("not connected")
		}
		select {
		case <-c.alertsReady:
		default:
			return fmt.Errorf("alerts not caught up")
		}
		return nil
	})
	return r
}

func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// telemetry builds one round of a device: a device-level line and one
// line per cell, all at ts.
func telemetry(site, agent, device, rack string, ts time.Time, cells int, temp func(cell int) float64) []byte {
	var b []byte
	tags := []wire.Tag{{Key: "agent", Value: agent}, {Key: "device", Value: device}, {Key: "rack", Value: rack},
		{Key: "room", Value: "ups-2"}, {Key: "row", Value: "b"}, {Key: "site", Value: site}}
	b = wire.AppendLineStart(b, tags)
	b = wire.AppendFloatField(b, true, "battery.charge.percent", 97)
	b = wire.AppendFloatField(b, false, "battery.voltage.volts", 54.6)
	b = wire.AppendTimestamp(b, ts)
	for i := 1; i <= cells; i++ {
		ct := append(tags[:len(tags):len(tags)], wire.Tag{})
		copy(ct[2:], ct[1:])
		ct[1] = wire.Tag{Key: "component", Value: fmt.Sprintf("string/1/module/1/cell/%d", i)}
		b = wire.AppendLineStart(b, ct)
		b = wire.AppendFloatField(b, true, "temperature.celsius", temp(i))
		b = wire.AppendFloatField(b, false, "voltage.volts", 3.9+float64(i)/1000)
		b = wire.AppendTimestamp(b, ts)
	}
	return b
}

func publishTelemetry(t testing.TB, js jetstream.JetStream, site, agent, device string, ts time.Time, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := fmt.Sprintf("%s-%s-%d", agent, device, ts.UnixNano())
	if _, err := js.Publish(ctx, wire.TelemetrySubject(site, agent, device), payload, jetstream.WithMsgID(id)); err != nil {
		t.Fatalf("publish telemetry: %v", err)
	}
}
