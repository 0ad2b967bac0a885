// Command ember-agent polls UPS units, BMS and battery racks, detects
// thermal-runaway signatures and publishes everything on NATS.
//
//	ember-agent -config agent.yaml
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

	"github.com/emberwatch/emberwatch/agent"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ember-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "agent.yaml", "agent configuration file (docs/config.md)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	check := fs.Bool("check", false, "validate the configuration and profiles, then exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ember-agent -config agent.yaml\n\nPolls devices, detects thermal-runaway signatures, publishes on NATS.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "ember-agent: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Main(ctx, *cfgFile, *check, log); err != nil {
		fmt.Fprintf(stderr, "ember-agent: %v\n", err)
		return 1
	}
	return 0
}
