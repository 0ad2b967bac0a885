package rtu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/goburrow/serial"
	"github.com/simonvetter/modbus"
)

// ErrNoResponse is returned by a handler that wants the request left
// unanswered.
var ErrNoResponse = errors.New("rtu: no response")

// CRC computes Modbus's CRC-16 (init 0xFFFF, reflected polynomial 0xA001).
// On the wire it is sent low byte first.
func CRC(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendCRC appends b's CRC, low byte first.
func AppendCRC(b []byte) []byte {
	c := CRC(b)
	return append(b, byte(c), byte(c>>8))
}

// UnitChecker is implemented by handlers that serve only some unit ids;
// frames for the others are left unanswered.
type UnitChecker interface {
	ServesUnit(unit uint8) bool
}

// Server answers RTU requests with Handler.
type Server struct {
	Handler modbus.RequestHandler
	Log     *slog.Logger
	// Gap is how long a link may stay silent inside a frame before the
	// partial frame is discarded. Defaults to 50 ms.
	Gap time.Duration
}

// isTimeout reports whether err is a link read timeout rather than a failure.
func isTimeout(err error) bool {
	if errors.Is(err, serial.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Serve reads and answers frames on l until ctx ends or l fails. l's Read
// must return a timeout error (serial.ErrTimeout, a net deadline) now and
// then so that cancellation is noticed; conns get a deadline set by Serve.
func (s *Server) Serve(ctx context.Context, l io.ReadWriter) error {
	gap := s.Gap
	if gap == 0 {
		gap = 50 * time.Millisecond
	}
	conn, _ := l.(net.Conn)
	var (
		buf  = make([]byte, 0, 512)
		tmp  = make([]byte, 256)
		last time.Time
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		if conn != nil {
			_ = conn.SetReadDeadline(time.Now().Add(gap))
		}
		n, err := l.Read(tmp)
		now := time.Now()
		if n > 0 {
			if len(buf) > 0 && now.Sub(last) > 4*gap {
				buf = buf[:0] // silence inside a frame: a new frame starts
			}
			last = now
			buf = append(buf, tmp[:n]...)
			buf = s.frames(buf, false, l)
		}
		if err != nil {
			if isTimeout(err) {
				if len(buf) > 0 && now.Sub(last) >= gap {
					s.frames(buf, true, l)
					buf = buf[:0]
				}
				continue
			}
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rtu: read: %w", err)
		}
	}
}

// frames handles every complete frame at the start of buf and returns what
// is left. At a gap, an unparsable remainder with a good CRC is an unknown
// function code: it is answered "illegal function".
func (s *Server) frames(buf []byte, gap bool, w io.Writer) []byte {
	for len(buf) >= 4 {
		n := frameLen(buf)
		if n == 0 { // unknown function code: only a gap delimits it
			if i := nextFrame(buf); i > 0 {
				buf = buf[i:] // garbage before a good frame
				continue
			}
			if gap && CRC(buf[:len(buf)-2]) == uint16(buf[len(buf)-2])|uint16(buf[len(buf)-1])<<8 {
				s.reply(w, buf[0], exception(buf[0], buf[1], 1))
			}
			if gap {
				return buf[:0]
			}
			return buf
		}
		if len(buf) < n {
			return buf
		}
		f := buf[:n]
		if CRC(f[:n-2]) != uint16(f[n-2])|uint16(f[n-1])<<8 {
			buf = buf[1:] // resynchronise
			continue
		}
		s.handle(w, f[:n-2])
		buf = buf[n:]
	}
	return buf
}

// nextFrame returns the offset of the first complete frame with a good CRC
// after buf[0], or 0.
func nextFrame(buf []byte) int {
	for i := 1; i+4 <= len(buf); i++ {
		n := frameLen(buf[i:])
		if n > 0 && i+n <= len(buf) && CRC(buf[i:i+n-2]) == uint16(buf[i+n-2])|uint16(buf[i+n-1])<<8 {
			return i
		}
	}
	return 0
}

// frameLen returns a request's length from its function code, 0 when the
// code is unknown, or a lower bound when more bytes are needed to tell.
func frameLen(b []byte) int {
	switch b[1] {
	case 1, 2, 3, 4, 5, 6:
		return 8
	case 15, 16:
		if len(b) < 7 {
			return 7
		}
		return 9 + int(b[6])
	}
	return 0
}

func exception(unit, fc, code byte) []byte {
	return []byte{unit, fc | 0x80, code}
}

func (s *Server) reply(w io.Writer, unit byte, pdu []byte) {
	if unit == 0 { // broadcast: never answered
		return
	}
	if _, err := w.Write(AppendCRC(pdu)); err != nil && s.Log != nil {
		s.Log.Warn("rtu write", "err", err)
	}
}

// handle answers one frame without its CRC.
func (s *Server) handle(w io.Writer, f []byte) {
	unit, fc := f[0], f[1]
	if unit == 0 {
		return
	}
	if uc, ok := s.Handler.(UnitChecker); ok && !uc.ServesUnit(unit) {
		return // another slave's frame
	}
	if fc < 1 || fc > 4 {
		s.reply(w, unit, exception(unit, fc, 1)) // the simulator is read-only
		return
	}
	addr := uint16(f[2])<<8 | uint16(f[3])
	qty := uint16(f[4])<<8 | uint16(f[5])
	max := uint16(125)
	if fc <= 2 {
		max = 2000
	}
	if qty == 0 || qty > max {
		s.reply(w, unit, exception(unit, fc, 3))
		return
	}
	if uint32(addr)+uint32(qty) > 1<<16 {
		s.reply(w, unit, exception(unit, fc, 2))
		return
	}
	out := []byte{unit, fc, 0}
	var err error
	switch fc {
	case 1, 2:
		var bits []bool
		if fc == 1 {
			bits, err = s.Handler.HandleCoils(&modbus.CoilsRequest{UnitId: unit, Addr: addr, Quantity: qty})
		} else {
			bits, err = s.Handler.HandleDiscreteInputs(&modbus.DiscreteInputsRequest{UnitId: unit, Addr: addr, Quantity: qty})
		}
		if err == nil && len(bits) != int(qty) {
			err = modbus.ErrServerDeviceFailure
		}
		if err == nil {
			packed := make([]byte, (len(bits)+7)/8)
			for i, b := range bits {
				if b {
					packed[i/8] |= 1 << (i % 8)
				}
			}
			out[2] = byte(len(packed))
			out = append(out, packed...)
		}
	case 3, 4:
		var regs []uint16
		if fc == 3 {
			regs, err = s.Handler.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{UnitId: unit, Addr: addr, Quantity: qty})
		} else {
			regs, err = s.Handler.HandleInputRegisters(&modbus.InputRegistersRequest{UnitId: unit, Addr: addr, Quantity: qty})
		}
		if err == nil && len(regs) != int(qty) {
			err = modbus.ErrServerDeviceFailure
		}
		if err == nil {
			out[2] = byte(2 * len(regs))
			for _, r := range regs {
				out = append(out, byte(r>>8), byte(r))
			}
		}
	}
	if errors.Is(err, ErrNoResponse) {
		return
	}
	if err != nil {
		s.reply(w, unit, exception(unit, fc, exceptionCode(err)))
		return
	}
	s.reply(w, unit, out)
}

// exceptionCode maps simonvetter's errors back to exception codes.
func exceptionCode(err error) byte {
	var me modbus.Error
	if errors.As(err, &me) {
		switch me {
		case modbus.ErrIllegalFunction:
			return 1
		case modbus.ErrIllegalDataAddress:
			return 2
		case modbus.ErrIllegalDataValue:
			return 3
		case modbus.ErrAcknowledge:
			return 5
		case modbus.ErrServerDeviceBusy:
			return 6
		case modbus.ErrMemoryParityError:
			return 8
		case modbus.ErrGWPathUnavailable:
			return 0x0A
		case modbus.ErrGWTargetFailedToRespond:
			return 0x0B
		}
	}
	return 4
}

// SerialConfig opens a serial port or PTY for the slave.
type SerialConfig struct {
	Path  string
	Speed int // default 9600
}

// OpenSerial opens a serial port (8N1) with a short read timeout, as Serve
// needs.
func OpenSerial(c SerialConfig) (serial.Port, error) {
	speed := c.Speed
	if speed == 0 {
		speed = 9600
	}
	p, err := serial.Open(&serial.Config{Address: c.Path, BaudRate: speed, DataBits: 8, StopBits: 1, Parity: "N", Timeout: 10 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("rtu: open %s: %w", c.Path, err)
	}
	return p, nil
}

// ServeTCP accepts RTU-over-TCP connections on ln and serves each until ctx
// ends or ln is closed. It closes ln and every connection when ctx ends and
// returns once they are done.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closeAll := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer func() {
		stop()
		closeAll()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("rtu: accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			if err := s.Serve(ctx, c); err != nil && s.Log != nil && ctx.Err() == nil {
				s.Log.Debug("rtu over tcp connection ended", "remote", c.RemoteAddr(), "err", err)
			}
		})
	}
}
