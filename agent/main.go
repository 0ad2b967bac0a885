package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/spool"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"github.com/emberwatch/emberwatch/internal/selfmon"
)

// LoadProfiles loads the built-in profiles and, when dir is set, the
// user's profiles on top of them.
func LoadProfiles(log *slog.Logger, dir string) (*profile.Set, error) {
	if dir == "" {
		return profile.Load(log, firmwareprofiles.FS)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("profiles_dir: %w", err)
	}
	return profile.Load(log, firmwareprofiles.FS, os.DirFS(dir))
}

// Main is ember-agent: load config and profiles, connect, run until ctx is
// done. With check it only validates.
func Main(ctx context.Context, cfgFile string, check bool, log *slog.Logger) error {
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		return err
	}
	profiles, err := LoadProfiles(log, cfg.ProfilesDir)
	if err != nil {
		return err
	}
	if check {
		for i, d := range cfg.Devices {
			if _, ok := profiles.Get(d.Profile); !ok {
				return fmt.Errorf("%s:%d: devices[%d].profile: unknown profile %q", cfgFile, cfg.Line(fmt.Sprintf("devices[%d].profile", i)), i, d.Profile)
			}
		}
		fmt.Fprintf(os.Stdout, "%s: ok (%d devices)\n", cfgFile, len(cfg.Devices))
		return nil
	}
	ov, err := LoadDetection(cfg)
	if err != nil {
		return err
	}
	if err := checkDetection(cfg, profiles, ov); err != nil {
		return err
	}
	// With a spool, the disk holds what NATS cannot take; nats.go's memory
	// reconnect buffer would only reorder alerts behind telemetry.
	var natsOpts []nats.Option
	if cfg.BufferDir != "" {
		natsOpts = append(natsOpts, nats.ReconnectBufSize(-1))
	}
	nc, err := ConnectNATS(cfg.NATS, "ember-agent "+cfg.AgentID, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Drain()
	var pub Publisher = NewNATSPublisher(nc)
	var sp *spool.Spool
	if cfg.BufferDir != "" {
		if sp, err = spool.Open(cfg.BufferDir, spool.Options{Live: pub}, log.With("part", "spool")); err != nil {
			return fmt.Errorf("buffer_dir: %w", err)
		}
		pub = sp
		nc.SetReconnectHandler(func(*nats.Conn) { sp.Kick() })
	}
	ds := NewDriverSet(log, nil)
	defer ds.Close()

	// Self-monitoring: systemd readiness and a watchdog fed only by
	// sampling progress; Prometheus metrics when metrics_listen is set.
	notifier, err := selfmon.NewNotifier()
	if err != nil {
		return err
	}
	wdInterval, err := selfmon.WatchdogInterval()
	if err != nil {
		return err
	}
	var wd *selfmon.Watchdog
	if wdInterval > 0 {
		wd = selfmon.NewWatchdog(notifier, wdInterval, log)
	}
	metrics := selfmon.NewMetrics(Version)
	a, err := New(Options{
		Config: cfg, Profiles: profiles, Pollers: ds, Publisher: pub,
		NewDetector: DefaultDetector(ov), Conn: nc, Log: log, Metrics: metrics, Watchdog: wd,
	})
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		srv, err := serveMetrics(cfg.MetricsListen, metrics.Handler(), log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if wd != nil {
		go wd.Run(ctx)
	}
	fwdCtx, stopFwd := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFwd()
	if sp != nil {
		js, err := spool.NewJetStream(nc, spool.Options{})
		if err != nil {
			return err
		}
		go func() {
			if err := sp.Run(fwdCtx, js); err != nil && fwdCtx.Err() == nil {
				log.Error("spool forwarder stopped", "err", err)
			}
		}()
		go spoolMetrics(fwdCtx, sp, metrics)
	}
	notifier.Ready(fmt.Sprintf("sampling %d devices", len(cfg.Devices)))
	err = a.Run(ctx)
	notifier.Stopping("flushing")
	if sp != nil {
		// Sampling has stopped: give the forwarder a moment to send what
		// is queued; the rest stays on disk for the next start.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if derr := sp.Drain(dctx); derr != nil {
			log.Info("spool not drained; the backlog is kept on disk", "err", derr, "stats", sp.Stats())
		}
		cancel()
		stopFwd()
		if cerr := sp.Close(); cerr != nil {
			log.Error("spool close", "err", cerr)
		}
	}
	return err
}

// spoolMetrics mirrors the spool's depth and drops into /metrics.
func spoolMetrics(ctx context.Context, sp *spool.Spool, m *selfmon.Metrics) {
	alerts, telemetry := m.Buffer("alert"), m.Buffer("telemetry")
	var dropped uint64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := sp.Stats()
		alerts.Depth.Set(float64(st.AlertDepth) + float64(st.AlertsHeld))
		telemetry.Depth.Set(float64(st.TelemetryDepth))
		telemetry.Dropped.Add(float64(st.TelemetryDropped - dropped))
		dropped = st.TelemetryDropped
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveMetrics serves /metrics on addr.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics served", "addr", ln.Addr().String())
	return srv, nil
}
