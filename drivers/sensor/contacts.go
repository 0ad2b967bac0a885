package sensor

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// input is one GPIO input, sampled once per round and debounced in software.
// Several points may read one input (its level and its change count).
type input struct {
	pin       gpio.PinIO
	activeLow bool
	debounce  time.Duration

	primed    bool       // a first level has been taken
	stable    gpio.Level // the debounced level
	pending   bool       // a different level has been seen since candSince
	cand      gpio.Level
	candSince time.Time
	changes   uint64 // debounced level changes since start
}

// sample reads the pin and applies the debounce rule: a new level is taken
// once it has been seen continuously (on every sample) for at least the
// debounce time. The first sample is taken as is, so that an alarm present
// at start-up is reported at once. Since the pin is only looked at when the
// agent polls, a glitch between two samples is invisible and a level seen on
// two samples debounce apart is assumed held in between: the effective
// debounce is the debounce time rounded up to whole poll intervals.
func (in *input) sample(now time.Time) {
	l := in.pin.Read()
	switch {
	case !in.primed:
		in.stable, in.primed = l, true
		return
	case l == in.stable:
		in.pending = false
		return
	case !in.pending || l != in.cand:
		in.pending, in.cand, in.candSince = true, l, now
	}
	if now.Sub(in.candSince) >= in.debounce {
		in.stable, in.pending = l, false
		in.changes++
	}
}

// active reports the debounced level as the point's truth.
func (in *input) active() bool { return (in.stable == gpio.High) != in.activeLow }

// Beacon drives a local alarm beacon or sounder through a GPIO output (a
// relay or transistor stage). It is safe for concurrent use: the alert path
// may switch it while the sampling loop polls.
type Beacon struct {
	mu        sync.Mutex
	pin       gpio.PinIO
	activeLow bool
	on        bool
}

// NewBeacon sets pin up as an output with the beacon off.
func NewBeacon(pin gpio.PinIO, activeLow bool) (*Beacon, error) {
	b := &Beacon{pin: pin, activeLow: activeLow}
	if err := b.Set(false); err != nil {
		return nil, err
	}
	return b, nil
}

// Set turns the beacon on or off.
func (b *Beacon) Set(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := gpio.Level(on != b.activeLow)
	if err := b.pin.Out(l); err != nil {
		return fmt.Errorf("beacon %s: drive %v: %w", b.pin.Name(), l, err)
	}
	b.on = on
	return nil
}

// On reports whether the beacon was last switched on.
func (b *Beacon) On() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.on
}
