package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// AsyncPublisher is the part of jetstream.JetStream the forwarder uses.
type AsyncPublisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// NewJetStream returns a JetStream context suited to Run: futures the
// forwarder gave up on time out after a while (max(30 s, 4*AckTimeout),
// long enough for a slow link's queue) instead of piling up against the
// pending limit, which fits the forwarder's window.
func NewJetStream(nc *nats.Conn, opts Options) (jetstream.JetStream, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(max(30*time.Second, 4*opts.AckTimeout)),
		jetstream.WithPublishAsyncMaxPending(4*opts.MaxInFlight))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	return js, nil
}

// ErrAckTimeout is a batch whose acks did not all come within AckTimeout.
var ErrAckTimeout = errors.New("spool: timed out waiting for JetStream acks")

// item is one message of a batch being forwarded.
type item struct {
	idx            uint64 // log index (disk batches)
	size           int64  // disk bytes
	subject, msgID string
	data           []byte // aliases the wal's buffer, which is never modified in place
	bad            error  // corrupt entry: skipped, counted
}

type batch struct {
	kind  Kind
	mem   bool // from the alert overflow
	items []item
	futs  []jetstream.PubAckFuture
}

// Run forwards spooled entries to JetStream until ctx ends or the spool is
// closed: alerts first (the alert log, then alerts held in memory), then
// telemetry, in order, each with its Nats-Msg-Id, in windows of
// MaxInFlight async publishes. An entry leaves the spool only once
// JetStream acked it and every entry before it. While NATS or the stream
// is unavailable it retries with capped, jittered backoff; after a restart
// it replays from the first unacked entry with the same msg ids (the
// stream's Duplicates window drops what it already has). Only one Run may
// be active.
func (s *Spool) Run(ctx context.Context, js AsyncPublisher) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("spool: Run is already running")
	}
	defer s.running.Store(false)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()

	var (
		b        batch
		failures int
		since    time.Time
		delay    = 50 * time.Millisecond
		// window is the batch size: halved when acks time out (a slow
		// link would otherwise resend whole batches it cannot carry in
		// AckTimeout), doubled back after each full success.
		window = s.opts.MaxInFlight
	)
	for {
		if s.take(&b, window) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.stop:
				return ErrClosed
			case <-s.wake:
				continue
			}
		}
		acked, err := s.send(ctx, js, &b)
		s.ack(&b, acked)
		switch {
		case err == nil:
			window = min(2*window, s.opts.MaxInFlight)
		case errors.Is(err, ErrAckTimeout):
			window = max(window/2, 1)
		}
		if err == nil {
			if failures > 0 {
				s.log.Info("spool: forwarding resumed", "failed_attempts", failures, "stalled_for", time.Since(since).Round(time.Millisecond))
				failures, delay = 0, 50*time.Millisecond
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		default:
		}
		if acked < len(b.items) && isPoison(err) {
			s.reject(&b, acked, err)
			continue
		}
		s.mu.Lock()
		s.setErr(err)
		s.fwdFailures++
		s.mu.Unlock()
		if failures == 0 {
			since = time.Now()
			s.log.Warn("spool: forwarding stalled, retrying", "kind", b.kind, "err", err)
		}
		failures++
		wait := time.Duration(float64(delay) * (0.5 + rand.Float64()))
		delay = min(2*delay, s.opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.stop:
			t.Stop()
			return ErrClosed
		case <-s.kick:
			t.Stop()
			delay = 50 * time.Millisecond
		case <-t.C:
		}
	}
}

// Kick makes a forwarder waiting out a backoff retry now. Call it from
// nats.ReconnectHandler, so that the backlog (alerts first) goes out as
// soon as the connection is back rather than after up to MaxBackoff.
func (s *Spool) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// isPoison tells errors that retrying can never fix.
func isPoison(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// take fills b with the next entries to forward and returns how many.
func (s *Spool) take(b *batch, window int) int {
	clear(b.items)
	b.items = b.items[:0]
	b.mem = false
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	a := s.q[Alert]
	switch {
	case a.log != nil && max(a.next, a.first) <= a.last:
		b.kind = Alert
		s.readBatch(a, b, window)
	case len(s.overflow) > 0:
		b.kind, b.mem = Alert, true
		for _, e := range s.overflow[:min(len(s.overflow), window)] {
			b.items = append(b.items, item{subject: e.subject, msgID: e.msgID, data: e.data})
		}
		s.ovSent = true
	default:
		b.kind = Telemetry
		if t := s.q[Telemetry]; t.log != nil {
			s.readBatch(t, b, window)
		}
	}
	return len(b.items)
}

// readBatch reads up to window entries, and about window KiB, from q.
func (s *Spool) readBatch(q *queue, b *batch, window int) {
	batchBytes := int64(window) << 12
	var bytes int64
	for idx := max(q.next, q.first); idx <= q.last && len(b.items) < window && bytes < batchBytes; idx++ {
		it := item{idx: idx}
		raw, err := q.log.Read(idx)
		if err != nil {
			if len(b.items) > 0 {
				break // forward what we have; the error comes back next time
			}
			it.bad = fmt.Errorf("read %s entry %d: %w", q.kind, idx, err)
		} else {
			it.size = diskSize(len(raw))
			r, err := decodeRecord(raw)
			if err != nil {
				it.bad = fmt.Errorf("%s entry %d: %w", q.kind, idx, err)
			} else {
				it.subject, it.msgID, it.data = string(r.subject), string(r.msgID), r.data
			}
		}
		bytes += it.size
		b.items = append(b.items, it)
	}
}

// send publishes b's items asynchronously and waits for their acks in
// order; it returns how many leading items are done (acked or bad).
func (s *Spool) send(ctx context.Context, js AsyncPublisher, b *batch) (int, error) {
	clear(b.futs)
	b.futs = b.futs[:0]
	var pubErr error
	for i := range b.items {
		it := &b.items[i]
		if it.bad != nil {
			b.futs = append(b.futs, nil)
			continue
		}
		m := &nats.Msg{Subject: it.subject, Data: it.data, Header: nats.Header{wire.MsgIDHeader: []string{it.msgID}}}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			pubErr = fmt.Errorf("publish %s id %s: %w", it.subject, it.msgID, err)
			break
		}
		b.futs = append(b.futs, f)
	}
	timer := time.NewTimer(s.opts.AckTimeout)
	defer timer.Stop()
	for i, f := range b.futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			// The timeout counts from the last ack: a slow link that
			// keeps acking is not a dead one.
			timer.Reset(s.opts.AckTimeout)
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
				err = fmt.Errorf("%w: %w", ErrAckTimeout, err)
			}
			return i, fmt.Errorf("publish %s id %s: %w", b.items[i].subject, b.items[i].msgID, err)
		case <-timer.C:
			return i, fmt.Errorf("%w (%s id %s)", ErrAckTimeout, b.items[i].subject, b.items[i].msgID)
		case <-ctx.Done():
			return i, ctx.Err()
		case <-s.stop:
			return i, ErrClosed
		}
	}
	return len(b.futs), pubErr
}

// ack moves the cursor past b's first n items.
func (s *Spool) ack(b *batch, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.mem {
		s.ovSent = false
		for _, it := range b.items[:n] {
			s.ovBytes -= len(it.data) + len(it.subject) + len(it.msgID)
		}
		clear(s.overflow[:n])
		s.overflow = s.overflow[n:]
		s.q[Alert].published += uint64(n)
		return
	}
	q := s.q[b.kind]
	var bad int
	var firstBad error
	for _, it := range b.items[:n] {
		if it.idx < q.first || it.idx < q.next {
			continue // dropped for space, or acked already, meanwhile
		}
		if it.bad != nil {
			q.corrupt++
			if bad++; firstBad == nil {
				firstBad = it.bad
			}
		} else {
			q.published++
		}
		q.ackedBytes += it.size
		q.next = it.idx + 1
	}
	if bad > 0 { // one line per batch, not per entry
		s.setErr(firstBad)
		s.log.Error("spool: skipped unreadable entries", "kind", b.kind, "entries", bad, "first", firstBad)
	}
}

// reject skips b's item i, which the server refuses for good.
func (s *Spool) reject(b *batch, i int, err error) {
	it := b.items[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setErr(err)
	s.log.Error("spool: server refuses entry for good, skipping it", "kind", b.kind, "subject", it.subject, "msg_id", it.msgID, "err", err)
	if b.mem {
		s.ovBytes -= len(it.data) + len(it.subject) + len(it.msgID)
		s.overflow[0] = nil
		s.overflow = s.overflow[1:]
		s.q[Alert].rejected++
		return
	}
	q := s.q[b.kind]
	if it.idx >= q.first && it.idx == q.next {
		q.rejected++
		q.ackedBytes += it.size
		q.next++
	}
}
