package collector

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// benchIngest measures points per second from NATS through the collector's
// own path (durable consumer, scan and check, batch, InfluxDB write, ack).
// Each op publishes one message of 100 points (a 96-cell module plus the
// device line, ~10 kB); the reported points/s is wall time from the first
// publish until the collector has acked every point.
func benchIngest(b *testing.B, withInflux, gzip bool) {
	var in *testenv.Influx
	if withInflux {
		in = testenv.StartInflux(b)
	}
	srv := testenv.NATS(b)
	c := startCollector(b, srv.ClientURL(), in, func(cfg *Config) {
		cfg.NATS.MaxInFlight = 2048
		cfg.Influx.BatchSize = 5000
		cfg.Influx.GZip = &gzip
	})
	_, js := connect(b, srv.ClientURL())
	const cells = 99 // + 1 device line = 100 points per message
	base := time.Now().Add(-time.Hour)
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = telemetry("s1", "gw-01", fmt.Sprintf("rack-%d", i), "07", base, cells, cellTemp(i))
	}
	baseTS := []byte(strconv.FormatInt(base.UnixNano(), 10))
	subjects := make([]string, len(payloads))
	for i := range subjects {
		subjects[i] = wire.TelemetrySubject("s1", "gw-01", fmt.Sprintf("rack-%d", i))
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payloads[0])))
	start := time.Now()
	var published int
	for b.Loop() {
		// Every message is a new (device, round): same payload, its own
		// timestamp (all timestamps have 19 digits, so a plain replace).
		i := published % len(payloads)
		round := published / len(payloads)
		p := bytes.ReplaceAll(payloads[i], baseTS, []byte(strconv.FormatInt(base.Add(time.Duration(round)*time.Second).UnixNano(), 10)))
		if _, err := js.PublishAsync(subjects[i], p,
			jetstream.WithMsgID(fmt.Sprintf("%d-%d", i, round))); err != nil {
			b.Fatal(err)
		}
		published++
		if published%500 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	want := uint64(published * (cells + 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for c.Stats().LinesStored < want {
		if ctx.Err() != nil {
			b.Fatalf("stored %d of %d points", c.Stats().LinesStored, want)
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.ReportMetric(float64(want)/el.Seconds(), "points/s")
	if withInflux {
		b.ReportMetric(float64(c.Stats().InfluxRetries), "retries")
	}
}

func BenchmarkIngestInflux(b *testing.B)       { benchIngest(b, true, true) }
func BenchmarkIngestInfluxNoGzip(b *testing.B) { benchIngest(b, true, false) }
func BenchmarkIngestNoInflux(b *testing.B)     { benchIngest(b, false, false) }

// BenchmarkStateApply is the per-instance state path for one 100-point
// message of a known device (steady state: no allocation per point).
func BenchmarkStateApply(b *testing.B) {
	s := newState("s1", time.Now)
	p := telemetry("s1", "gw-01", "rack-a1", "07", time.Now(), 99, cellTemp(1))
	var l lpLine
	s.applyTelemetry("gw-01", "rack-a1", p, &l)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if n, err := s.applyTelemetry("gw-01", "rack-a1", p, &l); err != nil || n != 100 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
