package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/collector/evacuate"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// DrillReportStream keeps drill reports.
const DrillReportStream = "EMBER_DRILL_REPORTS"

// cmdDrill runs a drill end to end and reports how long each step of the
// chain took: drill-marked alerts (published here, or produced by an agent
// from a synthetic scenario), the collector's decisions, the published
// evacuation phases and every hook, which run in dry-run mode.
func cmdDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs)
	site := fs.String("site", "", "site id (required)")
	agent := fs.String("agent", "", "agent id of the battery device the drill concerns (required)")
	device := fs.String("device", "", "battery device id, as in the collector's topology (required)")
	mode := fs.String("mode", "inject", "inject: publish drill alerts from here; agent: ask the agent to run a synthetic scenario")
	scenario := fs.String("scenario", "offgas_first", "agent mode: scenario name from the detection library (emberctl detection-report -list)")
	chaosCmd := fs.String("chaos", "", "chaos: a `command` (argv split on spaces, no shell) run mid-drill to prove the redundancy, e.g. \"systemctl kill -s KILL ember-collector\" or a script cutting an agent's link")
	chaosAt := fs.String("chaos-at", wire.PhasePrestage, "chaos: run the -chaos command when this phase is published (prestage or evacuate)")
	speed := fs.Float64("speed", 1, "agent mode: time compression of the scenario")
	gap := fs.Duration("gap", time.Second, "inject mode: delay between the off-gas warning and the thermal critical")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long (covers the collector's hold window)")
	quiet := fs.Duration("quiet", 2*time.Second, "after the evacuate phase, stop once nothing happened for this long")
	byDef := os.Getenv("USER")
	by := fs.String("by", byDef, "who runs the drill")
	base := fs.String("collector", collectorURL(), "collector base `URL` used to close the drill evacuation at the end (\"\" to leave it open)")
	reports := fs.String("reports", "", "also write the report as JSON into this `directory`")
	store := fs.Bool("store", true, "publish the report into the "+DrillReportStream+" stream")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: emberctl drill -site S -agent A -device D [-mode inject|agent] [-nats URL] [-collector URL] [-reports DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case !wire.ValidID(*site), !wire.ValidID(*agent), !wire.ValidID(*device):
		fs.Usage()
		return fmt.Errorf("-site, -agent and -device are required ([a-z0-9-]+), got %q, %q, %q", *site, *agent, *device)
	case *mode != "inject" && *mode != "agent":
		return fmt.Errorf("-mode: want inject or agent, got %q", *mode)
	case *by == "":
		return errors.New("-by NAME is required (or $USER)")
	case *chaosAt != wire.PhasePrestage && *chaosAt != wire.PhaseEvacuate:
		return fmt.Errorf("-chaos-at: want prestage or evacuate, got %q", *chaosAt)
	}
	nc, err := nf.connect("emberctl drill")
	if err != nil {
		return err
	}
	defer nc.Close()
	d := &drill{site: *site, agent: *agent, device: *device, nc: nc, quiet: *quiet,
		rep: wire.DrillReport{ID: fmt.Sprintf("drill-%d", time.Now().UnixMilli()), Site: *site, Mode: *mode, By: *by, Started: time.Now().UTC()},
		ev:  make(chan struct{}, 64)}
	if *chaosCmd != "" {
		d.chaos, d.chaosAt = strings.Fields(*chaosCmd), *chaosAt
	}
	if err := d.watch(); err != nil {
		return err
	}
	defer d.unwatch()
	rctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *mode == "inject" {
		err = d.inject(rctx, *gap)
	} else {
		err = d.askAgent(rctx, *scenario, *speed)
	}
	if err != nil {
		return err
	}
	d.wait(rctx)
	rep := d.finish(ctx, *base)
	if *reports != "" {
		if err := os.MkdirAll(*reports, 0o755); err != nil {
			return fmt.Errorf("reports directory: %w", err)
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(filepath.Join(*reports, rep.ID+".json"), b, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if *store {
		if err := storeReport(ctx, nc, rep); err != nil {
			fmt.Fprintf(stderr, "emberctl drill: report not stored: %v\n", err)
		}
	}
	if *asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if !rep.OK {
		return errors.New("drill did not reach the evacuate phase: " + strings.Join(rep.Notes, "; "))
	}
	return nil
}

type drill struct {
	site, agent, device string
	nc                  *nats.Conn
	quiet               time.Duration
	subs                []*nats.Subscription
	stop                chan struct{}

	mu        sync.Mutex
	rep       wire.DrillReport
	alertIDs  map[string]bool
	evacID    string
	evacuated bool // the evacuate phase was issued
	lastEvent time.Time
	ev        chan struct{}

	// chaos runs once when the chaosAt phase is published.
	chaos    []string
	chaosAt  string
	chaosRan bool
}

// runChaos runs the chaos command (argv, no shell) in the background and
// records it and its outcome as steps, so the report shows whether the
// chain completed despite it. Called with d.mu held.
func (d *drill) runChaos() {
	d.chaosRan = true
	argv := d.chaos
	d.step(time.Now(), "chaos", "run: "+strings.Join(argv, " "))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		what := "done"
		if err != nil {
			what = fmt.Sprintf("failed: %v: %s", err, strings.TrimSpace(string(out)))
		}
		d.mu.Lock()
		d.step(time.Now(), "chaos", what)
		d.mu.Unlock()
	}()
}

func (d *drill) step(t time.Time, kind, what string) {
	d.rep.Steps = append(d.rep.Steps, wire.DrillStep{Time: t, Kind: kind, What: what})
	d.lastEvent = time.Now()
	select {
	case d.ev <- struct{}{}:
	default:
	}
}

// watch subscribes to alerts, audit records and evacuation messages of
// the site. All three feed one channel, so they are handled in the order
// the server sent them (a decision never before the alert behind it).
func (d *drill) watch() error {
	d.alertIDs = map[string]bool{}
	ch := make(chan *nats.Msg, 4096)
	alerts, audit, evacs := wire.Wildcard(d.site, wire.KindAlert), evacuate.AuditSubject(d.site), wire.Wildcard(d.site, wire.KindEvac)
	for _, subj := range []string{alerts, audit, evacs} {
		s, err := d.nc.ChanSubscribe(subj, ch)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		d.subs = append(d.subs, s)
	}
	d.stop = make(chan struct{})
	go func() {
		for {
			select {
			case <-d.stop:
				return
			case m := <-ch:
				switch {
				case m.Subject == audit:
					d.onAudit(m)
				case strings.HasPrefix(m.Subject, "ember."+d.site+"."+wire.KindAlert+"."):
					d.onAlert(m)
				default:
					d.onEvac(m)
				}
			}
		}
	}()
	return d.nc.FlushTimeout(5 * time.Second)
}

func (d *drill) onAlert(m *nats.Msg) {
	var a wire.Alert
	if json.Unmarshal(m.Data, &a) != nil || !a.Drill || a.Agent != d.agent || a.Device != d.device {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.alertIDs[a.ID] = true
	if d.rep.FirstSample.IsZero() || a.SampleTime.Before(d.rep.FirstSample) {
		d.rep.FirstSample = a.SampleTime
	}
	d.step(a.Time, "alert", fmt.Sprintf("%s %s %s/%s %s", a.Stage, a.Category, a.Agent, a.Device, a.ID))
}

func (d *drill) onAudit(m *nats.Msg) {
	var r evacuate.AuditRecord
	if json.Unmarshal(m.Data, &r) != nil || !r.Drill {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.evacID == "" && d.alertIDs[r.AlertID] && r.EvacID != "" {
		d.evacID = r.EvacID
	}
	if r.EvacID == "" || r.EvacID != d.evacID {
		return
	}
	switch {
	case strings.HasPrefix(r.Kind, "hook_"):
		what := fmt.Sprintf("%s %s", r.Phase, r.Hook)
		if r.Error != "" {
			what += ": " + r.Error
		}
		d.step(r.Time, r.Kind, what)
	case r.Kind == "published" || r.Kind == "already_published":
		// the message itself is recorded by onEvac
	default:
		d.step(r.Time, "decision", fmt.Sprintf("%s %s (%s)", r.Kind, r.EvacID, strings.Join(r.Reasons, "; ")))
		if r.Kind == evacuate.ActEvacuate {
			d.evacuated = true
		}
		if len(r.Targets) > 0 {
			d.rep.Targets = r.Targets
		}
	}
}

func (d *drill) onEvac(m *nats.Msg) {
	var ev wire.Evacuation
	if json.Unmarshal(m.Data, &ev) != nil || !ev.Drill {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.ID != d.evacID {
		return
	}
	d.rep.Evacuations = append(d.rep.Evacuations, ev)
	d.rep.Targets = ev.Targets
	d.step(ev.Time, "published", fmt.Sprintf("%s %s dry_run=%v signed=%v", ev.Phase, ev.Domain, ev.DryRun, ev.Signature != ""))
	if len(d.chaos) > 0 && !d.chaosRan && ev.Phase == d.chaosAt {
		d.runChaos()
	}
}

func (d *drill) unwatch() {
	for _, s := range d.subs {
		_ = s.Unsubscribe()
	}
	if d.stop != nil {
		close(d.stop)
	}
}

// inject publishes the real-event order as drill alerts: an off-gas
// warning, then a thermal critical (two signature families).
func (d *drill) inject(ctx context.Context, gap time.Duration) error {
	pub := func(n int, cat string, st wire.Stage, prev wire.Stage, sig wire.Signature) error {
		now := time.Now().UTC()
		a := wire.Alert{ID: fmt.Sprintf("%s-%d", d.rep.ID, n), Site: d.site, Agent: d.agent, Device: d.device,
			Category: cat, Stage: st, PreviousStage: prev, Signatures: []wire.Signature{sig}, Families: []string{cat},
			SampleTime: now.Add(-5 * time.Millisecond), Time: now, Drill: true,
			Summary: "drill " + d.rep.ID + " by " + d.rep.By}
		b, _ := json.Marshal(&a)
		m := nats.NewMsg(wire.AlertSubject(d.site, d.agent, d.device))
		m.Data = b
		m.Header.Set(wire.MsgIDHeader, a.ID)
		if err := d.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("publish drill alert: %w", err)
		}
		return d.nc.FlushTimeout(5 * time.Second)
	}
	if err := pub(1, wire.CategoryGas, wire.StageWarning, wire.StageNormal,
		wire.Signature{Kind: "gas_h2_rise", Value: 42, Unit: "ppm", Threshold: 25}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(gap):
	}
	return pub(2, wire.CategoryThermal, wire.StageCritical, wire.StageWatch,
		wire.Signature{Kind: "cell_temp_rate", Value: 2.4, Unit: "degC/min", Threshold: 1.0})
}

// askAgent has the agent feed a synthetic scenario into its detector.
func (d *drill) askAgent(ctx context.Context, scenario string, speed float64) error {
	req := wire.DrillRequest{ID: d.rep.ID, Site: d.site, Agent: d.agent, Device: d.device, Scenario: scenario,
		Speed: speed, By: d.rep.By, Time: time.Now().UTC()}
	b, _ := json.Marshal(&req)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := d.nc.RequestWithContext(rctx, wire.DrillSubject(d.site, d.agent), b)
	if err != nil {
		return fmt.Errorf("agent %s did not answer the drill request on %s: %w", d.agent, wire.DrillSubject(d.site, d.agent), err)
	}
	var resp wire.DrillResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("agent %s: malformed drill response: %w", d.agent, err)
	}
	if !resp.OK {
		return fmt.Errorf("agent %s refused the drill: %s (scenarios: %s)", d.agent, resp.Error, strings.Join(resp.Scenarios, ", "))
	}
	d.mu.Lock()
	if !resp.Started.IsZero() && (d.rep.FirstSample.IsZero() || resp.Started.Before(d.rep.FirstSample)) {
		d.rep.FirstSample = resp.Started
	}
	d.mu.Unlock()
	return nil
}

// wait returns once the evacuate phase was issued and nothing happened
// for d.quiet, or when ctx ends.
func (d *drill) wait(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		done := d.evacuated && time.Since(d.lastEvent) >= d.quiet
		d.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-d.ev:
		case <-t.C:
		}
	}
}

// finish closes the drill evacuation through the collector (so the next
// drill starts afresh) and completes the report.
func (d *drill) finish(ctx context.Context, base string) wire.DrillReport {
	d.mu.Lock()
	id, evacuated := d.evacID, d.evacuated
	d.mu.Unlock()
	var notes []string
	if id != "" && base != "" {
		action := "abort"
		if evacuated {
			action = "complete"
		}
		if _, err := evacAction(ctx, base, id, action, d.rep.By, "end of drill "+d.rep.ID); err != nil {
			notes = append(notes, fmt.Sprintf("could not %s drill evacuation %s: %v", action, id, err))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := d.rep
	rep.Notes = append(rep.Notes, notes...)
	rep.Finished = time.Now().UTC()
	rep.Steps = slices.Clone(rep.Steps)
	sort.SliceStable(rep.Steps, func(i, j int) bool { return rep.Steps[i].Time.Before(rep.Steps[j].Time) })
	for i := range rep.Steps {
		rep.Steps[i].AfterMS = float64(rep.Steps[i].Time.Sub(rep.FirstSample).Microseconds()) / 1000
	}
	rep.OK = evacuated
	switch {
	case len(d.alertIDs) == 0:
		rep.Notes = append(rep.Notes, "no drill alert seen for "+d.agent+"/"+d.device)
	case id == "":
		rep.Notes = append(rep.Notes, "no collector decision seen: is a collector with evacuation running, and the device in its topology?")
	case !evacuated:
		rep.Notes = append(rep.Notes, "the evacuate phase was not issued before the timeout (hold window, blocked or not corroborated: see the decisions)")
	}
	for _, ev := range rep.Evacuations {
		if !ev.DryRun {
			rep.OK = false
			rep.Notes = append(rep.Notes, "a drill evacuation was not marked dry_run: "+ev.ID+" "+ev.Phase)
		}
	}
	return rep
}

func storeReport(ctx context.Context, nc *nats.Conn, rep wire.DrillReport) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{Name: DrillReportStream,
		Description: "emberwatch drill reports", Subjects: []string{"ember.*.drillreport.>"},
		Storage: jetstream.FileStorage, MaxAge: 3 * 365 * 24 * time.Hour}); err != nil {
		return fmt.Errorf("create stream %s: %w", DrillReportStream, err)
	}
	b, _ := json.Marshal(&rep)
	if _, err := js.Publish(sctx, wire.DrillReportSubject(rep.Site, rep.ID), b); err != nil {
		return fmt.Errorf("publish report: %w", err)
	}
	return nil
}

func printReport(w io.Writer, rep wire.DrillReport) {
	status := "OK"
	if !rep.OK {
		status = "INCOMPLETE"
	}
	fmt.Fprintf(w, "drill %s site %s (%s mode, by %s): %s\n", rep.ID, rep.Site, rep.Mode, rep.By, status)
	fmt.Fprintf(w, "first sample %s\n", rep.FirstSample.Format(time.RFC3339Nano))
	firsts := map[string]float64{}
	var keys []string
	note := func(k string, v float64) {
		if _, ok := firsts[k]; !ok {
			firsts[k] = v
			keys = append(keys, k)
		}
	}
	for _, s := range rep.Steps {
		fmt.Fprintf(w, "  %+10.1f ms  %-18s %s\n", s.AfterMS, s.Kind, s.What)
		note("first "+s.Kind, s.AfterMS)
		switch {
		case s.Kind == "decision" && strings.HasPrefix(s.What, evacuate.ActEvacuate+" "):
			note("evacuate decision", s.AfterMS)
		case s.Kind == "published" && strings.HasPrefix(s.What, wire.PhaseEvacuate+" "):
			note("evacuate published", s.AfterMS)
		case s.Kind == "hook_start" && strings.HasPrefix(s.What, wire.PhaseEvacuate+" "):
			note("first evacuate hook", s.AfterMS)
		case s.Kind == "hook_done" && strings.HasPrefix(s.What, wire.PhaseEvacuate+" "):
			note("last evacuate hook done", s.AfterMS)
			firsts["last evacuate hook done"] = s.AfterMS
		}
	}
	fmt.Fprintln(w, "time from the first sample to:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-24s %10.1f ms\n", k, firsts[k])
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "would have evacuated (%d): %s\n", len(rep.Targets), strings.Join(rep.Targets, ", "))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
