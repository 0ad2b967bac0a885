package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// fakeClock is the spool's Now in tests that simulate minutes of ticks.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// procIO reads this process's write counters from /proc/self/io (Linux).
func procIO() (wchar, writeBytes int64) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "wchar":
			wchar = n
		case "write_bytes":
			writeBytes = n
		}
	}
	return wchar, writeBytes
}

// TestWriteBudget (T21): 20 devices at 1 Hz for a simulated minute of
// 1 s syncer ticks, with the broker up (the forwarder keeps up) and with
// it down (everything must be made durable locally). It reports bytes
// written and fsyncs per minute and per day, and checks the fsync budget
// (<= 1/s) and that the spool adds no write amplification of its own.
func TestWriteBudget(t *testing.T) {
	const devices, seconds = 20, 60
	// A UPS round as line protocol: about 25 fields, 520 bytes.
	var line bytes.Buffer
	line.WriteString("ember,site=s1,agent=a1,device=ups-01,room=r1,row=2,rack=7 ")
	for i := range 25 {
		if i > 0 {
			line.WriteByte(',')
		}
		fmt.Fprintf(&line, "field%02d.volts=%d.%03d", i, 50+i, i*37)
	}
	line.WriteString(" 1700000000000000000")
	payload := line.Bytes()

	for _, online := range []bool{true, false} {
		name := map[bool]string{true: "broker up", false: "broker down"}[online]
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1700000000, 0)}
			sp, err := Open(t.TempDir(), Options{Now: clock.Now, tick: make(chan time.Time)}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			if online {
				s := testenv.NATS(t)
				_, js := connect(t, s.ClientURL())
				createStreams(t, js)
				runForwarder(t, sp, js)
			}
			wchar0, wb0 := procIO()
			var payloadBytes int64
			for sec := range seconds {
				for d := range devices {
					subject := fmt.Sprintf("ember.s1.telemetry.a1.ups-%02d", d)
					id := fmt.Sprintf("a1.ups-%02d.%d", d, sec)
					if err := sp.Publish(context.Background(), subject, id, payload); err != nil {
						t.Fatal(err)
					}
					payloadBytes += int64(len(payload))
				}
				if online {
					drain(t, sp, 10*time.Second)
				}
				clock.Advance(time.Second)
				sp.housekeep()
			}
			wchar1, wb1 := procIO()
			st := sp.Stats()
			perDay := float64(24*60*60) / seconds
			t.Logf("%s: %d msgs/min, payload %d B/min; spool wrote %d B/min (%.0f MB/day), %d fsyncs/min (%.2f/s); process wchar %d B, write_bytes %d B",
				name, devices*seconds, payloadBytes, st.BytesWritten, float64(st.BytesWritten)*perDay/1e6, st.Syncs, float64(st.Syncs)/seconds,
				wchar1-wchar0, wb1-wb0)
			if st.Syncs > seconds {
				t.Errorf("%d fsyncs in %d s: over the 1/s budget", st.Syncs, seconds)
			}
			if overhead := float64(st.BytesWritten) / float64(payloadBytes); overhead > 1.15 {
				t.Errorf("spool wrote %.2fx the payload; framing should add < 15%%", overhead)
			}
			if online {
				// Acked entries are never fsynced; only compactions sync
				// (one per CompactInterval).
				if max := uint64(seconds/10 + 1); st.Syncs > max {
					t.Errorf("broker up: %d fsyncs, want <= %d (compactions only)", st.Syncs, max)
				}
				if st.TelemetryPublished != devices*seconds {
					t.Errorf("published %d, want %d", st.TelemetryPublished, devices*seconds)
				}
			} else if st.Syncs < seconds-1 {
				t.Errorf("broker down: %d fsyncs in %d ticks; unacked data must be synced every tick", st.Syncs, seconds)
			}
		})
	}
}

// TestWriteBudgetRealTime (T21 on a real filesystem): two child processes
// run the spool for 45 s of real time, 20 devices at 1 Hz, one with the
// broker up and one with it unreachable, and report the kernel's own
// account of their writes (/proc/self/io write_bytes less
// cancelled_write_bytes: pages dirtied and not discarded before
// writeback) and their fsyncs. Children keep the broker's own writes out
// of the figures.
func TestWriteBudgetRealTime(t *testing.T) {
	if os.Getenv("SPOOL_CHILD") == "budget" {
		budgetChild(t)
		return
	}
	if testing.Short() {
		t.Skip("45 s of real time")
	}
	const seconds = 45
	s := testenv.NATS(t)
	_, js := connect(t, s.ClientURL())
	createStreams(t, js)
	down := fmt.Sprintf("nats://127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	type result struct {
		name string
		out  string
		err  error
	}
	results := make(chan result, 2)
	for name, url := range map[string]string{"broker up": s.ClientURL(), "broker down": down} {
		go func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestWriteBudgetRealTime$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SPOOL_CHILD=budget", "SPOOL_DIR="+t.TempDir(), "SPOOL_NATS="+url,
				"SPOOL_SECONDS="+strconv.Itoa(seconds))
			out, err := cmd.CombinedOutput()
			results <- result{name, string(out), err}
		}()
	}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s child: %v\n%s", r.name, r.err, r.out)
		}
		var msgs, syncs, spoolBytes, wchar, wb, cancelled int64
		i := strings.Index(r.out, "budget ")
		if i < 0 {
			t.Fatalf("%s child said no budget line:\n%s", r.name, r.out)
		}
		if _, err := fmt.Sscanf(r.out[i:], "budget msgs=%d syncs=%d spool_bytes=%d wchar=%d write_bytes=%d cancelled=%d",
			&msgs, &syncs, &spoolBytes, &wchar, &wb, &cancelled); err != nil {
			t.Fatalf("%s: parse %q: %v", r.name, r.out[i:], err)
		}
		perDay := float64(24*60*60) / seconds
		t.Logf("%s: %d msgs in %d s; spool appended %d B (%.0f MB/day); device writes (write_bytes-cancelled) %d B (%.0f MB/day); %d fsyncs (%.2f/s)",
			r.name, msgs, seconds, spoolBytes, float64(spoolBytes)*perDay/1e6, wb-cancelled, float64(wb-cancelled)*perDay/1e6, syncs, float64(syncs)/seconds)
		if syncs > seconds+2 { // + the two logs' final sync at Close
			t.Errorf("%s: %d fsyncs in %d s, over 1/s", r.name, syncs, seconds)
		}
		if msgs != 20*seconds {
			t.Errorf("%s: %d messages spooled, want %d", r.name, msgs, 20*seconds)
		}
	}
}

// budgetChild spools 20 devices at 1 Hz in real time and reports.
func budgetChild(t *testing.T) {
	seconds, _ := strconv.Atoi(os.Getenv("SPOOL_SECONDS"))
	sp, err := Open(os.Getenv("SPOOL_DIR"), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, js := connect(t, os.Getenv("SPOOL_NATS"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sp.Run(ctx, js)
	payload := bytes.Repeat([]byte("x"), 600)
	wchar0, wb0 := procIO()
	c0 := procCancelled()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for sec := range seconds {
		for d := range 20 {
			if err := sp.Publish(ctx, fmt.Sprintf("ember.s1.telemetry.a1.ups-%02d", d), fmt.Sprintf("a1.ups-%02d.%d", d, sec), payload); err != nil {
				t.Fatal(err)
			}
			n++
		}
		<-tick.C
	}
	cancel()
	st := sp.Stats()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	wchar1, wb1 := procIO()
	fmt.Printf("budget msgs=%d syncs=%d spool_bytes=%d wchar=%d write_bytes=%d cancelled=%d\n",
		n, sp.Stats().Syncs, st.BytesWritten, wchar1-wchar0, wb1-wb0, procCancelled()-c0)
}

func procCancelled() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "cancelled_write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
