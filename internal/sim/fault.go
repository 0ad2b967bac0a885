package sim

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/sim/rtu"
)

// FaultMode is how a device misbehaves.
type FaultMode uint8

const (
	FaultNone      FaultMode = iota // answer normally
	FaultTimeout                    // never answer (the client times out)
	FaultException                  // answer every request with an exception
)

// Fault is an injected device fault. An exception fault may be limited to
// requests touching From..To (both zero = every request).
type Fault struct {
	Mode FaultMode
	// Code is the exception code (default 4, server device failure).
	Code     uint8
	From, To uint16
}

// SetFault injects f (Fault{} clears it). Requests already waiting on a
// timeout fault are released.
func (d *Device) SetFault(f Fault) {
	d.faultMu.Lock()
	d.fault = f
	close(d.faultCh)
	d.faultCh = make(chan struct{})
	d.faultMu.Unlock()
}

// Fault returns the device's injected fault.
func (d *Device) Fault() Fault {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	return d.fault
}

// errNoAnswer tells the TCP handler to hold the request.
var errNoAnswer = rtu.ErrNoResponse

// gate applies the injected fault to a request for addr..addr+qty-1. A
// timeout fault returns errNoAnswer.
func (d *Device) gate(addr, qty uint16) error {
	d.faultMu.Lock()
	f := d.fault
	d.faultMu.Unlock()
	switch f.Mode {
	case FaultTimeout:
		return errNoAnswer
	case FaultException:
		if f.From == 0 && f.To == 0 || uint32(addr) <= uint32(f.To) && uint32(addr)+uint32(qty)-1 >= uint32(f.From) {
			return exceptionError(f.Code)
		}
	}
	return nil
}

// exceptionError maps an exception code to the simonvetter error the server
// turns back into that code.
func exceptionError(code uint8) error {
	switch code {
	case 1:
		return modbus.ErrIllegalFunction
	case 2:
		return modbus.ErrIllegalDataAddress
	case 3:
		return modbus.ErrIllegalDataValue
	case 0, 4:
		return modbus.ErrServerDeviceFailure
	case 5:
		return modbus.ErrAcknowledge
	case 6:
		return modbus.ErrServerDeviceBusy
	case 8:
		return modbus.ErrMemoryParityError
	case 0x0A:
		return modbus.ErrGWPathUnavailable
	case 0x0B:
		return modbus.ErrGWTargetFailedToRespond
	}
	return modbus.ErrServerDeviceFailure
}

// handler serves the devices of one listener, one per unit id. It
// implements modbus.RequestHandler for both the simonvetter TCP server and
// the RTU slave.
type handler struct {
	units map[uint8]*Device
	// rtu: a silent device and an unknown unit id give no answer at all
	// (the RTU slave drops the request). Otherwise (TCP) a silent device
	// holds the request until the fault changes or ctx ends, and an unknown
	// unit id gets "gateway target failed to respond".
	rtu bool
	// ctx ends when the listener stops; it releases held requests.
	ctx atomic.Pointer[context.Context]
}

func (h *handler) setContext(ctx context.Context) { h.ctx.Store(&ctx) }

func (h *handler) done() <-chan struct{} {
	if c := h.ctx.Load(); c != nil {
		return (*c).Done()
	}
	return nil
}

func (h *handler) device(unit uint8) (*Device, error) {
	if d, ok := h.units[unit]; ok {
		return d, nil
	}
	if !h.rtu && len(h.units) == 1 && (unit == 0 || unit == 255) {
		// TCP devices commonly answer unit 0/255 as "this device".
		for _, d := range h.units {
			return d, nil
		}
	}
	if h.rtu {
		return nil, rtu.ErrNoResponse
	}
	return nil, modbus.ErrGWTargetFailedToRespond
}

// wait applies d's fault, holding a silent request on TCP.
func (h *handler) wait(d *Device, addr, qty uint16) error {
	for {
		d.faultMu.Lock()
		ch := d.faultCh
		d.faultMu.Unlock()
		err := d.gate(addr, qty)
		if !errors.Is(err, errNoAnswer) || h.rtu {
			return err
		}
		select {
		case <-ch:
		case <-h.done():
			return modbus.ErrServerDeviceFailure
		}
	}
}

// serve finds the unit's device, applies its faults and refuses writes:
// the simulator is a read-only device, as the agent never writes.
func (h *handler) serve(unit uint8, addr, qty uint16, write bool) (*Device, error) {
	d, err := h.device(unit)
	if err != nil {
		return nil, err
	}
	if err := h.wait(d, addr, qty); err != nil {
		return nil, err
	}
	if write {
		return nil, modbus.ErrIllegalFunction
	}
	return d, nil
}

func (h *handler) regs(unit uint8, sp Space, addr, qty uint16, write bool) ([]uint16, error) {
	d, err := h.serve(unit, addr, qty, write)
	if err != nil {
		return nil, err
	}
	out, ok := d.img.ReadRegs(sp, addr, qty, make([]uint16, 0, qty))
	if !ok {
		return nil, modbus.ErrIllegalDataAddress
	}
	return out, nil
}

func (h *handler) bits(unit uint8, sp Space, addr, qty uint16, write bool) ([]bool, error) {
	d, err := h.serve(unit, addr, qty, write)
	if err != nil {
		return nil, err
	}
	out, ok := d.img.ReadBits(sp, addr, qty, make([]bool, 0, qty))
	if !ok {
		return nil, modbus.ErrIllegalDataAddress
	}
	return out, nil
}

func (h *handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	return h.bits(req.UnitId, Coil, req.Addr, req.Quantity, req.IsWrite)
}

func (h *handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	return h.bits(req.UnitId, Discrete, req.Addr, req.Quantity, false)
}

func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	return h.regs(req.UnitId, Holding, req.Addr, req.Quantity, req.IsWrite)
}

func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.regs(req.UnitId, Input, req.Addr, req.Quantity, false)
}

var _ modbus.RequestHandler = (*handler)(nil)

func (m FaultMode) String() string {
	switch m {
	case FaultNone:
		return "none"
	case FaultTimeout:
		return "timeout"
	case FaultException:
		return "exception"
	}
	return fmt.Sprintf("FaultMode(%d)", m)
}
