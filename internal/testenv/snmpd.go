package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SNMPD is a running Debian snmpd serving the fake UPS-MIB of upspass.
type SNMPD struct {
	Host      string // 127.0.0.1
	Port      int
	Community string // v2c read community: "public"
	// V3 user with authPriv (AuthProto/PrivProto as snmpd spells them:
	// "SHA-256", "SHA", "AES").
	User, AuthProto, AuthPass, PrivProto, PrivPass string
	StateFile                                      string // the $UPS_STATE override file (see upspass)
	Dir                                            string
	t                                              testing.TB
}

// SNMPDOptions tune StartSNMPD. The zero value is v2c "public" plus a v3
// user "upsadmin" with SHA-256/AES (SHA/AES if snmpd refuses SHA-256).
type SNMPDOptions struct {
	// ExtraConfig is appended to snmpd.conf (more pass_persist lines...).
	ExtraConfig string
}

var upspassOnce struct {
	sync.Mutex
	path string
}

// Upspass returns the pass_persist backend binary: $TOOLS_BIN/upspass if
// present, else it is built once per test binary with `go build`.
func Upspass(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("TOOLS_BIN"); dir != "" && isExec(filepath.Join(dir, "upspass")) {
		return filepath.Join(dir, "upspass")
	}
	upspassOnce.Lock()
	defer upspassOnce.Unlock()
	if upspassOnce.path != "" && isExec(upspassOnce.path) {
		return upspassOnce.path
	}
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "cmd", "upspass")
	dir, err := os.MkdirTemp("", "upspass")
	if err != nil {
		t.Fatalf("upspass: %v", err)
	}
	out := filepath.Join(dir, "upspass")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build upspass: %v\n%s", err, b)
	}
	upspassOnce.path = out
	return out
}

// FreeUDPPort returns a UDP port free on 127.0.0.1 at the time of the call.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free udp port: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// StartSNMPD runs Debian's snmpd on a loopback high port with the UPS-MIB
// served by upspass (pass_persist), v2c community "public" and a v3
// authPriv user, and waits until it answers. It is killed (by PID) at the
// end of the test; its log is printed if the test failed.
func StartSNMPD(t testing.TB, o SNMPDOptions) *SNMPD {
	t.Helper()
	bin := Need(t, "snmpd")
	get := Need(t, "snmpget")
	pass := Upspass(t)
	s := &SNMPD{Host: "127.0.0.1", Community: "public", User: "upsadmin",
		AuthPass: "authpass123", PrivProto: "AES", PrivPass: "privpass123", Dir: t.TempDir(), t: t}
	s.StateFile = filepath.Join(s.Dir, "ups-state.json")
	if err := os.WriteFile(s.StateFile, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	// snmpd 5.9 knows SHA-256; fall back to SHA if it refuses the user.
	var lastErr error
	for _, auth := range []string{"SHA-256", "SHA"} {
		s.AuthProto = auth
		for range 3 { // the free port may be taken between pick and bind
			s.Port = FreeUDPPort(t)
			if lastErr = s.start(bin, get, pass, o); lastErr == nil {
				return s
			}
		}
	}
	t.Fatalf("snmpd did not start: %v", lastErr)
	return nil
}

func (s *SNMPD) start(bin, get, pass string, o SNMPDOptions) error {
	t := s.t
	persist, err := os.MkdirTemp(s.Dir, "persist")
	if err != nil {
		return err
	}
	conf := filepath.Join(s.Dir, "snmpd.conf")
	cfg := fmt.Sprintf(`[snmp] persistentDir %s
[snmp] mibs :
agentaddress udp:127.0.0.1:%d
rocommunity %s 127.0.0.1
createUser %s %s "%s" %s "%s"
rouser %s priv
pass_persist .1.3.6.1.2.1.33 %s
%s
`, persist, s.Port, s.Community, s.User, s.AuthProto, s.AuthPass, s.PrivProto, s.PrivPass, s.User, pass, o.ExtraConfig)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return err
	}
	logf := filepath.Join(s.Dir, "snmpd.log")
	cmd := exec.Command(bin, "-f", "-Lf", logf, "-C", "-c", conf, "-p", filepath.Join(s.Dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "UPS_STATE="+s.StateFile)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			b, _ := os.ReadFile(logf)
			return fmt.Errorf("snmpd exited: %s", b)
		default:
		}
		// v3 readiness proves the user was created with this auth protocol.
		c := exec.Command(get, "-v3", "-l", "authPriv", "-u", s.User, "-a", s.AuthProto, "-A", s.AuthPass,
			"-x", s.PrivProto, "-X", s.PrivPass, "-t", "0.3", "-r", "0", "-On",
			s.Addr(), "1.3.6.1.2.1.33.1.2.4.0")
		if b, err := c.CombinedOutput(); err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					b, _ := os.ReadFile(logf)
					t.Logf("snmpd log:\n%s", b)
				}
			})
			return nil
		} else if time.Until(deadline) < 9*time.Second && len(b) > 0 && !isTimeout(string(b)) {
			stop()
			return fmt.Errorf("snmpget v3 %s: %s", s.AuthProto, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	b, _ := os.ReadFile(logf)
	return fmt.Errorf("snmpd not ready after 10s: %s", b)
}

func isTimeout(out string) bool {
	return strings.Contains(out, "Timeout") || strings.Contains(out, "No Response")
}

// Addr is "127.0.0.1:port".
func (s *SNMPD) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// SetState replaces the UPS_STATE overrides (see upspass); snmpd serves
// them from the next request on.
func (s *SNMPD) SetState(over map[string]any) {
	s.t.Helper()
	b, err := json.Marshal(over)
	if err != nil {
		s.t.Fatalf("ups state: %v", err)
	}
	tmp := s.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.StateFile); err != nil {
		s.t.Fatal(err)
	}
}
