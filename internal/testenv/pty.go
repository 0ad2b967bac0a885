package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartPTYPair starts Debian's socat joining two pseudo-terminals, as a
// null-modem cable between a serial master and slave, and returns the
// paths of the two ends (symlinks to /dev/pts/N in a temporary directory).
// socat is killed by PID and waited for at the end of the test; close the
// ports before that.
func StartPTYPair(t testing.TB) (a, b string) {
	t.Helper()
	socat := Need(t, "socat")
	dir := t.TempDir()
	a, b = filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	cmd := exec.Command(socat, "-d", "-d",
		"pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, errA := os.Stat(a)
		_, errB := os.Stat(b)
		if errA == nil && errB == nil {
			return a, b
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("socat did not create %s and %s within 5s", a, b)
	return "", ""
}
