package detect

import "math"

// median returns the median of v, reordering v. len(v) must be > 0.
// Small groups (a module's cells) use insertion sort; large ones quickselect.
func median(v []float64) float64 {
	n := len(v)
	if n <= 24 {
		for i := 1; i < n; i++ {
			x := v[i]
			j := i - 1
			for ; j >= 0 && v[j] > x; j-- {
				v[j+1] = v[j]
			}
			v[j+1] = x
		}
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	if n%2 == 1 {
		return selectK(v, n/2)
	}
	a := selectK(v, n/2-1)
	// After selectK, v[n/2:] holds values >= a; the upper middle is their min.
	b := math.Inf(1)
	for _, x := range v[n/2:] {
		b = math.Min(b, x)
	}
	return (a + b) / 2
}

// selectK returns the k-th smallest value of v (0-based), reordering v so
// that v[:k] <= v[k] <= v[k+1:]. Deterministic middle pivot.
func selectK(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		p := v[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

// percentile returns the p-th percentile (0..100, nearest rank) of v,
// reordering v.
func percentile(v []float64, p float64) float64 {
	k := int(math.Ceil(p/100*float64(len(v)))) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(v) {
		k = len(v) - 1
	}
	return selectK(v, k)
}

// series is a fixed-capacity ring of (time, value) samples used for
// least-squares slopes over a time window. Samples closer together than
// minGap are skipped, so the ring covers the window whatever the sampling
// period (period-independent slopes with bounded memory).
type series struct {
	t, v []float64 // seconds since the detector's epoch; value
	head int       // next write position
	n    int
}

func newSeries(tbuf, vbuf []float64) series { return series{t: tbuf, v: vbuf} }

func (s *series) last() (float64, bool) {
	if s.n == 0 {
		return 0, false
	}
	i := s.head - 1
	if i < 0 {
		i += len(s.t)
	}
	return s.t[i], true
}

// add appends a sample unless it is within minGap of the last one.
func (s *series) add(t, v, minGap float64) {
	if lt, ok := s.last(); ok && t-lt < minGap {
		return
	}
	s.t[s.head], s.v[s.head] = t, v
	s.head++
	if s.head == len(s.t) {
		s.head = 0
	}
	if s.n < len(s.t) {
		s.n++
	}
}

func (s *series) reset() { s.head, s.n = 0, 0 }

// slope returns the least-squares slope (value units per second) of the
// samples no older than now-window, and whether there were at least minN
// samples spanning at least half the window.
func (s *series) slope(now, window float64, minN int) (float64, bool) {
	var n, st, sv float64
	first := math.Inf(1)
	c := len(s.t)
	for k, i := 0, s.head-1; k < s.n; k, i = k+1, i-1 {
		if i < 0 {
			i += c
		}
		if now-s.t[i] > window {
			break
		}
		n++
		st += s.t[i]
		sv += s.v[i]
		first = s.t[i]
	}
	if int(n) < minN || now-first < window/2 {
		return 0, false
	}
	mt, mv := st/n, sv/n
	var sxy, sxx float64
	for k, i := 0, s.head-1; k < int(n); k, i = k+1, i-1 {
		if i < 0 {
			i += c
		}
		dt := s.t[i] - mt
		sxy += dt * (s.v[i] - mv)
		sxx += dt * dt
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}
