package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cmdTail prints alerts as they are published, one line each.
func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs)
	site := fs.String("site", "*", "only this site")
	stage := fs.String("stage", "", "only alerts at this stage or above (and clears of them): watch, warning, critical, emergency")
	cats := fs.String("category", "", "only these categories, comma separated (thermal,gas,electrical,environment,sensor_fault,comms)")
	asJSON := fs.Bool("json", false, "print each alert's JSON instead of a line")
	count := fs.Int("n", 0, "exit after this many alerts (0: run until interrupted)")
	since := fs.Duration("since", 0, "first replay the alerts of this last `duration` from JetStream (e.g. 1h), then follow")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: emberctl tail [-nats URL] [-site S] [-stage STAGE] [-category C,...] [-since 1h] [-json] [-n N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *site != "*" && !wire.ValidID(*site) {
		return fmt.Errorf("-site: %q is not a valid site id ([a-z0-9-]+)", *site)
	}
	f := alertFilter{}
	if *stage != "" {
		s, err := wire.ParseStage(*stage)
		if err != nil {
			return fmt.Errorf("-stage: %w", err)
		}
		f.minStage = s
	}
	if *cats != "" {
		f.categories = map[string]bool{}
		for _, c := range strings.Split(*cats, ",") {
			c = strings.TrimSpace(c)
			switch c {
			case wire.CategoryThermal, wire.CategoryGas, wire.CategoryElectrical, wire.CategoryEnvironment,
				wire.CategorySensorFault, wire.CategoryComms, wire.CategorySecurity:
				f.categories[c] = true
			default:
				return fmt.Errorf("-category: unknown category %q", c)
			}
		}
	}
	nc, err := nf.connect("emberctl tail", nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	n := 0
	// show prints an alert and reports whether tail is done (-n reached).
	show := func(subject string, data []byte) bool {
		var a wire.Alert
		if err := json.Unmarshal(data, &a); err != nil {
			fmt.Fprintf(stderr, "emberctl tail: %s: bad alert JSON: %v\n", subject, err)
			return false
		}
		if !f.match(a) {
			return false
		}
		if *asJSON {
			fmt.Fprintf(stdout, "%s\n", data)
		} else {
			fmt.Fprintln(stdout, alertLine(a))
		}
		n++
		return *count > 0 && n >= *count
	}
	filter := wire.Wildcard(*site, wire.KindAlert)
	if *since > 0 {
		return tailStream(ctx, nc, filter, time.Now().Add(-*since), show)
	}
	msgs := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(filter, msgs)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if show(m.Subject, m.Data) {
				return nil
			}
		}
	}
}

// tailStream replays the alert stream from start, then follows it.
func tailStream(ctx context.Context, nc *nats.Conn, filter string, start time.Time, show func(string, []byte) bool) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	probe := strings.Replace(strings.TrimSuffix(filter, ">"), "*", "x", 1) + "a.d"
	stream, err := js.StreamNameBySubject(ctx, probe)
	if err != nil {
		return fmt.Errorf("-since: no JetStream stream holds %s (is a collector running?): %w", filter, err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return fmt.Errorf("-since: consumer on %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if show(m.Subject(), m.Data()) {
			return nil
		}
	}
}

type alertFilter struct {
	minStage   wire.Stage
	categories map[string]bool
}

func (f alertFilter) match(a wire.Alert) bool {
	if f.categories != nil && !f.categories[a.Category] {
		return false
	}
	st := a.Stage
	if st == wire.StageNormal || a.Ack != nil {
		st = max(st, a.PreviousStage)
	}
	return st >= f.minStage
}

// alertLine is one alert as a line:
// TIME SITE STAGE CATEGORY AGENT/DEVICE [COMPONENT] signatures... id=ID
func alertLine(a wire.Alert) string {
	var b strings.Builder
	t := a.Time
	if t.IsZero() {
		t = a.SampleTime
	}
	stage := strings.ToUpper(a.Stage.String())
	if a.Stage == wire.StageNormal {
		stage = "CLEARED(" + a.PreviousStage.String() + ")"
	}
	if a.Ack != nil {
		stage = "ACK(" + a.Stage.String() + ") by " + a.Ack.By
	}
	fmt.Fprintf(&b, "%s %s %-9s %-12s %s/%s", t.UTC().Format(time.RFC3339Nano), a.Site, stage, a.Category, a.Agent, a.Device)
	if a.Component != "" {
		b.WriteString(" " + a.Component)
	}
	for _, s := range a.Signatures {
		fmt.Fprintf(&b, " %s=%g%s(>%g)", s.Kind, s.Value, s.Unit, s.Threshold)
	}
	if a.Drill {
		b.WriteString(" DRILL")
	}
	if a.Summary != "" {
		fmt.Fprintf(&b, " %q", a.Summary)
	}
	b.WriteString(" id=" + a.ID)
	return b.String()
}
