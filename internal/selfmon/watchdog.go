package selfmon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Watchdog feeds the systemd watchdog while, and only while, the pipeline
// reports progress. Create it with [NewWatchdog], start [Watchdog.Run] in a
// goroutine and call [Watchdog.Progress] after every completed round.
type Watchdog struct {
	// OnStall, if set before Run, is called for every withheld ping (wire
	// it to Metrics.WatchdogStalled).
	OnStall func()

	n        *Notifier
	interval time.Duration
	log      *slog.Logger

	progressed atomic.Bool
	pings      atomic.Uint64
	stalls     atomic.Uint64

	// tick is replaced by tests to drive the loop without sleeping.
	tick func(d time.Duration) (<-chan time.Time, func())
}

// NewWatchdog returns a watchdog that pings n every interval/2 when
// progress was reported. interval is systemd's timeout, normally from
// [WatchdogInterval]; zero gives a watchdog whose Run returns at once and
// whose Progress is a cheap no-op, so callers need no special case.
func NewWatchdog(n *Notifier, interval time.Duration, log *slog.Logger) *Watchdog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{n: n, interval: interval, log: log, tick: realTicker}
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Progress records that the pipeline completed a round. It is one atomic
// store, safe from any goroutine and free of allocations.
func (w *Watchdog) Progress() {
	if w != nil {
		w.progressed.Store(true)
	}
}

// Pings returns how many WATCHDOG=1 messages were sent.
func (w *Watchdog) Pings() uint64 { return w.pings.Load() }

// Stalls returns how many ping periods passed without progress.
func (w *Watchdog) Stalls() uint64 { return w.stalls.Load() }

// Run sends WATCHDOG=1 every interval/2 if Progress was called since the
// previous ping, until ctx is done. It returns nil when the watchdog is
// disabled (interval 0 or a no-op notifier) and ctx.Err() otherwise.
// Failed sends are logged, not returned: systemd restarting the service
// is the remedy if they persist.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.interval <= 0 || w.n == nil {
		return nil
	}
	period := w.interval / 2
	c, stop := w.tick(period)
	defer stop()
	var stalledSince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-c:
			if !w.progressed.Swap(false) {
				w.stalls.Add(1)
				if w.OnStall != nil {
					w.OnStall()
				}
				if stalledSince.IsZero() {
					stalledSince = now.Add(-period)
					// One log line and status per stall, not one per tick.
					w.log.Warn("pipeline made no progress; withholding watchdog ping",
						"watchdog", w.interval, "since", stalledSince)
					_ = w.n.Status(fmt.Sprintf("stalled: no completed round since %s", stalledSince.UTC().Format(time.RFC3339)))
				}
				continue
			}
			var err error
			if stalledSince.IsZero() {
				err = w.n.Watchdog()
			} else {
				w.log.Info("pipeline progressing again", "stalled_for", now.Sub(stalledSince).Round(time.Millisecond))
				stalledSince = time.Time{}
				err = w.n.Notify("WATCHDOG=1", "STATUS=running")
			}
			if err != nil {
				w.log.Warn("watchdog ping failed", "err", err)
				continue
			}
			w.pings.Add(1)
		}
	}
}
