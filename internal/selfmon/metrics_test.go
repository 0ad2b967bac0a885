package selfmon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

func TestMetricsScrape(t *testing.T) {
	m := NewMetrics("1.2.3")
	rack := m.Device("rack-a1")
	ups := m.Device("ups-1")
	for range 5 {
		rack.Rounds.Inc()
	}
	rack.Overruns.Inc()
	rack.PollDuration.Observe(0.012)
	ups.RoundErrors.Add(2)
	ups.Dropped.Inc()
	tel := m.Buffer("telemetry")
	tel.Depth.Set(42)
	tel.Dropped.Add(7)
	m.ObservePublish(3 * time.Millisecond)
	m.Alert("warning", "thermal")
	m.Alert("warning", "thermal")
	m.Alert("watch", "gas")
	m.WatchdogStalled()

	body := scrape(t, m.Handler())
	for _, want := range []string{
		`ember_rounds_total{device="rack-a1"} 5`,
		`ember_rounds_total{device="ups-1"} 0`, // present from Device() on
		`ember_round_errors_total{device="ups-1"} 2`,
		`ember_overruns_total{device="rack-a1"} 1`,
		`ember_dropped_rounds_total{device="ups-1"} 1`,
		`ember_poll_duration_seconds_count{device="rack-a1"} 1`,
		`ember_poll_duration_seconds_sum{device="rack-a1"} 0.012`,
		`ember_buffer_depth{kind="telemetry"} 42`,
		`ember_buffer_dropped_total{kind="telemetry"} 7`,
		`ember_publish_latency_seconds_count 1`,
		`ember_publish_latency_seconds_sum 0.003`,
		`ember_alerts_total{category="thermal",stage="warning"} 2`,
		`ember_alerts_total{category="gas",stage="watch"} 1`,
		`ember_watchdog_stalls_total 1`,
		`ember_build_info{version="1.2.3"} 1`,
		`# TYPE ember_poll_duration_seconds histogram`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// Histogram buckets are cumulative: 12 ms lands in a bucket <= 0.02.
	if !strings.Contains(body, `ember_poll_duration_seconds_bucket{device="rack-a1",le="+Inf"} 1`) {
		t.Error("poll histogram has no +Inf bucket")
	}

	m.ForgetDevice("ups-1")
	if body := scrape(t, m.Handler()); strings.Contains(body, `device="ups-1"`) {
		t.Error("ForgetDevice left ups-1 series")
	}
}

func TestMetricsPrivateInstances(t *testing.T) {
	// Two instances in one process must not share series: no global state.
	a, b := NewMetrics("a"), NewMetrics("b")
	a.Device("d").Rounds.Inc()
	if strings.Contains(scrape(t, b.Handler()), `ember_rounds_total{device="d"}`) {
		t.Fatal("metrics shared between instances")
	}
	if !strings.Contains(scrape(t, a.Handler()), `ember_rounds_total{device="d"} 1`) {
		t.Fatal("instance lost its own series")
	}
}

func TestMetricsExpositionFormat(t *testing.T) {
	m := NewMetrics(`v"1\`)
	d := m.Device("rack-a1")
	for _, v := range []float64{0.0005, 0.0006, 20} {
		d.PollDuration.Observe(v)
	}
	body := scrape(t, m.Handler())
	for _, want := range []string{
		`ember_build_info{version="v\"1\\"} 1`,                               // label values escaped
		`ember_poll_duration_seconds_bucket{device="rack-a1",le="0.0005"} 1`, // le is inclusive
		`ember_poll_duration_seconds_bucket{device="rack-a1",le="10"} 2`,
		`ember_poll_duration_seconds_bucket{device="rack-a1",le="+Inf"} 3`,
		`ember_poll_duration_seconds_count{device="rack-a1"} 3`,
		"# HELP ember_rounds_total ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q\n%s", want, body)
		}
	}
}

func TestDeviceMetricsAllocFree(t *testing.T) {
	m := NewMetrics("t")
	d := m.Device("rack-a1")
	buf := m.Buffer("telemetry")
	allocs := testing.AllocsPerRun(1000, func() {
		d.Rounds.Inc()
		d.PollDuration.Observe(0.003)
		buf.Depth.Set(3)
		m.ObservePublish(time.Millisecond)
	})
	if allocs != 0 {
		t.Fatalf("hot path allocates %.1f times per round", allocs)
	}
}

func BenchmarkDeviceRound(b *testing.B) {
	m := NewMetrics("bench")
	d := m.Device("rack-a1")
	b.ReportAllocs()
	for b.Loop() {
		d.Rounds.Inc()
		d.PollDuration.Observe(0.0042)
	}
}

func BenchmarkScrape(b *testing.B) {
	m := NewMetrics("bench")
	for i := range 50 {
		d := m.Device("rack-" + string(rune('a'+i%26)) + string(rune('0'+i/26)))
		d.Rounds.Inc()
		d.PollDuration.Observe(0.01)
	}
	h := m.Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
