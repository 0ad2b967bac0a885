package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func TestReceiverWithRealSender(t *testing.T) {
	secret := []byte("shared")
	var acted, fail atomic.Int32
	fail.Store(1) // the first delivery fails: the sender must retry
	h := &Handler{Receiver: &hooks.Receiver{Secrets: [][]byte{secret}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Act: func(ctx context.Context, ev wire.Evacuation, body []byte) error {
			if fail.Add(-1) >= 0 {
				return errors.New("busy")
			}
			acted.Add(1)
			return nil
		}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	set, err := hooks.NewSet([]hooks.Spec{{Name: "wh", URL: srv.URL, Secret: string(secret)}}, nil, hooks.NewMemLedger(), h.Log)
	if err != nil {
		t.Fatal(err)
	}
	set.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	ev := &wire.Evacuation{ID: "ev-1", Phase: wire.PhaseEvacuate, Domain: "ups-1", Targets: []string{"h"}, Time: time.Now()}
	if failed := set.RunPhase(t.Context(), ev, hooks.PhaseOptions{}); failed != 0 || acted.Load() != 1 {
		t.Fatalf("failed=%d acted=%d", failed, acted.Load())
	}
	// Forged, tampered, stale and replayed deliveries.
	body := []byte(`{"id":"ev-2","phase":"evacuate"}`)
	post := func(sig string, b []byte, event string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		if sig != "" {
			req.Header.Set(hooks.SignatureHeader, sig)
		}
		req.Header.Set(hooks.EventIDHeader, event)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	cases := []struct {
		name string
		sig  string
		body []byte
		want int
	}{
		{"unsigned", "", body, 401},
		{"wrong key", hooks.SignWebhook([]byte("guess"), now, body), body, 401},
		{"tampered", hooks.SignWebhook(secret, now, body), []byte(`{"id":"ev-2","phase":"abort"}`), 401},
		{"stale", hooks.SignWebhook(secret, now.Add(-10*time.Minute), body), body, 401},
		{"valid", hooks.SignWebhook(secret, now, body), body, 200},
		{"replay", hooks.SignWebhook(secret, now, body), body, 200},
	}
	for _, c := range cases {
		if got := post(c.sig, c.body, "ev-2.evacuate"); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	if acted.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2 (the replay must not act)", acted.Load())
	}
}
