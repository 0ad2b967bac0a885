package blackbox

import (
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
)

// A block whose rounds all left the window is written again before a
// never-used one, so a generous budget is only paged in when the window
// needs it; and once allocated, turning the ring does not allocate.
func TestExpiredBlocksAreReusedFirst(t *testing.T) {
	ps := []*drivers.Point{drivers.NewPoint("gas.h2.ppm", "ppm", drivers.KindNumber)}
	// 8 blocks of 1,000 bytes; a changing 1-point round is 9+1+9 = 19 bytes.
	r, err := New("rack-a", ps, 10*time.Second, 8000)
	if err != nil {
		t.Fatal(err)
	}
	rs := []drivers.Reading{{Point: ps[0]}}
	at := time.Unix(0, 0)
	step := func() {
		at = at.Add(100 * time.Millisecond)
		rs[0].Value++
		r.Record(at, rs, nil)
	}
	for range 1000 { // the ring allocates the blocks the window needs
		step()
	}
	allocs := testing.AllocsPerRun(20000, step)
	if allocs != 0 {
		t.Fatalf("Record allocates %v times per round while the ring turns", allocs)
	}
	// 10 s is 100 rounds, about 2 blocks of 52 rounds: 3 blocks at most.
	if used := numBlocks - len(r.free); used > 3 {
		t.Fatalf("%d blocks paged in for a window that needs 3", used)
	}
	s := r.Freeze()
	if s.Len() != 101 || s.Span() != 10*time.Second {
		t.Fatalf("%d rounds over %v, want the last 10 s", s.Len(), s.Span())
	}
}
