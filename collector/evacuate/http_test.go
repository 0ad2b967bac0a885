package evacuate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func postAction(t *testing.T, url, by string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(ActionBody{By: by, Note: "test"})
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestHandlerAbortThroughFollower(t *testing.T) {
	s := testenv.NATS(t)
	hl := newHookLog(t)
	kpA, kpB := mustKP(t), mustKP(t)
	trusted := []string{pub(kpA), pub(kpB)}
	pol := func(c *PolicyConfig) { c.Hold = 20 * time.Second }
	a := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: kpA, trusted: trusted, policy: pol, hooks: []hooks.Spec{hl.spec("drain")}})
	waitLeader(t, a)
	b := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-b", kp: kpB, trusted: trusted, policy: pol, hooks: []hooks.Spec{hl.spec("drain")}})
	srv := httptest.NewServer(b.Handler()) // the follower's API
	defer srv.Close()
	agent := connect(t, s.ClientURL())
	publishAlert(t, agent, alert("al-1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now(), families("thermal", "gas")))
	var id string
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, err := http.Get(srv.URL + "/api/v1/evacuations")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var l EvacList
		json.NewDecoder(resp.Body).Decode(&l)
		if l.Collector != "col-b" || l.Leader || len(l.Evacuations) != 1 || l.Evacuations[0].State != StateHolding {
			return fmt.Errorf("list %+v", l)
		}
		id = l.Evacuations[0].ID
		if la, _ := a.List(t.Context()); len(la) != 1 {
			return fmt.Errorf("leader lists %+v", la)
		}
		return nil
	})
	if code, _ := postAction(t, srv.URL+"/api/v1/evacuations/"+id+"/abort", ""); code != 400 {
		t.Fatalf("abort without operator: %d", code)
	}
	if code, _ := postAction(t, srv.URL+"/api/v1/evacuations/nope/abort", "erin"); code != 404 {
		t.Fatalf("abort unknown: %d", code)
	}
	if code, body := postAction(t, srv.URL+"/api/v1/evacuations/"+id+"/abort", "erin"); code != 200 || body["state"] != StateAborted || body["actor"] != "erin" {
		t.Fatalf("abort: %d %v", code, body)
	}
	if code, _ := postAction(t, srv.URL+"/api/v1/evacuations/"+id+"/approve", "erin"); code != 409 {
		t.Fatalf("approve after abort: %d", code)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		if hl.count("abort") != 1 {
			return fmt.Errorf("runs %v", hl.lines())
		}
		return nil
	})
	if hl.count("evacuate") != 0 {
		t.Fatalf("evacuated after abort: %v", hl.lines())
	}
	abort := a.audit.find(func(r AuditRecord) bool { return r.Kind == ActAbort })
	if len(abort) != 1 || abort[0].Actor != "erin" {
		t.Fatalf("abort audit %+v", abort)
	}
}

// latencyRig measures alert publish → first evacuate hook start, with no
// hold window; each alert opens a fresh evacuation (the previous one is
// completed first).
type latencyRig struct {
	t      testing.TB
	e      *testEngine
	agent  *nats.Conn
	starts chan time.Time
	n      int
}

func newLatencyRig(t testing.TB) *latencyRig {
	s := testenv.NATS(t)
	r := &latencyRig{t: t, starts: make(chan time.Time, 16)}
	r.e = startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: mustKP(t),
		policy: func(c *PolicyConfig) {
			c.Hold, c.MaxCapacityPercent, c.MaxConcurrentDomains, c.CommonMode.Domains = 0, 100, 10, 1000
		},
		hooks: []hooks.Spec{{Name: "true", Type: hooks.TypeExec, Command: []string{"/bin/true"}, Timeout: 5 * time.Second}},
		onAudit: func(a AuditRecord) {
			if a.Kind == hooks.EventStart && a.Phase == wire.PhaseEvacuate {
				r.starts <- a.Time
			}
		}})
	waitLeader(t, r.e)
	r.agent = connect(t, s.ClientURL())
	return r
}

func (r *latencyRig) one() time.Duration {
	r.n++
	sent := time.Now()
	publishAlert(r.t, r.agent, alert(fmt.Sprintf("bench-%d", r.n), "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, sent, families("thermal", "gas")))
	var d time.Duration
	select {
	case st := <-r.starts:
		d = st.Sub(sent)
	case <-time.After(5 * time.Second):
		r.t.Fatalf("alert %d: no hook start", r.n)
	}
	l, _ := r.e.List(context.Background())
	if rep := r.e.Act(context.Background(), CtlRequest{Op: "complete", ID: l[0].ID, By: "bench"}); !rep.OK {
		r.t.Fatalf("complete: %s", rep.Error)
	}
	return d
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func TestAlertToHookLatency(t *testing.T) {
	r := newLatencyRig(t)
	var ds []time.Duration
	for range 30 {
		ds = append(ds, r.one())
	}
	p50, p99 := pct(ds, 0.5), pct(ds, 0.99)
	t.Logf("alert → first evacuate hook start over %d alerts: p50 %v p99 %v", len(ds), p50, p99)
	// The target is p99 < 250 ms; the assertion is looser so a loaded
	// shared machine does not fail it (the benchmark reports the figure).
	if p99 > time.Second {
		t.Fatalf("p99 %v > 1s", p99)
	}
}

func BenchmarkAlertToFirstHook(b *testing.B) {
	r := newLatencyRig(b)
	var all []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		all = append(all, r.one())
	}
	b.ReportMetric(float64(pct(all, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(all, 0.99).Microseconds())/1000, "p99-ms")
}

func TestEvacuationsSource(t *testing.T) {
	s := testenv.NATS(t)
	e := startEngine(t, engineOpts{urls: s.ClientURL(), id: "col-a", kp: mustKP(t), policy: func(c *PolicyConfig) { c.Hold = time.Minute }})
	waitLeader(t, e)
	agent := connect(t, s.ClientURL())
	publishAlert(t, agent, alert("al-1", "gw-01", "rack-a1", wire.CategoryThermal, wire.StageCritical, time.Now(), families("thermal", "gas")))
	testenv.WaitFor(t, 5*time.Second, func() error {
		evs, err := e.Evacuations(t.Context())
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].Phase != wire.PhasePrestage || evs[0].Domain != "ups-1" || !strings.Contains(evs[0].Reason.Summary, "[holding]") {
			return fmt.Errorf("evacuations %+v", evs)
		}
		return nil
	})
}
