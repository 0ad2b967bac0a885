package demo

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestDemoThermalEvent runs the demo site and checks the scripted event
// goes all the way: the hot cell is read over Modbus, the agent's detector
// raises a critical alert for that cell on NATS, the collector's status
// page serves, and the healthy rack stays quiet.
func TestDemoThermalEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo's scripted event, about a minute")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{HTTP: "127.0.0.1:0", EventAt: 2 * time.Second, Out: io.Discard,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.StatusURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status page: %s", resp.Status)
	}
	testenv.WaitFor(t, 150*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.Alerts {
			if a.Device == "rack-a1" && a.Stage >= wire.StageCritical && a.Component == "string/1/module/3/cell/7" {
				return nil
			}
		}
		return errNoCritical
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.Alerts {
		if a.Device == "rack-a2" && a.Stage > wire.StageWatch {
			t.Errorf("healthy rack raised %s %s: %+v", a.Stage, a.Category, a)
		}
	}
}

var errNoCritical = errorString("no critical alert for the hot cell yet")

type errorString string

func (e errorString) Error() string { return string(e) }
