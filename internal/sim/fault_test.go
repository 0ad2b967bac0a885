package sim

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

func TestFaultInjection(t *testing.T) {
	s := startSim(t, `
devices:
  - {id: r, profile: sunspec, listen: "tcp://127.0.0.1:0", rack: {strings: 1, modules: 1, cells: 2}}
`, builtinProfiles(t))
	c := client(t, s.Addr("r"), 1, 200*time.Millisecond)
	read := func() error {
		_, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER)
		return err
	}
	must(t, read())

	// Exceptions, everywhere or on a range only.
	must(t, s.SetFault("r", Fault{Mode: FaultException, Code: 6}))
	if err := read(); !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Errorf("busy fault: %v", err)
	}
	must(t, s.SetFault("r", Fault{Mode: FaultException, From: 40100, To: 40200}))
	must(t, read())
	if _, err := c.ReadRegisters(40150, 4, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrServerDeviceFailure) {
		t.Errorf("ranged fault: %v", err)
	}

	// Timeout: the request is never answered. simonvetter does not
	// reconnect by itself after a transport error, so reopen.
	must(t, s.SetFault("r", Fault{Mode: FaultTimeout}))
	start := time.Now()
	if err := read(); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("timeout fault: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("timed out after %v, before the client timeout", d)
	}
	must(t, s.SetFault("r", Fault{}))
	c.Close()
	must(t, c.Open())
	must(t, read())

	// Kill: connections drop and new ones are refused; restart on the
	// same address.
	addr := s.Addr("r")
	must(t, s.Kill("r"))
	if err := read(); err == nil {
		t.Error("read after kill succeeded")
	}
	c.Close()
	if err := c.Open(); err == nil {
		if err := read(); err == nil {
			t.Error("new connection after kill answered")
		}
		c.Close()
	}
	must(t, s.Restart("r"))
	if s.Addr("r") != addr {
		t.Errorf("restarted on %s, was %s", s.Addr("r"), addr)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		c.Close()
		if err := c.Open(); err != nil {
			return err
		}
		return read()
	})
}

// TestSimRTU serves two devices on one RTU line (a PTY pair) and a third
// over RTU-over-TCP, read by simonvetter rtu:// and rtuovertcp:// clients.
func TestSimRTU(t *testing.T) {
	a, b := testenv.StartPTYPair(t)
	s := startSim(t, fmt.Sprintf(`
devices:
  - {id: r1, profile: sunspec, listen: "rtu:%s", speed: 115200, unit_id: 1, rack: {strings: 1, modules: 1, cells: 3}}
  - {id: ups, profile: apc-smart-ups-modbus, listen: "rtu:%s", speed: 115200, unit_id: 5, values: {battery.charge.percent: 50}}
  - {id: r3, profile: sunspec, listen: "rtuovertcp://127.0.0.1:0", unit_id: 9, rack: {strings: 2, modules: 1, cells: 1}}
`, a, a), builtinProfiles(t))
	if s.Addr("r1") != "rtu:"+a {
		t.Errorf("Addr = %s", s.Addr("r1"))
	}
	c := client(t, "rtu://"+b, 1, 300*time.Millisecond)
	ch := walkChain(t, c, 40000)
	if last := ch[len(ch)-1]; last.id != 805 || last.regs[4] != 3 {
		t.Errorf("unit 1: last model %d NCell %d", last.id, last.regs[4])
	}
	c.SetUnitId(5)
	if r := readAll(t, c, 130, 1); r[0] != 50*512 {
		t.Errorf("unit 5 charge raw %d", r[0])
	}
	// A unit id nobody serves on the line: silence.
	c.SetUnitId(2)
	if _, err := c.ReadRegisters(130, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("unit 2: %v", err)
	}
	// A timeout fault on one device leaves the other answering.
	must(t, s.SetFault("ups", Fault{Mode: FaultTimeout}))
	c.SetUnitId(5)
	if _, err := c.ReadRegisters(130, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("silent unit 5: %v", err)
	}
	c.SetUnitId(1)
	readAll(t, c, 40000, 2)
	must(t, s.SetFault("ups", Fault{Mode: FaultException, Code: 2}))
	c.SetUnitId(5)
	if _, err := c.ReadRegisters(130, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("exception on unit 5: %v", err)
	}

	// Kill and restart the line's slave: the PTY stays, the slave reopens it.
	must(t, s.SetFault("ups", Fault{}))
	must(t, s.Kill("r1"))
	c.SetUnitId(1)
	if _, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("killed line: %v", err)
	}
	must(t, s.Restart("r1"))
	testenv.WaitFor(t, 5*time.Second, func() error {
		_, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER)
		return err
	})
	c.Close()

	tc := client(t, s.Addr("r3"), 9, time.Second)
	ch = walkChain(t, tc, 40000)
	if ch[2].id != 803 || ch[2].regs[2] != 2 {
		t.Errorf("rtuovertcp: 803 NStr %v", ch[2].regs[2])
	}
}

// TestFaultSchedule follows a configured fault timeline on a fake clock.
func TestFaultSchedule(t *testing.T) {
	clock := newFakeClock()
	s := startSim(t, `
tick: 1h
devices:
  - id: r
    profile: sunspec
    listen: tcp://127.0.0.1:0
    rack: {strings: 1, modules: 1, cells: 1}
    faults:
      - {at: 10s, for: 10s, mode: exception, code: 6}
      - {at: 30s, for: 10s, mode: kill}
      - {at: 50s, mode: timeout}
`, builtinProfiles(t), WithClock(clock))
	t0 := clock.Now()
	c := client(t, s.Addr("r"), 1, 200*time.Millisecond)
	read := func() error {
		_, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER)
		return err
	}
	at := func(d time.Duration) {
		s.applySchedules(t0.Add(d))
	}
	at(5 * time.Second)
	must(t, read())
	at(12 * time.Second)
	if err := read(); !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Errorf("at 12s: %v", err)
	}
	at(25 * time.Second)
	must(t, read())
	at(35 * time.Second)
	if err := read(); err == nil {
		t.Error("at 35s (killed): read succeeded")
	}
	at(45 * time.Second)
	testenv.WaitFor(t, 5*time.Second, func() error {
		c.Close()
		if err := c.Open(); err != nil {
			return err
		}
		return read()
	})
	at(55 * time.Second)
	if err := read(); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("at 55s: %v", err)
	}
	if f, _ := s.Device("r"); f.Fault().Mode != FaultTimeout {
		t.Errorf("fault %v", f.Fault().Mode)
	}
}
