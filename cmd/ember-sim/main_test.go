package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe to read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(file, []byte("devices:\n  - id: a\n    profile: sunspec\n    listen: serial://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb syncBuffer
	if rc := run(t.Context(), []string{"-config", file}, &out, &errb); rc != 1 {
		t.Fatalf("rc %d, want 1", rc)
	}
	if want := file + ":4: devices[0].listen: "; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
	if rc := run(t.Context(), nil, &out, &errb); rc != 2 {
		t.Errorf("no -config: rc %d, want 2", rc)
	}
	if rc := run(t.Context(), []string{"-h"}, &out, &errb); rc != 0 || !strings.Contains(errb.String(), "usage: ember-sim") {
		t.Errorf("-h: rc %d", rc)
	}
}

// TestServeAndStop runs the command on a config, reads the device it
// announces and stops it by cancelling, as SIGTERM does.
func TestServeAndStop(t *testing.T) {
	port := testenv.FreePorts(t, 1)[0]
	file := filepath.Join(t.TempDir(), "sim.yaml")
	cfg := fmt.Sprintf("devices:\n  - {id: r, profile: sunspec, listen: \"tcp://127.0.0.1:%d\", rack: {strings: 1, modules: 1, cells: 2}}\n", port)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-config", file, "-log-level", "warn"}, &out, &errb) }()
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if !strings.Contains(out.String(), "r unit 1 "+url) {
			return fmt.Errorf("stdout %q", out.String())
		}
		return nil
	})
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: url, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	regs, err := c.ReadRegisters(40000, 2, modbus.HOLDING_REGISTER)
	c.Close()
	if err != nil || regs[0] != 0x5375 {
		t.Fatalf("read SunS: %v %v", regs, err)
	}
	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("rc %d, stderr %s", rc, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop within 5s")
	}
}
