package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/emberwatch/emberwatch/internal/demo"
)

// cmdDemo runs a whole demo site in this process (make demo).
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 3*time.Minute, "how long the demo runs (0 = until Ctrl-C)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "status page address (127.0.0.1:0 picks a free port)")
	influx := fs.String("influx", "", "InfluxDB 1.8 URL to store telemetry in (optional)")
	eventAt := fs.Duration("event-at", 20*time.Second, "when the scripted thermal event starts")
	every := fs.Duration("every", 2*time.Second, "how often live readings are printed")
	verbose := fs.Bool("v", false, "log what the parts do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return demo.Run(ctx, demo.Options{Duration: *dur, HTTP: *httpAddr, InfluxURL: *influx, EventAt: *eventAt,
		Every: *every, Out: stdout, Log: log})
}
