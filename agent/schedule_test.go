package agent

import (
	"testing"
	"time"
)

func TestDeadlineDriftFree(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newDeadline(t0, 100*time.Millisecond)
	// Rounds that finish late but within their period do not shift the grid.
	for k := 1; k <= 50; k++ {
		finished := d.Next().Add(37 * time.Millisecond)
		if skipped := d.Advance(finished); skipped != 0 {
			t.Fatalf("round %d: skipped %d, want 0", k, skipped)
		}
		if want := t0.Add(time.Duration(k) * 100 * time.Millisecond); !d.Next().Equal(want) {
			t.Fatalf("round %d: next %v, want %v (drift)", k, d.Next().Sub(t0), want.Sub(t0))
		}
	}
}

func TestDeadlineOverrunSkipsNotQueues(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newDeadline(t0, 100*time.Millisecond)
	// The first round takes 350 ms: deadlines at 100, 200 and 300 ms are
	// skipped; the next round is due at 400 ms.
	skipped := d.Advance(t0.Add(350 * time.Millisecond))
	if skipped != 3 {
		t.Fatalf("skipped %d, want 3", skipped)
	}
	if got := d.Next().Sub(t0); got != 400*time.Millisecond {
		t.Fatalf("next due at %v, want 400ms", got)
	}
	// Exactly on a deadline counts as on time.
	if s := d.Advance(t0.Add(500 * time.Millisecond)); s != 0 {
		t.Fatalf("finish exactly at the next deadline: skipped %d, want 0", s)
	}
}

func TestDeadlineBurst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newDeadline(t0, time.Second)
	d.Advance(t0.Add(10 * time.Millisecond))
	d.SetPeriod(250 * time.Millisecond) // burst from the next deadline on
	if got := d.Next().Sub(t0); got != time.Second {
		t.Fatalf("burst must start at the next deadline, got %v", got)
	}
	d.Advance(t0.Add(time.Second + time.Millisecond))
	if got := d.Next().Sub(t0); got != 1250*time.Millisecond {
		t.Fatalf("next in burst at %v, want 1.25s", got)
	}
}
