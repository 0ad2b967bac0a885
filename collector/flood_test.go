package collector

import (
	"log/slog"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

func TestFloodMode(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	f := newFanout(NOCConfig{FloodLimit: 10, FloodWindow: 10 * time.Minute}, discard(), func() time.Time { return now })
	f.site, f.id = "s1", "collector-1"
	sent := 0
	for i := range 500 {
		cat := wire.CategorySensorFault
		if i%2 == 0 {
			cat = wire.CategoryComms
		}
		ok, sum := f.admit(wire.Alert{Category: cat, Stage: wire.StageWatch, PreviousStage: wire.StageNormal})
		if sum != nil {
			t.Fatalf("summary inside the window: %+v", sum)
		}
		if ok {
			sent++
		}
	}
	if sent != 10 {
		t.Fatalf("%d of 500 watch alerts sent in one window, want 10", sent)
	}
	// The runaway always goes through, flood or not.
	if ok, _ := f.admit(wire.Alert{Category: wire.CategoryThermal, Stage: wire.StageEmergency, PreviousStage: wire.StageCritical}); !ok {
		t.Fatal("an emergency was suppressed by flood mode")
	}
	now = now.Add(10 * time.Minute)
	ok, sum := f.admit(wire.Alert{Category: wire.CategoryComms, Stage: wire.StageWatch})
	if !ok || sum == nil || sum.Signatures[0].Value != 490 || sum.Component != "flood" || sum.Agent != "collector-1" {
		t.Fatalf("next window: sent=%v summary=%+v, want a summary of 490 suppressed", ok, sum)
	}
	off := newFanout(NOCConfig{FloodLimit: -1}, discard(), func() time.Time { return now })
	for range 50 {
		if ok, _ := off.admit(wire.Alert{Stage: wire.StageWatch}); !ok {
			t.Fatal("flood_limit -1 still suppresses")
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
