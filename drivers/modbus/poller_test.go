package modbus

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// smallProfile has three points in three separate reads (gaps > max_gap).
func smallProfile() *profile.Profile {
	return &profile.Profile{ID: "small", Protocol: "modbus", Points: []profile.Point{
		{Name: "battery.voltage.volts", Type: "u16", Scale: &profile.Scale{Factor: f64(0.1)}, Unit: "V", ModbusAddr: profile.ModbusAddr{Address: addr(0)}},
		{Name: "battery.temperature.celsius", Type: "s16", Unit: "degC", ModbusAddr: profile.ModbusAddr{Address: addr(100)}},
		{Name: "battery.charge.percent", Type: "u16", Unit: "%", ModbusAddr: profile.ModbusAddr{Address: addr(200)}},
	}}
}

func serveSmall(srv *modbustest.Server, unit uint8, v uint16) {
	srv.Set(unit, modbustest.Holding, 0, v)
	srv.Set(unit, modbustest.Holding, 100, 25)
	srv.Set(unit, modbustest.Holding, 200, 90)
}

func TestExceptionsBecomePointFaults(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	srv.Undefine(1, modbustest.Holding, 100, 1)                          // illegal data address
	srv.Exception(1, modbustest.Holding, 200, mb.ErrServerDeviceFailure) // another exception
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), smallProfile())
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatalf("Poll: %v (a device answering exceptions is not a failed round)", err)
	}
	got := byName(out)
	if r := got["battery.voltage.volts"]; !r.OK() || r.Value != 50 {
		t.Errorf("voltage = %v %v", r.Value, r.Fault)
	}
	if r := got["battery.temperature.celsius"]; r.Fault != drivers.FaultAbsent {
		t.Errorf("undefined register: fault %v, want absent", r.Fault)
	}
	if r := got["battery.charge.percent"]; r.Fault != drivers.FaultException || !strings.Contains(r.Detail, "server device failure") {
		t.Errorf("device failure: fault %v %q, want exception", r.Fault, r.Detail)
	}
}

// TestProbeLearnsHoles: a device that refuses merged reads spanning
// undefined registers gets its points probed once; values arrive in the
// same round and later rounds skip the holes.
func TestProbeLearnsHoles(t *testing.T) {
	srv := modbustest.NewServer(t)
	prof := &profile.Profile{ID: "holes", Protocol: "modbus", Points: []profile.Point{
		{Name: "a.count", Type: "u16", ModbusAddr: profile.ModbusAddr{Address: addr(10)}},
		{Name: "b.count", Type: "u32", ModbusAddr: profile.ModbusAddr{Address: addr(14)}},
		{Name: "gone.count", Type: "u16", ModbusAddr: profile.ModbusAddr{Address: addr(20)}},
		{Name: "c.count", Type: "u16", ModbusAddr: profile.ModbusAddr{Address: addr(22)}},
		{Name: "d.volts", Type: "u16", Scale: &profile.Scale{SF: "D_SF"}, ModbusAddr: profile.ModbusAddr{Address: addr(24)}},
	}, ScaleFactors: map[string]uint16{"D_SF": 26}}
	srv.Set(1, modbustest.Holding, 24, 1234)
	srv.Set(1, modbustest.Holding, 26, 0xFFFE) // -2
	srv.Set(1, modbustest.Holding, 10, 7)
	srv.Set(1, modbustest.Holding, 14, 0, 9)
	srv.Set(1, modbustest.Holding, 22, 11)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
	if p.Requests() != 1 {
		t.Fatalf("plan: %d reads, want 1 merged", p.Requests())
	}
	for round := range 3 {
		srv.Reads()
		out, err := pollOnce(t, p)
		if err != nil {
			t.Fatal(err)
		}
		got := byName(out)
		for name, want := range map[string]float64{"a.count": 7, "b.count": 9, "c.count": 11, "d.volts": 12.34} {
			if r := got[name]; !r.OK() || !near(r.Value, want) {
				t.Errorf("round %d: %s = %v (%v), want %v", round, name, r.Value, r.Fault, want)
			}
		}
		if r := got["gone.count"]; r.Fault != drivers.FaultAbsent {
			t.Errorf("round %d: gone = %v, want absent", round, r.Fault)
		}
		if round > 0 {
			for _, rd := range srv.Reads() {
				if rd.Addr <= 20 && 20 < rd.Addr+rd.Qty || rd.Addr <= 12 && 12 < rd.Addr+rd.Qty || rd.Addr <= 25 && 25 < rd.Addr+rd.Qty {
					t.Errorf("round %d: read %+v spans a learned hole", round, rd)
				}
			}
		}
	}
}

func TestBusyRetries(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	pool := NewPool(testLog(t))
	cfg := testConfig(srv.URL, 1)
	cfg.BusyRetries = intp(2)
	p := mustPoller(t, pool, cfg, smallProfile())
	srv.Busy(2)
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if !r.OK() {
			t.Errorf("%s: %v after 2 busy answers and 2 retries", r.Point.Name, r.Fault)
		}
	}
	srv.Busy(3) // one more than retries: the first read fails
	out, _ = pollOnce(t, p)
	if out[0].Fault != drivers.FaultException || !strings.Contains(out[0].Detail, "busy") {
		t.Errorf("busy beyond retries: %v %q, want exception busy", out[0].Fault, out[0].Detail)
	}
}

// TestDeviceKilledAndBack: a device killed mid-run gives marked faults and
// an error, backoff makes later polls return at once, and the device is
// read again after it restarts.
func TestDeviceKilledAndBack(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), smallProfile())
	ctx := context.Background()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := p.Poll(ctx, out); err == nil {
		t.Fatal("Poll of a killed device returned no error")
	}
	for _, r := range out {
		if r.OK() {
			t.Errorf("%s: good value %v from a killed device", r.Point.Name, r.Value)
		}
	}
	start := time.Now()
	err := p.Poll(ctx, out)
	if el := time.Since(start); el > 20*time.Millisecond {
		t.Errorf("Poll while backing off took %v, want immediate", el)
	}
	if err == nil || out[0].Fault != drivers.FaultComms {
		t.Errorf("backing off: err %v fault %v, want error and comms", err, out[0].Fault)
	}
	srv.Set(1, modbustest.Holding, 0, 612)
	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := p.Poll(ctx, out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device not back after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !out[0].OK() || out[0].Value != 61.2 {
		t.Errorf("after restart: %v %v, want 61.2", out[0].Value, out[0].Fault)
	}
}

func TestTimeoutAndBackoffGrowth(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	cfg := testConfig(srv.URL, 1)
	cfg.Timeout = 100 * time.Millisecond
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 80*time.Millisecond
	p := mustPoller(t, NewPool(testLog(t)), cfg, smallProfile())
	srv.Stall(400 * time.Millisecond)
	ctx := context.Background()
	out := make([]drivers.Reading, len(p.Points()))
	start := time.Now()
	err := p.Poll(ctx, out)
	if el := time.Since(start); el > 250*time.Millisecond { // three timeouts would take 300ms
		t.Errorf("stalled round took %v: the round must stop at the first timeout", el)
	}
	if err == nil || out[0].Fault != drivers.FaultTimeout || out[1].Fault != drivers.FaultComms {
		t.Fatalf("stalled device: err %v faults %v %v, want timeout then comms (not asked)", err, out[0].Fault, out[1].Fault)
	}
	// Backoff grows to its cap: 20, 40, 80, 80 ms (±25%).
	var waits []time.Duration
	for range 4 {
		waits = append(waits, time.Until(p.nextTry))
		time.Sleep(time.Until(p.nextTry) + time.Millisecond)
		p.Poll(ctx, out)
	}
	if waits[0] > 30*time.Millisecond || waits[3] < 55*time.Millisecond || waits[3] > 105*time.Millisecond {
		t.Errorf("backoff waits %v: want ~20ms growing to a ~80ms cap", waits)
	}
	srv.Stall(0)
	time.Sleep(time.Until(p.nextTry) + time.Millisecond)
	if err := p.Poll(ctx, out); err != nil {
		t.Fatalf("after the stall ended: %v", err)
	}
	if p.down || p.failures != 0 {
		t.Errorf("device still marked down after a good round")
	}
	st := p.Stats()
	if st.Timeouts < 5 || st.Down < 5 || st.Reopens < st.Timeouts || st.Rounds < 6 || st.Requests < st.Rounds {
		t.Errorf("stats %+v after 5 timed-out rounds and a good one", st)
	}
}

// TestTwoUnitsShareOneLink: two unit ids behind one TCP server share a
// client and read their own values.
func TestTwoUnitsShareOneLink(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	serveSmall(srv, 2, 700)
	pool := NewPool(testLog(t))
	p1 := mustPoller(t, pool, testConfig(srv.URL, 1), smallProfile())
	p2 := mustPoller(t, pool, testConfig(srv.URL, 2), smallProfile())
	if p1.Link() != p2.Link() || p1.link != p2.link {
		t.Fatalf("links differ: %q %q", p1.Link(), p2.Link())
	}
	srv.Reads()
	for range 3 {
		o1, err := pollOnce(t, p1)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := pollOnce(t, p2)
		if err != nil {
			t.Fatal(err)
		}
		if o1[0].Value != 50 || o2[0].Value != 70 {
			t.Errorf("unit 1 = %v, unit 2 = %v; want 50 and 70", o1[0].Value, o2[0].Value)
		}
	}
	units := map[uint8]int{}
	for _, rd := range srv.Reads() {
		units[rd.Unit]++
	}
	if units[1] != 9 || units[2] != 9 {
		t.Errorf("reads per unit %v, want 9 each", units)
	}
	// A third device with a different timeout on the same link is refused.
	cfg := testConfig(srv.URL, 3)
	cfg.Timeout = time.Second
	if _, err := pool.NewPoller(cfg, smallProfile()); err == nil || !strings.Contains(err.Error(), "url: ") {
		t.Errorf("mismatched link settings: err %v, want a url error", err)
	}
	// Closing one poller keeps the link for the other.
	p1.Close()
	if _, err := pollOnce(t, p2); err != nil {
		t.Errorf("after closing the other poller: %v", err)
	}
	p2.Close()
	p2.Close() // idempotent
	if n := len(pool.links); n != 0 {
		t.Errorf("%d links left open after closing every poller", n)
	}
}

// TestRTUOverTCP reads through RTU framing (CRC16) over TCP.
func TestRTUOverTCP(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 5, 480)
	serveSmall(srv, 6, 490)
	srv.Undefine(5, modbustest.Holding, 200, 1)
	rtu := modbustest.NewRTUOverTCP(t, srv)
	pool := NewPool(testLog(t))
	// Two drops on one line share the link.
	p := mustPoller(t, pool, testConfig(rtu.URL, 5), smallProfile())
	p6 := mustPoller(t, pool, testConfig(rtu.URL, 6), smallProfile())
	if p.Link() != p6.Link() {
		t.Errorf("drops on one line have links %q and %q", p.Link(), p6.Link())
	}
	for range 2 {
		out, err := pollOnce(t, p)
		if err != nil {
			t.Fatal(err)
		}
		if !out[0].OK() || out[0].Value != 48 || out[1].Value != 25 {
			t.Errorf("rtu values %v %v", out[0].Value, out[1].Value)
		}
		if out[2].Fault != drivers.FaultAbsent {
			t.Errorf("rtu exception: %v, want absent", out[2].Fault)
		}
		out6, err := pollOnce(t, p6)
		if err != nil {
			t.Fatal(err)
		}
		if !out6[0].OK() || out6[0].Value != 49 || !out6[2].OK() {
			t.Errorf("rtu unit 6: %v %v %v", out6[0].Value, out6[0].Fault, out6[2].Fault)
		}
	}
}

// TestMalformedAnswers: a raw TCP server answering garbage frames gives
// FaultMalformed or FaultTimeout, never a value and never a panic.
func TestMalformedAnswers(t *testing.T) {
	frames := [][]byte{
		{0, 1, 0, 0, 0, 0, 1},                   // MBAP length 0
		{0, 1, 0, 0, 0xFF, 0xFF, 1},             // MBAP length 0xFFFF
		{0, 1, 0, 0, 0, 4, 1, 3, 2, 0},          // byte count 2, one byte of data
		{0, 1, 0, 0, 0, 5, 1, 3, 4, 0x12, 0x34}, // byte count disagrees with quantity
		{0, 1, 0, 0, 0, 3, 1, 0x83, 0x7F},       // unknown exception code
	}
	for i, frame := range frames {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 12)
				if _, err := io.ReadFull(c, buf); err == nil {
					f := append([]byte{}, frame...)
					f[0], f[1] = buf[0], buf[1] // echo the transaction id
					c.Write(f)
				}
				time.Sleep(50 * time.Millisecond)
				c.Close()
			}
		}()
		cfg := testConfig("tcp://"+ln.Addr().String(), 1)
		cfg.Timeout = 100 * time.Millisecond
		prof := &profile.Profile{ID: "one", Protocol: "modbus", Points: []profile.Point{
			{Name: "x.count", Type: "u16", ModbusAddr: profile.ModbusAddr{Address: addr(0)}}}}
		p := mustPoller(t, NewPool(testLog(t)), cfg, prof)
		out := make([]drivers.Reading, 1)
		p.Poll(context.Background(), out)
		if out[0].OK() {
			t.Errorf("frame %d: good value %v from garbage", i, out[0].Value)
		}
		if f := out[0].Fault; f != drivers.FaultMalformed && f != drivers.FaultTimeout && f != drivers.FaultComms && f != drivers.FaultException {
			t.Errorf("frame %d: fault %v", i, f)
		}
		p.Close()
		ln.Close()
		wg.Wait()
	}
}

func TestContextCancelled(t *testing.T) {
	srv := modbustest.NewServer(t)
	serveSmall(srv, 1, 500)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), smallProfile())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	for _, r := range out {
		if r.OK() {
			t.Errorf("%s read after cancel", r.Point.Name)
		}
	}
	if p.down {
		t.Error("a cancelled round must not mark the device down")
	}
}

func TestIdentifyFromStrings(t *testing.T) {
	srv := modbustest.NewServer(t)
	prof := &profile.Profile{ID: "apc-like", Vendor: "APC", Protocol: "modbus", Points: []profile.Point{
		{Name: "ups.firmware", Type: "string", ModbusAddr: profile.ModbusAddr{Address: addr(516), Length: 8}},
		{Name: "ups.model", Type: "string", ModbusAddr: profile.ModbusAddr{Address: addr(532), Length: 16}},
		{Name: "ups.serial", Type: "string", ModbusAddr: profile.ModbusAddr{Address: addr(564), Length: 8}},
	}}
	srv.Set(1, modbustest.Holding, 516, make([]uint16, 56)...)
	srv.Set(1, modbustest.Holding, 516, encodeString("UPS 15.0", 8, false)...)
	// APC pads the model with leading zero registers.
	srv.Set(1, modbustest.Holding, 532, encodeString("\x00\x00Smart-UPS SRT 5000", 16, false)...)
	srv.Set(1, modbustest.Holding, 564, encodeString("AS1234567", 8, false)...)
	p := mustPoller(t, NewPool(testLog(t)), testConfig(srv.URL, 1), prof)
	id, err := p.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.Vendor != "APC" || id.Model != "Smart-UPS SRT 5000" || id.Firmware != "UPS 15.0" || id.Serial != "AS1234567" {
		t.Errorf("identity = %+v", id)
	}
}

func TestConfigValidate(t *testing.T) {
	neg := -1
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "url: missing"},
		{Config{URL: "10.0.0.5:502"}, `url: "10.0.0.5:502" has no scheme`},
		{Config{URL: "http://x:1"}, `url: unsupported scheme "http"`},
		{Config{URL: "tcp://host"}, `url: "tcp://host": want tcp://host:port`},
		{Config{URL: "rtu://ttyUSB0", UnitID: 1}, "url: \"rtu://ttyUSB0\": want rtu:///dev/ttyX"},
		{Config{URL: "rtu:///dev/ttyUSB0", UnitID: 0}, "unit_id: 0 is outside 1..247"},
		{Config{URL: "tcp://h:502", UnitID: 300}, "unit_id: 300 is outside 0..255"},
		{Config{URL: "tcp://h:502", Speed: 9600}, "speed: serial settings"},
		{Config{URL: "rtu:///dev/ttyS0", UnitID: 1, Parity: "mark"}, `parity: "mark" is not none, even or odd`},
		{Config{URL: "rtu:///dev/ttyS0", UnitID: 1, StopBits: 3}, "stop_bits: 3 is not 1 or 2"},
		{Config{URL: "tcp+tls://h:802"}, "tls.ca_file: required"},
		{Config{URL: "tcp://h:502", TLS: TLSConfig{CAFile: "x"}}, "tls: applies to tcp+tls:// only"},
		{Config{URL: "tcp://h:502", MaxRegisters: 200}, "max_registers: 200 is outside 1..125"},
		{Config{URL: "tcp://h:502", MaxGap: &neg}, "max_gap: -1 is outside 0..125"},
		{Config{URL: "tcp://h:502", Timeout: -time.Second}, "timeout: must not be negative"},
		{Config{URL: "tcp://h:502", RetryMin: time.Minute, RetryMax: time.Second}, "retry_max: must be at least retry_min"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, ok := range []Config{{URL: "tcp://10.0.0.5:502", UnitID: 1}, {URL: "rtu:///dev/ttyUSB0", UnitID: 1, Speed: 9600, Parity: "even"},
		{URL: "rtuovertcp://127.0.0.1:8080", UnitID: 2}, {URL: "tcp+tls://h:802", TLS: TLSConfig{"ca", "crt", "key"}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
url: rtu:///dev/ttyUSB0
unit_id: 3
timeout: 750ms
speed: 19200
data_bits: 8
parity: even
stop_bits: 1
max_registers: 60
max_gap: 0
pause: 35ms
close_after_round: true
busy_retries: 2
retry_min: 2s
retry_max: 30s
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	q := effectiveQuirks(&c, &profile.Profile{Modbus: &profile.ModbusOptions{MaxRegisters: 100, MaxGap: 8, Pause: time.Second}})
	if c.Timeout != 750*time.Millisecond || c.UnitID != 3 || c.Parity != "even" ||
		q.maxRegs != 60 || q.maxGap != 0 || q.pause != 35*time.Millisecond || !q.closeAfterRound ||
		q.busyRetries != 2 || q.retryMin != 2*time.Second || q.retryMax != 30*time.Second {
		t.Errorf("config %+v quirks %+v", c, q)
	}
	if tr := c.transport(); tr.speed != 19200 || tr.parity != "even" || tr.stopBits != 1 {
		t.Errorf("transport %+v", tr)
	}
	// Profile quirks apply where the device config is silent.
	q = effectiveQuirks(&Config{URL: "tcp://h:502"}, &profile.Profile{Modbus: &profile.ModbusOptions{MaxRegisters: 100, MaxGap: 8, Pause: time.Second, BusyRetries: 4}})
	if q.maxRegs != 100 || q.maxGap != 8 || q.pause != time.Second || q.busyRetries != 4 || q.retryMin != DefaultRetryMin {
		t.Errorf("profile quirks %+v", q)
	}
}
