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
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

const profileUsage = `usage:
  emberctl profile lint FILE...     validate profile files; print every problem as file:line: key: what
  emberctl profile list [-dir DIR]  list the built-in profiles (and DIR's, which override them by id)
  emberctl profile show [-dir DIR] [-count N] ID|FILE
                                    print a profile's points expanded: address, type, scale, unit
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
	case "show":
		return profileShow(args[1:], stdout, stderr)
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
	fl := flag.NewFlagSet("profile lint", flag.ContinueOnError)
	fl.SetOutput(stderr)
	quiet := fl.Bool("q", false, "print only problems, not the OK lines")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		fmt.Fprint(stderr, profileUsage)
		return errors.New("lint: no files given")
	}
	problems, bad := 0, 0
	ids := map[string]string{}
	for _, file := range fl.Args() {
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
		return fmt.Errorf("%d problem(s) in %d of %d file(s)", problems, bad, fl.NArg())
	}
	return nil
}

// profileList prints the built-in profiles (and a directory's) as a table.
func profileList(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("profile list", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "", "also load the profiles of this directory (as the agent's profiles_dir)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	set, err := loadProfiles(*dir, stderr)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROTOCOL\tVENDOR\tMODEL\tFIRMWARE")
	for _, p := range set.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Protocol, p.Vendor, p.Model, p.Firmware)
	}
	return tw.Flush()
}

// loadProfiles loads the built-in profiles and, if dir is set, a directory's
// on top, logging overrides to stderr.
func loadProfiles(dir string, stderr io.Writer) (*profile.Set, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sources := []fs.FS{firmwareprofiles.FS}
	if dir != "" {
		sources = append(sources, os.DirFS(dir))
	}
	set, err := profile.Load(log, sources...)
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	return set, nil
}

// profileShow prints every point of a profile with blocks expanded: what a
// driver will read. Blocks whose count is read from the device (count_from,
// fit) are shown with -count instances.
func profileShow(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("profile show", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "", "also load the profiles of this directory")
	count := fl.Int("count", 1, "instances of blocks whose count is read from the device (count_from, fit)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		fmt.Fprint(stderr, profileUsage)
		return errors.New("show: give one profile id or file")
	}
	arg := fl.Arg(0)
	var p *profile.Profile
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		var err error
		if p, err = profile.LoadFile(arg); err != nil {
			return err
		}
	} else {
		set, err := loadProfiles(*dir, stderr)
		if err != nil {
			return err
		}
		var ok bool
		if p, ok = set.Get(arg); !ok {
			return fmt.Errorf("show: no profile %q (see emberctl profile list)", arg)
		}
	}
	fmt.Fprintf(stdout, "%s: %s %s, firmware %s (%s)\nsource: %s\n", p.ID, p.Vendor, p.Model, p.Firmware, p.Protocol, p.Source)
	if p.CurrentSign != "" {
		fmt.Fprintf(stdout, "current_sign: %s (points marked sign: battery are flipped to + = discharge)\n", p.CurrentSign)
	}
	n := *count
	counter := func(b *profile.Block, _ map[string]int, _ uint16) (int, error) {
		if b.MaxCount > 0 {
			return min(n, b.MaxCount), nil
		}
		return n, nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	show := func(in profile.Instance) error {
		pt := in.Point
		addr := "-"
		if pt.Address != nil {
			addr = fmt.Sprintf("%s %d", pt.SpaceOf(), in.Addr)
		}
		if pt.OID != "" {
			addr = pt.OID
		}
		scale := ""
		if pt.Scale != nil {
			scale = pt.Scale.String()
		}
		if in.SFAddr >= 0 {
			scale += fmt.Sprintf("@%d", in.SFAddr)
		}
		if pt.Offset != 0 {
			scale += fmt.Sprintf(" %+g", pt.Offset)
		}
		flags := ""
		if p.Negate(pt) {
			flags += " negated"
		}
		if pt.Access == "rw" {
			flags += " rw"
		}
		name := in.Name
		if name == "" {
			name = "(bits only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, addr, pt.Type, scale, pt.Unit, strings.TrimSpace(flags))
		for _, bit := range sortedBits(in.Bits) {
			fmt.Fprintf(tw, "  %s\tbit %d\tbool\t\t\t\n", in.Bits[bit], bit)
		}
		return nil
	}
	fmt.Fprintln(tw, "NAME\tADDRESS\tTYPE\tSCALE\tUNIT\t")
	if err := profile.Expand(p.TopScope(), 0, nil, counter, show); err != nil {
		return err
	}
	if p.SunSpec != nil {
		for i := range p.SunSpec.Models {
			m := &p.SunSpec.Models[i]
			fmt.Fprintf(tw, "# SunSpec model %d (addresses are offsets from its ID register)\t\t\t\t\t\n", m.ID)
			vars := map[string]int{}
			for name := range m.Index {
				vars[name] = 1
			}
			if err := profile.Expand(m.Scope(), 0, vars, counter, show); err != nil {
				return err
			}
		}
	}
	return tw.Flush()
}

func sortedBits(m map[int]string) []int {
	bits := make([]int, 0, len(m))
	for b := range m {
		bits = append(bits, b)
	}
	sort.Ints(bits)
	return bits
}
