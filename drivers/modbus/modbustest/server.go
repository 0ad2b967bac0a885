// Package modbustest runs real Modbus servers on loopback for tests: a
// simonvetter/modbus TCP server over register images (one per unit id), and
// a small RTU-framed TCP listener for rtuovertcp:// clients. Both answer
// "illegal data address" for registers the image does not define, can be
// told to answer other exceptions or to stall, count every request, and
// refuse writes (counting them, so tests can prove a client never writes).
package modbustest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/sim/rtu"
)

// Space selects a register or bit space.
type Space uint8

const (
	Holding Space = iota
	Input
	Coil
	Discrete
)

// Image is one unit's registers and bits. Unset addresses are undefined and
// answered with "illegal data address".
type Image struct {
	regs [4]map[uint16]uint16
	exc  [4]map[uint16]error
}

func newImage() *Image {
	im := &Image{}
	for i := range im.regs {
		im.regs[i] = map[uint16]uint16{}
		im.exc[i] = map[uint16]error{}
	}
	return im
}

// Read is one request the server received.
type Read struct {
	Unit uint8
	// Space read; Write is true for any write attempt (refused).
	Space Space
	Addr  uint16
	Qty   uint16
	Write bool
}

// Server serves images over Modbus TCP (simonvetter's server) on
// 127.0.0.1 with a dynamic port. It is safe for concurrent use.
type Server struct {
	// URL is tcp://127.0.0.1:PORT, stable across Stop/Start.
	URL  string
	Addr string

	t     testing.TB
	mu    sync.Mutex
	units map[uint8]*Image
	srv   *mb.ModbusServer
	log   []Read
	busy  int
	stall time.Duration
	up    bool
	quiet bool
	// TLS (tcp+tls://): the server's certificate and the CAs its clients'
	// certificates must chain to.
	tlsCert   *tls.Certificate
	clientCAs *x509.CertPool
}

// NewServer starts a server with an empty image for unit 1 and stops it in
// t.Cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	return newServer(t, "tcp", nil, nil)
}

// NewTLSServer starts a Modbus/TCP Security (tcp+tls://) server that
// requires client certificates chaining to clientCAs.
func NewTLSServer(t testing.TB, cert *tls.Certificate, clientCAs *x509.CertPool) *Server {
	t.Helper()
	return newServer(t, "tcp+tls", cert, clientCAs)
}

func newServer(t testing.TB, scheme string, cert *tls.Certificate, cas *x509.CertPool) *Server {
	t.Helper()
	s := &Server{t: t, units: map[uint8]*Image{1: newImage()}, tlsCert: cert, clientCAs: cas}
	var err error
	for range 20 { // another process may take the port between probe and bind
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.URL = scheme + "://" + s.Addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("modbustest: start server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: s.URL, Timeout: 30 * time.Second,
		MaxClients: 16, Logger: log.New(io.Discard, "", 0),
		TLSServerCert: s.tlsCert, TLSClientCAs: s.clientCAs}, &handler{s})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.srv, s.up = srv, true
	s.mu.Unlock()
	return nil
}

// Stop kills the server: the listener and every client connection close.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, up := s.srv, s.up
	s.up = false
	s.mu.Unlock()
	if up {
		srv.Stop()
	}
}

// Start restarts a stopped server on the same address.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	for range 50 { // the old socket may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("modbustest: restart on %s: %v", s.Addr, err)
}

// Unit returns unit id's image, creating it.
func (s *Server) Unit(id uint8) *Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	im, ok := s.units[id]
	if !ok {
		im = newImage()
		s.units[id] = im
	}
	return im
}

// Set defines registers (or bits: non-zero = on) of a unit from addr on.
func (s *Server) Set(unit uint8, sp Space, addr uint16, vals ...uint16) {
	im := s.Unit(unit)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range vals {
		im.regs[sp][addr+uint16(i)] = v
	}
}

// Undefine removes registers, so reads covering them get an exception.
func (s *Server) Undefine(unit uint8, sp Space, addr uint16, n int) {
	im := s.Unit(unit)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		delete(im.regs[sp], addr+uint16(i))
	}
}

// Get returns a register's value and whether it is defined.
func (s *Server) Get(unit uint8, sp Space, addr uint16) (uint16, bool) {
	im := s.Unit(unit)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := im.regs[sp][addr]
	return v, ok
}

// Exception makes reads covering addr answer err (a simonvetter exception
// such as modbus.ErrServerDeviceFailure); nil clears it.
func (s *Server) Exception(unit uint8, sp Space, addr uint16, err error) {
	im := s.Unit(unit)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(im.exc[sp], addr)
	} else {
		im.exc[sp][addr] = err
	}
}

// Busy makes the next n requests answer "server device busy".
func (s *Server) Busy(n int) {
	s.mu.Lock()
	s.busy = n
	s.mu.Unlock()
}

// Stall makes every request wait d before answering (0 = answer at once),
// to provoke client timeouts.
func (s *Server) Stall(d time.Duration) {
	s.mu.Lock()
	s.stall = d
	s.mu.Unlock()
}

// Quiet stops logging reads (writes are still logged), for benchmarks.
func (s *Server) Quiet() {
	s.mu.Lock()
	s.quiet = true
	s.mu.Unlock()
}

// Reads returns the requests received so far and clears the log.
func (s *Server) Reads() []Read {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.log
	s.log = nil
	return r
}

// serve answers one request against the images.
func (s *Server) serve(unit uint8, sp Space, addr, qty uint16, write bool) ([]uint16, error) {
	s.mu.Lock()
	if !s.quiet || write {
		s.log = append(s.log, Read{Unit: unit, Space: sp, Addr: addr, Qty: qty, Write: write})
	}
	stall := s.stall
	busy := s.busy > 0
	if busy {
		s.busy--
	}
	s.mu.Unlock()
	if stall > 0 {
		time.Sleep(stall)
	}
	if write {
		return nil, mb.ErrIllegalFunction
	}
	if busy {
		return nil, mb.ErrServerDeviceBusy
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	im, ok := s.units[unit]
	if !ok {
		return nil, mb.ErrGWTargetFailedToRespond
	}
	out := make([]uint16, qty)
	for i := range out {
		a := addr + uint16(i)
		if err, ok := im.exc[sp][a]; ok {
			return nil, err
		}
		v, ok := im.regs[sp][a]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

type handler struct{ s *Server }

func bools(v []uint16, err error) ([]bool, error) {
	if err != nil {
		return nil, err
	}
	b := make([]bool, len(v))
	for i, x := range v {
		b[i] = x != 0
	}
	return b, nil
}

func (h *handler) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	return bools(h.s.serve(req.UnitId, Coil, req.Addr, req.Quantity, req.IsWrite))
}

func (h *handler) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	return bools(h.s.serve(req.UnitId, Discrete, req.Addr, req.Quantity, false))
}

func (h *handler) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	return h.s.serve(req.UnitId, Holding, req.Addr, req.Quantity, req.IsWrite)
}

func (h *handler) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return h.s.serve(req.UnitId, Input, req.Addr, req.Quantity, false)
}

// RTUOverTCP serves the same images with RTU framing (address, PDU, CRC16)
// over TCP, for rtuovertcp:// clients: function codes 1-4, exceptions, and
// silence for frames with a bad CRC, as a serial slave would.
type RTUOverTCP struct {
	URL string
	s   *Server
	ln  net.Listener
	wg  sync.WaitGroup
}

// NewRTUOverTCP starts an RTU-framed listener over s's images on a dynamic
// loopback port, closed in t.Cleanup.
func NewRTUOverTCP(t testing.TB, s *Server) *RTUOverTCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("modbustest: rtu listener: %v", err)
	}
	r := &RTUOverTCP{URL: "rtuovertcp://" + ln.Addr().String(), s: s, ln: ln}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *RTUOverTCP) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			r.serveConn(c)
		}()
	}
}

func (r *RTUOverTCP) serveConn(c net.Conn) {
	frame := make([]byte, 8)
	for {
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		if rtu.CRC(frame[:6]) != uint16(frame[6])|uint16(frame[7])<<8 {
			continue // a serial slave stays silent on a bad CRC
		}
		unit, fc := frame[0], frame[1]
		addr := uint16(frame[2])<<8 | uint16(frame[3])
		qty := uint16(frame[4])<<8 | uint16(frame[5])
		var sp Space
		switch fc {
		case 1:
			sp = Coil
		case 2:
			sp = Discrete
		case 3:
			sp = Holding
		case 4:
			sp = Input
		default:
			r.s.serve(unit, Holding, addr, qty, true)
			writeRTU(c, []byte{unit, fc | 0x80, 1})
			continue
		}
		vals, err := r.s.serve(unit, sp, addr, qty, false)
		if err != nil {
			writeRTU(c, []byte{unit, fc | 0x80, exceptionCode(err)})
			continue
		}
		resp := []byte{unit, fc, 0}
		if sp == Coil || sp == Discrete {
			n := (len(vals) + 7) / 8
			bs := make([]byte, n)
			for i, v := range vals {
				if v != 0 {
					bs[i/8] |= 1 << (i % 8)
				}
			}
			resp[2] = byte(n)
			resp = append(resp, bs...)
		} else {
			resp[2] = byte(2 * len(vals))
			for _, v := range vals {
				resp = append(resp, byte(v>>8), byte(v))
			}
		}
		writeRTU(c, resp)
	}
}

func writeRTU(c net.Conn, pdu []byte) {
	crc := rtu.CRC(pdu)
	c.Write(append(pdu, byte(crc), byte(crc>>8)))
}

func exceptionCode(err error) byte {
	codes := []struct {
		err  error
		code byte
	}{
		{mb.ErrIllegalFunction, 1}, {mb.ErrIllegalDataAddress, 2}, {mb.ErrIllegalDataValue, 3},
		{mb.ErrServerDeviceFailure, 4}, {mb.ErrAcknowledge, 5}, {mb.ErrServerDeviceBusy, 6},
		{mb.ErrMemoryParityError, 8}, {mb.ErrGWPathUnavailable, 0x0A}, {mb.ErrGWTargetFailedToRespond, 0x0B},
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return 4
}
