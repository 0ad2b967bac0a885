package selfmon

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name ("ember_rounds_total").
const Namespace = "ember"

// Metrics is the daemons' set of Prometheus metrics on a private registry.
// Build one per process with [NewMetrics]; all methods are safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	rounds, roundErrors, overruns, dropped *prometheus.CounterVec
	pollDuration                           *prometheus.HistogramVec
	bufferDepth                            *prometheus.GaugeVec
	bufferDropped                          *prometheus.CounterVec
	publishLatency                         prometheus.Histogram
	alerts                                 *prometheus.CounterVec
	watchdogStalls                         prometheus.Counter
}

// DeviceMetrics are one device's pre-curried metrics: using them is an
// atomic update, with no label look-up or allocation.
type DeviceMetrics struct {
	Rounds       prometheus.Counter  // completed sampling rounds
	RoundErrors  prometheus.Counter  // rounds whose poll failed as a whole (link down, timeout)
	Overruns     prometheus.Counter  // rounds that took longer than the period
	Dropped      prometheus.Counter  // rounds skipped because the previous one was still running
	PollDuration prometheus.Observer // seconds per poll
}

// BufferMetrics are one buffer kind's pre-curried metrics (kind is e.g.
// "telemetry" or "alert" for the store-and-forward queues).
type BufferMetrics struct {
	Depth   prometheus.Gauge   // entries waiting
	Dropped prometheus.Counter // entries dropped because the buffer was full
}

// NewMetrics builds the metric set and registers it, with the Go runtime
// and process collectors, on a new private registry. version is exported
// as ember_build_info{version=...} 1.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	dev := []string{"device"}
	// Poll durations range from ~20 µs (Modbus TCP on a LAN) to seconds
	// (RTU at 9600 baud, SNMP retries).
	pollBuckets := prometheus.ExponentialBucketsRange(0.0005, 10, 14)
	m := &Metrics{
		reg: reg,
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "rounds_total",
			Help: "Completed sampling rounds per device."}, dev),
		roundErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "round_errors_total",
			Help: "Sampling rounds that failed as a whole (link down, timeout), per device."}, dev),
		overruns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "overruns_total",
			Help: "Sampling rounds that took longer than the device's period."}, dev),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dropped_rounds_total",
			Help: "Sampling rounds skipped because the previous round was still running."}, dev),
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "poll_duration_seconds",
			Help: "Time one poll of a device took.", Buckets: pollBuckets}, dev),
		bufferDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "buffer_depth",
			Help: "Entries waiting in a store-and-forward buffer."}, []string{"kind"}),
		bufferDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "buffer_dropped_total",
			Help: "Entries dropped because a buffer was full (oldest first)."}, []string{"kind"}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "publish_latency_seconds",
			Help:    "Time from a sample to its publication being accepted by NATS.",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 30, 16)}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "alerts_total",
			Help: "Alert stage changes raised, by stage and category."}, []string{"stage", "category"}),
		watchdogStalls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "watchdog_stalls_total",
			Help: "Watchdog periods without pipeline progress (pings withheld)."}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the version label says which build runs.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	reg.MustRegister(m.rounds, m.roundErrors, m.overruns, m.dropped, m.pollDuration,
		m.bufferDepth, m.bufferDropped, m.publishLatency, m.alerts, m.watchdogStalls, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Device returns the metrics of one device. Call it once per device when
// its sampling loop starts and keep the result; the series appear at zero
// right away, so a device that never completes a round is visible.
func (m *Metrics) Device(id string) DeviceMetrics {
	return DeviceMetrics{
		Rounds:       m.rounds.WithLabelValues(id),
		RoundErrors:  m.roundErrors.WithLabelValues(id),
		Overruns:     m.overruns.WithLabelValues(id),
		Dropped:      m.dropped.WithLabelValues(id),
		PollDuration: m.pollDuration.WithLabelValues(id),
	}
}

// ForgetDevice removes a device's series, e.g. after a configuration
// reload dropped it, so that stale series do not linger.
func (m *Metrics) ForgetDevice(id string) {
	m.rounds.DeleteLabelValues(id)
	m.roundErrors.DeleteLabelValues(id)
	m.overruns.DeleteLabelValues(id)
	m.dropped.DeleteLabelValues(id)
	m.pollDuration.DeleteLabelValues(id)
}

// Buffer returns the metrics of one buffer kind; keep the result.
func (m *Metrics) Buffer(kind string) BufferMetrics {
	return BufferMetrics{Depth: m.bufferDepth.WithLabelValues(kind), Dropped: m.bufferDropped.WithLabelValues(kind)}
}

// ObservePublish records the latency of one accepted publication.
func (m *Metrics) ObservePublish(d time.Duration) { m.publishLatency.Observe(d.Seconds()) }

// Alert counts one alert stage change. Alerts are rare, so the label
// look-up here is not a hot path.
func (m *Metrics) Alert(stage, category string) { m.alerts.WithLabelValues(stage, category).Inc() }

// WatchdogStalled counts a withheld watchdog ping; set it as
// [Watchdog].OnStall.
func (m *Metrics) WatchdogStalled() { m.watchdogStalls.Inc() }

// Register adds a caller's collector (e.g. the collector daemon's own
// metrics) to the private registry.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Handler serves the registry in the Prometheus exposition format (mount
// it at /metrics). A failing collector yields a partial answer rather than
// an empty scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
