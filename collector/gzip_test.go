package collector

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGzipTransport(t *testing.T) {
	var got string
	var enc string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc = r.Header.Get("Content-Encoding")
		var rd io.Reader = r.Body
		if enc == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("gzip body: %v", err)
				return
			}
			rd = zr
		}
		b, _ := io.ReadAll(rd)
		got = string(b)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &gzipTransport{base: http.DefaultTransport}}
	body := strings.Repeat("ember,site=s1 v=1 1\n", 1000)
	for range 3 { // pooled writers are reset between bodies
		resp, err := hc.Post(srv.URL+"/api/v2/write?bucket=x", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if enc != "gzip" || got != body {
			t.Fatalf("encoding %q, body intact %v", enc, got == body)
		}
	}
	resp, _ := hc.Post(srv.URL+"/query", "text/plain", strings.NewReader("q=SHOW DATABASES"))
	resp.Body.Close()
	if enc != "" {
		t.Errorf("query compressed: %q", enc)
	}
	for u, want := range map[string]bool{"http://127.0.0.1:8086": true, "http://localhost:8086": true, "http://[::1]:8086": true,
		"http://10.0.0.5:8086": false, "https://influx.example:8086": false} {
		if loopback(u) != want {
			t.Errorf("loopback(%s) = %v", u, !want)
		}
	}
}

// BenchmarkGzipBatch is the compression cost of one 5000-point batch.
func BenchmarkGzipBatch(b *testing.B) {
	p := telemetry("s1", "gw-01", "rack-a1", "07", fixedTime, 99, cellTemp(1))
	batch := []byte(strings.Repeat(string(p), 50))
	tr := &gzipTransport{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		io.Copy(io.Discard, r.Body)
		return &http.Response{StatusCode: 204, Body: http.NoBody}, nil
	})}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", "http://x/api/v2/write", strings.NewReader(string(batch)))
		if _, err := tr.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var fixedTime = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
