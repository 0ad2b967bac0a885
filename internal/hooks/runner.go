package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Runner runs one hook once (one attempt). body is ev marshalled as JSON,
// handed over so that every hook sees the same bytes. Implementations are
// safe for concurrent use.
type Runner interface {
	Run(ctx context.Context, ev *wire.Evacuation, body []byte) error
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// NewRunner builds the runner of a validated spec. nc is needed only for
// nats hooks.
func NewRunner(s Spec, nc *nats.Conn, log *slog.Logger) (Runner, error) {
	s.Normalize()
	if p := Validate([]Spec{s}); len(p) > 0 {
		return nil, fmt.Errorf("hook %q: %w", s.Name, p[0])
	}
	switch s.Type {
	case TypeExec:
		return &Exec{Argv: s.Command, Env: s.Env, Timeout: s.timeout(), Log: log}, nil
	case TypeWebhook:
		sec, err := ResolveSecret(s.Secret)
		if err != nil {
			return nil, fmt.Errorf("hook %q: secret: %w", s.Name, err)
		}
		return &Webhook{URL: s.URL, Secret: sec, Timeout: s.timeout()}, nil
	case TypeNATS:
		if nc == nil {
			return nil, fmt.Errorf("hook %q: nats hook without a NATS connection", s.Name)
		}
		return &NATSRequest{Conn: nc, Subject: s.Subject, Timeout: s.timeout()}, nil
	}
	return nil, fmt.Errorf("hook %q: unknown type %q", s.Name, s.Type)
}

// Backoff is the delay before retry n (1-based): 250 ms doubled per
// attempt, capped at 5 s, with ×0.5–1.5 jitter (SRE book ch. 22).
func Backoff(n int) time.Duration {
	d := 250 * time.Millisecond << min(n-1, 5)
	d = min(d, 5*time.Second)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// runAttempts runs r up to 1+retries times. onStart and onAttempt are
// told of each attempt's start and result.
func runAttempts(ctx context.Context, r Runner, ev *wire.Evacuation, body []byte, retries int,
	backoff func(int) time.Duration, onAttempt func(n int, err error), onStart func(n int)) error {
	var err error
	for n := 1; ; n++ {
		onStart(n)
		err = r.Run(ctx, ev, body)
		onAttempt(n, err)
		if err == nil || IsPermanent(err) || n > retries || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-t.C:
		}
	}
}
