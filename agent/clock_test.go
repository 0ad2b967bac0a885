package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestClockJumps (reliability T19): the wall clock that stamps samples
// jumps back an hour and then forward two; sampling keeps its period
// because deadlines run on the monotonic clock, samples carry the wall
// time they were read at, and an unsynchronised clock is flagged in the
// heartbeat and raised as a watch-level sensor_fault alert.
func TestClockJumps(t *testing.T) {
	s := newSite(t, twoRacksAndUPS)
	var offset atomic.Int64
	wall := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	cfg, err := ParseConfig("agent.yaml", s.agentYAML(t, "100ms", "rack-a1"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stamps []time.Time
	var hbs []wire.Heartbeat
	var alerts []wire.Alert
	s.nc.Subscribe("ember.test-site.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		sub, _ := wire.ParseSubject(m.Subject)
		switch sub.Kind {
		case wire.KindTelemetry:
			ls, _ := wire.ParseLines(m.Data)
			stamps = append(stamps, ls[0].Time)
		case wire.KindHeartbeat:
			var hb wire.Heartbeat
			json.Unmarshal(m.Data, &hb)
			hbs = append(hbs, hb)
		case wire.KindAlert:
			var a wire.Alert
			json.Unmarshal(m.Data, &a)
			alerts = append(alerts, a)
		}
	})
	ds := NewDriverSet(s.log, nil)
	defer ds.Close()
	a, err := New(Options{Config: cfg, Profiles: s.profiles, Pollers: ds, Publisher: NewNATSPublisher(s.nc),
		Log: s.log, Now: wall, ClockSynced: func() bool { return offset.Load() == 0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(600 * time.Millisecond)
	r0 := roundsOf(a, "rack-a1")
	offset.Store(int64(-time.Hour))
	time.Sleep(time.Second)
	offset.Store(int64(2 * time.Hour))
	time.Sleep(time.Second)
	got := roundsOf(a, "rack-a1") - r0
	if got < 15 || got > 25 {
		t.Fatalf("%d rounds in 2s at 100ms across clock jumps, want about 20", got)
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		back, fwd := false, false
		for _, st := range stamps {
			d := time.Until(st)
			back = back || (d < -50*time.Minute && d > -70*time.Minute)
			fwd = fwd || (d > 110*time.Minute && d < 130*time.Minute)
		}
		unsynced := false
		for _, hb := range hbs {
			unsynced = unsynced || (hb.ClockSync != nil && !*hb.ClockSync)
		}
		raised := false
		for _, al := range alerts {
			raised = raised || (al.Component == "clock" && al.Category == wire.CategorySensorFault && al.Stage == wire.StageWatch)
			if al.Stage > wire.StageWatch {
				return fmt.Errorf("clock trouble raised %s", al.Stage)
			}
		}
		if !back || !fwd || !unsynced || !raised {
			return fmt.Errorf("stamps back=%v fwd=%v, heartbeat unsynced=%v, alert=%v", back, fwd, unsynced, raised)
		}
		return nil
	})
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
