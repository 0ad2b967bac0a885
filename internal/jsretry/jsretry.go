// Package jsretry retries JetStream set-up calls (creating streams, KV
// buckets and consumers) that fail only because the cluster is not ready
// yet: a meta leader being elected, a replicated asset waiting for its
// peers, a node restarting. A collector started together with its NATS
// cluster, or during a node's restart, must wait for it rather than exit;
// a permanent error (permissions, a bad configuration) is returned at once.
package jsretry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transient reports whether err is worth retrying: a request that timed
// out or found no responder, or a 503 from JetStream (cluster or meta
// leader not available).
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) {
		return true
	}
	// 503: JetStream or its meta leader unavailable; 10005: no peers for
	// placement yet (a replicated asset created before every node joined).
	// JetStream not enabled (for the server or the account) is a
	// configuration error: say so at once.
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return false
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.Code == 503 || api.ErrorCode == noPeers) {
		return true
	}
	var old *nats.APIError
	return errors.As(err, &old) && (old.Code == 503 || old.ErrorCode == noPeers)
}

const noPeers = 10005 // JSClusterNoPeersErr

// Do runs fn until it succeeds, fails with a permanent error, or ctx
// ends. Each attempt gets its own timeout (attempt), and retries back off
// from 200 ms to 5 s. what names the operation in logs; fn's errors should
// say what failed, they are returned as they are.
func Do(ctx context.Context, log *slog.Logger, what string, attempt time.Duration, fn func(context.Context) error) error {
	wait := 200 * time.Millisecond
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil {
			if n > 1 && log != nil {
				log.Info("JetStream ready", "op", what, "attempts", n)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (gave up waiting for JetStream: %v)", err, ctx.Err())
		}
		if !Transient(err) {
			return err // callers' errors already say what failed
		}
		if log != nil {
			log.Warn("JetStream not ready; retrying", "op", what, "attempt", n, "in", wait, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting for JetStream: %v)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}
