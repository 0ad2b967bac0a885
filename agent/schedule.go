package agent

import (
	"time"
)

// deadline keeps drift-free deadlines for one device: the k-th round is due
// at start + k*period. Changing the period re-anchors at the next deadline.
type deadline struct {
	start  time.Time
	period time.Duration
	k      int64
}

func newDeadline(start time.Time, period time.Duration) deadline {
	return deadline{start: start, period: period}
}

// Next returns the time the current round is due.
func (d *deadline) Next() time.Time {
	return d.start.Add(time.Duration(d.k) * d.period)
}

// Advance moves to the next round after one finished at now. It returns how
// many deadlines were skipped because the round overran them.
func (d *deadline) Advance(now time.Time) (skipped int64) {
	d.k++
	if next := d.Next(); now.After(next) {
		// Skip, do not queue: jump to the first deadline after now.
		missed := int64(now.Sub(next)/d.period) + 1
		d.k += missed
		skipped = missed
	}
	return skipped
}

// SetPeriod changes the period from the next deadline on.
func (d *deadline) SetPeriod(p time.Duration) {
	if p <= 0 || p == d.period {
		return
	}
	d.start = d.Next()
	d.k = 0
	d.period = p
}
