package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// drills runs synthetic scenarios on request (emberctl drill): a scenario
// from the detection library is fed, round by round, into a detector of
// its own for the named device, so the device's real detector and its
// real telemetry are untouched. Every alert it causes is marked drill:
// true, end to end; the evacuations they cause are dry runs.
type drills struct {
	mu      sync.Mutex
	running map[string]bool // by device
}

func (a *Agent) serveDrills(ctx context.Context, nc *nats.Conn) (*nats.Subscription, error) {
	a.drills.running = map[string]bool{}
	return nc.Subscribe(wire.DrillSubject(a.cfg.Site, a.cfg.AgentID), func(m *nats.Msg) {
		resp := a.startDrill(ctx, m.Data)
		data, _ := json.Marshal(resp)
		if err := m.Respond(data); err != nil {
			a.log.Warn("drill reply not sent", "err", err)
		}
	})
}

func (a *Agent) startDrill(ctx context.Context, data []byte) wire.DrillResponse {
	var req wire.DrillRequest
	resp := wire.DrillResponse{Agent: a.cfg.AgentID}
	if err := json.Unmarshal(data, &req); err != nil {
		resp.Error = fmt.Sprintf("malformed drill request: %v", err)
		return resp
	}
	resp.ID = req.ID
	d := a.deviceByID(req.Device)
	if d == nil {
		resp.Error = fmt.Sprintf("agent %s has no device %q", a.cfg.AgentID, req.Device)
		return resp
	}
	sc, ok := scenario.Get(req.Scenario)
	if !ok {
		resp.Error = fmt.Sprintf("unknown scenario %q", req.Scenario)
		for _, s := range scenario.All() {
			resp.Scenarios = append(resp.Scenarios, s.Name)
		}
		return resp
	}
	speed := req.Speed
	if speed <= 0 {
		speed = 1
	}
	a.drills.mu.Lock()
	if a.drills.running[d.id] {
		a.drills.mu.Unlock()
		resp.Error = fmt.Sprintf("a drill is already running on %s", d.id)
		return resp
	}
	a.drills.running[d.id] = true
	a.drills.mu.Unlock()

	start := a.now().UTC()
	run := sc.Start(scenario.Options{Period: time.Second, Start: start, Seed: uint64(start.UnixNano())})
	devs := run.Devices()
	det := a.opts.NewDetector(d.cfg, d.prof, devs[0].Points)
	a.log.Info("drill started", "drill", req.ID, "device", d.id, "scenario", sc.Name, "speed", speed, "by", req.By)
	go func() {
		defer func() {
			a.drills.mu.Lock()
			delete(a.drills.running, d.id)
			a.drills.mu.Unlock()
		}()
		tick := time.NewTicker(time.Duration(float64(time.Second) / speed))
		defer tick.Stop()
		emit := func(al wire.Alert) {
			al.Drill = true
			al.Device = d.id
			al.ID = ""
			al.Summary = "DRILL " + req.ID + ": " + al.Summary
			a.publishAlert(ctx, d, al)
		}
		for {
			more := run.Next(func(dev string, at time.Time, rs []drivers.Reading, err error) {
				if dev == devs[0].ID {
					det.Step(at, rs, err, emit)
				}
			})
			if !more {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		a.log.Info("drill over", "drill", req.ID, "device", d.id)
	}()
	resp.OK, resp.Started = true, start
	return resp
}
