package jsretry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/testenv"
)

func TestDoRetriesTransientErrors(t *testing.T) {
	calls := 0
	err := Do(t.Context(), nil, "open", time.Second, func(context.Context) error {
		calls++
		if calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestDoReturnsPermanentErrorAtOnce(t *testing.T) {
	calls := 0
	perm := errors.New("open bucket X: permissions violation")
	err := Do(t.Context(), nil, "open", time.Second, func(context.Context) error { calls++; return perm })
	if !errors.Is(err, perm) || calls != 1 {
		t.Fatalf("err %v after %d calls, want the permanent error after 1", err, calls)
	}
}

func TestDoGivesUpWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := Do(ctx, nil, "open", 50*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err == nil || !strings.Contains(err.Error(), "gave up waiting for JetStream") {
		t.Fatalf("err %v, want a give-up error", err)
	}
}

// A real server without JetStream has no responder for the JetStream API,
// which looks just like a cluster whose JetStream is not up yet: Do keeps
// waiting, and stops when its context ends.
func TestNoJetStreamWaitsUntilContextEnds(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	calls := 0
	err = Do(ctx, nil, "create stream", 200*time.Millisecond, func(ctx context.Context) error {
		calls++
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "X", Subjects: []string{"x"}})
		return err
	})
	if err == nil || calls < 2 || !strings.Contains(err.Error(), "gave up waiting for JetStream") {
		t.Fatalf("err %v after %d calls: want retries, then a give-up error", err, calls)
	}
}

// Creating a replicated bucket right after a cluster formed succeeds
// through the retries, however long the peers take to be placeable.
func TestReplicatedBucketOnNewCluster(t *testing.T) {
	servers := testenv.NATSCluster(t, 3)
	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := Do(ctx, nil, "create R3 bucket", 10*time.Second, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "R3", Replicas: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
