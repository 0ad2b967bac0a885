package modbus

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emberwatch/emberwatch/drivers/profile"
)

// SunSpec markers (SunSpec Information Model Specification, "SunS" at the
// base register; the chain ends with ID 0xFFFF).
const (
	sunsHi, sunsLo = 0x5375, 0x6E53
	sunspecEnd     = 0xFFFF
	maxModels      = 512 // bounds a walk over a garbage chain
)

// DefaultSunSpecBases are tried when a profile lists none.
var defaultSunSpecBases = []uint16{40000, 0, 50000}

// ErrNotSunSpec says no base held the "SunS" marker.
var ErrNotSunSpec = errors.New("modbus: no SunSpec marker at any base address")

// layout is what discovery found on a device.
type layout struct {
	base   uint16
	models []modelInstance
}

// signature identifies a layout, to tell whether rediscovery changed it.
func (l *layout) signature() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", l.base)
	for _, m := range l.models {
		fmt.Fprintf(&b, ";%d@%d+%d", m.id, m.addr, m.length)
		keys := make([]string, 0, len(m.vars))
		for k := range m.vars {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, ",%s=%d", k, m.vars[k])
		}
	}
	return b.String()
}

// discoverSunSpec finds the base, walks the model chain and reads the index
// registers of the models the profile maps. Read errors other than
// exceptions abort discovery (the device is not answering).
func discoverSunSpec(read readFunc, ss *profile.SunSpec) (*layout, error) {
	bases := ss.Bases
	if len(bases) == 0 {
		bases = defaultSunSpecBases
	}
	hdr := make([]uint16, 2)
	found := false
	var l layout
	for _, base := range bases {
		err := read(spHolding, base, hdr)
		if err != nil {
			if c := classify(err); c == classAbsent || c == classException {
				continue
			}
			return nil, fmt.Errorf("read SunSpec marker at %d: %w", base, err)
		}
		if hdr[0] == sunsHi && hdr[1] == sunsLo {
			l.base, found = base, true
			break
		}
	}
	if !found {
		return nil, ErrNotSunSpec
	}
	addr := int(l.base) + 2
	for range maxModels {
		if addr+2 > 1<<16 {
			break
		}
		err := read(spHolding, uint16(addr), hdr)
		if err != nil {
			if c := classify(err); c == classAbsent || c == classException {
				break // chains without an end marker end at the first hole
			}
			return nil, fmt.Errorf("read SunSpec model header at %d: %w", addr, err)
		}
		if hdr[0] == sunspecEnd || (hdr[0] == 0 && hdr[1] == 0) {
			break
		}
		l.models = append(l.models, modelInstance{id: hdr[0], addr: uint16(addr), length: hdr[1]})
		addr += 2 + int(hdr[1])
	}
	for i := range l.models {
		mi := &l.models[i]
		mi.vars = map[string]int{}
		for k := range ss.Models {
			m := &ss.Models[k]
			if m.ID != mi.id || len(m.Index) == 0 {
				continue
			}
			lo, hi := 0xFFFF, 0
			for _, off := range m.Index {
				lo, hi = min(lo, int(off)), max(hi, int(off))
			}
			if hi >= int(mi.length)+2 {
				return nil, fmt.Errorf("SunSpec model %d at %d: index offset %d past its length %d", mi.id, mi.addr, hi, mi.length)
			}
			regs := make([]uint16, hi-lo+1)
			if err := read(spHolding, mi.addr+uint16(lo), regs); err != nil {
				return nil, fmt.Errorf("read SunSpec model %d index at %d: %w", mi.id, mi.addr, err)
			}
			for name, off := range m.Index {
				mi.vars[name] = int(regs[int(off)-lo])
			}
			break
		}
	}
	return &l, nil
}

// modelList is the chain's model ids in order, for Identity.Extra.
func (l *layout) modelList() string {
	var b strings.Builder
	for i, m := range l.models {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(m.id)))
	}
	return b.String()
}
