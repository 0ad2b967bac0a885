package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/emberwatch/emberwatch/internal/wire"
)

const evacUsage = `usage:
  emberctl evac list [-collector URL] [-json]
  emberctl evac show ID [-collector URL]
  emberctl evac approve ID -by NAME [-note TEXT]   manual release: evacuate now (overrides hold and guardrails)
  emberctl evac abort ID -by NAME [-note TEXT]     stop it (hooks already run are not undone)
  emberctl evac complete ID -by NAME [-note TEXT]  close an evacuation that is over`

// cmdEvac lists and steers evacuations through a collector's HTTP API
// (any collector: actions are forwarded to the evacuation leader).
func cmdEvac(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprintln(stderr, evacUsage)
		if len(args) == 0 {
			return errors.New("missing subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("evac "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("collector", collectorURL(), "collector base `URL` ($EMBER_COLLECTOR)")
	by := fs.String("by", "", "operator name, recorded in the audit trail (required for actions)")
	note := fs.String("note", "", "a note kept in the audit trail")
	asJSON := fs.Bool("json", false, "print JSON as served")
	fs.Usage = func() { fmt.Fprintln(stderr, evacUsage); fs.PrintDefaults() }
	id, done, err := parseWithID(fs, args)
	if done || err != nil {
		return err
	}
	switch sub {
	case "list", "ls":
		return evacList(ctx, *base, *asJSON, stdout)
	case "show":
		if id == "" {
			return errors.New("evac show: missing ID")
		}
		var ev evacuate.Evac
		if err := apiGet(ctx, *base, "/api/v1/evacuations/"+id, &ev); err != nil {
			return err
		}
		return printJSON(stdout, ev)
	case "approve", "abort", "complete":
		if id == "" {
			fs.Usage()
			return fmt.Errorf("evac %s: missing ID", sub)
		}
		if strings.TrimSpace(*by) == "" {
			return fmt.Errorf("evac %s: -by NAME is required: manual actions record who made them", sub)
		}
		ev, err := evacAction(ctx, *base, id, sub, *by, *note)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, ev)
		}
		fmt.Fprintf(stdout, "%s %s: domain %s, state %s, phases %s", sub, ev.ID, ev.Domain, ev.State, strings.Join(ev.Phases, ","))
		if ev.State == evacuate.StateBlocked && len(ev.Approvals) > 0 {
			fmt.Fprintf(stdout, ", approved so far by %s: another operator must approve", strings.Join(ev.Approvals, ", "))
		} else if ev.Actor != "" {
			fmt.Fprintf(stdout, " (by %s)", ev.Actor)
		}
		fmt.Fprintln(stdout)
		return nil
	}
	fmt.Fprintln(stderr, evacUsage)
	return fmt.Errorf("unknown subcommand %q", sub)
}

func evacAction(ctx context.Context, base, id, action, by, note string) (evacuate.Evac, error) {
	body, _ := json.Marshal(evacuate.ActionBody{By: by, Note: note})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/v1/evacuations/"+id+"/"+action, bytes.NewReader(body))
	if err != nil {
		return evacuate.Evac{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	var ev evacuate.Evac
	err = apiDo(req, &ev)
	return ev, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// evacList accepts both shapes of GET /api/v1/evacuations: the contract's
// list of evacuation messages (what the collector serves) and the
// engine's EvacList; for the first it asks each evacuation's state.
func evacList(ctx context.Context, base string, asJSON bool, stdout io.Writer) error {
	var raw json.RawMessage
	if err := apiGet(ctx, base, "/api/v1/evacuations", &raw); err != nil {
		return err
	}
	var evs []evacuate.Evac
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var msgs []wire.Evacuation
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return fmt.Errorf("decode evacuations: %w", err)
		}
		for _, m := range msgs {
			var ev evacuate.Evac
			if err := apiGet(ctx, base, "/api/v1/evacuations/"+m.ID, &ev); err != nil {
				// An older collector without the engine's handler: show
				// what the message says.
				ev = evacuate.Evac{ID: m.ID, Domain: m.Domain, Urgency: m.Urgency, Drill: m.Drill, DryRun: m.DryRun,
					Targets: m.Targets, Updated: m.Time, Summary: m.Reason.Summary, Phases: []string{m.Phase}, State: "phase " + m.Phase}
			}
			evs = append(evs, ev)
		}
	} else {
		var l evacuate.EvacList
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("decode evacuations: %w", err)
		}
		evs = l.Evacuations
	}
	if asJSON {
		return printJSON(stdout, evs)
	}
	if len(evs) == 0 {
		fmt.Fprintln(stdout, "no evacuations")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDOMAIN\tSTATE\tURGENCY\tDRILL\tTARGETS\tUPDATED\tNOTE")
	for _, ev := range evs {
		note := ev.Summary
		switch {
		case ev.State == evacuate.StateHolding:
			note = fmt.Sprintf("evacuates in %v unless aborted; %s", time.Until(ev.HoldUntil).Round(time.Second), ev.Summary)
		case ev.Blocked != "" && len(ev.Approvals) > 0:
			note = "approved by " + strings.Join(ev.Approvals, ", ") + ", waits for another operator: " + ev.Blocked
		case ev.Blocked != "":
			note = "waits for approval: " + ev.Blocked
		}
		drill := ""
		if ev.Drill {
			drill = "drill"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ev.ID, ev.Domain, ev.State, ev.Urgency, drill, len(ev.Targets),
			ev.Updated.Local().Format("15:04:05"), note)
	}
	return tw.Flush()
}
