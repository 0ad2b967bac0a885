package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

// Modes of the UDP mangler.
const (
	manglePass   int32 = iota // forward both ways untouched
	mangleFlip                // flip one random bit of every response
	mangleReplay              // answer each request with the previous response
)

// mangler is a UDP man in the middle between one SNMP manager and an
// agent: it forwards requests and, depending on its mode, corrupts or
// replays the responses.
type mangler struct {
	conn     net.PacketConn
	upstream *net.UDPAddr
	mode     atomic.Int32
	rng      *rand.Rand
	mu       sync.Mutex
	last     []byte // the last genuine response
	tampered atomic.Int64
	replayed atomic.Int64
}

func newMangler(t testing.TB, upstream string) *mangler {
	t.Helper()
	up, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mangler{conn: c, upstream: up, rng: rand.New(rand.NewPCG(13, 13))}
	done := make(chan struct{})
	go m.run(done)
	t.Cleanup(func() { c.Close(); <-done })
	return m
}

func (m *mangler) Addr() string { return m.conn.LocalAddr().String() }

func (m *mangler) run(done chan struct{}) {
	defer close(done)
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, 65535)
	for {
		n, client, err := m.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req := append([]byte(nil), buf[:n]...)
		// One upstream socket per request: the answer comes back on it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, err := net.DialUDP("udp", nil, m.upstream)
			if err != nil {
				return
			}
			defer up.Close()
			if _, err := up.Write(req); err != nil {
				return
			}
			up.SetReadDeadline(time.Now().Add(2 * time.Second))
			rb := make([]byte, 65535)
			k, err := up.Read(rb)
			if err != nil {
				return
			}
			resp := rb[:k]
			m.mu.Lock()
			prev := m.last
			m.last = append([]byte(nil), resp...)
			switch m.mode.Load() {
			case mangleFlip:
				i := m.rng.IntN(len(resp))
				resp[i] ^= 1 << m.rng.IntN(8)
				m.tampered.Add(1)
			case mangleReplay:
				if prev != nil {
					resp = prev
					m.replayed.Add(1)
				}
			}
			m.mu.Unlock()
			m.conn.WriteTo(resp, client)
		}()
	}
}

func upsMIB(t testing.TB) *profile.Profile {
	t.Helper()
	p, err := profile.LoadFile("../../firmware-profiles/snmp/ups-mib.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttackT13SNMPv3Config: an agent configuration asking for SNMPv3
// below authPriv is refused (ember-agent -check exits non-zero, naming the
// key) unless allow_insecure is set.
func TestAttackT13SNMPv3Config(t *testing.T) {
	dir := t.TempDir()
	conf := func(level string, allow bool) string {
		y := fmt.Sprintf(`site: chaos
agent_id: gw-1
nats: {servers: ["nats://127.0.0.1:1"]}
devices:
  - id: ups-1
    profile: ups-mib
    period: 5s
    snmp:
      target: udp://127.0.0.1:1161
      version: "3"
      allow_insecure: %t
      v3: {user: upsadmin, auth_protocol: SHA256, auth_passphrase: authpass123, priv_protocol: AES, priv_passphrase: privpass123, security_level: %s}
`, allow, level)
		f := filepath.Join(dir, level+fmt.Sprint(allow)+".yaml")
		if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	log := testLog(t)
	for _, level := range []string{"noAuthNoPriv", "authNoPriv"} {
		f := conf(level, false)
		err := agent.Main(context.Background(), f, true, log)
		if err == nil || !strings.Contains(err.Error(), "security_level") || !strings.Contains(err.Error(), f+":") {
			t.Errorf("%s without allow_insecure: check gave %v, want file:line: ...security_level refusal", level, err)
		} else {
			t.Logf("%s refused: %v", level, err)
		}
		if err := agent.Main(context.Background(), conf(level, true), true, log); err != nil {
			t.Errorf("%s with allow_insecure: %v", level, err)
		}
	}
	if err := agent.Main(context.Background(), conf("authPriv", false), true, log); err != nil {
		t.Errorf("authPriv: %v", err)
	}
	t.Log("T13 config: noAuthNoPriv and authNoPriv refused by ember-agent -check unless allow_insecure; authPriv accepted")
}

// TestAttackT13SNMPv3Tamper: a real snmpd with an authPriv user behind a
// UDP mangler. Responses with one flipped bit, replayed responses and a
// wrong passphrase are all rejected: not one value is ingested from them,
// and the same path yields values once it is left alone.
func TestAttackT13SNMPv3Tamper(t *testing.T) {
	s := testenv.StartSNMPD(t, testenv.SNMPDOptions{})
	m := newMangler(t, s.Addr())
	retries := 0
	cfg := snmp.Config{Target: "udp://" + m.Addr(), Version: "3", Timeout: 150 * time.Millisecond, Retries: &retries, Name: "ups-t13",
		V3: &snmp.V3{User: s.User, AuthProtocol: s.AuthProto, AuthPassphrase: s.AuthPass, PrivProtocol: s.PrivProto, PrivPassphrase: s.PrivPass}}
	prof := upsMIB(t)
	ctx := context.Background()
	p, err := snmp.NewPollerContext(ctx, cfg, prof, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, len(p.Points()))
	values := func() int {
		n := 0
		for _, r := range out {
			if r.OK() {
				n++
			}
		}
		return n
	}
	// Baseline through the mangler.
	if err := p.Poll(ctx, out); err != nil || values() == 0 {
		t.Fatalf("baseline: %v, %d values", err, values())
	}
	base := values()

	// Inject: flip one bit in every response.
	rounds := 12
	if testing.Short() {
		rounds = 6
	}
	m.mode.Store(mangleFlip)
	ingested, rejected := 0, 0
	for range rounds {
		clear(out)
		err := p.Poll(ctx, out)
		if v := values(); v > 0 {
			ingested += v
			t.Errorf("tampered round: %d values ingested (err %v)", v, err)
		} else {
			rejected++
		}
	}
	flipped := m.tampered.Load()

	// Inject: replay the previous genuine response to each request.
	m.mode.Store(mangleReplay)
	for range rounds / 2 {
		clear(out)
		err := p.Poll(ctx, out)
		if v := values(); v > 0 {
			ingested += v
			t.Errorf("replayed round: %d values ingested (err %v)", v, err)
		} else {
			rejected++
		}
	}
	replays := m.replayed.Load()

	// Recover: the mangler stands aside; WaitRecover: values come back.
	m.mode.Store(manglePass)
	var recovered bool
	for range 20 {
		clear(out)
		if err := p.Poll(ctx, out); err == nil && values() == base {
			recovered = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !recovered {
		t.Fatalf("no full round after the attack stopped (%d values of %d)", values(), base)
	}

	// A wrong passphrase through the same path: ErrAuth, no values.
	bad := cfg
	v3 := *cfg.V3
	v3.AuthPassphrase = "guessed-password"
	bad.V3 = &v3
	bp, err := snmp.NewPoller(bad, prof, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer bp.Close()
	if err := bp.Poll(ctx, nil); !errors.Is(err, snmp.ErrAuth) || len(bp.Points()) != 0 {
		t.Errorf("wrong passphrase: %v, %d points; want ErrAuth and nothing discovered", err, len(bp.Points()))
	}

	// Check.
	if ingested != 0 {
		t.Fatalf("%d values ingested from tampered or replayed responses", ingested)
	}
	t.Logf("T13: %d responses with a flipped bit and %d replayed responses (%s/AES-128 authPriv): %d/%d rounds rejected, 0 values ingested (criterion 100%%, 0); wrong passphrase -> ErrAuth; %d values per clean round before and after",
		flipped, replays, s.AuthProto, rejected, rounds+rounds/2, base)
}
