package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Event kinds reported by Set.RunPhase.
const (
	EventStart       = "hook_start"
	EventAttemptFail = "hook_attempt_failed"
	EventDone        = "hook_done"
	EventFailed      = "hook_failed"
	EventSkipped     = "hook_skipped"      // dry-run skip
	EventAlreadyDone = "hook_already_done" // another run completed it
	EventInDoubt     = "hook_in_doubt"     // claimed by a run that never finished
	EventFenced      = "hook_fenced"       // we lost leadership before starting it
	EventLedgerError = "hook_ledger_error"
)

// Event is one step of a hook run, for the audit trail and drill reports.
type Event struct {
	Kind    string    `json:"kind"`
	Hook    string    `json:"hook"`
	EvacID  string    `json:"evac_id"`
	Phase   string    `json:"phase"`
	Attempt int       `json:"attempt,omitempty"`
	DryRun  bool      `json:"dry_run"`
	Owner   string    `json:"owner,omitempty"`
	Error   string    `json:"error,omitempty"`
	Time    time.Time `json:"time"`
}

// Hook is a configured hook and its runner.
type Hook struct {
	Spec   Spec
	Runner Runner
}

// Set is the hooks of one collector or agent, with their ledger.
type Set struct {
	Hooks  []Hook
	Ledger Ledger
	Log    *slog.Logger
	// Backoff defaults to Backoff.
	Backoff func(int) time.Duration
	// Limit, when set, bounds hook attempts (a token bucket: "at most N
	// hook executions per minute"); attempts wait for a token.
	Limit *rate.Limiter
}

// PerMinute returns a limiter of n attempts per minute with a burst of n,
// or nil for n <= 0.
func PerMinute(n int) *rate.Limiter {
	if n <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
}

// NewSet validates specs and builds their runners.
func NewSet(specs []Spec, nc *nats.Conn, ledger Ledger, log *slog.Logger) (*Set, error) {
	if p := Validate(specs); len(p) > 0 {
		return nil, fmt.Errorf("hooks: %w", p[0])
	}
	s := &Set{Ledger: ledger, Log: log}
	for _, sp := range specs {
		sp.Normalize()
		r, err := NewRunner(sp, nc, log)
		if err != nil {
			return nil, err
		}
		s.Hooks = append(s.Hooks, Hook{Spec: sp, Runner: r})
	}
	return s, nil
}

// PhaseOptions tell RunPhase who runs it and how to report.
type PhaseOptions struct {
	Owner string // collector or agent id, recorded in the ledger
	Fence uint64 // leader fencing token, recorded in the ledger
	// Guard is called before each hook starts; an error (leadership lost)
	// stops the hook from starting.
	Guard func() error
	// OnEvent receives every event; it must not block for long.
	OnEvent func(Event)
}

// RunPhase runs the hooks of ev.Phase concurrently, each at most once per
// (ev.ID, ev.Phase, hook) as recorded in the ledger. It returns when every
// hook finished or was skipped, with the number of hooks that failed.
func (s *Set) RunPhase(ctx context.Context, ev *wire.Evacuation, o PhaseOptions) (failed int) {
	body, err := json.Marshal(ev)
	if err != nil {
		// Cannot happen for this struct; do not run hooks on a broken body.
		s.emit(o, Event{Kind: EventFailed, EvacID: ev.ID, Phase: ev.Phase, Error: err.Error()})
		return len(s.Hooks)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range s.Hooks {
		if !h.Spec.RunsFor(ev.Phase) {
			continue
		}
		wg.Go(func() {
			if !s.runOne(ctx, ev, body, h, o) {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

func (s *Set) emit(o PhaseOptions, e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if o.OnEvent != nil {
		o.OnEvent(e)
	}
	if s.Log != nil {
		lvl := slog.LevelInfo
		if e.Kind == EventFailed || e.Kind == EventLedgerError || e.Kind == EventInDoubt {
			lvl = slog.LevelWarn
		}
		s.Log.Log(context.Background(), lvl, "hook", "kind", e.Kind, "hook", e.Hook, "evac", e.EvacID,
			"phase", e.Phase, "attempt", e.Attempt, "dry_run", e.DryRun, "err", e.Error)
	}
}

// runOne returns false when the hook failed or could not be run.
func (s *Set) runOne(ctx context.Context, ev *wire.Evacuation, body []byte, h Hook, o PhaseOptions) bool {
	base := Event{Hook: h.Spec.Name, EvacID: ev.ID, Phase: ev.Phase, DryRun: ev.DryRun, Owner: o.Owner}
	ev1 := func(kind string, attempt int, err error) Event {
		e := base
		e.Kind, e.Attempt, e.Time = kind, attempt, time.Now()
		if err != nil {
			e.Error = err.Error()
		}
		return e
	}
	if o.Guard != nil {
		if err := o.Guard(); err != nil {
			s.emit(o, ev1(EventFenced, 0, err))
			return false
		}
	}
	key := LedgerKey(ev.ID, ev.Phase, h.Spec.Name)
	claim := Entry{State: StateStarted, Owner: o.Owner, Fence: o.Fence, Time: time.Now()}
	if ev.DryRun && h.Spec.DryRun == DryRunSkip {
		claim.State = StateSkipped
	}
	granted, rev, prev, err := s.Ledger.Claim(ctx, key, claim, h.Spec.RerunInDoubt)
	if err != nil {
		s.emit(o, ev1(EventLedgerError, 0, err))
		return false
	}
	if !granted {
		switch prev.State {
		case StateDone, StateSkipped:
			s.emit(o, ev1(EventAlreadyDone, 0, nil))
			return true
		}
		s.emit(o, ev1(EventInDoubt, 0, fmt.Errorf("claimed by %s at %s, state %s", prev.Owner, prev.Time.Format(time.RFC3339), prev.State)))
		return false
	}
	if claim.State == StateSkipped {
		s.emit(o, ev1(EventSkipped, 0, nil))
		return true
	}
	backoff := s.Backoff
	if backoff == nil {
		backoff = Backoff
	}
	runner := h.Runner
	if s.Limit != nil {
		runner = limited{s.Limit, runner}
	}
	err = runAttempts(ctx, runner, ev, body, h.Spec.retries(), backoff, func(n int, err error) {
		if err != nil {
			s.emit(o, ev1(EventAttemptFail, n, err))
		}
	}, func(n int) { s.emit(o, ev1(EventStart, n, nil)) })
	fin := Entry{State: StateDone, Owner: o.Owner, Fence: o.Fence, Time: time.Now()}
	if err != nil {
		fin.State, fin.Detail = StateFailed, err.Error()
	}
	// Finish with a fresh context: the outcome must be recorded even when
	// ctx was cancelled during the run.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ferr := s.Ledger.Finish(fctx, key, rev, fin); ferr != nil {
		s.emit(o, ev1(EventLedgerError, 0, ferr))
	}
	if err != nil {
		s.emit(o, ev1(EventFailed, 0, err))
		return false
	}
	s.emit(o, ev1(EventDone, 0, nil))
	return true
}

// limited waits for a token before each attempt.
type limited struct {
	lim *rate.Limiter
	r   Runner
}

func (l limited) Run(ctx context.Context, ev *wire.Evacuation, body []byte) error {
	if err := l.lim.Wait(ctx); err != nil {
		return fmt.Errorf("hook rate limit: %w", err)
	}
	return l.r.Run(ctx, ev, body)
}
