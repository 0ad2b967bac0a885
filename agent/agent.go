package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/internal/hooks/fallback"
	"github.com/emberwatch/emberwatch/internal/selfmon"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// Version is stamped by the build (-ldflags -X).
var Version = "dev"

// Detector is the agent's view of a device's detection engine
// (agent/detect): a pure step function over rounds.
type Detector interface {
	// Step consumes one round; alerts on stage changes go to emit.
	Step(at time.Time, readings []drivers.Reading, roundErr error, emit func(wire.Alert))
	// Stage is the highest stage currently held; watch or above asks for
	// burst sampling.
	Stage() wire.Stage
}

// PollerFactory opens pollers. It returns the link key: devices with the
// same key share a goroutine (and, for serial lines, the line).
type PollerFactory interface {
	NewPoller(dev *DeviceConfig, prof *profile.Profile) (p drivers.Poller, link string, err error)
	Close() error
}

// Options wire an agent together; cmd/ember-agent and the demo build them.
type Options struct {
	Config    *Config
	Profiles  *profile.Set
	Pollers   PollerFactory
	Publisher Publisher
	// NewDetector builds a device's detector, or returns nil when the
	// device has nothing to detect on.
	NewDetector func(dev *DeviceConfig, prof *profile.Profile, points []*drivers.Point) Detector
	// OnAlert observes every alert the agent publishes (fallback hooks,
	// black box, demo output).
	OnAlert func(wire.Alert)
	// OnRound observes each processed round (demo output). It runs on the
	// device's processor goroutine and must not keep r.
	OnRound func(device string, at time.Time, points []*drivers.Point, readings []drivers.Reading, err error)
	// Conn, when set, lets the agent hear operators' acks of its latched
	// alerts (the collector republishes an alert with its ack).
	Conn *nats.Conn
	Log  *slog.Logger
	// Now is the wall clock that stamps samples and alerts (tests inject
	// jumps); scheduling never uses it.
	Now func() time.Time
	// ClockSynced overrides the kernel's clock-sync status (tests).
	ClockSynced func() bool
	// Metrics, when set, counts rounds, errors, overruns, drops, poll
	// durations and alerts (served at /metrics by the caller).
	Metrics *selfmon.Metrics
	// Watchdog, when set, is fed by every link loop's progress, so that a
	// hung link (not a blind ticker) starves systemd's watchdog.
	Watchdog *selfmon.Watchdog
}

// Agent samples, detects and publishes.
type Agent struct {
	opts  Options
	cfg   *Config
	log   *slog.Logger
	now   func() time.Time // wall clock for timestamps (injectable)
	start time.Time
	// monoStart anchors the sampling deadlines on the monotonic clock.
	monoStart time.Time
	devices   []*device
	links     []*linkLoop
	pub       Publisher

	fb     *fallback.F // local fallback hooks (edge autonomy), nil when not configured
	drills drills
}

// New opens every device's poller. A device whose profile is missing is a
// config error naming its line; a device that cannot be reached is not:
// it is polled and marked down until it answers.
func New(opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := opts.Config
	a := &Agent{opts: opts, cfg: cfg, log: opts.Log, now: opts.Now, pub: opts.Publisher}
	var errs []error
	byLink := map[string]*linkLoop{}
	var linkOrder []string
	for i := range cfg.Devices {
		dc := &cfg.Devices[i]
		prof, ok := opts.Profiles.Get(dc.Profile)
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: devices[%d].profile: unknown profile %q", cfg.fileName(), cfg.Line(fmt.Sprintf("devices[%d].profile", i)), i, dc.Profile))
			continue
		}
		p, link, err := opts.Pollers.NewPoller(dc, prof)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: devices[%d]: %w", cfg.fileName(), cfg.Line(fmt.Sprintf("devices[%d]", i)), i, err))
			continue
		}
		d := newDevice(dc, prof, p, link, a.tags(dc))
		a.devices = append(a.devices, d)
		if opts.Metrics != nil {
			d.metrics = opts.Metrics.Device(dc.ID)
			d.hasMetrics = true
		}
		l, ok := byLink[link]
		if !ok {
			l = &linkLoop{name: link, log: a.log.With("link", link), mono: time.Now, wall: a.now, wake: make(chan struct{}, 1)}
			byLink[link] = l
			linkOrder = append(linkOrder, link)
		}
		l.devices = append(l.devices, d)
	}
	if err := errors.Join(errs...); err != nil {
		for _, d := range a.devices {
			d.poller.Close()
		}
		return nil, err
	}
	for _, k := range linkOrder {
		a.links = append(a.links, byLink[k])
	}
	return a, nil
}

func (c *Config) fileName() string {
	if c.doc == nil {
		return "agent.yaml"
	}
	return c.doc.File
}

// tags are the device's telemetry tags: site, agent, device and its
// location labels.
func (a *Agent) tags(dc *DeviceConfig) []wire.Tag {
	t := []wire.Tag{{Key: "site", Value: a.cfg.Site}, {Key: "agent", Value: a.cfg.AgentID}, {Key: "device", Value: dc.ID}}
	keys := make([]string, 0, len(dc.Location))
	for k := range dc.Location {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t = append(t, wire.Tag{Key: k, Value: dc.Location[k]})
	}
	return t
}

// Run samples until ctx is done, then flushes what is queued.
func (a *Agent) Run(ctx context.Context) error {
	a.start = a.now()
	a.monoStart = time.Now()
	if a.cfg.Fallback != nil {
		fb, err := fallback.New(*a.cfg.Fallback, a.opts.Conn, a.log.With("part", "fallback"))
		if err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		if err := fb.Start(ctx); err != nil {
			return err
		}
		a.fb = fb
		defer fb.Close()
	}
	if a.opts.Conn != nil {
		sub, err := a.opts.Conn.Subscribe(wire.AlertSubject(a.cfg.Site, a.cfg.AgentID, "*"), a.onAlertMsg)
		if err != nil {
			return fmt.Errorf("subscribe to acks: %w", err)
		}
		defer sub.Unsubscribe()
		dsub, err := a.serveDrills(ctx, a.opts.Conn)
		if err != nil {
			return fmt.Errorf("subscribe to drills: %w", err)
		}
		defer dsub.Unsubscribe()
	}
	var sampling, processing sync.WaitGroup
	pctx, cancelProc := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProc()
	for _, d := range a.devices {
		processing.Go(func() { a.process(pctx, d) })
	}
	for _, l := range a.links {
		if a.opts.Watchdog != nil {
			// A link may stay silent for its slowest device's period plus
			// a poll timeout's worth of slack before it counts as hung.
			slowest := time.Duration(0)
			for _, d := range l.devices {
				slowest = max(slowest, d.cfg.Period)
			}
			l.progress = a.opts.Watchdog.Source("link "+l.name, 2*slowest+30*time.Second)
		}
		sampling.Go(func() { l.run(ctx, a.monoStart) })
	}
	processing.Go(func() { a.heartbeats(ctx) })
	a.insecureLinkAlerts(ctx)
	if a.cfg.Traps != nil {
		processing.Go(func() {
			if err := a.runTraps(ctx); err != nil {
				a.log.Error("traps off", "err", err)
			}
		})
	}
	a.log.Info("agent started", "site", a.cfg.Site, "agent", a.cfg.AgentID, "devices", len(a.devices), "links", len(a.links))
	<-ctx.Done()
	sampling.Wait()
	// Sampling has stopped: let processors drain their queues, then stop.
	for _, d := range a.devices {
		close(d.out)
	}
	processing.Wait()
	for _, d := range a.devices {
		d.poller.Close()
	}
	a.log.Info("agent stopped")
	return nil
}

// process handles one device's rounds in order: detection, telemetry.
func (a *Agent) process(ctx context.Context, d *device) {
	var idBuf []byte
	emit := func(al wire.Alert) { a.publishAlert(ctx, d, al) }
	for {
		select {
		case al := <-d.acks:
			a.applyAck(d, al)
			continue
		case r, ok := <-d.out:
			if !ok {
				return
			}
			a.processRound(ctx, d, r, emit, &idBuf)
		}
	}
}

func (a *Agent) processRound(ctx context.Context, d *device, r *round, emit func(wire.Alert), idBuf *[]byte) {
	d.noteRound(r)
	d.prepareProcessor(r.lay, a.opts.NewDetector, a.newBlackBox)
	if d.bb != nil {
		d.bb.Record(r.at, r.readings, r.err)
	}
	if d.det != nil {
		d.det.Step(r.at, r.readings, r.err, emit)
		st := d.det.Stage()
		a.setBurst(d, st >= wire.StageWatch)
		if st >= wire.StageWarning && d.lastStage < wire.StageWarning {
			a.freezeBlackBox(ctx, d, st)
		}
		d.lastStage = st
	}
	a.linkSecurity(ctx, d, r)
	// A dead round is published too: its fault fields tell the
	// collector the device is down, with the sample's time.
	lines := d.enc.encode(r)
	*idBuf = telemetryMsgID(*idBuf, a.cfg.AgentID, d.id, r.at)
	if err := a.pub.Publish(ctx, wire.TelemetrySubject(a.cfg.Site, a.cfg.AgentID, d.id), string(*idBuf), lines); err != nil {
		a.log.Warn("telemetry not published", "device", d.id, "err", err)
	} else if a.opts.Metrics != nil {
		a.opts.Metrics.ObservePublish(a.now().Sub(r.at))
	}
	if a.opts.OnRound != nil {
		a.opts.OnRound(d.id, r.at, r.lay.points, r.readings, r.err)
	}
	d.free <- r
}

// onAlertMsg routes acks published for this agent's alerts to the
// device's processor.
func (a *Agent) onAlertMsg(m *nats.Msg) {
	var al wire.Alert
	if err := json.Unmarshal(m.Data, &al); err != nil || al.Ack == nil || al.Agent != a.cfg.AgentID {
		return
	}
	if d := a.deviceByID(al.Device); d != nil {
		select {
		case d.acks <- al:
		default:
			a.log.Warn("ack dropped: queue full", "device", al.Device)
		}
	}
}

// applyAck releases a latched condition an operator acknowledged (the
// collector republishes the alert with its ack). Runs on the device's
// processor goroutine, which owns the detector.
func (a *Agent) applyAck(d *device, al wire.Alert) {
	acker, ok := d.det.(interface {
		Ack(component, category string, ack wire.Ack) error
	})
	if !ok || al.Ack == nil {
		return
	}
	if err := acker.Ack(al.Component, al.Category, *al.Ack); err != nil {
		a.log.Info("ack not applied", "device", d.id, "component", al.Component, "category", al.Category, "err", err)
		return
	}
	a.log.Info("latched condition acknowledged", "device", d.id, "component", al.Component, "category", al.Category, "by", al.Ack.By)
}

// PollNow asks for an immediate out-of-turn round of a device (a trap said
// something changed). It reports whether the device exists.
func (a *Agent) PollNow(deviceID string) bool {
	for _, d := range a.devices {
		if d.id == deviceID {
			d.pollNow.Store(true)
			a.wakeLink(d.link)
			return true
		}
	}
	return false
}

func (a *Agent) wakeLink(link string) {
	for _, l := range a.links {
		if l.name == link {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}
}

// setBurst switches a device to its burst period and back.
func (a *Agent) setBurst(d *device, on bool) {
	want := int64(0)
	if on {
		want = int64(d.cfg.Burst)
	}
	if d.burst.Swap(want) != want {
		a.log.Info("sampling period changed", "device", d.id, "burst", on, "period", d.period())
		a.wakeLink(d.link)
	}
}

// publishAlert completes an alert from the detector and publishes it.
func (a *Agent) publishAlert(ctx context.Context, d *device, al wire.Alert) {
	al.Site, al.Agent = a.cfg.Site, a.cfg.AgentID
	if al.Device == "" {
		al.Device = d.id
	}
	if al.Time.IsZero() {
		al.Time = a.now().UTC()
	}
	if al.ID == "" {
		al.ID = detect.AlertID(&al) // from content: a re-publish carries the same id
	}
	if al.Signatures == nil {
		al.Signatures = []wire.Signature{}
	}
	data, err := json.Marshal(&al)
	if err != nil {
		a.log.Error("alert not encoded", "err", err)
		return
	}
	if err := a.pub.Publish(ctx, wire.AlertSubject(a.cfg.Site, a.cfg.AgentID, al.Device), al.ID, data); err != nil {
		a.log.Error("alert not published", "device", al.Device, "stage", al.Stage, "err", err)
	}
	a.log.Info("alert", "device", al.Device, "component", al.Component, "category", al.Category, "stage", al.Stage, "previous", al.PreviousStage)
	if a.fb != nil {
		a.fb.OnAlert(ctx, al)
	}
	if a.opts.Metrics != nil {
		a.opts.Metrics.Alert(al.Stage.String(), al.Category)
	}
	if a.opts.OnAlert != nil {
		a.opts.OnAlert(al)
	}
}

// heartbeats publishes the agent's health every cfg.Heartbeat.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	clockStage := wire.StageNormal
	for {
		hb := a.publishHeartbeat(ctx)
		// An unsynchronised clock is a data-quality matter: a watch alert,
		// never more, raised and cleared on change.
		st := wire.StageNormal
		if hb.ClockSync != nil && !*hb.ClockSync {
			st = wire.StageWatch
		}
		if st != clockStage {
			a.publishAlert(ctx, &device{id: a.cfg.AgentID}, wire.Alert{Device: a.cfg.AgentID, Component: "clock",
				Category: wire.CategorySensorFault, Stage: st, PreviousStage: clockStage, SampleTime: hb.Time,
				Signatures: []wire.Signature{{Kind: "clock_unsynchronised", Value: float64(st), Threshold: 1}},
				Summary:    "the agent's wall clock is not synchronised (NTP): sample timestamps may be off"})
			clockStage = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Heartbeat returns the agent's current heartbeat document.
func (a *Agent) Heartbeat() wire.Heartbeat {
	hb := wire.Heartbeat{Agent: a.cfg.AgentID, Site: a.cfg.Site, Version: Version,
		Uptime: time.Since(a.monoStart).Seconds(), Time: a.now().UTC(), ClockSync: a.clockSynced()}
	for _, d := range a.devices {
		hb.Devices = append(hb.Devices, d.healthReport())
		hb.Rounds += d.rounds.Load()
		hb.Overrun += d.overruns.Load()
		hb.Dropped += d.drops.Load()
	}
	return hb
}

func (a *Agent) publishHeartbeat(ctx context.Context) wire.Heartbeat {
	hb := a.Heartbeat()
	data, err := json.Marshal(&hb)
	if err != nil {
		return hb
	}
	id := fmt.Sprintf("hb.%s.%d", a.cfg.AgentID, hb.Time.UnixNano())
	if err := a.pub.Publish(ctx, wire.HeartbeatSubject(a.cfg.Site, a.cfg.AgentID), id, data); err != nil {
		a.log.Debug("heartbeat not published", "err", err)
	}
	return hb
}

// Stats are per-device sampling counters, for metrics and benchmarks.
type Stats struct {
	Device                                     string
	Rounds, Overruns, Skipped, Drops, Failures uint64
	Lateness                                   []time.Duration
}

// Stats returns every device's counters.
func (a *Agent) Stats() []Stats {
	var out []Stats
	for _, d := range a.devices {
		d.mu.Lock()
		n := min(d.lateIdx, latenessWindow)
		late := append([]time.Duration(nil), d.lateness[:n]...)
		d.mu.Unlock()
		out = append(out, Stats{Device: d.id, Rounds: d.rounds.Load(), Overruns: d.overruns.Load(),
			Skipped: d.skipped.Load(), Drops: d.drops.Load(), Failures: d.failures.Load(), Lateness: late})
	}
	return out
}

// insecureLinkAlerts raises a standing watch-level security alert for
// every device whose config explicitly allows an insecure SNMP link, so
// that the exception stays visible to the NOC for as long as it lasts.
func (a *Agent) insecureLinkAlerts(ctx context.Context) {
	for _, d := range a.devices {
		sc := d.cfg.SNMP
		if sc == nil || !sc.AllowInsecure {
			continue
		}
		ver := sc.Version
		if ver == "" {
			ver = "2c"
		}
		a.publishAlert(ctx, d, wire.Alert{Device: d.id, Component: "link", Category: wire.CategorySecurity,
			Stage: wire.StageWatch, PreviousStage: wire.StageNormal, SampleTime: a.now().UTC(),
			Signatures: []wire.Signature{{Kind: "snmp_insecure_allowed", Value: 1, Threshold: 0}},
			Summary:    fmt.Sprintf("SNMP v%s without authPriv is allowed by config for %s: values can be read and forged on the network", ver, d.id)})
	}
}
