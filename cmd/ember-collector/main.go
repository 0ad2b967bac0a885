// Command ember-collector stores emberwatch telemetry in InfluxDB, keeps
// the site state, serves the HTTP API and status page, and fans alerts out
// to NOC consumers.
//
//	ember-collector -config collector.yaml
//
// It stops cleanly on SIGINT/SIGTERM, flushing the batch it holds.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/selfmon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ember-collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "collector.yaml", "collector configuration `file`")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	jsonLog := fs.Bool("log-json", false, "log JSON lines instead of text")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ember-collector -config collector.yaml\n\n"+
			"Stores telemetry from NATS JetStream in InfluxDB, keeps the site state,\n"+
			"serves /healthz, /api/v1/* and the status page, and sends alerts to NOC webhooks.\n"+
			"See docs/collector.md for the configuration.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "ember-collector: -log-level: %v\n", err)
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})
	if *jsonLog {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv})
	}
	log := slog.New(h)

	cfg, err := collector.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "ember-collector: %v\n", err)
		return 1
	}
	c, err := collector.Assemble(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "ember-collector: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// systemd: ready once built (the HTTP listener is open); the watchdog
	// is fed while the collector's state answers, so a deadlocked collector
	// is restarted.
	notifier, err := selfmon.NewNotifier()
	if err != nil {
		fmt.Fprintf(stderr, "ember-collector: %v\n", err)
		return 1
	}
	if iv, err := selfmon.WatchdogInterval(); err == nil && iv > 0 {
		wd := selfmon.NewWatchdog(notifier, iv, log)
		go wd.Run(ctx)
		go func() {
			t := time.NewTicker(iv / 4)
			defer t.Stop()
			for {
				c.Stats() // takes the collector's locks: proves it is not stuck
				wd.Progress()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	notifier.Ready("serving " + c.HTTPAddr())
	err = c.Run(ctx)
	notifier.Stopping("stopped")
	if err != nil {
		log.Error("collector failed", "err", err)
		return 1
	}
	return 0
}
