package sensor

import (
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

func TestCurve(t *testing.T) {
	c, err := newCurve([]profile.CurvePoint{{0.4, 0}, {1.2, 50}, {2.0, 150}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ x, want float64 }{
		{0.4, 0}, {0.8, 25}, {1.2, 50}, {1.6, 100}, {2.0, 150},
		{0.36, -2.5}, // below: first segment's slope
		{2.1, 162.5}, // above: last segment's slope
	} {
		if got := c.at(tc.x); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("at(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	for _, bad := range [][]profile.CurvePoint{{{1, 1}}, {{1, 1}, {1, 2}}, {{2, 1}, {1, 2}}} {
		if _, err := newCurve(bad); err == nil {
			t.Errorf("newCurve(%v): no error", bad)
		}
	}
}

func BenchmarkCurve(b *testing.B) {
	c, _ := newCurve([]profile.CurvePoint{{4, 0}, {8, 100}, {12, 300}, {16, 600}, {20, 1000}})
	x := 4.0
	for b.Loop() {
		x += 0.001
		if x > 20 {
			x = 4
		}
		_ = c.at(x)
	}
}
