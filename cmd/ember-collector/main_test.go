package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/nats-io/nkeys"
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
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
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

// With an evacuation section, the engine runs inside the collector and
// serves its API under /api/v1/evacuations.
func TestEvacuationWired(t *testing.T) {
	srv := testenv.NATS(t)
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	os.WriteFile(filepath.Join(dir, "collector.nk"), seed, 0o600)
	os.WriteFile(filepath.Join(dir, "topo.yaml"), []byte("domains:\n  - {id: ups-1, batteries: [{agent: gw-01, device: b1}], hosts: [h1]}\n"), 0o600)
	p := filepath.Join(dir, "collector.yaml")
	os.WriteFile(p, []byte("site: s1\ncollector_id: c1\nnats:\n  servers: ["+srv.ClientURL()+"]\nhttp:\n  listen: 127.0.0.1:0\n"+
		"evacuation:\n  signing_key: collector.nk\n  topology_file: topo.yaml\n"), 0o644)
	cfg, err := collector.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.Assemble(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var body map[string]any
	testenv.WaitFor(t, 15*time.Second, func() error {
		resp, err := http.Get("http://" + c.HTTPAddr() + "/api/v1/evacuations")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body = nil
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return fmt.Errorf("not the engine's answer yet: %v", err)
		}
		if body["collector"] != "c1" {
			return fmt.Errorf("answer %v", body)
		}
		return nil
	})

	// A bad section stops the collector before anything starts.
	os.WriteFile(p, []byte("site: s1\nnats:\n  servers: ["+srv.ClientURL()+"]\nevacuation:\n  signing_key: collector.nk\n  topology_file: nope.yaml\n"), 0o644)
	var out bytes.Buffer
	if code := run([]string{"-config", p}, &out); code != 1 || !strings.Contains(out.String(), "nope.yaml") {
		t.Errorf("bad evacuation section: code %d, %q", code, out.String())
	}
}

// lockedBuffer is written by exec's copying goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
