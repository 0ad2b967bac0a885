package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

// fakeClock is a settable clock for scripts.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// builtinProfiles loads the embedded firmware profiles.
func builtinProfiles(t testing.TB) *profile.Set {
	t.Helper()
	set, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		t.Fatalf("load built-in profiles: %v", err)
	}
	return set
}

// startSim builds and starts a simulation from YAML config text.
func startSim(t testing.TB, yml string, profiles Profiles, opts ...Option) *Sim {
	t.Helper()
	cfg, err := ParseConfig("test.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, profiles, nil, opts...)
	if err != nil {
		t.Fatalf("new sim: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sim: %v", err)
		}
	})
	return s
}

// client opens a simonvetter client on url.
func client(t testing.TB, url string, unit uint8, timeout time.Duration) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: url, Timeout: timeout, Speed: 115200,
		DataBits: 8, Parity: modbus.PARITY_NONE, StopBits: 1})
	if err != nil {
		t.Fatalf("client %s: %v", url, err)
	}
	if err := c.Open(); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	c.SetUnitId(unit)
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads n holding registers from addr in chunks of 125.
func readAll(t testing.TB, c *modbus.ModbusClient, addr uint16, n int) []uint16 {
	t.Helper()
	var out []uint16
	for n > 0 {
		q := min(n, 125)
		r, err := c.ReadRegisters(addr, uint16(q), modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatalf("read %d+%d: %v", addr, q, err)
		}
		out = append(out, r...)
		addr += uint16(q)
		n -= q
	}
	return out
}
