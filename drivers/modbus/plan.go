package modbus

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// request is one read of the plan.
type request struct {
	sp   space
	addr uint16
	qty  uint16
	off  int // where its registers start in the poller's buffer
}

// Protocol limits per read (Modbus application protocol 1.1b3, 6.1-6.4).
const (
	maxRegsPerRead = 125
	maxBitsPerRead = 2000
)

// planLimits are a device's request-planning quirks.
type planLimits struct {
	maxRegs    int
	maxGap     int
	unreadable []profile.AddrRange
}

type item struct {
	sp     space
	lo, hi int // registers [lo, hi)
}

// plan groups the slots into the fewest reads: each read holds at most
// maxRegs registers (2000 bits for coils and discrete inputs), neighbours
// are merged across gaps of at most maxGap unused registers, no read spans
// an unreadable range or mixes spaces, and a point's scale-factor register
// is read in the same request when both fit in one read.
//
// Greedy left-to-right packing is optimal here: each read starts at the
// first register not yet covered and takes every following item that fits,
// so no plan with fewer reads can exist for the same constraints.
// plan fills each slot's req and buffer offsets and returns the requests
// and the buffer size they need.
func plan(slots []slot, lim planLimits) ([]request, int, error) {
	items := make([]item, 0, len(slots)+8)
	for i := range slots {
		s := &slots[i]
		if s.absent {
			continue
		}
		it := item{s.sp, int(s.addr), int(s.addr) + int(s.n)}
		if it.hi-it.lo > limitFor(s.sp, lim) {
			return nil, 0, fmt.Errorf("point at %s %d: %d registers do not fit one read of %d", s.sp, s.addr, it.hi-it.lo, limitFor(s.sp, lim))
		}
		if r, bad := hitsUnreadable(lim.unreadable, s.sp, it.lo, it.hi); bad {
			return nil, 0, fmt.Errorf("point at %s %d lies in unreadable range %d-%d", s.sp, s.addr, r.From, r.To)
		}
		if s.hasSF && !s.sfAbsent {
			sf := item{s.sp, int(s.sfAddr), int(s.sfAddr) + 1}
			if r, bad := hitsUnreadable(lim.unreadable, s.sp, sf.lo, sf.hi); bad {
				return nil, 0, fmt.Errorf("scale factor at %s %d lies in unreadable range %d-%d", s.sp, s.sfAddr, r.From, r.To)
			}
			both := item{s.sp, min(it.lo, sf.lo), max(it.hi, sf.hi)}
			if _, bad := hitsUnreadable(lim.unreadable, s.sp, both.lo, both.hi); !bad &&
				both.hi-both.lo <= limitFor(s.sp, lim) {
				it = both
			} else {
				items = append(items, sf)
			}
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := cmp.Compare(a.sp, b.sp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.hi, b.hi)
	})
	var reqs []request
	var cur item
	have := false
	flush := func() {
		if have {
			reqs = append(reqs, request{sp: cur.sp, addr: uint16(cur.lo), qty: uint16(cur.hi - cur.lo)})
		}
	}
	for _, it := range items {
		if have && it.sp == cur.sp {
			hi := max(cur.hi, it.hi)
			gap := it.lo - cur.hi
			if hi-cur.lo <= limitFor(it.sp, lim) && gap <= lim.maxGap {
				if _, bad := hitsUnreadable(lim.unreadable, it.sp, cur.lo, hi); !bad {
					cur.hi = hi
					continue
				}
			}
		}
		flush()
		cur, have = it, true
	}
	flush()
	size := 0
	for i := range reqs {
		reqs[i].off = size
		size += int(reqs[i].qty)
	}
	for i := range slots {
		s := &slots[i]
		s.req, s.sfReq = -1, -1
		if s.absent {
			continue
		}
		s.req, s.bufOff = locate(reqs, s.sp, int(s.addr), int(s.n), -1)
		if s.req < 0 {
			return nil, 0, fmt.Errorf("internal: point at %s %d not covered by the plan", s.sp, s.addr)
		}
		if s.hasSF && !s.sfAbsent {
			s.sfReq, s.sfBufOff = locate(reqs, s.sp, int(s.sfAddr), 1, s.req)
			if s.sfReq < 0 {
				return nil, 0, fmt.Errorf("internal: scale factor at %s %d not covered by the plan", s.sp, s.sfAddr)
			}
		}
	}
	return reqs, size, nil
}

func limitFor(sp space, lim planLimits) int {
	if sp.bits() {
		return maxBitsPerRead
	}
	return lim.maxRegs
}

func hitsUnreadable(rs []profile.AddrRange, sp space, lo, hi int) (profile.AddrRange, bool) {
	for _, r := range rs {
		rsp, err := parseSpace(r.Space)
		if err != nil || rsp != sp {
			continue
		}
		if lo <= int(r.To) && int(r.From) < hi {
			return r, true
		}
	}
	return profile.AddrRange{}, false
}

// locate finds the request covering [addr, addr+n) of sp, preferring the
// request prefer; it returns the request and the buffer offset.
func locate(reqs []request, sp space, addr, n, prefer int) (int, int) {
	in := func(r *request) bool {
		return r.sp == sp && int(r.addr) <= addr && addr+n <= int(r.addr)+int(r.qty)
	}
	if prefer >= 0 && in(&reqs[prefer]) {
		r := &reqs[prefer]
		return prefer, r.off + addr - int(r.addr)
	}
	for i := range reqs {
		if in(&reqs[i]) {
			return i, reqs[i].off + addr - int(reqs[i].addr)
		}
	}
	return -1, 0
}
