package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/internal/sim/rtu"
)

// Clock gives the simulation's time. Tests inject a fake one and call
// Update; the running simulation reads it every tick.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Profiles finds profiles by id (*profile.Set implements it).
type Profiles interface {
	Get(id string) (*profile.Profile, bool)
}

// Sim runs simulated devices behind their listeners.
type Sim struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	devices   map[string]*Device
	order     []string
	listeners []*listener
	byDevice  map[string]*listener

	schedules []*schedule

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Option changes how New builds a Sim.
type Option func(*Sim)

// WithClock makes the simulation read time from c.
func WithClock(c Clock) Option { return func(s *Sim) { s.clock = c } }

// New builds every device of cfg from its profile. Nothing listens until
// Start. Problems are reported as file:line: key: what.
func New(cfg Config, profiles Profiles, log *slog.Logger, opts ...Option) (*Sim, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sim{cfg: cfg, log: log, clock: realClock{}, devices: map[string]*Device{}, byDevice: map[string]*listener{}}
	for _, o := range opts {
		o(s)
	}
	// Validate here too, for configs built in code rather than parsed
	// (which also loads CSV replays), on copies of the caller's slices.
	cfg.Devices = append([]DeviceConfig(nil), cfg.Devices...)
	for i := range cfg.Devices {
		cfg.Devices[i].Scripts = append([]Script(nil), cfg.Devices[i].Scripts...)
	}
	s.cfg = cfg
	if s.cfg.Tick <= 0 {
		s.cfg.Tick = 100 * time.Millisecond
	}
	ps := &profile.Problems{File: cfg.File}
	dir := ""
	if cfg.File != "" {
		dir = filepath.Dir(cfg.File)
	}
	cfg.validate(ps, dir)
	if err := ps.Err(); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	byURL := map[string]*listener{}
	for i := range cfg.Devices {
		dc := &cfg.Devices[i]
		key := fmt.Sprintf("devices[%d]", i)
		d, err := s.buildDevice(dc, profiles)
		if err != nil {
			ps.Add(cfg.line(key+".profile"), key, "%v", err)
			continue
		}
		if err := applyInitial(d, dc, now); err != nil {
			var ke keyError
			if errors.As(err, &ke) {
				ps.Add(cfg.line(key+"."+ke.key), key+"."+ke.key, "%v", ke.err)
			} else {
				ps.Add(cfg.line(key), key, "%v", err)
			}
			continue
		}
		l, err := s.attach(byURL, dc, d)
		if err != nil {
			ps.Add(cfg.line(key+".listen"), key+".listen", "%v", err)
			continue
		}
		s.devices[dc.ID] = d
		s.order = append(s.order, dc.ID)
		s.byDevice[dc.ID] = l
		if len(dc.Faults) > 0 {
			s.schedules = append(s.schedules, &schedule{dev: dc.ID, steps: dc.Faults, start: now, active: -1})
		}
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// keyError names the config key an error is about.
type keyError struct {
	key string
	err error
}

func (e keyError) Error() string { return e.key + ": " + e.err.Error() }

func (s *Sim) buildDevice(dc *DeviceConfig, profiles Profiles) (*Device, error) {
	if profiles == nil {
		return nil, errors.New("no profiles given")
	}
	prof, ok := profiles.Get(dc.Profile)
	if !ok {
		return nil, fmt.Errorf("profile %q not found", dc.Profile)
	}
	log := s.log.With("device", dc.ID)
	if prof.SunSpec != nil {
		shape := dc.Rack
		if shape == nil {
			shape = &RackShape{Strings: 1, Modules: 1, Cells: 4}
		}
		o := RackOpts{Strings: shape.Strings, Modules: shape.Modules, Cells: shape.Cells, UnitID: dc.UnitID,
			CellVolts: shape.CellVolts, CellCelsius: shape.CellCelsius, StringAmps: shape.StringAmps, Charge: shape.Charge, CapacityAh: shape.CapacityAh,
			Serial: strings.ToUpper(dc.ID)}
		if len(prof.SunSpec.Bases) > 0 {
			o.Base = prof.SunSpec.Bases[0]
		}
		if shape.Base != nil {
			o.Base = *shape.Base
		}
		return NewSunSpecRack(dc.ID, o, prof, log)
	}
	if dc.Rack != nil {
		return nil, fmt.Errorf("profile %s is not a SunSpec profile: rack does not apply", prof.ID)
	}
	d, err := NewFixedDevice(dc.ID, dc.UnitID, prof, dc.Counts, log)
	if err != nil {
		return nil, err
	}
	if err := d.FillGaps(dc.FillGaps); err != nil {
		return nil, err
	}
	return d, nil
}

// applyInitial sets a device's configured values, texts, unavailable points
// and scripts.
func applyInitial(d *Device, dc *DeviceConfig, now time.Time) error {
	d.start = now
	for _, kv := range dc.Values {
		if err := d.Set(kv.Point, kv.Value); err != nil {
			return keyError{"values." + kv.Point, err}
		}
	}
	for pat, txt := range dc.Texts {
		if err := d.SetText(pat, txt); err != nil {
			return keyError{"texts." + pat, err}
		}
	}
	for i, pat := range dc.Unavailable {
		if err := d.SetUnavailable(pat, true); err != nil {
			return keyError{fmt.Sprintf("unavailable[%d]", i), err}
		}
	}
	for i, sc := range dc.Scripts {
		if err := d.SetScript(sc, now); err != nil {
			return keyError{fmt.Sprintf("scripts[%d].point", i), err}
		}
	}
	return nil
}

// listener is one endpoint: a Modbus TCP server, an RTU slave on a serial
// port, or an RTU-over-TCP server; it serves one device per unit id.
type listener struct {
	scheme string // tcp, rtu, rtuovertcp
	host   string // host:port as configured (port may be 0)
	path   string // rtu serial device
	speed  int
	addr   string // resolved host:port once started
	h      *handler
	log    *slog.Logger

	mu     sync.Mutex
	ms     *modbus.ModbusServer
	cancel context.CancelFunc
	done   chan struct{}
}

// parseListen reads tcp://host:port, rtuovertcp://host:port or rtu:/path
// (rtu:///path).
func parseListen(raw string) (scheme, host, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", fmt.Errorf("bad listen URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		if u.Host == "" || u.Port() == "" {
			return "", "", "", fmt.Errorf("listen URL %q needs host:port (port 0 picks a free one)", raw)
		}
		if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
			return "", "", "", fmt.Errorf("listen URL %q: bad port", raw)
		}
		return u.Scheme, u.Host, "", nil
	case "rtu":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return "", "", "", fmt.Errorf("listen URL %q needs a serial device path (rtu:/dev/ttyS0)", raw)
		}
		return u.Scheme, "", p, nil
	}
	return "", "", "", fmt.Errorf("listen URL %q: scheme must be tcp://, rtu: or rtuovertcp://", raw)
}

func (s *Sim) attach(byURL map[string]*listener, dc *DeviceConfig, d *Device) (*listener, error) {
	scheme, host, path, err := parseListen(dc.Listen)
	if err != nil {
		return nil, err
	}
	// Devices share a listener when they name the same endpoint; port 0
	// always means a listener of its own.
	key := scheme + "|" + host + "|" + path
	l := byURL[key]
	if l == nil || strings.HasSuffix(host, ":0") {
		l = &listener{scheme: scheme, host: host, path: path, speed: dc.Speed, log: s.log.With("listen", dc.Listen),
			h: &handler{units: map[uint8]*Device{}, rtu: scheme != "tcp"}}
		byURL[key] = l
		s.listeners = append(s.listeners, l)
	}
	if other, dup := l.h.units[d.unit]; dup {
		return nil, fmt.Errorf("unit id %d is already served by device %s on %s", d.unit, other.id, dc.Listen)
	}
	l.h.units[d.unit] = d
	return l, nil
}

// Start starts every listener and the tick loop. It returns once all
// listeners accept requests.
func (s *Sim) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("sim: already started")
	}
	for _, l := range s.listeners {
		if err := l.start(); err != nil {
			for _, o := range s.listeners {
				o.stop()
			}
			return err
		}
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.started = true
	s.wg.Go(func() { s.run(ctx) })
	return nil
}

func (s *Sim) run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.clock.Now()
			s.Update(now)
			s.applySchedules(now)
		}
	}
}

// Update evaluates every device's scripts at now and re-encodes their
// images. The tick loop calls it; tests with a fake clock call it directly.
func (s *Sim) Update(now time.Time) {
	for _, id := range s.order {
		s.devices[id].Update(now)
	}
}

// Close stops the tick loop and every listener.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	var errs []error
	for _, l := range s.listeners {
		if err := l.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Device returns a device by id.
func (s *Sim) Device(id string) (*Device, error) {
	d, ok := s.devices[id]
	if !ok {
		return nil, fmt.Errorf("sim: no device %q", id)
	}
	return d, nil
}

// Devices lists device ids in config order.
func (s *Sim) Devices() []string { return append([]string(nil), s.order...) }

// Addr returns the URL a client uses to reach the device's listener:
// tcp://127.0.0.1:PORT, rtuovertcp://127.0.0.1:PORT (with the port bound
// once started) or rtu:/path for the serial port the slave holds (a client
// opens the other end of the line or PTY pair). "" for unknown devices.
func (s *Sim) Addr(deviceID string) string {
	l, ok := s.byDevice[deviceID]
	if !ok {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.scheme {
	case "rtu":
		return "rtu:" + l.path
	}
	a := l.addr
	if a == "" {
		a = l.host
	}
	return l.scheme + "://" + a
}

// UnitID returns the device's unit id.
func (s *Sim) UnitID(deviceID string) uint8 {
	if d, ok := s.devices[deviceID]; ok {
		return d.unit
	}
	return 0
}

// Set pins the device's points matching point (a glob) to v.
func (s *Sim) Set(deviceID, point string, v float64) error {
	d, err := s.Device(deviceID)
	if err != nil {
		return err
	}
	return d.Set(point, v)
}

// SetText sets the device's string points matching point.
func (s *Sim) SetText(deviceID, point, text string) error {
	d, err := s.Device(deviceID)
	if err != nil {
		return err
	}
	return d.SetText(point, text)
}

// SetUnavailable serves (or stops serving) the sentinel for matching points.
func (s *Sim) SetUnavailable(deviceID, point string, on bool) error {
	d, err := s.Device(deviceID)
	if err != nil {
		return err
	}
	return d.SetUnavailable(point, on)
}

// SetScript attaches a script to the device's points matching sc.Point,
// starting now (by the sim's clock).
func (s *Sim) SetScript(deviceID string, sc Script) error {
	d, err := s.Device(deviceID)
	if err != nil {
		return err
	}
	if err := sc.Validate(""); err != nil {
		return fmt.Errorf("sim: device %s: script: %w", deviceID, err)
	}
	return d.SetScript(sc, s.clock.Now())
}

// Value returns a point's simulated value and whether it is served as
// unavailable.
func (s *Sim) Value(deviceID, point string) (v float64, unavailable bool, err error) {
	d, err := s.Device(deviceID)
	if err != nil {
		return 0, false, err
	}
	v, unavailable, ok := d.Value(point)
	if !ok {
		return 0, false, fmt.Errorf("sim: device %s has no point %q", deviceID, point)
	}
	return v, unavailable, nil
}

// SetFault injects a fault into a device (Fault{} clears it).
func (s *Sim) SetFault(deviceID string, f Fault) error {
	d, err := s.Device(deviceID)
	if err != nil {
		return err
	}
	d.SetFault(f)
	return nil
}

// Kill stops the device's listener as if the device (or its gateway) died:
// connections drop and new ones are refused. Devices sharing the listener
// go down with it.
func (s *Sim) Kill(deviceID string) error {
	l, ok := s.byDevice[deviceID]
	if !ok {
		return fmt.Errorf("sim: no device %q", deviceID)
	}
	return l.stop()
}

// Restart starts a killed device's listener again on the same address.
func (s *Sim) Restart(deviceID string) error {
	l, ok := s.byDevice[deviceID]
	if !ok {
		return fmt.Errorf("sim: no device %q", deviceID)
	}
	return l.start()
}

func (l *listener) start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return nil // running
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.h.setContext(ctx)
	switch l.scheme {
	case "tcp":
		var err error
		for try := 0; try < 5; try++ {
			addr := l.addr
			if addr == "" {
				if addr, err = pickAddr(l.host); err != nil {
					break
				}
			}
			var ms *modbus.ModbusServer
			ms, err = modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + addr, Timeout: 5 * time.Minute, MaxClients: 64,
				// The library logs client hang-ups and the like: debug.
				Logger: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug)}, l.h)
			if err != nil {
				break
			}
			if err = ms.Start(); err == nil {
				l.ms, l.addr = ms, addr
				break
			}
			if l.addr != "" { // a restart: the port may still be closing
				time.Sleep(50 * time.Millisecond)
			}
		}
		if err != nil {
			cancel()
			return fmt.Errorf("sim: listen tcp %s: %w", l.host, err)
		}
		l.done = make(chan struct{})
		close(l.done)
	case "rtuovertcp":
		host := l.host
		if l.addr != "" {
			host = l.addr
		}
		ln, err := net.Listen("tcp", host)
		if err != nil {
			cancel()
			return fmt.Errorf("sim: listen rtuovertcp %s: %w", host, err)
		}
		l.addr = ln.Addr().String()
		srv := &rtu.Server{Handler: l.h, Log: l.log}
		done := make(chan struct{})
		l.done = done
		go func() {
			defer close(done)
			if err := srv.ServeTCP(ctx, ln); err != nil {
				l.log.Warn("rtu over tcp stopped", "err", err)
			}
		}()
	case "rtu":
		port, err := rtu.OpenSerial(rtu.SerialConfig{Path: l.path, Speed: l.speed})
		if err != nil {
			cancel()
			return fmt.Errorf("sim: %w", err)
		}
		srv := &rtu.Server{Handler: l.h, Log: l.log}
		done := make(chan struct{})
		l.done = done
		go func() {
			defer close(done)
			defer port.Close()
			if err := srv.Serve(ctx, port); err != nil {
				l.log.Warn("rtu slave stopped", "err", err)
			}
		}()
	}
	l.cancel = cancel
	return nil
}

func (l *listener) stop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		return nil
	}
	l.cancel() // releases requests held by a timeout fault
	var err error
	if l.ms != nil {
		err = l.ms.Stop()
		l.ms = nil
	}
	<-l.done
	l.done = nil
	return err
}

// pickAddr resolves host:0 to a free port. simonvetter's server binds the
// address itself and does not expose it, so the port is found first; start
// retries if another process takes it in between.
func pickAddr(host string) (string, error) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return "", err
	}
	if p != "0" {
		return host, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(h, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ServesUnit tells the RTU slave which unit ids are on its line.
func (h *handler) ServesUnit(unit uint8) bool {
	_, ok := h.units[unit]
	return ok
}

// schedule is a device's configured fault timeline.
type schedule struct {
	dev    string
	steps  []FaultStep
	start  time.Time
	active int // index of the applied step, -1 for none
}

// applySchedules moves every device's scheduled faults to where the clock
// says: the last step whose window holds now wins. The tick loop calls it;
// tests with a fake clock may call it after Update.
func (s *Sim) applySchedules(now time.Time) {
	for _, sc := range s.schedules {
		want := -1
		e := now.Sub(sc.start)
		for i, st := range sc.steps {
			if e >= st.At && (st.For == 0 || e < st.At+st.For) {
				want = i
			}
		}
		if want == sc.active {
			continue
		}
		if sc.active >= 0 && sc.steps[sc.active].Mode == "kill" {
			if err := s.Restart(sc.dev); err != nil {
				s.log.Warn("scheduled restart", "device", sc.dev, "err", err)
			}
		}
		f := Fault{}
		if want >= 0 {
			st := sc.steps[want]
			switch st.Mode {
			case "kill":
				if err := s.Kill(sc.dev); err != nil {
					s.log.Warn("scheduled kill", "device", sc.dev, "err", err)
				}
			case "timeout":
				f = Fault{Mode: FaultTimeout}
			case "exception":
				f = Fault{Mode: FaultException, Code: st.Code, From: st.From, To: st.To}
			}
		}
		_ = s.SetFault(sc.dev, f)
		s.log.Info("scheduled fault", "device", sc.dev, "step", want, "mode", f.Mode)
		sc.active = want
	}
}
