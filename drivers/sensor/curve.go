package sensor

import (
	"fmt"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// curve is a piecewise-linear calibration curve with strictly increasing x.
// Values beyond either end follow the end segment: a 4-20 mA transmitter is
// linear slightly past its nominal span (NAMUR NE 43 allows 3.8-20.5 mA),
// and clamping there would flatten a rising gas reading.
type curve []profile.CurvePoint

func newCurve(pts []profile.CurvePoint) (curve, error) {
	if len(pts) < 2 {
		return nil, fmt.Errorf("needs at least 2 points, got %d", len(pts))
	}
	for i := 1; i < len(pts); i++ {
		if !(pts[i][0] > pts[i-1][0]) {
			return nil, fmt.Errorf("x must increase strictly: point %d (x=%g) after x=%g", i, pts[i][0], pts[i-1][0])
		}
	}
	return curve(pts), nil
}

// at maps x through the curve.
func (c curve) at(x float64) float64 {
	// Curves are a handful of points; a linear scan beats a binary search.
	i := 1
	for i < len(c)-1 && x > c[i][0] {
		i++
	}
	a, b := c[i-1], c[i]
	return a[1] + (x-a[0])*(b[1]-a[1])/(b[0]-a[0])
}
