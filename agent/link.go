package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/emberwatch/emberwatch/internal/selfmon"
)

// linkLoop owns one link (serial line or TCP endpoint) and polls its
// devices in turn, each on its own deadlines.
type linkLoop struct {
	name    string
	devices []*device
	log     *slog.Logger
	// mono schedules: deadlines, lateness and overruns are on the
	// monotonic clock, immune to wall-clock steps. wall stamps samples.
	mono func() time.Time
	wall func() time.Time
	wake chan struct{} // a device's period changed
	// progress feeds the systemd watchdog after every round (nil: none).
	progress *selfmon.Source
}

func (l *linkLoop) run(ctx context.Context, start time.Time) {
	for i, d := range l.devices {
		// Spread devices sharing a link over their first period so they do
		// not all fire on the same instant.
		off := time.Duration(i) * d.cfg.Period / time.Duration(len(l.devices))
		d.dl = newDeadline(start.Add(off), d.cfg.Period)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := l.devices[0]
		for _, d := range l.devices[1:] {
			if d.dl.Next().Before(next.dl.Next()) {
				next = d
			}
		}
		if wait := next.dl.Next().Sub(l.mono()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
				if !timer.Stop() {
					<-timer.C
				}
				l.applyPeriods()
				l.pollRequested(ctx)
				continue
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		l.poll(ctx, next)
	}
}

// pollRequested polls, out of turn, devices that asked for it (a trap
// arrived); their regular deadlines are kept.
func (l *linkLoop) pollRequested(ctx context.Context) {
	for _, d := range l.devices {
		if d.pollNow.Swap(false) && ctx.Err() == nil {
			l.pollOnce(ctx, d)
		}
	}
}

func (l *linkLoop) applyPeriods() {
	for _, d := range l.devices {
		d.dl.SetPeriod(d.period())
	}
}

func (l *linkLoop) poll(ctx context.Context, d *device) {
	end := l.pollOnce(ctx, d)
	if skipped := d.dl.Advance(end); skipped > 0 {
		d.overruns.Add(1)
		d.skipped.Add(uint64(skipped))
		if d.hasMetrics {
			d.metrics.Overruns.Inc()
		}
	}
	l.progress.Progress()
	if p := d.period(); p != d.dl.period {
		d.dl.SetPeriod(p)
	}
}

// pollOnce samples d and hands the round to its processor.
func (l *linkLoop) pollOnce(ctx context.Context, d *device) (end time.Time) {
	d.refreshLayout(ctx)
	r := d.acquire()
	r.due = d.dl.Next()
	start := l.mono()
	r.at = l.wall()
	r.drill = false
	r.err = d.poller.Poll(ctx, r.readings)
	end = l.mono()
	r.dur = end.Sub(start)
	d.rounds.Add(1)
	if r.err != nil {
		d.failures.Add(1)
	}
	if d.hasMetrics {
		d.metrics.Rounds.Inc()
		d.metrics.PollDuration.Observe(r.dur.Seconds())
		if r.err != nil {
			d.metrics.RoundErrors.Inc()
		}
	}
	d.recordLateness(start.Sub(r.due))
	d.out <- r // never blocks: at most queueDepth rounds exist
	return end
}

// latenessWindow is how many recent start delays each device keeps.
const latenessWindow = 512

func (d *device) recordLateness(late time.Duration) {
	d.mu.Lock()
	d.lateness[d.lateIdx%latenessWindow] = late
	d.lateIdx++
	d.mu.Unlock()
}
