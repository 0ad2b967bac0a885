package sim

import (
	"fmt"
	"strings"
	"sync"
)

// Space is one of Modbus's four address spaces.
type Space uint8

const (
	Holding Space = iota
	Input
	Coil
	Discrete
	numSpaces
)

var spaceNames = [...]string{Holding: "holding", Input: "input", Coil: "coil", Discrete: "discrete"}

func (s Space) String() string { return spaceNames[s] }

// ParseSpace reads a profile's space name ("" is holding).
func ParseSpace(name string) (Space, error) {
	switch strings.ToLower(name) {
	case "", "holding":
		return Holding, nil
	case "input":
		return Input, nil
	case "coil":
		return Coil, nil
	case "discrete":
		return Discrete, nil
	}
	return 0, fmt.Errorf("unknown space %q (holding, input, coil, discrete)", name)
}

// Image is a device's register map: what each mapped address of each space
// holds. Reads of an address never mapped fail, as on a real device, with an
// illegal-data-address exception. The ticker writes while servers read, so
// access goes through a RWMutex; arrays are allocated only for spaces in use.
type Image struct {
	mu     sync.RWMutex
	regs   [numSpaces][]uint16 // holding, input (coil/discrete use 0/1)
	mapped [numSpaces][]uint64 // bitset of mapped addresses
}

// NewImage returns an empty image.
func NewImage() *Image { return &Image{} }

func (im *Image) space(sp Space) {
	if im.regs[sp] == nil {
		im.regs[sp] = make([]uint16, 1<<16)
		im.mapped[sp] = make([]uint64, 1<<16/64)
	}
}

// Write maps addr..addr+len(vals)-1 of sp and stores vals there.
func (im *Image) Write(sp Space, addr uint16, vals []uint16) error {
	if int(addr)+len(vals) > 1<<16 {
		return fmt.Errorf("write %s %d+%d: past address 65535", sp, addr, len(vals))
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	im.space(sp)
	copy(im.regs[sp][addr:], vals)
	for a := int(addr); a < int(addr)+len(vals); a++ {
		im.mapped[sp][a/64] |= 1 << (a % 64)
	}
	return nil
}

// Mapped reports whether every address of addr..addr+qty-1 is mapped.
func (im *Image) Mapped(sp Space, addr, qty uint16) bool {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return im.mappedLocked(sp, addr, qty)
}

func (im *Image) mappedLocked(sp Space, addr, qty uint16) bool {
	m := im.mapped[sp]
	if m == nil || int(addr)+int(qty) > 1<<16 {
		return false
	}
	for a := int(addr); a < int(addr)+int(qty); a++ {
		if m[a/64]&(1<<(a%64)) == 0 {
			return false
		}
	}
	return true
}

// ReadRegs copies qty registers from addr into dst (appending) or returns
// false when any of them is unmapped.
func (im *Image) ReadRegs(sp Space, addr, qty uint16, dst []uint16) ([]uint16, bool) {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if !im.mappedLocked(sp, addr, qty) {
		return dst, false
	}
	return append(dst, im.regs[sp][addr:int(addr)+int(qty)]...), true
}

// ReadBits is ReadRegs for coils and discrete inputs.
func (im *Image) ReadBits(sp Space, addr, qty uint16, dst []bool) ([]bool, bool) {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if !im.mappedLocked(sp, addr, qty) {
		return dst, false
	}
	for _, r := range im.regs[sp][addr : int(addr)+int(qty)] {
		dst = append(dst, r != 0)
	}
	return dst, true
}
