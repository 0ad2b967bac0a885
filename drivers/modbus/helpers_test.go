package modbus

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is a device on srv with short timeouts and backoff, so fault
// tests stay fast.
func testConfig(url string, unit int) Config {
	return Config{URL: url, UnitID: unit, Timeout: 200 * time.Millisecond,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
}

func mustPoller(t testing.TB, pool *Pool, cfg Config, prof *profile.Profile) *Poller {
	t.Helper()
	p, err := pool.NewPoller(cfg, prof)
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pollOnce prepares if needed and polls one round.
func pollOnce(t testing.TB, p *Poller) ([]drivers.Reading, error) {
	t.Helper()
	ctx := context.Background()
	if err := p.Prepare(ctx); err != nil {
		return nil, err
	}
	out := make([]drivers.Reading, len(p.Points()))
	err := p.Poll(ctx, out)
	return out, err
}

func byName(rs []drivers.Reading) map[string]drivers.Reading {
	m := make(map[string]drivers.Reading, len(rs))
	for _, r := range rs {
		m[r.Point.Name] = r
	}
	return m
}

func addr(a uint16) *uint16  { return &a }
func f64(v float64) *float64 { return &v }
func intp(v int) *int        { return &v }

// encode is the test's own register encoder (independent of the driver's
// decoder): raw bits of an n-register value, most significant word first,
// then reordered.
func encode(raw uint64, n int, wordLittle, byteLittle bool) []uint16 {
	w := make([]uint16, n)
	for i := range w {
		w[i] = uint16(raw >> (16 * (n - 1 - i)))
	}
	if wordLittle {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			w[i], w[j] = w[j], w[i]
		}
	}
	if byteLittle {
		for i := range w {
			w[i] = w[i]<<8 | w[i]>>8
		}
	}
	return w
}

func encodeString(s string, n int, byteLittle bool) []uint16 {
	b := make([]byte, 2*n)
	copy(b, s)
	w := make([]uint16, n)
	for i := range w {
		w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		if byteLittle {
			w[i] = w[i]<<8 | w[i]>>8
		}
	}
	return w
}

func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func setRegs(srv *modbustest.Server, unit uint8, sp modbustest.Space, a uint16, regs []uint16) {
	srv.Set(unit, sp, a, regs...)
}

func timeNow() time.Time { return time.Now() }
func sleepShort()        { time.Sleep(5 * time.Millisecond) }
