package collector

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler exposes the collector's counters for Prometheus at
// /metrics, from a registry of its own (no global state).
func (c *Collector) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	counter := func(name, help string, f func(Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ember_collector_" + name, Help: help,
			ConstLabels: prometheus.Labels{"site": c.cfg.Site, "collector": c.cfg.CollectorID}},
			func() float64 { return float64(f(c.Stats())) }))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ember_collector_" + name, Help: help,
			ConstLabels: prometheus.Labels{"site": c.cfg.Site, "collector": c.cfg.CollectorID}}, f))
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	counter("lines_stored_total", "Telemetry lines written to InfluxDB (or acked without storage).", func(s Stats) uint64 { return s.LinesStored })
	counter("points_written_total", "Points InfluxDB accepted, telemetry and events.", func(s Stats) uint64 { return s.PointsWritten })
	counter("influx_retries_total", "Failed InfluxDB writes that were retried.", func(s Stats) uint64 { return s.InfluxRetries })
	counter("influx_refused_batches_total", "Batches InfluxDB refused for good (400).", func(s Stats) uint64 { return s.InfluxRefused })
	counter("quarantined_lines_total", "Telemetry lines stored in ember_quarantine instead of ember.", func(s Stats) uint64 { return s.Quarantined })
	gauge("influx_down", "1 while InfluxDB writes fail.", func() float64 { return b2f(c.Stats().InfluxDown) })
	gauge("nats_connected", "1 while connected to NATS.", func() float64 { return b2f(c.Stats().NATSConnected) })
	gauge("silent_agents", "Agents without a heartbeat for heartbeat_timeout.", func() float64 {
		n := 0
		for _, a := range c.state.Snapshot(false).Agents {
			if a.Silent {
				n++
			}
		}
		return float64(n)
	})
	gauge("active_alerts", "Active (not normal) conditions.", func() float64 { return float64(len(c.state.Snapshot(false).Active)) })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
