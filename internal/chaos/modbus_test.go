package chaos

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tpclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus"
	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
)

// Kinds of answer of the evil server. Every kind but good and
// wrongThenGood is garbage, and a round made only of garbage must not
// produce a value.
const (
	answerGood          = "good"            // a correct frame: value goodValue
	answerLen0          = "mbap-len-0"      // MBAP length 0
	answerLenFFFF       = "mbap-len-ffff"   // MBAP length 0xFFFF, then a few bytes
	answerProto         = "protocol-id"     // protocol id != 0
	answerWrongTID      = "wrong-tid-flood" // 50 frames with other transaction ids (value trapValue), then silence
	answerWrongThenGood = "wrong-tid-good"  // 20 wrong-tid frames, then the right one
	answerShortHeader   = "short-header"    // 4 bytes of header, then silence
	answerShortPDU      = "short-pdu"       // byte count 2 with one data byte
	answerCountMismatch = "count-mismatch"  // byte count 4 for a 1-register read
	answerWrongFC       = "wrong-fc"        // answer for function 4 to a function 3 read
	answerException     = "exception"       // exception codes 1, 3..11 (2 = "absent" is learned for good)
	answerCloseEarly    = "close"           // connection closed without an answer
)

const (
	goodValue = 1234
	trapValue = 9999 // carried only by frames the client must skip
)

var evilKinds = []string{answerGood, answerLen0, answerLenFFFF, answerProto, answerWrongTID, answerWrongThenGood,
	answerShortHeader, answerShortPDU, answerCountMismatch, answerWrongFC, answerException, answerCloseEarly}

// evilServer is a raw-TCP Modbus server that answers each request with a
// kind drawn from a seeded mix, records every function code it receives,
// and reports which kinds it served since the last call of served().
type evilServer struct {
	ln   net.Listener
	mu   sync.Mutex
	rng  *rand.Rand
	kind string // fixed kind, or "" for the random mix
	log  []string
	fcs  map[byte]int
	wg   sync.WaitGroup
}

func newEvilServer(t testing.TB, seed uint64) *evilServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &evilServer{ln: ln, rng: rand.New(rand.NewPCG(seed, 7)), fcs: map[byte]int{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *evilServer) URL() string { return "tcp://" + s.ln.Addr().String() }

func (s *evilServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

// served returns the kinds answered since the last call.
func (s *evilServer) served() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	s.log = nil
	return l
}

func (s *evilServer) pick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kind
	if k == "" {
		k = evilKinds[s.rng.IntN(len(evilKinds))]
	}
	s.log = append(s.log, k)
	return k
}

func frame(tid, proto, length uint16, body ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, tid)
	b = binary.BigEndian.AppendUint16(b, proto)
	b = binary.BigEndian.AppendUint16(b, length)
	return append(b, body...)
}

func (s *evilServer) serve(c net.Conn) {
	hdr := make([]byte, 7)
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:6]))
		if n < 1 || n > 254 {
			return
		}
		pdu := make([]byte, n-1)
		if _, err := io.ReadFull(c, pdu); err != nil || len(pdu) == 0 {
			return
		}
		tid, unit, fc := binary.BigEndian.Uint16(hdr[0:2]), hdr[6], pdu[0]
		s.mu.Lock()
		s.fcs[fc]++
		s.mu.Unlock()
		reg := func(v uint16) []byte { return []byte{unit, fc, 2, byte(v >> 8), byte(v)} }
		var out []byte
		switch k := s.pick(); k {
		case answerGood:
			out = frame(tid, 0, 5, reg(goodValue)...)
		case answerLen0:
			out = frame(tid, 0, 0, unit)
		case answerLenFFFF:
			out = frame(tid, 0, 0xFFFF, reg(goodValue)...)
		case answerProto:
			out = frame(tid, 1, 5, reg(goodValue)...)
		case answerWrongTID, answerWrongThenGood:
			flood := 50
			if k == answerWrongThenGood {
				flood = 20
			}
			for i := range flood {
				out = append(out, frame(tid+1+uint16(i), 0, 5, reg(trapValue)...)...)
			}
			if k == answerWrongThenGood {
				out = append(out, frame(tid, 0, 5, reg(goodValue)...)...)
			}
		case answerShortHeader:
			out = frame(tid, 0, 5)[:4]
		case answerShortPDU:
			out = frame(tid, 0, 4, unit, fc, 2, 0x04)
		case answerCountMismatch:
			out = frame(tid, 0, 7, unit, fc, 4, 0x04, 0xD2, 0x00, 0x00)
		case answerWrongFC:
			out = frame(tid, 0, 5, unit, fc^0x07, 2, byte(goodValue>>8), byte(goodValue&0xFF))
		case answerException:
			codes := []byte{1, 3, 4, 5, 6, 7, 8, 9, 10, 11}
			s.mu.Lock()
			code := codes[s.rng.IntN(len(codes))]
			s.mu.Unlock()
			out = frame(tid, 0, 3, unit, fc|0x80, code)
		case answerCloseEarly:
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// oneRegister is a profile of one u16 holding register at 0.
func oneRegister() *profile.Profile {
	a := uint16(0)
	return &profile.Profile{ID: "evil", Protocol: "modbus", Points: []profile.Point{
		{Name: "battery.voltage.volts", Type: "u16", Unit: "V", ModbusAddr: profile.ModbusAddr{Address: &a}}}}
}

// TestChaosT11MalformedModbus: an evil server answers with every kind of
// broken frame. The poller must error within its timeout, mark the point
// faulted, never fabricate a value, never panic, never send anything but
// read function codes, and leak no goroutines.
func TestChaosT11MalformedModbus(t *testing.T) {
	rounds := 800
	if testing.Short() {
		rounds = 200
	}
	// Setup.
	evil := newEvilServer(t, 11)
	baseG := settleGoroutines(0, 0)
	baseRSS := rssBytes()
	const timeout = 60 * time.Millisecond
	cfg := modbus.Config{URL: evil.URL(), UnitID: 1, Timeout: timeout, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
	pool := modbus.NewPool(testLog(t))
	p, err := pool.NewPoller(cfg, oneRegister())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]drivers.Reading, 1)
	ctx := context.Background()

	// Inject: rounds against the random mix.
	var lat []time.Duration
	kinds := map[string]int{}
	goodRounds, faulted, fabricated := 0, 0, 0
	faults := map[drivers.Fault]int{}
	backoff := 0
	for asked := 0; asked < rounds; {
		start := time.Now()
		p.Poll(ctx, out)
		d := time.Since(start)
		served := evil.served()
		if len(served) == 0 {
			// Backing off after a failed round: nothing was asked and
			// the point must say so.
			if out[0].OK() || out[0].Fault != drivers.FaultComms {
				t.Fatalf("round during backoff: %v %v", out[0].Value, out[0].Fault)
			}
			backoff++
			time.Sleep(2 * time.Millisecond)
			continue
		}
		asked++
		for _, k := range served {
			kinds[k]++
		}
		lat = append(lat, d/time.Duration(len(served)))
		good := slices.Contains(served, answerGood) || slices.Contains(served, answerWrongThenGood)
		if out[0].OK() {
			if !good || out[0].Value != goodValue {
				fabricated++
				t.Errorf("value %v from answers %v", out[0].Value, served)
			}
			goodRounds++
		} else {
			faulted++
			faults[out[0].Fault]++
			if out[0].Value == trapValue {
				t.Errorf("faulted reading carries the skipped frame's value")
			}
		}
	}
	// Recover: close everything.
	st := p.Stats()
	p.Close()

	// Check.
	slices.Sort(lat)
	maxLat := lat[len(lat)-1]
	g := settleGoroutines(baseG+5, 3*time.Second)
	rssGrowth := rssBytes() - baseRSS
	evil.mu.Lock()
	fcs := fcCounts(evil.fcs)
	for fc := range evil.fcs {
		if fc < 1 || fc > 4 {
			t.Errorf("function code %d on the wire", fc)
		}
	}
	evil.mu.Unlock()
	for _, k := range evilKinds {
		if kinds[k] == 0 {
			t.Errorf("kind %s never served: the mix is too small", k)
		}
	}
	if fabricated != 0 {
		t.Fatalf("%d fabricated values", fabricated)
	}
	counted := st.Malformed + st.Timeouts + st.Exceptions
	t.Logf("T11: %d rounds (+%d in backoff), answers %v; %d good rounds, %d faulted %v; 0 fabricated, 0 panics; per-request latency p50 %v p99 %v max %v (criterion <= timeout %v + 100ms); goroutines %d -> %d (criterion +-5); RSS growth %d KiB (criterion < 5 MiB); driver counted %d malformed, %d timeouts, %d exceptions, %d reopens; function codes on the wire %s",
		len(lat), backoff, kinds, goodRounds, faulted, faults, percentile(lat, 50), percentile(lat, 99), maxLat, timeout,
		baseG, g, rssGrowth>>10, st.Malformed, st.Timeouts, st.Exceptions, st.Reopens, fcs)
	if g > baseG+5 {
		t.Errorf("goroutines %d after the run, baseline %d", g, baseG)
	}
	if maxLat > timeout+time.Second {
		t.Errorf("a request took %v, timeout %v", maxLat, timeout)
	}
	bad := len(lat) - goodRounds
	if int(counted) < bad/2 {
		t.Errorf("driver counted %d bad answers of %d bad rounds", counted, bad)
	}
	if rssGrowth > 64<<20 {
		t.Errorf("RSS grew %d MiB", rssGrowth>>20)
	}
}

// fcCounts lists function codes and how often each was received.
func fcCounts(m map[byte]int) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "fc%d:%d ", k, v)
	}
	return strings.TrimSpace(b.String())
}

// TestChaosT11SlicedAnswers: Toxiproxy's slicer delivers a real server's
// answers one byte at a time. At 1 byte/s the read times out and the point
// is a timeout fault (never a partial value); with small delays the frame
// is reassembled and read correctly.
func TestChaosT11SlicedAnswers(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.Set(1, modbustest.Holding, 0, goodValue)
	tp := toxi(t)
	px := proxy(t, tp, "t11-slicer", hostPort(srv.URL))
	const timeout = 150 * time.Millisecond
	cfg := modbus.Config{URL: "tcp://" + px.Listen, UnitID: 1, Timeout: timeout, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
	p, err := modbus.NewPool(testLog(t)).NewPoller(cfg, oneRegister())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, 1)
	poll := func() time.Duration {
		start := time.Now()
		p.Poll(context.Background(), out)
		return time.Since(start)
	}
	if poll(); !out[0].OK() || out[0].Value != goodValue {
		t.Fatalf("baseline: %v %v", out[0].Value, out[0].Fault)
	}

	// 1 byte per second: every round times out.
	if _, err := px.AddToxic("slow", "slicer", "downstream", 1, tpclient.Attributes{"average_size": 1, "size_variation": 0, "delay": 1_000_000}); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	timeouts := 0
	for range 5 {
		d := poll()
		worst = max(worst, d)
		if out[0].OK() {
			t.Fatalf("value %v read through a 1 byte/s link with a %v timeout", out[0].Value, timeout)
		}
		if out[0].Fault == drivers.FaultTimeout {
			timeouts++
		}
		time.Sleep(5 * time.Millisecond) // past the 1-2 ms backoff
	}
	if timeouts == 0 {
		t.Error("no round ended as a timeout fault")
	}
	// 1 byte per ms: reassembled.
	if err := px.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
	if _, err := px.AddToxic("fast", "slicer", "downstream", 1, tpclient.Attributes{"average_size": 1, "size_variation": 0, "delay": 1000}); err != nil {
		t.Fatal(err)
	}
	var ok bool
	for range 20 { // the first rounds may still meet the stale slow link
		time.Sleep(5 * time.Millisecond)
		if poll(); out[0].OK() {
			ok = true
			break
		}
	}
	if !ok || out[0].Value != goodValue {
		t.Fatalf("1 byte/ms slicer: %v %v, want %d", out[0].Value, out[0].Fault, goodValue)
	}
	t.Logf("T11 slicer: 1 byte/s -> %d/5 rounds timeout faults, worst round %v (criterion <= timeout %v + 100ms); 1 byte/ms -> value read correctly", timeouts, worst, timeout)
	if worst > timeout+time.Second {
		t.Errorf("round took %v with timeout %v", worst, timeout)
	}
}

// TestAttackT14ModbusTLS: Modbus/TCP Security with mutual authentication.
// Certificate problems on either side fail closed (no value, an error
// naming the cause), and the client never sends a write function code.
func TestAttackT14ModbusTLS(t *testing.T) {
	dir := t.TempDir()
	site := newCA(t, dir, "site")
	rogue := newCA(t, dir, "rogue")
	now := time.Now()
	serverCert := site.valid("server", x509.ExtKeyUsageServerAuth)
	srv := modbustest.NewTLSServer(t, &serverCert.TLS, site.Pool)
	srv.Set(1, modbustest.Holding, 0, goodValue)
	expiredSrvCert := site.issue("server-expired", x509.ExtKeyUsageServerAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	expiredSrv := modbustest.NewTLSServer(t, &expiredSrvCert.TLS, site.Pool)
	expiredSrv.Set(1, modbustest.Holding, 0, goodValue)

	good := site.valid("agent", x509.ExtKeyUsageClientAuth)
	expired := site.issue("agent-expired", x509.ExtKeyUsageClientAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	notYet := site.issue("agent-future", x509.ExtKeyUsageClientAuth, now.Add(24*time.Hour), now.Add(48*time.Hour))
	wrongCA := rogue.valid("agent", x509.ExtKeyUsageClientAuth)

	tlsURL := func(s *modbustest.Server) string { return "tcp+tls://" + hostPort(s.URL) }
	cases := []struct {
		name   string
		url    string
		tls    modbus.TLSConfig
		config bool // refused by the configuration check already
		want   string
	}{
		{name: "no-client-cert", url: tlsURL(srv), tls: modbus.TLSConfig{CAFile: site.CAFile}, config: true, want: "cert"},
		{name: "no-ca", url: tlsURL(srv), tls: modbus.TLSConfig{CertFile: good.CertFile, KeyFile: good.KeyFile}, config: true, want: "ca_file"},
		{name: "expired-client-cert", url: tlsURL(srv), tls: modbus.TLSConfig{CAFile: site.CAFile, CertFile: expired.CertFile, KeyFile: expired.KeyFile}},
		{name: "not-yet-valid-client-cert", url: tlsURL(srv), tls: modbus.TLSConfig{CAFile: site.CAFile, CertFile: notYet.CertFile, KeyFile: notYet.KeyFile}},
		{name: "client-cert-from-wrong-ca", url: tlsURL(srv), tls: modbus.TLSConfig{CAFile: site.CAFile, CertFile: wrongCA.CertFile, KeyFile: wrongCA.KeyFile}},
		{name: "server-from-untrusted-ca", url: tlsURL(srv), tls: modbus.TLSConfig{CAFile: rogue.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile}},
		{name: "expired-server-cert", url: tlsURL(expiredSrv), tls: modbus.TLSConfig{CAFile: site.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile}},
		{name: "plaintext-to-tls-port", url: "tcp://" + hostPort(srv.URL), tls: modbus.TLSConfig{}},
	}
	var worst time.Duration
	for _, tc := range cases {
		cfg := modbus.Config{URL: tc.url, UnitID: 1, Timeout: 300 * time.Millisecond, TLS: tc.tls, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
		p, err := modbus.NewPool(testLog(t)).NewPoller(cfg, oneRegister())
		if tc.config {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: config accepted (err %v), want a refusal naming %s", tc.name, err, tc.want)
			}
			if p != nil {
				p.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		out := make([]drivers.Reading, 1)
		start := time.Now()
		err = p.Poll(context.Background(), out)
		d := time.Since(start)
		worst = max(worst, d)
		p.Close()
		if err == nil || out[0].OK() {
			t.Errorf("%s: read %v (err %v): the handshake did not fail closed", tc.name, out[0].Value, err)
			continue
		}
		t.Logf("%s: refused after %v: %v (fault %s)", tc.name, d.Round(time.Millisecond), err, out[0].Fault)
	}

	// The good client reads, repeatedly, and only reads.
	cfg := modbus.Config{URL: tlsURL(srv), UnitID: 1, Timeout: time.Second, TLS: modbus.TLSConfig{CAFile: site.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile}}
	p, err := modbus.NewPool(testLog(t)).NewPoller(cfg, oneRegister())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, 1)
	for i := range 20 {
		if err := p.Poll(context.Background(), out); err != nil || !out[0].OK() || out[0].Value != goodValue {
			t.Fatalf("round %d with a good certificate: %v %v %v", i, out[0].Value, out[0].Fault, err)
		}
	}
	reads := append(srv.Reads(), expiredSrv.Reads()...)
	writes := 0
	for _, r := range reads {
		if r.Write {
			writes++
		}
	}
	if writes != 0 || len(reads) < 20 {
		t.Fatalf("%d requests seen by the servers, %d writes", len(reads), writes)
	}
	t.Logf("T14: %d bad-certificate cases failed closed (worst %v to the error, criterion: alert <= 5s); %d requests from the good client, 0 write function codes",
		len(cases), worst.Round(time.Millisecond), len(reads))
	if worst > 5*time.Second {
		t.Errorf("a refusal took %v", worst)
	}
}
