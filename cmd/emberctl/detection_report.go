package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/agent/detect/scenario"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// cmdDetectionReport runs the scenario library through the detector at
// several sampling periods and noise seeds and prints a markdown table
// comparing it with a conventional fixed 60 degC BMS alarm.
func cmdDetectionReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("detection-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	periodsF := fs.String("periods", "0.5s,1s,5s,10s", "sampling periods, comma separated")
	seeds := fs.Int("seeds", 3, "noise seeds per scenario and period")
	rackF := fs.String("rack", "1x8x16", "rack shape: strings x modules x cells")
	only := fs.String("scenario", "", "comma-separated scenario names (default: all)")
	cfgFile := fs.String("config", "", "detection overrides YAML")
	workers := fs.Int("j", runtime.GOMAXPROCS(0), "scenarios run in parallel")
	list := fs.Bool("list", false, "list the scenarios with their ground truth and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, s := range scenario.All() {
			kind := "benign"
			if s.Truth.Real {
				kind = fmt.Sprintf("real: onset %s, warning by %s, critical by %s", s.Truth.Onset, s.Truth.LatestWarning, s.Truth.LatestCritical)
			}
			fmt.Fprintf(stdout, "%-18s %s (%s)\n    %s\n", s.Name, kind, s.Duration, s.Description)
		}
		return nil
	}
	var periods []time.Duration
	for _, p := range strings.Split(*periodsF, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return fmt.Errorf("-periods: %q is not a positive duration", p)
		}
		periods = append(periods, d)
	}
	if *seeds < 1 {
		return fmt.Errorf("-seeds: must be at least 1, got %d", *seeds)
	}
	rack, err := reportParseRack(*rackF)
	if err != nil {
		return err
	}
	var ov *detect.Overrides
	if *cfgFile != "" {
		data, err := os.ReadFile(*cfgFile)
		if err != nil {
			return fmt.Errorf("read detection config: %w", err)
		}
		if ov, err = detect.LoadOverrides(*cfgFile, data); err != nil {
			return err
		}
	}
	var scens []scenario.Scenario
	if *only == "" {
		scens = scenario.All()
	} else {
		for _, n := range strings.Split(*only, ",") {
			s, ok := scenario.Get(strings.TrimSpace(n))
			if !ok {
				return fmt.Errorf("-scenario: unknown scenario %q (see -list)", n)
			}
			scens = append(scens, s)
		}
	}

	type job struct {
		s      scenario.Scenario
		p      time.Duration
		seed   uint64
		cfg    detect.Config
		result *scenario.Result
	}
	var jobs []*job
	for _, s := range scens {
		cfg, err := ov.Config(s.Chemistry, "")
		if err != nil {
			return err
		}
		for _, p := range periods {
			for seed := 1; seed <= *seeds; seed++ {
				jobs = append(jobs, &job{s: s, p: p, seed: uint64(seed), cfg: cfg})
			}
		}
	}
	ch := make(chan *job)
	var wg sync.WaitGroup
	for range max(*workers, 1) {
		wg.Go(func() {
			for j := range ch {
				r := scenario.Evaluate(j.s, scenario.Options{Period: j.p, Seed: j.seed, Rack: rack}, j.cfg, nil)
				j.result = &r
			}
		})
	}
	start := time.Now()
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	w := stdout
	fmt.Fprintf(w, "# Detection report\n\n")
	fmt.Fprintf(w, "Rack %dx%dx%d (%d cells), seeds 1..%d, detector defaults from design note section 7 per chemistry. ", rack.Strings, rack.Modules, rack.Cells, rack.N(), *seeds)
	fmt.Fprintf(w, "Times are from the scenario start (worst case over seeds); lead = runaway onset - first critical (smallest over seeds). ")
	fmt.Fprintf(w, "The conventional alarm fires on any raw cell reading > %.0f degC.\n\n", scenario.ConventionalLimit)
	fmt.Fprintln(w, "| scenario | kind | period | first warning | first critical | first emergency | critical lead | deadline (critical) | 60 degC alarm | 60 degC lead | max benign stage | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	pass, total, beat, realRuns := 0, 0, 0, 0
	for i := 0; i < len(jobs); {
		j0 := jobs[i]
		var group []*scenario.Result
		for ; i < len(jobs) && jobs[i].s.Name == j0.s.Name && jobs[i].p == j0.p; i++ {
			group = append(group, jobs[i].result)
		}
		agg := reportAggregate(group)
		ok := 0
		var why []string
		for _, r := range group {
			total++
			if r.Pass {
				ok++
				pass++
			} else if !contains2(why, r.Why) {
				why = append(why, r.Why)
			}
			if r.Truth.Real {
				realRuns++
				if r.LeadCritical() != scenario.Never && (r.LeadConventional() == scenario.Never || r.LeadCritical() > r.LeadConventional()) {
					beat++
				}
			}
		}
		kind, deadline := "benign", "-"
		if j0.s.Truth.Real {
			kind, deadline = "real", reportDur(j0.s.Truth.LatestCritical)
		}
		result := fmt.Sprintf("PASS %d/%d", ok, len(group))
		if ok < len(group) {
			result = fmt.Sprintf("FAIL %d/%d: %s", ok, len(group), strings.Join(why, "; "))
		}
		conv := reportDur(agg.conv)
		if !j0.s.Truth.Real && agg.conv != scenario.Never {
			conv = "FALSE ALARM " + conv
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			j0.s.Name, kind, j0.p, reportDur(agg.warn), reportDur(agg.crit), reportDur(agg.emerg),
			reportDur(agg.lead), deadline, conv, reportDur(agg.convLead), agg.benign, result)
	}
	fmt.Fprintf(w, "\n**%d/%d runs pass.** In %d of %d real-event runs the detector's critical came earlier than the conventional 60 degC alarm.\n",
		pass, total, beat, realRuns)
	fmt.Fprintf(stderr, "detection-report: %d runs in %s\n", total, time.Since(start).Round(100*time.Millisecond))
	if pass < total {
		return errors.New("some scenarios failed their ground truth")
	}
	return nil
}

type reportAgg struct {
	warn, crit, emerg, lead, conv, convLead time.Duration
	benign                                  wire.Stage
}

// reportAggregate takes the worst case over seeds: latest first times,
// smallest leads, highest benign stage.
func reportAggregate(rs []*scenario.Result) reportAgg {
	a := reportAgg{warn: scenario.Never, crit: scenario.Never, emerg: scenario.Never, lead: scenario.Never, conv: scenario.Never, convLead: scenario.Never}
	late := func(p *time.Duration, v time.Duration, first bool) {
		if first || (v == scenario.Never) || (*p != scenario.Never && v > *p) {
			*p = v
		}
	}
	small := func(p *time.Duration, v time.Duration, first bool) {
		if first || v == scenario.Never || (*p != scenario.Never && v < *p) {
			*p = v
		}
	}
	for i, r := range rs {
		f := i == 0
		late(&a.warn, r.Warning, f)
		late(&a.crit, r.Critical, f)
		late(&a.emerg, r.Emergency, f)
		late(&a.conv, r.Conventional, f)
		small(&a.lead, r.LeadCritical(), f)
		small(&a.convLead, r.LeadConventional(), f)
		a.benign = max(a.benign, r.BenignMax)
	}
	return a
}

func reportDur(d time.Duration) string {
	if d == scenario.Never {
		return "-"
	}
	neg := d < 0
	if neg {
		d = -d
	}
	d = d.Round(time.Second)
	s := fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
	if neg {
		return "-" + s
	}
	return s
}

func reportParseRack(s string) (scenario.Rack, error) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		return scenario.Rack{}, fmt.Errorf("-rack: want STRINGSxMODULESxCELLS such as 1x8x16, got %q", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 || v > 64 {
			return scenario.Rack{}, fmt.Errorf("-rack: %q: each count must be 1..64", s)
		}
		n[i] = v
	}
	if n[2] < 3 {
		return scenario.Rack{}, fmt.Errorf("-rack: %q: at least 3 cells per module are needed for peer medians", s)
	}
	return scenario.Rack{Strings: n[0], Modules: n[1], Cells: n[2]}, nil
}
