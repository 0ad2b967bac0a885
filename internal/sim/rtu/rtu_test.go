package rtu_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/sim/rtu"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

// regsHandler serves, per unit id, holding register a = unit*1000 + a over
// 0..99, coils with even addresses set, and exceptions beyond.
type regsHandler struct {
	units  map[uint8]bool
	mu     sync.Mutex
	silent bool
}

func (h *regsHandler) ServesUnit(u uint8) bool { return h.units[u] }

func (h *regsHandler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if int(req.Addr)+int(req.Quantity) > 100 {
		return nil, modbus.ErrIllegalDataAddress
	}
	out := make([]bool, req.Quantity)
	for i := range out {
		out[i] = (int(req.Addr)+i)%2 == 0
	}
	return out, nil
}

func (h *regsHandler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	return h.HandleCoils(&modbus.CoilsRequest{UnitId: req.UnitId, Addr: req.Addr, Quantity: req.Quantity})
}

func (h *regsHandler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	h.mu.Lock()
	silent := h.silent
	h.mu.Unlock()
	if silent {
		return nil, rtu.ErrNoResponse
	}
	if int(req.Addr)+int(req.Quantity) > 100 {
		return nil, modbus.ErrIllegalDataAddress
	}
	out := make([]uint16, req.Quantity)
	for i := range out {
		out[i] = uint16(int(req.UnitId)*1000 + int(req.Addr) + i)
	}
	return out, nil
}

func (h *regsHandler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return nil, modbus.ErrServerDeviceBusy
}

func TestCRC(t *testing.T) {
	// Known frame: read holding registers unit 1, addr 0, qty 10 -> C5 CD.
	got := rtu.AppendCRC([]byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A})
	if got[6] != 0xC5 || got[7] != 0xCD {
		t.Fatalf("CRC bytes = %02X %02X, want C5 CD", got[6], got[7])
	}
	if c := rtu.CRC([]byte("123456789")); c != 0x4B37 {
		t.Fatalf("CRC(123456789) = %04X, want 4B37 (CRC-16/MODBUS check value)", c)
	}
}

func newClient(t *testing.T, url string, timeout time.Duration) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: url, Speed: 115200, DataBits: 8,
		Parity: modbus.PARITY_NONE, StopBits: 1, Timeout: timeout})
	if err != nil {
		t.Fatalf("client %s: %v", url, err)
	}
	if err := c.Open(); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exercise checks two unit ids, coils, exceptions and silence for an
// unknown unit over any RTU transport.
func exercise(t *testing.T, c *modbus.ModbusClient, h *regsHandler) {
	for _, unit := range []uint8{1, 7} {
		c.SetUnitId(unit)
		regs, err := c.ReadRegisters(10, 5, modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatalf("unit %d read: %v", unit, err)
		}
		for i, r := range regs {
			if want := uint16(int(unit)*1000 + 10 + i); r != want {
				t.Fatalf("unit %d reg %d = %d, want %d", unit, 10+i, r, want)
			}
		}
	}
	c.SetUnitId(1)
	regs, err := c.ReadRegisters(0, 100, modbus.HOLDING_REGISTER)
	if err != nil || len(regs) != 100 || regs[99] != 1099 {
		t.Fatalf("read 100: %v, len %d", err, len(regs))
	}
	coils, err := c.ReadCoils(3, 11)
	if err != nil {
		t.Fatalf("coils: %v", err)
	}
	for i, b := range coils {
		if b != ((3+i)%2 == 0) {
			t.Fatalf("coil %d = %v", 3+i, b)
		}
	}
	if _, err := c.ReadDiscreteInputs(0, 8); err != nil {
		t.Fatalf("discrete: %v", err)
	}
	if _, err := c.ReadRegisters(95, 10, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Fatalf("read past the map: err = %v, want illegal data address", err)
	}
	if _, err := c.ReadRegisters(0, 1, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Fatalf("input: err = %v, want server device busy", err)
	}
	if err := c.WriteRegister(1, 5); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Fatalf("write: err = %v, want illegal function", err)
	}
	// Another slave's unit id: no answer at all.
	c.SetUnitId(9)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Fatalf("unknown unit: err = %v, want timeout", err)
	}
	// A silent handler: no answer; then the line works again.
	h.mu.Lock()
	h.silent = true
	h.mu.Unlock()
	c.SetUnitId(1)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Fatalf("silent: err = %v, want timeout", err)
	}
	h.mu.Lock()
	h.silent = false
	h.mu.Unlock()
}

func TestRTUOverPTY(t *testing.T) {
	a, b := testenv.StartPTYPair(t)
	h := &regsHandler{units: map[uint8]bool{1: true, 7: true}}
	port, err := rtu.OpenSerial(rtu.SerialConfig{Path: a, Speed: 115200})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer port.Close()
		done <- (&rtu.Server{Handler: h}).Serve(ctx, port)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	c := newClient(t, "rtu://"+b, 300*time.Millisecond)
	exercise(t, c, h)
	// Timeouts leave the simonvetter client usable on RTU: read again.
	c.SetUnitId(7)
	if regs, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); err != nil || regs[0] != 7000 {
		t.Fatalf("after timeouts: %v %v", regs, err)
	}
	c.Close()
}

func TestRTUOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &regsHandler{units: map[uint8]bool{1: true, 7: true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&rtu.Server{Handler: h}).ServeTCP(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	c := newClient(t, "rtuovertcp://"+ln.Addr().String(), 300*time.Millisecond)
	exercise(t, c, h)
}

// TestGarbageResync sends noise and a bad-CRC frame before a good one: the
// slave must skip them and answer the good frame only.
func TestGarbageResync(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &regsHandler{units: map[uint8]bool{1: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&rtu.Server{Handler: h}).ServeTCP(ctx, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bad := rtu.AppendCRC([]byte{1, 3, 0, 0, 0, 2})
	bad[7] ^= 0xFF
	good := rtu.AppendCRC([]byte{1, 3, 0, 4, 0, 2})
	msg := append([]byte{0xFF, 0x00}, bad...)
	msg = append(msg, good...)
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp := make([]byte, 9)
	if _, err := ioReadFull(conn, resp); err != nil {
		t.Fatalf("read response: %v", err)
	}
	want := rtu.AppendCRC([]byte{1, 3, 4, 0x03, 0xEC, 0x03, 0xED}) // 1004, 1005
	if string(resp) != string(want) {
		t.Fatalf("response % X, want % X", resp, want)
	}
	// Nothing else follows (the bad frame got no answer).
	conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if n, _ := conn.Read(resp); n != 0 {
		t.Fatalf("unexpected extra %d bytes", n)
	}
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
