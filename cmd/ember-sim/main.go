// Command ember-sim simulates Modbus devices from emberwatch's firmware
// profiles: SunSpec Li-ion racks, UPSs and rack BMSs, over Modbus TCP,
// RTU on a serial port or PTY, and RTU over TCP, with scripted values, CSV
// replay and injectable faults.
//
//	ember-sim -config sim.yaml [-profiles DIR] [-log-level info]
//
// See deploy/sim/demo-site.yaml for a configuration, and internal/sim for
// the format. It stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"github.com/emberwatch/emberwatch/internal/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("ember-sim", flag.ContinueOnError)
	flags.SetOutput(stderr)
	config := flags.String("config", "", "simulation config `file` (YAML)")
	profilesDir := flags.String("profiles", "", "extra profiles `dir` on top of the built-in ones")
	level := flags.String("log-level", "info", "log level: debug, info, warn, error")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: ember-sim -config sim.yaml [flags]\n\n"+
			"Simulates Modbus devices (SunSpec racks, UPSs, rack BMSs) from firmware profiles.\n\nflags:\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *config == "" || flags.NArg() > 0 {
		flags.Usage()
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "ember-sim: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if err := serve(ctx, *config, *profilesDir, log, stdout); err != nil {
		fmt.Fprintf(stderr, "ember-sim: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, config, profilesDir string, log *slog.Logger, stdout io.Writer) error {
	cfg, err := sim.LoadConfig(config)
	if err != nil {
		return err
	}
	sources := []fs.FS{firmwareprofiles.FS}
	if profilesDir != "" {
		sources = append(sources, os.DirFS(profilesDir))
	}
	profiles, err := profile.Load(log, sources...)
	if err != nil {
		return fmt.Errorf("load profiles: %w", err)
	}
	s, err := sim.New(cfg, profiles, log)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	for _, id := range s.Devices() {
		fmt.Fprintf(stdout, "%s unit %d %s\n", id, s.UnitID(id), s.Addr(id))
	}
	log.Info("simulating", "devices", len(s.Devices()), "config", config)
	<-ctx.Done()
	log.Info("stopping")
	return s.Close()
}
