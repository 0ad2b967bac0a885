package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

const profileUsage = `usage:
  emberctl profile lint FILE...     validate profile files; print every problem as file:line: key: what
  emberctl profile list [-dir DIR]  list the built-in profiles (and DIR's, which override them by id)
`

// cmdProfile validates and lists firmware profiles.
func cmdProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, profileUsage)
		return errors.New("missing sub-command: lint or list")
	}
	switch args[0] {
	case "lint":
		return profileLint(args[1:], stdout, stderr)
	case "list":
		return profileList(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, profileUsage)
		return nil
	}
	fmt.Fprint(stderr, profileUsage)
	return fmt.Errorf("unknown sub-command %q", args[0])
}

// profileLint prints every problem of every file on stdout and fails if
// there is any. Two files declaring one id are a problem too, as they would
// be in one profiles_dir.
func profileLint(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("profile lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print only problems, not the OK lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, profileUsage)
		return errors.New("lint: no files given")
	}
	problems, bad := 0, 0
	ids := map[string]string{}
	for _, file := range fs.Args() {
		p, err := profile.LoadFile(file)
		if err != nil {
			bad++
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(stdout, line)
				problems++
			}
			continue
		}
		if prev, dup := ids[p.ID]; dup {
			bad++
			problems++
			fmt.Fprintf(stdout, "%s:%d: id: profile %q is also defined in %s\n", file, p.KeyLine("id"), p.ID, prev)
			continue
		}
		ids[p.ID] = file
		if !*quiet {
			fmt.Fprintf(stdout, "%s: ok (%s, %s)\n", file, p.ID, p.Protocol)
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) in %d of %d file(s)", problems, bad, fs.NArg())
	}
	return nil
}

// profileList prints the built-in profiles (and a directory's) as a table.
func profileList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("profile list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "also load the profiles of this directory (as the agent's profiles_dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var set *profile.Set
	var err error
	if *dir != "" {
		set, err = profile.Load(log, firmwareprofiles.FS, os.DirFS(*dir))
	} else {
		set, err = profile.Load(log, firmwareprofiles.FS)
	}
	if err != nil {
		return fmt.Errorf("load profiles: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROTOCOL\tVENDOR\tMODEL\tFIRMWARE")
	for _, p := range set.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Protocol, p.Vendor, p.Model, p.Firmware)
	}
	return tw.Flush()
}
