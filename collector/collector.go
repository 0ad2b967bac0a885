package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EvacuationSource gives what GET /api/v1/evacuations serves. The
// evacuation engine (collector/evacuate) implements it; without one the
// endpoint serves an empty list.
type EvacuationSource interface {
	Evacuations(ctx context.Context) ([]wire.Evacuation, error)
}

// AlertHandler is called for every alert this collector sees, in stream
// order, including acks. replay is true while the collector catches up
// with the stream at start.
type AlertHandler func(a wire.Alert, replay bool)

// Collector is one edge collector instance. Several may run against one
// NATS system: telemetry storage and NOC delivery are shared work (durable
// consumers), site state is complete in each (ordered consumers).
type Collector struct {
	cfg   *Config
	log   *slog.Logger
	now   func() time.Time
	state *State
	store *store // nil: InfluxDB not configured
	noc   *fanout
	ln    net.Listener
	mux   *http.ServeMux

	evac     atomic.Pointer[EvacuationSource]
	evacHTTP atomic.Pointer[http.Handler]
	handlers []AlertHandler
	parts    []part

	nc          atomic.Pointer[nats.Conn]
	js          atomic.Pointer[jetstream.JetStream]
	quarantined atomic.Uint64
	lines       atomic.Uint64 // telemetry lines passed to storage (or acked without it)
	started     atomic.Bool

	alertsReady, heartbeatsReady chan struct{}
	alertSeq                     atomic.Uint64 // last alert stream sequence applied to the state
	blackBoxPoll                 time.Duration // how often to look for the black-box stream
}

// New checks cfg and opens the HTTP listener, so that HTTPAddr is known
// before Run. Nothing else touches the network until Run.
func New(cfg *Config, log *slog.Logger) (*Collector, error) {
	if log == nil {
		return nil, errors.New("collector: nil logger")
	}
	if cfg == nil {
		return nil, errors.New("collector: nil config")
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	log = log.With("site", cfg.Site, "collector", cfg.CollectorID)
	c := &Collector{cfg: cfg, log: log, now: time.Now, blackBoxPoll: 15 * time.Second,
		alertsReady: make(chan struct{}), heartbeatsReady: make(chan struct{})}
	c.state = newState(cfg.Site, func() time.Time { return c.now() })
	c.noc = newFanout(cfg.NOC, log.With("part", "noc"), c.now)
	c.noc.site, c.noc.id = cfg.Site, cfg.CollectorID
	if cfg.Influx.URL != "" {
		c.store = newStore(cfg.Influx, log.With("part", "influx"))
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("collector: http listen %s: %w", cfg.HTTP.Listen, err)
	}
	c.ln = ln
	c.mux = http.NewServeMux()
	c.routes()
	return c, nil
}

// HTTPAddr is the address the API and status page listen on.
func (c *Collector) HTTPAddr() string { return c.ln.Addr().String() }

// State returns the live site state.
func (c *Collector) State() *State { return c.state }

// SetEvacuations installs the evacuation source served at
// GET /api/v1/evacuations. It may be called while running.
func (c *Collector) SetEvacuations(src EvacuationSource) { c.evac.Store(&src) }

// SetEvacuationHandler hands GET /api/v1/evacuations and everything under
// /api/v1/evacuations/ to h (the evacuation engine's own API), instead of
// the EvacuationSource list. It may be called while running.
func (c *Collector) SetEvacuationHandler(h http.Handler) { c.evacHTTP.Store(&h) }

type part struct {
	name string
	run  func(ctx context.Context, nc *nats.Conn) error
}

// AddPart registers a long-running part started by Run once NATS is
// connected (e.g. the evacuation engine), with the collector's NATS
// connection. It runs until ctx ends and is restarted with backoff when it
// returns an error. Call before Run.
func (c *Collector) AddPart(name string, run func(ctx context.Context, nc *nats.Conn) error) {
	c.parts = append(c.parts, part{name, run})
}

// OnAlert registers a handler for every alert. Call before Run.
func (c *Collector) OnAlert(h AlertHandler) { c.handlers = append(c.handlers, h) }

// Handle adds an HTTP route (e.g. the evacuation engine's approve/abort
// endpoints). Call before Run.
func (c *Collector) Handle(pattern string, h http.Handler) { c.mux.Handle(pattern, h) }

// Run connects to NATS, makes sure the streams exist, and ingests until
// ctx ends; then it flushes what it holds to InfluxDB and returns nil.
// Failures of NATS or InfluxDB are retried, never fatal.
func (c *Collector) Run(ctx context.Context) error {
	if c.started.Swap(true) {
		return errors.New("collector: Run called twice")
	}
	defer c.ln.Close()
	hs := &http.Server{Handler: c.guard(c.mux), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:    slog.NewLogLogger(c.log.With("part", "http").Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		var err error
		if c.cfg.HTTP.TLSCert != "" {
			err = hs.ServeTLS(c.ln, c.cfg.HTTP.TLSCert, c.cfg.HTTP.TLSKey)
		} else {
			err = hs.Serve(c.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("http server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()

	nc, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	c.nc.Store(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("collector: jetstream: %w", err)
	}
	c.js.Store(&js)

	streams, err := c.ensureStreams(ctx, js)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before JetStream was reachable
		}
		return err
	}
	if c.store == nil {
		c.log.Warn("influx.url not set: telemetry is not stored, only kept in site state (and acked)")
	} else {
		defer c.store.close()
		if c.cfg.Influx.CreateDatabase {
			go c.retry(ctx, "influx setup", func(ctx context.Context) error {
				err := c.store.setup(ctx)
				if err == nil {
					<-ctx.Done() // done: do not run again
				}
				return err
			})
		}
	}

	var wg sync.WaitGroup
	loop := func(name string, f func(context.Context) error) {
		wg.Go(func() { c.retry(ctx, name, f) })
	}
	c.noc.start(ctx)
	loop("alert state", func(ctx context.Context) error { return c.followAlerts(ctx, js, streams[1]) })
	loop("heartbeat state", func(ctx context.Context) error { return c.followHeartbeats(ctx, js, streams[2]) })
	loop("telemetry state", func(ctx context.Context) error { return c.followTelemetry(ctx, js, streams[0]) })
	loop("telemetry store", func(ctx context.Context) error { return c.storeTelemetry(ctx, js, streams[0], wire.KindTelemetry) })
	loop("black box store", func(ctx context.Context) error { return c.storeBlackBoxes(ctx, js) })
	loop("alert store", func(ctx context.Context) error { return c.storeAlerts(ctx, js, streams[1]) })
	loop("evacuation store", func(ctx context.Context) error { return c.storeEvacuations(ctx, nc) })
	loop("heartbeat watchdog", func(ctx context.Context) error { return c.watchdog(ctx, js) })
	loop("own heartbeat", func(ctx context.Context) error { return c.heartbeat(ctx, nc) })
	for _, p := range c.parts {
		loop(p.name, func(ctx context.Context) error { return p.run(ctx, nc) })
	}
	c.log.Info("collector running", "http", c.HTTPAddr(), "streams", streams, "influx", c.cfg.Influx.URL != "")
	<-ctx.Done()
	wg.Wait()
	c.noc.wg.Wait()
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Debug("nats drain", "err", err)
	}
	c.log.Info("collector stopped")
	return nil
}

// retry runs f until ctx ends, backing off after failures.
func (c *Collector) retry(ctx context.Context, name string, f func(context.Context) error) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			delay = 200 * time.Millisecond
		}
		c.log.Warn("restarting after failure", "part", name, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (c *Collector) connect(ctx context.Context) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("ember-collector " + c.cfg.Site + "/" + c.cfg.CollectorID),
		nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			c.log.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
	if c.cfg.NATS.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.cfg.NATS.CredsFile))
	}
	t := c.cfg.NATS.TLS
	if t.CAFile != "" {
		opts = append(opts, nats.RootCAs(t.CAFile))
	}
	if t.CertFile != "" || t.KeyFile != "" {
		opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(c.cfg.NATS.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("collector: connect nats %v: %w", c.cfg.NATS.Servers, err)
	}
	return nc, nil
}

// ensureStreams returns the telemetry, alert and heartbeat stream names,
// retrying while JetStream is not available yet.
func (c *Collector) ensureStreams(ctx context.Context, js jetstream.JetStream) ([3]string, error) {
	var names [3]string
	samples := []string{
		wire.TelemetrySubject(c.cfg.Site, "a", "d"),
		wire.AlertSubject(c.cfg.Site, "a", "d"),
		wire.HeartbeatSubject(c.cfg.Site, "a"),
	}
	delay := 200 * time.Millisecond
	for i, spec := range streamSpecs(c.cfg) {
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			name, err := ensureStream(sctx, js, spec, samples[i])
			cancel()
			if err == nil {
				names[i] = name
				break
			}
			if ctx.Err() != nil {
				return names, ctx.Err()
			}
			c.log.Warn("jetstream not ready", "stream", spec.Name, "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return names, ctx.Err()
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
		}
	}
	return names, nil
}

func (c *Collector) consumerName(kind string) string {
	return "ember-collector-" + c.cfg.Site + "-" + kind
}

// --- per-instance state followers (ordered consumers) ---

// follow reads an ordered consumer until ctx ends. ready is closed once
// the consumer has caught up with what the stream held at start.
func (c *Collector) follow(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig,
	ready chan struct{}, handle func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("consume %s: %w", stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	markReady := func() {
		if ready != nil {
			select {
			case <-ready:
			default:
				close(ready)
			}
		}
	}
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				markReady() // nothing more to catch up on
				continue
			}
			return fmt.Errorf("next on %s: %w", stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		handle(msg, md)
		if md.NumPending == 0 {
			markReady()
		}
	}
}

func (c *Collector) followAlerts(ctx context.Context, js jetstream.JetStream, stream string) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.Wildcard(c.cfg.Site, wire.KindAlert)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if seq := c.alertSeq.Load(); seq > 0 {
		// Restarted after a failure: go on where the state is.
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	return c.follow(ctx, js, stream, cfg, c.alertsReady, func(msg jetstream.Msg, md *jetstream.MsgMetadata) {
		c.alertSeq.Store(md.Sequence.Stream)
		a, err := decodeAlert(msg.Subject(), msg.Data())
		if err != nil {
			c.log.Warn("bad alert", "subject", msg.Subject(), "err", err)
			return
		}
		c.state.applyAlert(a)
		replay := md.NumPending > 0 || !isClosed(c.alertsReady)
		for _, h := range c.handlers {
			h(a, replay)
		}
	})
}

// decodeAlert parses an alert and makes its identity that of the subject,
// which NATS authorization checked: an agent cannot raise or clear another
// agent's conditions by naming it in the JSON.
func decodeAlert(subject string, data []byte) (wire.Alert, error) {
	var a wire.Alert
	sub, err := wire.ParseSubject(subject)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("alert JSON: %w", err)
	}
	if a.Site != sub.Site || a.Agent != sub.Agent || a.Device != sub.Device {
		return a, fmt.Errorf("alert names %s/%s/%s, subject says %s/%s/%s", a.Site, a.Agent, a.Device, sub.Site, sub.Agent, sub.Device)
	}
	return a, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Collector) followHeartbeats(ctx context.Context, js jetstream.JetStream, stream string) error {
	// Comms decisions need the alert history first (an agent already
	// reported silent must not be reported again).
	select {
	case <-c.alertsReady:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
		return nil
	}
	return c.follow(ctx, js, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.Wildcard(c.cfg.Site, wire.KindHeartbeat)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	}, c.heartbeatsReady, func(msg jetstream.Msg, md *jetstream.MsgMetadata) {
		var hb wire.Heartbeat
		if err := json.Unmarshal(msg.Data(), &hb); err != nil {
			c.log.Warn("bad heartbeat JSON", "subject", msg.Subject(), "err", err)
			return
		}
		sub, err := wire.ParseSubject(msg.Subject())
		if err != nil {
			return
		}
		hb.Agent = sub.Agent // the subject is what NATS authorization checked
		now := c.now()
		arrived := md.Timestamp
		if arrived.After(now) {
			arrived = now
		}
		c.state.applyHeartbeat(hb, md.Sequence.Stream, arrived)
		if raisedBy, ok := c.state.commsActive(hb.Agent); ok && now.Sub(arrived) <= c.cfg.heartbeatTimeout {
			c.publishComms(ctx, raisedBy, hb.Agent, wire.StageNormal, md.Sequence.Stream, now.Sub(arrived), arrived)
		}
	})
}

func (c *Collector) followTelemetry(ctx context.Context, js jetstream.JetStream, stream string) error {
	var l lpLine
	return c.follow(ctx, js, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.Wildcard(c.cfg.Site, wire.KindTelemetry)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	}, nil, func(msg jetstream.Msg, md *jetstream.MsgMetadata) {
		sub, err := wire.ParseSubject(msg.Subject())
		if err != nil {
			return
		}
		if _, err := c.state.applyTelemetry(sub.Agent, sub.Device, msg.Data(), &l); err != nil {
			c.log.Debug("telemetry line skipped in state", "subject", msg.Subject(), "err", err)
		}
	})
}

// watchdog raises a comms alert for every agent whose heartbeats stopped.
func (c *Collector) watchdog(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-c.heartbeatsReady:
	case <-time.After(c.cfg.heartbeatTimeout):
	case <-ctx.Done():
		return nil
	}
	tick := time.NewTicker(max(c.cfg.heartbeatTimeout/5, 100*time.Millisecond))
	defer tick.Stop()
	for {
		for _, a := range c.state.silentAgents(c.now(), c.cfg.heartbeatTimeout) {
			if a.Agent == c.cfg.CollectorID {
				continue // alive by definition; a stuck process is the other collectors' to see
			}
			if _, ok := c.state.commsActive(a.Agent); ok {
				continue // raised already, by this or another collector
			}
			c.publishComms(ctx, c.cfg.CollectorID, a.Agent, wire.StageWatch, a.lastSeq, c.now().Sub(a.arrived), a.arrived)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// HeartbeatVersion is the version field of a collector's own heartbeat.
const HeartbeatVersion = "ember-collector"

// heartbeat publishes the collector's own heartbeat every 5 s, like an
// agent's: the other collectors of the site raise a comms alert when this
// one dies (reliability-security T23).
func (c *Collector) heartbeat(ctx context.Context, nc *nats.Conn) error {
	start := time.Now()
	// Every 5 s, or faster when the site's heartbeat_timeout is short, so
	// that another collector never mistakes a live one for a dead one.
	t := time.NewTicker(min(5*time.Second, c.cfg.heartbeatTimeout/3))
	defer t.Stop()
	subject := wire.HeartbeatSubject(c.cfg.Site, c.cfg.CollectorID)
	for {
		hb := wire.Heartbeat{Agent: c.cfg.CollectorID, Site: c.cfg.Site, Version: HeartbeatVersion,
			Uptime: time.Since(start).Seconds(), Time: c.now().UTC(), Rounds: c.lines.Load()}
		if b, err := json.Marshal(hb); err == nil {
			nc.Publish(subject, b) // best effort: a lost beat is what the watchers look for
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// publishComms publishes a comms alert for an agent, as collector (the
// one that raised the condition, for a clear). The message id depends only
// on the heartbeat sequence, so that several collectors raising or
// clearing the same condition produce one alert (JetStream de-duplication).
func (c *Collector) publishComms(ctx context.Context, collector, agent string, stage wire.Stage, seq uint64, age time.Duration, last time.Time) {
	prev := wire.StageNormal
	summary := fmt.Sprintf("agent %s sends heartbeats again", agent)
	if stage != wire.StageNormal {
		summary = fmt.Sprintf("agent %s silent for %s (no heartbeat)", agent, age.Round(time.Second))
	} else {
		prev = wire.StageWatch
	}
	now := c.now().UTC()
	a := wire.Alert{
		ID:   fmt.Sprintf("comms-%s-%s-%d-%s", c.cfg.Site, agent, seq, stage),
		Site: c.cfg.Site, Agent: collector, Device: agent,
		Category: wire.CategoryComms, Stage: stage, PreviousStage: prev,
		Signatures: []wire.Signature{{Kind: "heartbeat_age", Value: age.Seconds(), Unit: "s",
			Threshold: c.cfg.heartbeatTimeout.Seconds()}},
		SampleTime: last.UTC(), Time: now, Summary: summary,
	}
	if err := c.publishAlert(ctx, a, a.ID); err != nil {
		c.log.Error("publish comms alert", "agent", agent, "stage", stage, "err", err)
		return
	}
	c.log.Info("comms alert", "agent", agent, "stage", stage, "age", age.Round(time.Millisecond))
}

func (c *Collector) publishAlert(ctx context.Context, a wire.Alert, msgID string) error {
	jsp := c.js.Load()
	if jsp == nil {
		return errors.New("not connected to NATS yet")
	}
	data, err := a.Marshal()
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = (*jsp).Publish(pctx, wire.AlertSubject(a.Site, a.Agent, a.Device), data, jetstream.WithMsgID(msgID))
	return err
}

// Ack records who acknowledged an alert and publishes the ack (the alert
// again, with Ack set) on the alert's own subject.
func (c *Collector) Ack(ctx context.Context, id, by, note string) (wire.Alert, error) {
	a, prev, ok := c.state.findAlert(id)
	if !ok {
		return wire.Alert{}, fmt.Errorf("%w: %q", ErrUnknownAlert, id)
	}
	if prev != nil {
		a.Ack = prev
		return a, nil // acknowledged already: idempotent
	}
	a.Ack = &wire.Ack{By: by, Time: c.now().UTC(), Note: note}
	a.Time = a.Ack.Time
	if err := c.publishAlert(ctx, a, "ack-"+id); err != nil {
		return wire.Alert{}, fmt.Errorf("publish ack of %s: %w", id, err)
	}
	c.state.applyAlert(a) // visible at once; the stream copy is idempotent
	return a, nil
}

// ErrUnknownAlert is returned by Ack for an id the collector does not know.
var ErrUnknownAlert = errors.New("collector: unknown alert")

// Stats are the collector's counters.
type Stats struct {
	LinesStored    uint64 `json:"lines_stored"`
	PointsWritten  uint64 `json:"points_written"`
	InfluxRetries  uint64 `json:"influx_retries"`
	InfluxRefused  uint64 `json:"influx_refused_batches"`
	InfluxDown     bool   `json:"influx_down"`
	Quarantined    uint64 `json:"quarantined_lines"`
	NATSConnected  bool   `json:"nats_connected"`
	InfluxDisabled bool   `json:"influx_disabled,omitempty"`
}

// Stats returns the current counters.
func (c *Collector) Stats() Stats {
	s := Stats{LinesStored: c.lines.Load(), Quarantined: c.quarantined.Load(), InfluxDisabled: c.store == nil}
	if c.store != nil {
		s.PointsWritten = c.store.written.Load()
		s.InfluxRetries = c.store.retries.Load()
		s.InfluxRefused = c.store.dropped.Load()
		s.InfluxDown = c.store.down.Load()
	}
	if nc := c.nc.Load(); nc != nil {
		s.NATSConnected = nc.IsConnected()
	}
	return s
}
