package detect

import (
	"testing"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// TestStageMachine drives one condition's stage machine with evidence
// sequences (one sample per second): rising is immediate, falling waits
// clearAfter (5 s here), critical and emergency latch until acked, caps
// hold.
func TestStageMachine(t *testing.T) {
	const (
		N, W, A, C, E = wire.StageNormal, wire.StageWatch, wire.StageWarning, wire.StageCritical, wire.StageEmergency
		sec           = int64(1e9)
	)
	tests := []struct {
		name     string
		cap      wire.Stage
		evidence []wire.Stage
		ackAt    int // index at which Ack is called (-1: never)
		want     []wire.Stage
		changes  int
	}{
		{"rise is immediate", E, []wire.Stage{N, W, A, A}, -1, []wire.Stage{N, W, A, A}, 2},
		{"fall waits clear_after", E, []wire.Stage{A, N, N, N, N, N, N, N}, -1, []wire.Stage{A, A, A, A, A, A, N, N}, 2},
		{"a blip inside clear_after does not fall", E, []wire.Stage{A, N, N, A, N, N, N, N}, -1, []wire.Stage{A, A, A, A, A, A, A, A}, 1},
		{"critical latches", E, []wire.Stage{C, N, N, N, N, N, N, N, N}, -1, []wire.Stage{C, C, C, C, C, C, C, C, C}, 1},
		{"ack releases to the evidence at the next step", E, []wire.Stage{C, N, N, W, W}, 2, []wire.Stage{C, C, N, W, W}, 3},
		{"ack while evidence holds keeps the stage", E, []wire.Stage{C, C, C, N, N}, 1, []wire.Stage{C, C, C, N, N}, 2},
		{"emergency over latched critical", E, []wire.Stage{C, N, E, N}, -1, []wire.Stage{C, C, E, E}, 2},
		{"sensor_fault capped at watch", W, []wire.Stage{C, E, N}, -1, []wire.Stage{W, W, W}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cond{cap: tt.cap}
			changes := 0
			for i, ev := range tt.evidence {
				if i == tt.ackAt {
					c.acked = &wire.Ack{By: "t"}
				}
				c.evidence = ev
				if ch, _ := c.step(int64(i+1)*sec, 5*sec); ch {
					changes++
				}
				if c.stage != tt.want[i] {
					t.Fatalf("sample %d: stage %s, want %s", i, c.stage, tt.want[i])
				}
			}
			if changes != tt.changes {
				t.Fatalf("%d stage changes, want %d", changes, tt.changes)
			}
		})
	}
}

// TestRuleOnDelayAndHysteresis drives one rule's timer.
func TestRuleOnDelayAndHysteresis(t *testing.T) {
	const sec = int64(1e9)
	tests := []struct {
		name  string
		delay int64
		x     []float64 // value per second; on >= 10, stay >= 8
		want  []bool
	}{
		{"no delay needs one sample", 0, []float64{9, 10, 9, 7}, []bool{false, true, true, false}},
		{"3 s on-delay", 3 * sec, []float64{10, 10, 10, 10, 10}, []bool{false, false, false, true, true}},
		{"dip below stay restarts the delay", 3 * sec, []float64{10, 10, 7, 10, 10, 10, 10}, []bool{false, false, false, false, false, false, true}},
		{"hysteresis keeps it between stay and on", 0, []float64{10, 9, 8.5, 8, 7.9, 9}, []bool{true, true, true, true, false, false}},
		{"a delay needs two samples even if time has passed", 1, []float64{10, 10}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r ruleState
			for i, x := range tt.x {
				got := r.eval(int64(i)*sec, x >= 10, x >= 8, tt.delay, x, 10)
				if got != tt.want[i] {
					t.Fatalf("sample %d (%g): active %v, want %v", i, x, got, tt.want[i])
				}
			}
		})
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median %g", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median %g", m)
	}
	big := make([]float64, 101)
	for i := range big {
		big[i] = float64((i * 37) % 101)
	}
	if m := median(big); m != 50 {
		t.Fatalf("median of 0..100 = %g", m)
	}
	even := make([]float64, 100)
	for i := range even {
		even[i] = float64((i * 37) % 100)
	}
	if m := median(even); m != 49.5 {
		t.Fatalf("median of 0..99 = %g", m)
	}
	p := make([]float64, 100)
	for i := range p {
		p[i] = float64(100 - i)
	}
	if v := percentile(p, 10); v != 10 {
		t.Fatalf("p10 = %g", v)
	}
}

func TestSeriesSlopeIsPeriodIndependent(t *testing.T) {
	for _, period := range []float64{0.1, 0.5, 1, 5, 10} {
		tb, vb := make([]float64, ringCap), make([]float64, ringCap)
		s := newSeries(tb, vb)
		window := max(60, 12*period)
		var now float64
		for i := 0; i < 500; i++ {
			now = float64(i) * period
			s.add(now, 2+0.5*now/60, window/float64(ringCap-4)) // 0.5 per minute
		}
		sl, ok := s.slope(now, window, 3)
		if !ok || sl*60 < 0.499 || sl*60 > 0.501 {
			t.Fatalf("period %g: slope %g/min ok=%v", period, sl*60, ok)
		}
	}
}
