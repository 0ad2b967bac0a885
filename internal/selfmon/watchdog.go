package selfmon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Watchdog feeds the systemd watchdog while, and only while, the pipeline
// reports progress. Create it with [NewWatchdog], start [Watchdog.Run] in a
// goroutine, and report progress in one of two ways:
//
//   - one pipeline: call [Watchdog.Progress] after every completed round;
//     a ping goes out only if it was called since the previous ping.
//   - several loops (one per link, plus the publisher): register each with
//     [Watchdog.Source] and call [Source.Progress]; a ping goes out only if
//     every source progressed within its allowance, so one hung link gets
//     the whole agent restarted. Once a source exists, [Watchdog.Progress]
//     no longer counts.
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

	mu      sync.Mutex
	sources []*Source

	// now and tick are replaced by tests to drive the loop without sleeping.
	now  func() time.Time
	tick func(d time.Duration) (<-chan time.Time, func())
}

// Source is one loop whose progress the watchdog requires.
type Source struct {
	w         *Watchdog
	name      string
	allowance time.Duration
	last      atomic.Int64 // UnixNano of the last progress
}

// NewWatchdog returns a watchdog that pings n every interval/2 when
// progress was reported. interval is systemd's timeout, normally from
// [WatchdogInterval]; zero gives a watchdog whose Run returns at once and
// whose Progress is a cheap no-op, so callers need no special case.
func NewWatchdog(n *Notifier, interval time.Duration, log *slog.Logger) *Watchdog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{n: n, interval: interval, log: log, now: time.Now, tick: realTicker}
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

// Source registers a loop that must keep making progress: the watchdog
// withholds its pings once the loop has not called [Source.Progress] for
// longer than allowance. Give a loop with a long period an allowance above
// its period plus its poll timeout; allowance <= 0 means the watchdog
// interval. The source counts as fresh when registered.
func (w *Watchdog) Source(name string, allowance time.Duration) *Source {
	if allowance <= 0 {
		allowance = w.interval
	}
	s := &Source{w: w, name: name, allowance: allowance}
	s.last.Store(w.now().UnixNano())
	w.mu.Lock()
	w.sources = append(w.sources, s)
	w.mu.Unlock()
	return s
}

// Progress records that the source's loop completed a round. Safe from
// any goroutine and free of allocations; a nil Source does nothing.
func (s *Source) Progress() {
	if s != nil {
		s.last.Store(s.w.now().UnixNano())
	}
}

// Close stops requiring the source (its loop ended on purpose, e.g. a
// device removed by a configuration reload).
func (s *Source) Close() {
	if s == nil {
		return
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	// A new slice, so that a Run iterating the old one is not disturbed.
	w.sources = slices.DeleteFunc(slices.Clone(w.sources), func(x *Source) bool { return x == s })
}

// Pings returns how many WATCHDOG=1 messages were sent.
func (w *Watchdog) Pings() uint64 { return w.pings.Load() }

// Stalls returns how many ping periods passed without progress.
func (w *Watchdog) Stalls() uint64 { return w.stalls.Load() }

// healthy tells whether a ping is deserved now, and if not, why.
func (w *Watchdog) healthy(now time.Time) (bool, string) {
	w.mu.Lock()
	srcs := w.sources
	w.mu.Unlock()
	if len(srcs) == 0 {
		if w.progressed.Swap(false) {
			return true, ""
		}
		return false, "no completed round"
	}
	for _, s := range srcs {
		last := time.Unix(0, s.last.Load())
		if age := now.Sub(last); age > s.allowance {
			return false, fmt.Sprintf("%s: no completed round for %s", s.name, age.Round(time.Millisecond))
		}
	}
	return true, ""
}

// Run sends WATCHDOG=1 every interval/2 while progress is reported (see
// [Watchdog]), until ctx is done. It returns nil when the watchdog is
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
	stalled := false
	var stalledAt time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c:
			now := w.now()
			ok, why := w.healthy(now)
			if !ok {
				w.stalls.Add(1)
				if w.OnStall != nil {
					w.OnStall()
				}
				if !stalled {
					stalled, stalledAt = true, now
					// One log line and status per stall, not one per tick.
					w.log.Warn("pipeline stalled; withholding watchdog ping", "reason", why, "watchdog", w.interval)
					_ = w.n.Status("stalled: " + why)
				}
				continue
			}
			var err error
			if !stalled {
				err = w.n.Watchdog()
			} else {
				w.log.Info("pipeline progressing again", "stalled_for", now.Sub(stalledAt).Round(time.Millisecond))
				stalled = false
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
