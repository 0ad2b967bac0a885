package agent

import (
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
// Pangyo. Each device's ring has a fixed memory budget (black_box_kib), so
// neither a fast burst period nor many devices can make it grow without
// bound; how far back it reaches depends on how much the values change.
const (
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
	bb, err := blackbox.New(d.id, lay.points, a.cfg.BlackBox, a.cfg.BlackBoxKiB<<10)
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
		a.log.Info("black box published", "device", d.id, "stage", why, "rounds", snap.Len(), "span", snap.Span())
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
	// Encode twice rather than hold the whole window's lines: the first
	// pass only counts the parts (for the i/n header).
	parts := 0
	_ = snap.Chunks(d.tags, blackBoxChunk, func([]byte) error { parts++; return nil })
	subject := BlackBoxSubject(a.cfg.Site, a.cfg.AgentID, d.id)
	id := a.cfg.AgentID + "." + d.id + "." + strconv.FormatInt(frozen.UnixNano(), 10)
	i := 0
	return snap.Chunks(d.tags, blackBoxChunk, func(p []byte) error {
		i++
		m := &nats.Msg{Subject: subject, Data: p, Header: nats.Header{}}
		m.Header.Set(wire.MsgIDHeader, id+"."+strconv.Itoa(i-1))
		m.Header.Set("Ember-Blackbox-Id", id)
		m.Header.Set("Ember-Blackbox-Part", fmt.Sprintf("%d/%d", i, parts))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := js.PublishMsg(pctx, m); err != nil {
			return fmt.Errorf("part %d/%d: %w", i, parts, err)
		}
		return nil
	})
}
