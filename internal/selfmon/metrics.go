package selfmon

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace prefixes every metric name ("ember_rounds_total").
const Namespace = "ember"

// The exposition is written by hand, in the Prometheus text format 0.0.4,
// rather than with the Prometheus client library: the library and the
// protobuf code it pulls in cost the agent about 5 MiB of binary on
// arm64, where its budget is 12 MiB. Counters, gauges and fixed-bucket
// histograms are all the daemons need.

// Counter only goes up.
type Counter interface {
	Inc()
	Add(v float64)
}

// Gauge goes up and down.
type Gauge interface {
	Set(v float64)
	Add(v float64)
}

// Observer records one observation in a histogram.
type Observer interface{ Observe(v float64) }

// Metrics is a daemon's set of metrics. Build one per process with
// [NewMetrics]; all methods are safe for concurrent use.
type Metrics struct {
	mu       sync.Mutex
	families []*family // in registration order
	byName   map[string]*family
	start    time.Time

	rounds, roundErrors, overruns, dropped *family
	pollDuration                           *family
	bufferDepth, bufferDropped             *family
	publishLatency, alerts, watchdogStalls *family
	pointFaults                            *family
}

// DeviceMetrics are one device's metrics: using them is an atomic update,
// with no label look-up or allocation.
type DeviceMetrics struct {
	Rounds       Counter  // completed sampling rounds
	RoundErrors  Counter  // rounds whose poll failed as a whole (link down, timeout)
	Overruns     Counter  // rounds that took longer than the period
	Dropped      Counter  // rounds dropped from the hand-off queue because processing lagged
	PollDuration Observer // seconds per poll
	// Faults counts faulted point readings by kind (timeout, exception,
	// malformed, sentinel, ...), indexed by the drivers.Fault value; a
	// device answering garbage frames shows up as "malformed".
	Faults []Counter
}

// FaultKinds are the label values of ember_point_faults_total, in
// drivers.Fault order (index 0, no fault, is unused).
var FaultKinds = []string{"", "timeout", "exception", "malformed", "sentinel", "absent", "range", "scale", "comms", "sensor"}

// BufferMetrics are one buffer kind's metrics (kind is e.g. "telemetry"
// or "alert" for the store-and-forward queues).
type BufferMetrics struct {
	Depth   Gauge   // entries waiting
	Dropped Counter // entries dropped because the buffer was full (oldest first)
}

// NewMetrics builds the metric set. version is exported as
// ember_build_info{version=...} 1.
func NewMetrics(version string) *Metrics {
	m := &Metrics{byName: map[string]*family{}, start: time.Now()}
	dev := []string{"device"}
	// Poll durations range from ~20 µs (Modbus TCP on a LAN) to seconds
	// (RTU at 9600 baud, SNMP retries).
	pollBuckets := expBuckets(0.0005, 10, 14)
	m.rounds = m.add("rounds_total", "counter", "Completed sampling rounds per device.", dev, nil)
	m.roundErrors = m.add("round_errors_total", "counter", "Sampling rounds that failed as a whole (link down, timeout), per device.", dev, nil)
	m.overruns = m.add("overruns_total", "counter", "Sampling rounds that took longer than the device's period.", dev, nil)
	m.dropped = m.add("dropped_rounds_total", "counter", "Sampling rounds dropped from the hand-off queue because processing lagged.", dev, nil)
	m.pollDuration = m.add("poll_duration_seconds", "histogram", "Time one poll of a device took.", dev, pollBuckets)
	m.bufferDepth = m.add("buffer_depth", "gauge", "Entries waiting in a store-and-forward buffer.", []string{"kind"}, nil)
	m.bufferDropped = m.add("buffer_dropped_total", "counter", "Entries dropped because a buffer was full (oldest first).", []string{"kind"}, nil)
	m.publishLatency = m.add("publish_latency_seconds", "histogram", "Time from a sample to its publication being accepted by NATS.", nil, expBuckets(0.0001, 30, 16))
	m.alerts = m.add("alerts_total", "counter", "Alert stage changes raised, by stage and category.", []string{"category", "stage"}, nil)
	m.watchdogStalls = m.add("watchdog_stalls_total", "counter", "Watchdog periods without pipeline progress (pings withheld).", nil, nil)
	m.pointFaults = m.add("point_faults_total", "counter", "Point readings marked faulty, by device and kind (timeouts, exceptions, malformed frames, sentinels...).", []string{"device", "fault"}, nil)
	build := m.add("build_info", "gauge", "Always 1; the version label says which build runs.", []string{"version"}, nil)
	build.child(version).Set(1)
	m.publishLatency.child()
	m.watchdogStalls.child()
	return m
}

// expBuckets returns n bucket bounds from min to max, evenly spaced on a
// log scale.
func expBuckets(min, max float64, n int) []float64 {
	b := make([]float64, n)
	f := math.Pow(max/min, 1/float64(n-1))
	for i := range b {
		b[i] = min * math.Pow(f, float64(i))
	}
	b[n-1] = max // exactly, not 9.999999999999998
	return b
}

func (m *Metrics) add(name, typ, help string, labels []string, buckets []float64) *family {
	f := &family{name: Namespace + "_" + name, typ: typ, help: help, labels: labels, buckets: buckets, children: map[string]*series{}}
	m.families = append(m.families, f)
	m.byName[f.name] = f
	return f
}

// Device returns the metrics of one device. Call it once per device when
// its sampling loop starts and keep the result; the series appear at zero
// right away, so a device that never completes a round is visible.
func (m *Metrics) Device(id string) DeviceMetrics {
	dm := DeviceMetrics{
		Rounds: m.rounds.child(id), RoundErrors: m.roundErrors.child(id), Overruns: m.overruns.child(id),
		Dropped: m.dropped.child(id), PollDuration: m.pollDuration.child(id), Faults: make([]Counter, len(FaultKinds)),
	}
	for i, k := range FaultKinds {
		if i > 0 {
			dm.Faults[i] = m.pointFaults.child(id, k)
		}
	}
	return dm
}

// ForgetDevice removes a device's series, e.g. after a configuration
// reload dropped it, so that stale series do not linger.
func (m *Metrics) ForgetDevice(id string) {
	for _, f := range []*family{m.rounds, m.roundErrors, m.overruns, m.dropped, m.pollDuration} {
		f.forget(id)
	}
	for _, k := range FaultKinds[1:] {
		m.pointFaults.forget(id, k)
	}
}

// Buffer returns the metrics of one buffer kind; keep the result.
func (m *Metrics) Buffer(kind string) BufferMetrics {
	return BufferMetrics{Depth: m.bufferDepth.child(kind), Dropped: m.bufferDropped.child(kind)}
}

// ObservePublish records the latency of one accepted publication.
func (m *Metrics) ObservePublish(d time.Duration) { m.publishLatency.child().Observe(d.Seconds()) }

// Alert counts one alert stage change. Alerts are rare, so the label
// look-up here is not a hot path.
func (m *Metrics) Alert(stage, category string) { m.alerts.child(category, stage).Inc() }

// WatchdogStalled counts a withheld watchdog ping; set it as
// [Watchdog].OnStall.
func (m *Metrics) WatchdogStalled() { m.watchdogStalls.child().Inc() }

// Handler serves the metrics in the Prometheus text exposition format
// (mount it at /metrics), with the process's own figures appended.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		m.mu.Lock()
		fams := slices.Clone(m.families)
		m.mu.Unlock()
		for _, f := range fams {
			f.write(bw)
		}
		m.writeProcess(bw)
		bw.Flush()
	})
}

// writeProcess appends the Go runtime's and the process's own figures,
// under their conventional names.
func (m *Metrics) writeProcess(w *bufio.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g := func(name, typ, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, fmtFloat(v))
	}
	g("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	g("go_memstats_heap_inuse_bytes", "gauge", "Heap bytes in use.", float64(ms.HeapInuse))
	g("go_memstats_sys_bytes", "gauge", "Bytes obtained from the system.", float64(ms.Sys))
	g("go_gc_cycles_total", "counter", "Completed GC cycles.", float64(ms.NumGC))
	g("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", float64(m.start.UnixNano())/1e9)
	if rss, cpu, ok := procSelf(); ok {
		g("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
		g("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu)
	}
}

// procSelf reads resident memory and CPU time from /proc (Linux only).
func procSelf() (rss, cpu float64, ok bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 22 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	const ticks = 100 // USER_HZ on every Linux the agent runs on
	return pages * float64(os.Getpagesize()), (ut + st) / ticks, true
}

// family is one metric name with its labelled series.
type family struct {
	name, typ, help string
	labels          []string
	buckets         []float64

	mu       sync.Mutex
	children map[string]*series
}

// child returns (creating at zero) the series for label values.
func (f *family) child(values ...string) *series {
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.children[key]
	if !ok {
		s = &series{values: values}
		if f.typ == "histogram" {
			s.hist = &histogram{bounds: f.buckets, counts: make([]atomic.Uint64, len(f.buckets)+1)}
		}
		f.children[key] = s
	}
	return s
}

func (f *family) forget(values ...string) {
	f.mu.Lock()
	delete(f.children, strings.Join(values, "\xff"))
	f.mu.Unlock()
}

func (f *family) write(w *bufio.Writer) {
	f.mu.Lock()
	kids := make([]*series, 0, len(f.children))
	for _, s := range f.children {
		kids = append(kids, s)
	}
	f.mu.Unlock()
	if len(kids) == 0 {
		return
	}
	slices.SortFunc(kids, func(a, b *series) int { return slices.Compare(a.values, b.values) })
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
	for _, s := range kids {
		lbl := f.labelText(s.values, "")
		if s.hist == nil {
			fmt.Fprintf(w, "%s%s %s\n", f.name, lbl, fmtFloat(s.value()))
			continue
		}
		cum := uint64(0)
		for i, b := range s.hist.bounds {
			cum += s.hist.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, f.labelText(s.values, fmtFloat(b)), cum)
		}
		cum += s.hist.counts[len(s.hist.bounds)].Load()
		fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, f.labelText(s.values, "+Inf"), cum)
		fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", f.name, lbl, fmtFloat(s.hist.sum()), f.name, lbl, s.hist.count.Load())
	}
}

// labelText renders {a="x",b="y"[,le="..."]}, or "" without labels.
func (f *family) labelText(values []string, le string) string {
	if len(values) == 0 && le == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(v))
		b.WriteByte('"')
	}
	if le != "" {
		if len(values) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`le="` + le + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func fmtFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// series is one labelled counter, gauge or histogram.
type series struct {
	values []string
	bits   atomic.Uint64 // float64 bits of a counter or gauge
	hist   *histogram
}

func (s *series) value() float64 { return math.Float64frombits(s.bits.Load()) }

func (s *series) Inc()              { s.Add(1) }
func (s *series) Set(v float64)     { s.bits.Store(math.Float64bits(v)) }
func (s *series) Add(v float64)     { addFloat(&s.bits, v) }
func (s *series) Observe(v float64) { s.hist.observe(v) }

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

type histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // per bucket (not cumulative), last is +Inf
	count   atomic.Uint64
	sumBits atomic.Uint64
}

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i].Add(1)
	h.count.Add(1)
	addFloat(&h.sumBits, v)
}

func (h *histogram) sum() float64 { return math.Float64frombits(h.sumBits.Load()) }

var (
	_ Counter  = (*series)(nil)
	_ Gauge    = (*series)(nil)
	_ Observer = (*series)(nil)
)
