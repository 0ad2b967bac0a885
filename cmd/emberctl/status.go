package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emberwatch/emberwatch/collector"
)

// collectorURL is the -collector flag's default: $EMBER_COLLECTOR or the
// collector's default listen address.
func collectorURL() string {
	if u := os.Getenv("EMBER_COLLECTOR"); u != "" {
		return u
	}
	return "http://127.0.0.1:8080"
}

// getJSON GETs a collector API path into v, turning API errors into
// messages that say what was asked.
func apiGet(ctx context.Context, base, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return err
	}
	return apiDo(req, v)
}

func apiDo(req *http.Request, v any) error {
	hc := &http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("collector %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", req.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", req.URL.Path, err)
	}
	return nil
}

// cmdStatus prints the site as tables: racks, active alerts, agents.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("collector", collectorURL(), "collector base `URL` ($EMBER_COLLECTOR)")
	asJSON := fs.Bool("json", false, "print the state JSON as served")
	values := fs.Bool("values", false, "with -json: include every device's latest values")
	device := fs.String("device", "", "print one device's latest values and faults (DEVICE or AGENT/DEVICE)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: emberctl status [-collector URL] [-json [-values]] [-device ID]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	path := "/api/v1/state?values=0"
	if *values || *device != "" {
		path = "/api/v1/state"
	}
	var snap collector.Snapshot
	if *asJSON {
		var raw json.RawMessage
		if err := apiGet(ctx, *base, path, &raw); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s\n", raw)
		return err
	}
	if err := apiGet(ctx, *base, path, &snap); err != nil {
		return err
	}
	if *device != "" {
		return printDevice(stdout, snap, *device)
	}
	printStatus(stdout, snap)
	return nil
}

// printDevice prints one device's values and faults, sorted by name.
func printDevice(w io.Writer, s collector.Snapshot, id string) error {
	var found []collector.DeviceView
	for _, d := range s.Devices {
		if d.Device == id || d.Agent+"/"+d.Device == id {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0:
		return fmt.Errorf("no device %q in site %s (emberctl status lists the racks and their devices)", id, s.Site)
	case len(found) > 1:
		return fmt.Errorf("device %q is ambiguous: give AGENT/DEVICE", id)
	}
	d := found[0]
	fmt.Fprintf(w, "%s/%s  room %s row %s rack %s  stage %s  health %s  last sample %s\n", d.Agent, d.Device,
		dash(d.Room), dash(d.Row), dash(d.Rack), d.Stage, d.Health, d.LastSample.Format(time.RFC3339Nano))
	if d.HealthError != "" {
		fmt.Fprintf(w, "error: %s\n", d.HealthError)
	}
	names := make([]string, 0, len(d.Values)+len(d.Faults))
	for n := range d.Values {
		names = append(names, n)
	}
	for n := range d.Faults {
		if _, ok := d.Values[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tVALUE")
	for _, n := range names {
		if f, ok := d.Faults[n]; ok {
			fmt.Fprintf(tw, "%s\tFAULT %s\n", n, f)
		} else {
			fmt.Fprintf(tw, "%s\t%g\n", n, d.Values[n])
		}
	}
	return tw.Flush()
}

func printStatus(w io.Writer, s collector.Snapshot) {
	fmt.Fprintf(w, "site %s at %s\n\n", s.Site, s.Time.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tROW\tRACK\tSTAGE\tHOTTEST\tCELL\tTREND\tDEVICES\tALERTS")
	for _, r := range s.Racks {
		hot, cell, trend := "-", "-", "-"
		if h := r.Hottest; h != nil {
			hot = fmt.Sprintf("%.1f°C", h.Celsius)
			cell = h.Device
			if h.Component != "" {
				cell += " " + h.Component
			}
			if h.TrendPerMin != nil {
				trend = fmt.Sprintf("%+.2f°C/min", *h.TrendPerMin)
			}
		}
		stage := r.Stage.String()
		if r.Stale {
			stage += " (stale)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", dash(r.Room), dash(r.Row), r.Rack, stage, hot, cell, trend, len(r.Devices), len(r.Alerts))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(s.Active) == 0 {
		fmt.Fprintln(w, "no active alerts")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ALERT\tSTAGE\tCATEGORY\tAGENT/DEVICE\tCOMPONENT\tSINCE\tACKED\tSUMMARY")
		for _, a := range s.Active {
			acked := "-"
			if a.Acked != nil {
				acked = a.Acked.By
			}
			stage := a.Stage.String()
			if a.Drill {
				stage += " (drill)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", a.ID, stage, a.Category, a.Agent, a.Device,
				dash(a.Component), a.Time.Format(time.RFC3339), acked, dash(a.Summary))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tVERSION\tLAST HEARTBEAT\tSTATUS")
	for _, a := range s.Agents {
		st := "ok"
		if a.Silent {
			st = "SILENT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Agent, dash(a.Version), a.LastHeartbeat.Format(time.RFC3339), st)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
