package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, &out); code != 0 || !strings.Contains(out.String(), "-config") {
		t.Errorf("-h: code %d, output %q", code, out.String())
	}
}

func TestBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "collector.yaml")
	os.WriteFile(p, []byte("site: s1\nnats:\n  servers: [nats://127.0.0.1:4222]\ninflux:\n  batch_size: -3\n"), 0o644)
	var out bytes.Buffer
	code := run([]string{"-config", p}, &out)
	want := p + ":5: influx.batch_size: want 1..100000, got -3"
	if code != 1 || !strings.Contains(out.String(), want) {
		t.Errorf("code %d, output %q, want %q", code, out.String(), want)
	}
}

// The real process stops on SIGTERM with exit code 0 (the test binary
// re-executes itself as ember-collector).
func TestSIGTERM(t *testing.T) {
	srv := testenv.NATS(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "collector.yaml")
	os.WriteFile(p, []byte("site: s1\ncollector_id: c1\nnats:\n  servers: ["+srv.ClientURL()+"]\nhttp:\n  listen: 127.0.0.1:0\n"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EMBER_COLLECTOR_MAIN=1", "EMBER_COLLECTOR_ARGS=-config "+p)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "collector running") {
			return fmt.Errorf("not running yet: %s", out.String())
		}
		return nil
	})
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "collector stopped") {
			t.Errorf("exit: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("no exit 15s after SIGTERM\n%s", out.String())
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("EMBER_COLLECTOR_MAIN") == "1" {
		os.Exit(run(strings.Fields(os.Getenv("EMBER_COLLECTOR_ARGS")), os.Stderr))
	}
	os.Exit(m.Run())
}

func TestExampleConfigParses(t *testing.T) {
	t.Setenv("EMBER_WEBHOOK_SECRET", "x")
	c, err := collector.LoadConfig("collector.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "pangyo-a" || c.Influx.EventsRetentionPolicy != "events" || len(c.NOC.Webhooks) != 1 {
		t.Errorf("example config decoded as %+v", c)
	}
}
