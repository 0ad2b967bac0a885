package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/sim"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Options tune the demo.
type Options struct {
	Duration  time.Duration // stop after this long (0 = until ctx is done)
	HTTP      string        // status page listen address
	InfluxURL string        // optional InfluxDB 1.8 URL
	EventAt   time.Duration // when the thermal event starts
	Out       io.Writer     // live readings and events
	Log       *slog.Logger
	// Every is how often the readings table is printed.
	Every time.Duration
}

// Site is a running demo.
type Site struct {
	NATS      *server.Server
	Sim       *sim.Sim
	Agent     *agent.Agent
	Collector *collector.Collector
	StatusURL string

	mu          sync.Mutex
	latest      map[string]*summary
	events      []string
	Alerts      []wire.Alert
	Evacuations []wire.Evacuation
	HookCalls   []wire.Evacuation
}

// summary is what the terminal shows per device.
type summary struct {
	at                  time.Time
	health              string
	soc                 float64
	hot, cold           float64
	hotWhere, coldWhere string
	stage               wire.Stage
	faults              int
}

// HotCell is the cell the scripted event heats.
const HotCell = "string[1].module[3].cell[7]"

// simConfig is the simulated site: two SunSpec racks (2 strings x 8
// modules x 16 cells each), an APC Smart-UPS over Modbus, and the event.
func simConfig(eventAt time.Duration) string {
	at := eventAt.String()
	return `
tick: 100ms
devices:
  - id: rack-a1
    profile: sunspec
    listen: tcp://127.0.0.1:0
    unit_id: 1
    rack: {strings: 2, modules: 8, cells: 16, cell_volts: 3.31, cell_celsius: 25.0, string_amps: -4.0, charge: 96}
    scripts:
      - {point: "string[*].module[*].cell[*].temperature.celsius", kind: noise, sigma: 0.05, seed: 7}
      - {point: "string[*].module[*].cell[*].voltage.volts", kind: noise, sigma: 0.0008, seed: 8}
      # The event: an internal short in one cell. It warms faster and
      # faster than its neighbours, its voltage sags, then collapses.
      - {point: "` + HotCell + `.temperature.celsius", kind: ramp, value: 25.0, rate: 0.12, at: ` + at + `, max: 95}
      - {point: "` + HotCell + `.voltage.volts", kind: ramp, value: 3.31, rate: -0.004, at: ` + at + `, min: 2.2}
  - id: rack-a2
    profile: sunspec
    listen: tcp://127.0.0.1:0
    unit_id: 1
    rack: {strings: 2, modules: 8, cells: 16, cell_volts: 3.30, cell_celsius: 24.6, string_amps: -4.0, charge: 95}
    scripts:
      - {point: "string[*].module[*].cell[*].temperature.celsius", kind: noise, sigma: 0.05, seed: 11}
      - {point: "string[*].module[*].cell[*].voltage.volts", kind: noise, sigma: 0.0008, seed: 12}
  - id: ups-1
    profile: apc-smart-ups-modbus
    listen: tcp://127.0.0.1:0
    unit_id: 1
    fill_gaps: 125 # like the real unit, answers whole blocks, holes included
`
}

// Run starts the demo site and prints live readings until ctx is done or
// the duration is over.
func Run(ctx context.Context, o Options) error {
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.print(o.Out)
			fmt.Fprintln(o.Out, "demo over")
			return nil
		case <-t.C:
			s.print(o.Out)
		}
	}
}

// Start brings the demo site up.
func Start(ctx context.Context, o Options) (*Site, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Every == 0 {
		o.Every = 2 * time.Second
	}
	if o.EventAt == 0 {
		o.EventAt = 20 * time.Second
	}
	if o.HTTP == "" {
		o.HTTP = "127.0.0.1:8080"
	}
	s := &Site{latest: map[string]*summary{}}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "ember-demo-")
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, ServerName: "demo",
		JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("nats not ready")
	}
	s.NATS = ns
	fmt.Fprintf(o.Out, "NATS (JetStream, in-process): %s\n", ns.ClientURL())

	profiles, err := agent.LoadProfiles(o.Log, "")
	if err != nil {
		return nil, err
	}
	scfg, err := sim.ParseConfig("demo-sim.yaml", []byte(simConfig(o.EventAt)))
	if err != nil {
		return nil, err
	}
	if s.Sim, err = sim.New(scfg, profiles, o.Log); err != nil {
		return nil, err
	}
	if err := s.Sim.Start(ctx); err != nil {
		return nil, err
	}
	for _, id := range s.Sim.Devices() {
		fmt.Fprintf(o.Out, "simulated %-8s %s unit %d\n", id, s.Sim.Addr(id), s.Sim.UnitID(id))
	}

	// The collector first, so that its streams exist before telemetry flows.
	ccfg := fmt.Sprintf("site: demo\ncollector_id: collector-1\nnats: {servers: [%q]}\nhttp: {listen: %q}\nheartbeat_timeout: 10s\n", ns.ClientURL(), o.HTTP)
	evac, err := evacuationConfig(dir)
	if err != nil {
		return nil, err
	}
	ccfg += evac
	if o.InfluxURL != "" {
		ccfg += fmt.Sprintf("influx: {url: %q, database: ember, create_database: true}\n", o.InfluxURL)
	} else {
		fmt.Fprintln(o.Out, "InfluxDB: not configured (-influx URL to store telemetry); the collector keeps live state only")
	}
	cc, err := collector.ParseConfig(dir+"/demo-collector.yaml", []byte(ccfg))
	if err != nil {
		return nil, err
	}
	if s.Collector, err = collector.Assemble(cc, o.Log); err != nil {
		return nil, err
	}
	go func() {
		if err := s.Collector.Run(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error("collector stopped", "err", err)
		}
	}()
	s.StatusURL = "http://" + s.Collector.HTTPAddr() + "/"
	fmt.Fprintf(o.Out, "status page: %s\n", s.StatusURL)

	acfg := fmt.Sprintf("site: demo\nagent_id: gw-01\nheartbeat: 1s\nnats: {servers: [%q]}\ndevices:\n", ns.ClientURL())
	for _, id := range []string{"rack-a1", "rack-a2"} {
		acfg += fmt.Sprintf("  - {id: %s, profile: sunspec, period: 1s, burst_period: 250ms, chemistry: nmc, location: {room: ups-2, row: b, rack: %q}, modbus: {url: %q, unit_id: %d}}\n",
			id, id, s.Sim.Addr(id), s.Sim.UnitID(id))
	}
	acfg += fmt.Sprintf("  - {id: ups-1, profile: apc-smart-ups-modbus, period: 2s, location: {room: ups-2}, modbus: {url: %q, unit_id: %d}}\n", s.Sim.Addr("ups-1"), s.Sim.UnitID("ups-1"))
	cfg, err := agent.ParseConfig("demo-agent.yaml", []byte(acfg))
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(ns.ClientURL(), nats.Name("ember-agent gw-01"))
	if err != nil {
		return nil, err
	}
	if err := s.watchEvacuations(nc, o.Out); err != nil {
		return nil, err
	}
	ds := agent.NewDriverSet(o.Log, nil)
	s.Agent, err = agent.New(agent.Options{Config: cfg, Profiles: profiles, Pollers: ds,
		Publisher: agent.NewNATSPublisher(nc), NewDetector: agent.DefaultDetector(nil), Log: o.Log,
		OnRound: s.onRound,
		OnAlert: func(a wire.Alert) {
			s.mu.Lock()
			s.Alerts = append(s.Alerts, a)
			s.mu.Unlock()
			s.event(o.Out, fmt.Sprintf("ALERT %-9s %s/%s %s: %s", a.Stage, a.Device, a.Component, a.Category, sigText(a)))
		}})
	if err != nil {
		return nil, err
	}
	go func() {
		s.Agent.Run(ctx)
		ds.Close()
		nc.Drain()
	}()
	fmt.Fprintf(o.Out, "thermal event scripted in rack-a1 %s at +%v\n\n", HotCell, o.EventAt)
	ok = true
	return s, nil
}

func sigText(a wire.Alert) string {
	var parts []string
	for _, sg := range a.Signatures {
		parts = append(parts, fmt.Sprintf("%s=%.3g%s (threshold %.3g)", sg.Kind, sg.Value, sg.Unit, sg.Threshold))
	}
	if len(parts) == 0 {
		return a.Summary
	}
	return strings.Join(parts, ", ")
}

func (s *Site) event(w io.Writer, msg string) {
	s.mu.Lock()
	s.events = append(s.events, msg)
	s.mu.Unlock()
	fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), msg)
}

// onRound keeps a per-device summary for the terminal.
func (s *Site) onRound(dev string, at time.Time, pts []*drivers.Point, rs []drivers.Reading, err error) {
	sm := &summary{at: at, health: wire.HealthOK, hot: math.Inf(-1), cold: math.Inf(1), soc: math.NaN()}
	if err != nil {
		sm.health = wire.HealthDown
	}
	for i, p := range pts {
		r := &rs[i]
		if !r.OK() {
			if r.Fault != drivers.FaultSentinel && r.Fault != drivers.FaultAbsent {
				sm.faults++
			}
			continue
		}
		switch {
		case p.Name == "battery.charge.percent":
			sm.soc = r.Value
		case strings.Contains(p.Component, "/cell/") && p.Field == "temperature.celsius":
			if r.Value > sm.hot {
				sm.hot, sm.hotWhere = r.Value, p.Component
			}
		case strings.Contains(p.Component, "/cell/") && p.Field == "voltage.volts":
			if r.Value < sm.cold {
				sm.cold, sm.coldWhere = r.Value, p.Component
			}
		}
	}
	if sm.faults > 0 && sm.health == wire.HealthOK {
		sm.health = wire.HealthDegraded
	}
	s.mu.Lock()
	s.latest[dev] = sm
	s.mu.Unlock()
}

func (s *Site) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.latest))
	for id := range s.latest {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(w, "%s  %-8s %-8s %6s  %-28s  %-28s\n", time.Now().Format("15:04:05"), "device", "health", "SoC%", "hottest cell °C", "lowest cell V")
	for _, id := range ids {
		sm := s.latest[id]
		hot, cold, soc := "-", "-", "-"
		if !math.IsInf(sm.hot, 0) {
			hot = fmt.Sprintf("%6.2f %s", sm.hot, sm.hotWhere)
		}
		if !math.IsInf(sm.cold, 0) {
			cold = fmt.Sprintf("%6.3f %s", sm.cold, sm.coldWhere)
		}
		if !math.IsNaN(sm.soc) {
			soc = fmt.Sprintf("%6.1f", sm.soc)
		}
		fmt.Fprintf(w, "          %-8s %-8s %6s  %-28s  %-28s\n", id, sm.health, soc, hot, cold)
	}
}

// evacuationConfig is the collector's evacuation section: the two racks
// feed power domain ups-2 (three hosts), the UPS feeds ups-3; the site is
// in dry-run, and the hook is a NATS request the demo itself answers.
func evacuationConfig(dir string) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	key := dir + "/collector.nk"
	if err := os.WriteFile(key, seed, 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf(`evacuation:
  signing_key: %q
  lease_ttl: 2s
  policy: {hold: 10s, dry_run: true, corroboration: {families: 2, agents: 2, emergency_alone: true}}
  hooks:
    - {name: orchestrator, subject: %q, timeout: 5s}
  topology:
    domains:
      - id: ups-2
        description: UPS-2 Li-ion racks, room ups-2
        batteries: [{agent: gw-01, device: rack-a1}, {agent: gw-01, device: rack-a2}]
        racks: [{id: b07, hosts: [db-01, db-02]}]
        hosts: [web-01]
      - id: ups-3
        description: UPS-3
        batteries: [{agent: gw-01, device: ups-1}]
        hosts: [app-01, app-02, app-03]
`, key, HookSubject), nil
}

// HookSubject is the demo's evacuation hook: a NATS request the demo
// answers {"ok": true}, as an orchestrator would.
const HookSubject = "demo.orchestrator.evacuate"

// watchEvacuations prints the evacuation messages and answers the hook.
func (s *Site) watchEvacuations(nc *nats.Conn, w io.Writer) error {
	if _, err := nc.Subscribe(wire.Wildcard("demo", wire.KindEvac), func(m *nats.Msg) {
		var ev wire.Evacuation
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		s.mu.Lock()
		s.Evacuations = append(s.Evacuations, ev)
		s.mu.Unlock()
		s.event(w, fmt.Sprintf("EVACUATION %-8s domain %s (%s, dry_run=%v) targets %v: %s", ev.Phase, ev.Domain, ev.Urgency, ev.DryRun, ev.Targets, ev.Reason.Summary))
	}); err != nil {
		return err
	}
	_, err := nc.Subscribe(HookSubject, func(m *nats.Msg) {
		var ev wire.Evacuation
		json.Unmarshal(m.Data, &ev)
		s.mu.Lock()
		s.HookCalls = append(s.HookCalls, ev)
		s.mu.Unlock()
		s.event(w, fmt.Sprintf("HOOK orchestrator: %s %s, dry run: would move work off %v", ev.Phase, ev.Domain, ev.Targets))
		m.Respond([]byte(`{"ok": true}`))
	})
	return err
}

// Close stops everything the demo started.
func (s *Site) Close() {
	if s.Sim != nil {
		s.Sim.Close()
	}
	if s.NATS != nil {
		s.NATS.Shutdown()
		s.NATS.WaitForShutdown()
	}
}
