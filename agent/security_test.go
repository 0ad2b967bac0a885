package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/selfmon"
	"github.com/emberwatch/emberwatch/internal/wire"
)

type capturePublisher struct{ alerts []string }

func (c *capturePublisher) Publish(_ context.Context, subject, msgID string, data []byte) error {
	if sub, err := wire.ParseSubject(subject); err == nil && sub.Kind == wire.KindAlert {
		c.alerts = append(c.alerts, string(data))
	}
	return nil
}

func TestTLSRefusalRaisesSecurityAlert(t *testing.T) {
	if !tlsFailure(fmt.Errorf("read unit 1: %w", x509.UnknownAuthorityError{})) || !tlsFailure(errors.New("remote error: tls: bad certificate")) {
		t.Fatal("TLS refusals not recognised")
	}
	if tlsFailure(errors.New("request timed out")) || tlsFailure(nil) {
		t.Fatal("a timeout is not a TLS refusal")
	}
	pub := &capturePublisher{}
	a := &Agent{cfg: &Config{Site: "s", AgentID: "gw-1"}, pub: pub, now: time.Now, log: discardLog()}
	d := &device{id: "rack-a1"}
	round := func(err error) { a.linkSecurity(context.Background(), d, &round{at: time.Now(), err: err}) }
	round(nil)
	round(fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}))
	round(fmt.Errorf("dial: %w", x509.UnknownAuthorityError{})) // still failing: no new alert
	round(errors.New("request timed out"))                      // another failure: the alert stands
	round(nil)                                                  // works again: cleared
	if len(pub.alerts) != 2 {
		t.Fatalf("alerts %d, want raise and clear:\n%v", len(pub.alerts), pub.alerts)
	}
}

// The metric's fault labels follow drivers.Fault's order.
func TestFaultKindsMatchDrivers(t *testing.T) {
	for i, k := range selfmon.FaultKinds[1:] {
		if got := drivers.Fault(i + 1).String(); got != k {
			t.Errorf("fault %d is %q in drivers, %q in metrics", i+1, got, k)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
