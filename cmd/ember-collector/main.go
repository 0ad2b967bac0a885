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

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"
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
	c, err := build(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "ember-collector: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		log.Error("collector failed", "err", err)
		return 1
	}
	return 0
}

// build makes the collector and, when collector.yaml has an evacuation
// section, the evacuation engine inside it: the engine starts once NATS is
// connected, serves its API under /api/v1/evacuations and is restarted with
// backoff if it fails.
func build(cfg *collector.Config, log *slog.Logger) (*collector.Collector, error) {
	var evac *evacuate.FileConfig
	if n := &cfg.Evacuation; n.Kind != 0 && !(n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		var err error
		if evac, err = evacuate.ParseConfig(cfg.File, n, nil); err != nil {
			return nil, err
		}
	}
	c, err := collector.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if evac == nil {
		log.Info("no evacuation section: this collector does not evacuate")
		return c, nil
	}
	c.AddPart("evacuation", func(ctx context.Context, nc *nats.Conn) error {
		eng, err := evac.NewEngine(cfg.Site, cfg.CollectorID, nc, log.With("part", "evacuation"), nil)
		if err != nil {
			return fmt.Errorf("evacuation engine: %w", err)
		}
		c.SetEvacuations(eng)
		c.SetEvacuationHandler(eng.Handler())
		return eng.Run(ctx)
	})
	return c, nil
}
