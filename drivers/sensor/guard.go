package sensor

import (
	"context"
	"errors"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

var errBudget = errors.New("sensor: too many I2C transactions in one round (chip stuck busy?)")

// guardBus bounds what a chip driver may do on the bus in one round: it
// stops at ctx's end and after a budget of transactions. periph's bmxx80
// waits for the chip's busy flag in an unbounded loop; a chip stuck busy
// must cost one faulted round, not a hung sampling loop. It also keeps the
// last block read from a register, to check readings for the chip's reset
// values.
type guardBus struct {
	bus    i2c.Bus
	ctx    context.Context
	budget int

	watchReg byte    // register whose reads are kept in last
	last     [8]byte // the last read of watchReg
	lastN    int
}

// arm starts a round. Arm and the transactions run on one goroutine.
func (g *guardBus) arm(ctx context.Context, budget int) {
	g.ctx, g.budget, g.lastN = ctx, budget, 0
}

func (g *guardBus) Tx(addr uint16, w, r []byte) error {
	if g.ctx != nil {
		if err := g.ctx.Err(); err != nil {
			return err
		}
	}
	if g.budget <= 0 {
		return errBudget
	}
	g.budget--
	if err := g.bus.Tx(addr, w, r); err != nil {
		return err
	}
	if len(w) == 1 && w[0] == g.watchReg && len(r) > 0 {
		g.lastN = copy(g.last[:], r)
	}
	return nil
}

func (g *guardBus) SetSpeed(f physic.Frequency) error { return g.bus.SetSpeed(f) }
func (g *guardBus) String() string                    { return g.bus.String() }

// SCL and SDA pass the bus's pins through, when it has them.
func (g *guardBus) SCL() gpio.PinIO {
	if p, ok := g.bus.(i2c.Pins); ok {
		return p.SCL()
	}
	return gpio.INVALID
}

func (g *guardBus) SDA() gpio.PinIO {
	if p, ok := g.bus.(i2c.Pins); ok {
		return p.SDA()
	}
	return gpio.INVALID
}

var (
	_ i2c.Bus  = (*guardBus)(nil)
	_ i2c.Pins = (*guardBus)(nil)
)
