package agent

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/agent/blackbox"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// The black box keeps each device's last minutes of raw rounds in memory
// and, when the device reaches warning, freezes them and publishes them to
// the EMBER_BLACKBOX JetStream stream: the data investigators lacked at
// Pangyo. The ring never holds more than maxBlackBoxRounds rounds, so a
// fast burst period cannot make it grow without bound.
const (
	maxBlackBoxRounds = 1200
	// blackBoxChunk keeps each message under NATS's default 1 MiB limit.
	blackBoxChunk = 768 << 10
	// BlackBoxStream holds frozen black boxes; subjects
	// ember.<site>.blackbox.<agent>.<device>.
	BlackBoxStream = "EMBER_BLACKBOX"
)

// BlackBoxSubject is where a device's frozen black box is published.
func BlackBoxSubject(site, agent, device string) string {
	return "ember." + site + ".blackbox." + agent + "." + device
}

func (a *Agent) newBlackBox(d *device, lay *layout) *blackbox.Recorder {
	if a.cfg.BlackBox <= 0 || len(lay.points) == 0 {
		return nil
	}
	window := min(a.cfg.BlackBox, time.Duration(maxBlackBoxRounds)*d.cfg.Period)
	bb, err := blackbox.New(d.id, lay.points, window, d.cfg.Period)
	if err != nil {
		a.log.Warn("black box off", "device", d.id, "err", err)
		return nil
	}
	return bb
}

// freezeBlackBox snapshots the ring now (cheap, on the processor
// goroutine) and publishes it in the background.
func (a *Agent) freezeBlackBox(ctx context.Context, d *device, why wire.Stage) {
	if d.bb == nil || a.opts.Conn == nil {
		return
	}
	snap := d.bb.Freeze()
	frozen := a.now().UTC()
	go func() {
		if err := a.publishBlackBox(ctx, d, snap, frozen); err != nil {
			a.log.Error("black box not published", "device", d.id, "err", err)
			return
		}
		a.log.Info("black box published", "device", d.id, "stage", why, "rounds", d.bb.Capacity())
	}()
}

func (a *Agent) publishBlackBox(ctx context.Context, d *device, snap *blackbox.Snapshot, frozen time.Time) error {
	js, err := jetstream.New(a.opts.Conn)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{
		Name: BlackBoxStream, Subjects: []string{"ember.*.blackbox.>"},
		MaxAge: 90 * 24 * time.Hour, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
	}); err != nil {
		return fmt.Errorf("black box stream: %w", err)
	}
	lp := snap.AppendLineProtocol(nil, d.tags)
	subject := BlackBoxSubject(a.cfg.Site, a.cfg.AgentID, d.id)
	id := a.cfg.AgentID + "." + d.id + "." + strconv.FormatInt(frozen.UnixNano(), 10)
	parts := chunkLines(lp, blackBoxChunk)
	for i, p := range parts {
		m := &nats.Msg{Subject: subject, Data: p, Header: nats.Header{}}
		m.Header.Set(wire.MsgIDHeader, id+"."+strconv.Itoa(i))
		m.Header.Set("Ember-Blackbox-Id", id)
		m.Header.Set("Ember-Blackbox-Part", fmt.Sprintf("%d/%d", i+1, len(parts)))
		if _, err := js.PublishMsg(sctx, m); err != nil {
			return fmt.Errorf("part %d/%d: %w", i+1, len(parts), err)
		}
	}
	return nil
}

// chunkLines splits line protocol at line ends into parts of at most max
// bytes (a single longer line is a part of its own).
func chunkLines(b []byte, max int) [][]byte {
	var parts [][]byte
	for len(b) > 0 {
		if len(b) <= max {
			parts = append(parts, b)
			break
		}
		cut := bytes.LastIndexByte(b[:max], '\n') + 1
		if cut == 0 {
			cut = bytes.IndexByte(b, '\n') + 1
			if cut == 0 {
				cut = len(b)
			}
		}
		parts = append(parts, b[:cut])
		b = b[cut:]
	}
	return parts
}
