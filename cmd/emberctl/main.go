// Command emberctl is the operator's CLI for emberwatch.
//
//	emberctl <verb> [flags] [args]
//
// Run `emberctl help` for the verbs. Each verb lives in its own file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one verb. It returns an error to print; exit code 1.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"profile":          {"profile lint FILE... | list | show ID: validate, list and expand firmware profiles", cmdProfile},
		"probe":            {"probe URL: identify a device, propose a profile, read it once", cmdProbe},
		"replay":           {"replay FILE...: run the detector over recorded telemetry, print alerts as JSON lines", cmdReplay},
		"detection-report": {"detection-report: scenario library through the detector vs a fixed 60 degC alarm", cmdDetectionReport},
		"status":           {"status: the site as a table (from a collector)", cmdStatus},
		"tail":             {"tail: print alerts live, with filters", cmdTail},
		"ack":              {"ack ALERT-ID: acknowledge a latched alert", cmdAck},
		"evac":             {"evac list|approve|abort: manage evacuations", cmdEvac},
		"drill":            {"drill: run a drill end to end with hooks in dry-run", cmdDrill},
		"demo":             {"demo: run a whole demo site in this process", cmdDemo},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "emberctl: unknown verb %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "emberctl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: emberctl <verb> [flags] [args]\n\nverbs:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, cmds[n].summary)
	}
}
