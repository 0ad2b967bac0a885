package evacuate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

// A paused leader (it stops renewing, as under SIGSTOP) is fenced out: it
// stops considering itself valid before the lease expires, a follower
// takes over with a higher fencing token, and the old leader's renewal is
// refused when it wakes up.
func TestLeasePausedLeaderIsFencedOut(t *testing.T) {
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	ttl := 600 * time.Millisecond
	a, err := NewLease(ctx, js, "", "s1", "col-a", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewLease(ctx, js, "", "s1", "col-b", ttl, 1)
	if lead, changed, err := a.Step(ctx); !lead || !changed || err != nil {
		t.Fatalf("a: %v %v %v", lead, changed, err)
	}
	if lead, _, _ := b.Step(ctx); lead {
		t.Fatal("two leaders")
	}
	if a.Holder(ctx) != "col-a" || a.Valid() != nil {
		t.Fatal("a should hold a valid lease")
	}
	fenceA := a.Fence()
	// a pauses: no renewal. It must stop acting before b can take over.
	time.Sleep(ttl * 3 / 4)
	if a.Valid() == nil {
		t.Fatal("a still valid after 3/4 ttl without renewal")
	}
	var took time.Duration
	start := time.Now()
	testenv.WaitFor(t, 5*time.Second, func() error {
		if lead, _, _ := b.Step(ctx); !lead {
			return errors.New("b not leader yet")
		}
		took = time.Since(start)
		return nil
	})
	if b.Fence() <= fenceA {
		t.Fatalf("fence %d not above %d", b.Fence(), fenceA)
	}
	// a wakes up and tries to renew with its old revision: refused.
	lead, changed, err := a.Step(ctx)
	if lead || !changed || err == nil {
		t.Fatalf("woken leader: lead=%v changed=%v err=%v", lead, changed, err)
	}
	t.Logf("takeover %v after the paused leader's validity ended", took.Round(time.Millisecond))
	// Clean release hands over at once.
	b.Release(ctx)
	if lead, _, _ := a.Step(ctx); !lead {
		t.Fatal("lease not free after release")
	}
}
