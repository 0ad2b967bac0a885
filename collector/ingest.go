package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Telemetry storage: one durable pull consumer shared by every collector of
// the site. Messages are parsed, checked and appended to a batch; a batch
// is written when it holds batch_size points, a quarter of max_in_flight
// messages or 8 MB, or flush_interval passed. A second goroutine writes the
// previous batch meanwhile, and acks its messages only after InfluxDB
// accepted it. While InfluxDB is down the writer blocks, the builder blocks
// on it, the pull iterator stops asking, and JetStream (bounded by
// MaxAckPending) holds the rest: memory stays bounded, nothing is dropped.

const (
	maxFuture = 5 * time.Minute                       // later sample times are a broken clock
	minSample = int64(946684800) * int64(time.Second) // 2000-01-01: an unset RTC
)

// maxBatchBytes bounds a batch's line protocol: with one batch building,
// one being written and the pull buffer, the collector holds a few tens of
// MB of telemetry at most, whatever the message sizes.
const maxBatchBytes = 8 << 20

type batch struct {
	buf    bytes.Buffer
	points int
	msgs   []jetstream.Msg
}

// storeTelemetry stores the line protocol of one subject kind: telemetry,
// or the agents' black boxes (KindBlackBox: the raw history of the
// minutes before an alert, the same points at the same sample times, so
// they overwrite telemetry and fill its gaps).
func (c *Collector) storeTelemetry(ctx context.Context, js jetstream.JetStream, stream, kind string) error {
	maxMsgs := max(1, c.cfg.NATS.MaxInFlight/4)
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       c.consumerName(kind),
		Description:   "ember-collector: " + kind + " into InfluxDB",
		FilterSubject: wire.Wildcard(c.cfg.Site, kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.NATS.ackWait,
		MaxAckPending: c.cfg.NATS.MaxInFlight,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("telemetry consumer: %w", err)
	}
	// The pull buffer is bounded in messages and in bytes (at least two of
	// the largest messages the server accepts, or it would stall).
	pullBytes := max(maxBatchBytes*2, 2*int(js.Conn().MaxPayload()))
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(maxMsgs, pullBytes))
	if err != nil {
		return fmt.Errorf("consume telemetry: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	full := make(chan *batch) // unbuffered: at most one batch building, one writing
	free := make(chan *batch, 2)
	free <- &batch{}
	free <- &batch{}
	writerDone := make(chan struct{})
	// The writer outlives ctx by a bounded flush, so that a clean stop
	// leaves nothing unacked that was already pulled.
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	go func() {
		defer close(writerDone)
		for b := range full {
			c.writeBatch(flushCtx, b)
			b.buf.Reset()
			b.points, b.msgs = 0, b.msgs[:0]
			free <- b
		}
	}()
	stopLimit := context.AfterFunc(ctx, func() {
		if c.store != nil && c.store.down.Load() {
			cancelFlush() // InfluxDB is failing: JetStream redelivers instead
			return
		}
		time.AfterFunc(10*time.Second, cancelFlush) // hard limit for the final flush
	})
	defer stopLimit()

	var l lpLine
	cur := <-free
	deadline := time.Now().Add(c.cfg.Influx.flushInterval)
	var runErr error
	for {
		wait := time.Until(deadline)
		var msg jetstream.Msg
		if wait > 0 {
			msg, err = it.Next(jetstream.NextMaxWait(max(wait, time.Millisecond)))
		} else {
			err = nats.ErrTimeout
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				runErr = fmt.Errorf("next telemetry: %w", err)
				break
			}
			if len(cur.msgs) > 0 {
				full <- cur
				cur = <-free
			}
			deadline = time.Now().Add(c.cfg.Influx.flushInterval)
			continue
		}
		c.appendTelemetry(cur, msg, &l)
		if cur.points >= c.cfg.Influx.BatchSize || len(cur.msgs) >= maxMsgs || cur.buf.Len() >= maxBatchBytes {
			full <- cur
			cur = <-free
			deadline = time.Now().Add(c.cfg.Influx.flushInterval)
		}
	}
	if len(cur.msgs) > 0 {
		full <- cur
	}
	close(full)
	<-writerDone
	return runErr
}

// writeBatch stores a batch and acks its messages. A batch InfluxDB
// refuses for good (400) is acked too: resending would never succeed and
// would block the stream; the refusal is logged and counted.
func (c *Collector) writeBatch(ctx context.Context, b *batch) {
	if c.store != nil && b.buf.Len() > 0 {
		lastBeat := time.Now()
		keepAlive := func() {
			if time.Since(lastBeat) > c.cfg.NATS.ackWait/3 {
				lastBeat = time.Now()
				for _, m := range b.msgs {
					m.InProgress()
				}
			}
		}
		if err := c.store.write(ctx, b.buf.String(), b.points, keepAlive); err != nil && !errors.Is(err, errPermanent) {
			// ctx ended before InfluxDB came back: leave the messages
			// unacked; JetStream redelivers them after AckWait.
			return
		}
	}
	c.lines.Add(uint64(b.points))
	for _, m := range b.msgs {
		m.Ack()
	}
}

// appendTelemetry checks one message's lines and appends them to the batch.
// Lines that must not be stored as telemetry (malformed, no or implausible
// timestamp, wrong site/agent/device tags) go to ember_quarantine instead,
// keyed by the message's stream time so that a redelivery overwrites.
func (c *Collector) appendTelemetry(b *batch, msg jetstream.Msg, l *lpLine) {
	b.msgs = append(b.msgs, msg)
	sub, serr := parseDeviceSubject(msg.Subject())
	var qTime int64
	nowNs := c.now().UnixNano()
	n := 0
	for line, rest := nextLine(msg.Data()); line != nil; line, rest = nextLine(rest) {
		n++
		reason := ""
		switch err := l.parse(line); {
		case serr != nil:
			reason = "subject"
		case err != nil:
			reason = "malformed"
		case string(l.measurement) != wire.Measurement:
			reason = "measurement"
		case !l.hasTS:
			reason = "no_timestamp"
		case l.ts > nowNs+int64(maxFuture):
			reason = "future_timestamp"
		case l.ts < minSample:
			reason = "clock_unset"
		}
		var missing []wire.Tag
		if reason == "" {
			for _, want := range [3]wire.Tag{{Key: "site", Value: sub.Site}, {Key: "agent", Value: sub.Agent}, {Key: "device", Value: sub.Device}} {
				v := l.tag(want.Key)
				switch {
				case v == nil:
					missing = append(missing, want)
				case string(v) != want.Value:
					reason = "tag_mismatch"
				}
			}
		}
		if reason != "" {
			if qTime == 0 {
				qTime = nowNs
				if md, err := msg.Metadata(); err == nil {
					qTime = md.Timestamp.UnixNano()
				}
			}
			c.quarantine(b, sub, reason, line, qTime+int64(n))
			continue
		}
		if len(missing) > 0 {
			// Insert the identity tags the agent left out (from the
			// subject, which NATS authorization checked).
			i := len(l.measurement)
			b.buf.Write(line[:i])
			for _, t := range missing {
				b.buf.WriteByte(',')
				b.buf.WriteString(t.Key)
				b.buf.WriteByte('=')
				b.buf.WriteString(t.Value)
			}
			b.buf.Write(line[i:])
		} else {
			b.buf.Write(line)
		}
		b.buf.WriteByte('\n')
		b.points++
	}
}

func (c *Collector) quarantine(b *batch, sub wire.Subject, reason string, line []byte, ts int64) {
	if c.quarantined.Add(1)%1000 == 1 {
		c.log.Warn("telemetry line quarantined", "reason", reason, "agent", sub.Agent, "device", sub.Device,
			"line", truncate(string(line), 200))
	}
	b.buf.WriteString("ember_quarantine")
	for _, t := range [...]wire.Tag{{Key: "agent", Value: sub.Agent}, {Key: "device", Value: sub.Device},
		{Key: "reason", Value: reason}, {Key: "site", Value: sub.Site}} {
		if t.Value != "" {
			b.buf.WriteByte(',')
			b.buf.WriteString(t.Key)
			b.buf.WriteByte('=')
			b.buf.WriteString(escTag(t.Value))
		}
	}
	b.buf.WriteString(" line=")
	b.buf.WriteString(quoteField(string(line)))
	b.buf.WriteByte(' ')
	b.buf.WriteString(strconv.FormatInt(ts, 10))
	b.buf.WriteByte('\n')
	b.points++
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var tagEscaper = strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `, "\n", "")
var fieldEscaper = strings.NewReplacer(`"`, `\"`, `\`, `\\`, "\n", " ")

func escTag(s string) string     { return tagEscaper.Replace(s) }
func quoteField(s string) string { return `"` + fieldEscaper.Replace(s) + `"` }

// KindBlackBox is the agents' black-box subject kind:
// ember.<site>.blackbox.<agent>.<device>, line protocol.
const KindBlackBox = "blackbox"

// parseDeviceSubject parses ember.<site>.<telemetry|blackbox>.<agent>.<device>.
func parseDeviceSubject(s string) (wire.Subject, error) {
	t := strings.Split(s, ".")
	if len(t) == 5 && t[0] == "ember" && t[2] == KindBlackBox {
		return wire.Subject{Site: t[1], Kind: t[2], Agent: t[3], Device: t[4]}, nil
	}
	return wire.ParseSubject(s)
}

// storeBlackBoxes waits for the black-box stream (the agent creates it
// with its first black box) and then stores black boxes like telemetry.
func (c *Collector) storeBlackBoxes(ctx context.Context, js jetstream.JetStream) error {
	sample := "ember." + c.cfg.Site + "." + KindBlackBox + ".a.d"
	for {
		name, err := js.StreamNameBySubject(ctx, sample)
		if err == nil && name != "" {
			return c.storeTelemetry(ctx, js, name, KindBlackBox)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.blackBoxPoll):
		}
	}
}

// --- alerts and evacuations into InfluxDB (dashboard annotations) ---

// storeAlerts is the shared (durable) alert consumer: it writes each alert
// as an ember_alert point and hands it to the NOC sinks, once per site.
func (c *Collector) storeAlerts(ctx context.Context, js jetstream.JetStream, stream string) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       c.consumerName("alerts"),
		Description:   "ember-collector: alerts into InfluxDB and NOC sinks",
		FilterSubject: wire.Wildcard(c.cfg.Site, wire.KindAlert),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.NATS.ackWait,
		MaxAckPending: 256,
		DeliverPolicy: jetstream.DeliverNewPolicy, // history is not re-sent to a NOC on first start
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("alert consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("consume alerts: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("next alert: %w", err)
		}
		a, err := decodeAlert(msg.Subject(), msg.Data())
		if err != nil {
			c.log.Warn("bad alert; not stored or forwarded", "subject", msg.Subject(), "err", err)
			msg.Term()
			continue
		}
		if c.store != nil {
			line := alertLine(a)
			if err := c.store.writeEvent(ctx, line, func() { msg.InProgress() }); err != nil && !errors.Is(err, errPermanent) {
				return nil // ctx ended: redelivered later
			}
		}
		if err := c.noc.enqueue(ctx, a); err != nil {
			return nil
		}
		msg.Ack()
	}
}

// alertLine is an alert as an ember_alert point, at the alert's own time
// (replays overwrite). title/text/tags are what Grafana annotations read.
func alertLine(a wire.Alert) string {
	var b strings.Builder
	b.WriteString("ember_alert")
	tags := [][2]string{{"agent", a.Agent}, {"category", a.Category}, {"component", a.Component},
		{"device", a.Device}, {"drill", strconv.FormatBool(a.Drill)}, {"site", a.Site}, {"stage", a.Stage.String()}}
	for _, t := range tags {
		if t[1] != "" {
			b.WriteString("," + t[0] + "=" + escTag(t[1]))
		}
	}
	var sigs []string
	for _, s := range a.Signatures {
		sig := fmt.Sprintf("%s=%g%s>%g", s.Kind, s.Value, s.Unit, s.Threshold)
		if s.Component != "" {
			sig += "@" + s.Component
		}
		sigs = append(sigs, sig)
	}
	title := fmt.Sprintf("%s %s %s/%s", a.Stage, a.Category, a.Agent, a.Device)
	if a.Drill {
		title = "DRILL " + title
	}
	if a.Ack != nil {
		title = "ack by " + a.Ack.By + ": " + title
	}
	text := a.Summary
	if len(sigs) > 0 {
		text = strings.TrimSpace(text + " " + strings.Join(sigs, "; "))
	}
	b.WriteString(" id=" + quoteField(a.ID))
	b.WriteString(",stage_level=" + strconv.Itoa(int(a.Stage)) + "i")
	b.WriteString(",previous_stage=" + quoteField(a.PreviousStage.String()))
	b.WriteString(",title=" + quoteField(title))
	b.WriteString(",text=" + quoteField(text))
	b.WriteString(",tags=" + quoteField(a.Category+","+a.Stage.String()))
	if a.Ack != nil {
		b.WriteString(",acked_by=" + quoteField(a.Ack.By))
	}
	t := a.Time
	if t.IsZero() {
		t = a.SampleTime
	}
	b.WriteString(" " + strconv.FormatInt(t.UnixNano(), 10))
	return b.String()
}

// evacLine is an evacuation phase as an ember_evac point.
func evacLine(e wire.Evacuation) string {
	var b strings.Builder
	b.WriteString("ember_evac")
	for _, t := range [][2]string{{"domain", e.Domain}, {"drill", strconv.FormatBool(e.Drill)},
		{"dry_run", strconv.FormatBool(e.DryRun)}, {"phase", e.Phase}, {"site", e.Site}, {"urgency", e.Urgency}} {
		if t[1] != "" {
			b.WriteString("," + t[0] + "=" + escTag(t[1]))
		}
	}
	title := fmt.Sprintf("evacuation %s %s", e.Phase, e.Domain)
	if e.Drill {
		title = "DRILL " + title
	}
	b.WriteString(" id=" + quoteField(e.ID))
	b.WriteString(",title=" + quoteField(title))
	b.WriteString(",text=" + quoteField(e.Reason.Summary+" targets: "+strings.Join(e.Targets, ",")))
	b.WriteString(",tags=" + quoteField("evacuation,"+e.Phase))
	b.WriteString(",alert_ids=" + quoteField(strings.Join(e.Reason.AlertIDs, ",")))
	b.WriteString(" " + strconv.FormatInt(e.Time.UnixNano(), 10))
	return b.String()
}

// storeEvacuations writes every evacuation message seen on NATS. Each
// collector writes them; the points are identical, so InfluxDB keeps one.
func (c *Collector) storeEvacuations(ctx context.Context, nc *nats.Conn) error {
	if c.store == nil {
		<-ctx.Done()
		return nil
	}
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(wire.Wildcard(c.cfg.Site, wire.KindEvac), ch)
	if err != nil {
		return fmt.Errorf("subscribe evacuations: %w", err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			var e wire.Evacuation
			if err := json.Unmarshal(m.Data, &e); err != nil || e.Time.IsZero() {
				c.log.Warn("bad evacuation JSON", "subject", m.Subject, "err", err)
				continue
			}
			if err := c.store.writeEvent(ctx, evacLine(e), nil); err != nil && ctx.Err() != nil {
				return nil
			}
		}
	}
}
