package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Publisher is the agent's publishing interface (agent.Publisher has the
// same method set); Spool implements it, and Options.Live is one.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

// Options tune a Spool. The zero value of every field means its default.
type Options struct {
	// MaxBytes bounds the disk used by both logs. Over it the oldest
	// telemetry is dropped; alerts never are. The bound is lowered to what
	// the filesystem can still hold (keeping room for one compaction), so
	// a disk shared with other files fills with telemetry drops, not
	// ENOSPC. Defaults to 256 MiB.
	MaxBytes int64
	// SyncInterval is the period of the batched fsync: an appended entry
	// survives a process kill at once and a power cut after at most this
	// long, unless JetStream acked it first (then it is not synced at
	// all). Defaults to 1s (at most one fsync per second per log).
	SyncInterval time.Duration
	// SegmentBytes is the size of a log segment file, which is also the
	// granularity of drops and the most a compaction rewrites. Defaults to
	// MaxBytes/64, clamped to [64 KiB, 1 MiB].
	SegmentBytes int
	// CompactInterval is how long acked entries may stay on disk once the
	// log is drained (they are resent after a crash and de-duplicated by
	// JetStream, whose window must exceed this). Shorter than the kernel's
	// dirty writeback expiry (30 s), so that entries acked in time mostly
	// never reach the card. Defaults to 10s.
	CompactInterval time.Duration
	// MaxEntryBytes rejects larger messages at Publish (they could never
	// be forwarded). Defaults to 1 MiB, NATS's default max_payload.
	MaxEntryBytes int
	// OverflowBytes is the memory that holds alerts the disk refused
	// (ENOSPC, I/O error) until they can be written or forwarded.
	// Defaults to 4 MiB.
	OverflowBytes int
	// AckTimeout bounds the wait for the next JetStream ack of a batch
	// (from the last ack, so a slow but live link is not a failure); on
	// a timeout the window halves. Defaults to 5s.
	AckTimeout time.Duration
	// MaxInFlight is the forwarder's window of unacknowledged messages.
	// Defaults to 256.
	MaxInFlight int
	// MaxBackoff caps the pause between forwarding attempts while NATS or
	// the stream is unavailable. Defaults to 5s.
	MaxBackoff time.Duration
	// Live receives what is not spooled: heartbeats (only meaningful
	// live) and any other subject that is neither telemetry nor alert.
	// When nil, publishing such a subject is an error.
	Live Publisher
	// Now stamps entries with their enqueue time. Defaults to time.Now.
	Now func() time.Time

	tick <-chan time.Time // tests drive the syncer by hand
}

func (o *Options) setDefaults() error {
	if o.MaxBytes == 0 {
		o.MaxBytes = 256 << 20
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = int(min(max(o.MaxBytes/64, 64<<10), 1<<20))
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = 10 * time.Second
	}
	if o.MaxEntryBytes == 0 {
		o.MaxEntryBytes = 1 << 20
	}
	if o.OverflowBytes == 0 {
		o.OverflowBytes = 4 << 20
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 256
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var errs []error
	if o.MaxBytes < 0 || o.SyncInterval < 0 || o.SegmentBytes < 0 || o.CompactInterval < 0 ||
		o.MaxEntryBytes < 0 || o.OverflowBytes < 0 || o.AckTimeout < 0 || o.MaxInFlight < 0 || o.MaxBackoff < 0 {
		errs = append(errs, errors.New("spool options: sizes and durations must not be negative"))
	}
	if o.MaxBytes < 4*int64(o.SegmentBytes) {
		errs = append(errs, fmt.Errorf("spool options: max bytes %d must be at least 4 segments (%d)", o.MaxBytes, 4*o.SegmentBytes))
	}
	return errors.Join(errs...)
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool: closed")

// ErrAlertOverflow is returned by Publish when an alert could be stored
// neither on disk nor in the bounded memory overflow.
var ErrAlertOverflow = errors.New("spool: alert not stored: disk refused it and the memory overflow is full")

// Spool is a disk store-and-forward buffer for alerts and telemetry.
// Publish, Stats and Close are safe for concurrent use; one Run at a time.
type Spool struct {
	log  *slog.Logger
	opts Options
	dir  string
	lock *os.File // flock on dir/LOCK, held until Close

	mu          sync.Mutex
	q           [numKinds]*queue
	buf         []byte   // record encoding buffer, reused
	overflow    []*entry // alerts the disk refused, in order; forwarded after the disk's alerts
	ovBytes     int
	ovSent      bool  // the forwarder holds overflow entries in flight
	limit       int64 // MaxBytes lowered to what the filesystem can hold
	diskFull    bool  // telemetry skips the disk until the next tick
	noRoom      bool  // the limit leaves no room for telemetry (logged once)
	closed      bool
	lastErr     error
	lastAt      time.Time
	written     uint64 // bytes appended plus bytes rewritten by compaction
	fwdFailures uint64 // forwarding attempts that failed
	syncs       atomic.Uint64

	wake    chan struct{} // a Publish happened (cap 1)
	kick    chan struct{} // retry now: the connection is back (cap 1)
	stop    chan struct{} // closed by Close
	running atomic.Bool
	bg      sync.WaitGroup // syncer and Run
}

// entry is an alert held in memory.
type entry struct {
	subject, msgID string
	data           []byte
	enqueued       time.Time
}

// Open opens (creating as needed) the spool in dir, with one log for
// alerts and one for telemetry, and starts its syncer. What earlier runs
// left in dir is forwarded first.
func Open(dir string, opts Options, log *slog.Logger) (*Spool, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{log: log, opts: opts, dir: dir, limit: opts.MaxBytes, lock: lock,
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), stop: make(chan struct{})}
	for k := range numKinds {
		q := &queue{kind: k, dir: filepath.Join(dir, k.String()), segSize: opts.SegmentBytes, lastCompact: opts.Now()}
		if err := q.open(); err != nil {
			for _, o := range s.q[:k] {
				o.log.Close()
			}
			if lock != nil {
				lock.Close()
			}
			return nil, fmt.Errorf("open spool: %w", err)
		}
		s.q[k] = q
	}
	s.mu.Lock()
	s.refreshLimit()
	s.enforceBound()
	s.mu.Unlock()
	log.Info("spool opened", "dir", dir, "alerts", s.q[Alert].depth(), "telemetry", s.q[Telemetry].depth(),
		"bytes", s.q[Alert].bytes+s.q[Telemetry].bytes, "limit", s.limit)
	s.bg.Add(1)
	go s.syncer(opts.tick)
	return s, nil
}

// classify tells a spooled subject's kind from its third token
// (ember.<site>.<kind>.…); ok is false for subjects that are not spooled.
func classify(subject string) (k Kind, ok bool) {
	_, rest, _ := strings.Cut(subject, ".")
	_, rest, _ = strings.Cut(rest, ".")
	kind, _, _ := strings.Cut(rest, ".")
	switch kind {
	case "alert":
		return Alert, true
	case "telemetry":
		return Telemetry, true
	}
	return 0, false
}

// Publish appends a message to its log and returns without touching the
// network: alerts (subject ember.<site>.alert.…) to the alert log,
// telemetry to the telemetry log; other subjects (heartbeats) go straight
// to Options.Live. data is copied. The message is safe from a process kill
// on return and from a power cut after the next sync.
//
// Telemetry that does not fit (disk full, I/O error) is dropped and
// counted, returning nil for ENOSPC; an alert the disk refuses goes to a
// bounded memory overflow, and only when that is full does Publish fail
// (ErrAlertOverflow).
func (s *Spool) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	kind, spooled := classify(subject)
	if !spooled {
		if s.opts.Live == nil {
			return fmt.Errorf("spool: %s is neither telemetry nor alert and no live publisher is set", subject)
		}
		return s.opts.Live.Publish(ctx, subject, msgID, data)
	}
	if msgID == "" {
		return fmt.Errorf("spool: %s: empty msg id (JetStream de-duplicates on it)", subject)
	}
	if n := len(subject) + len(msgID) + len(data) + recHeader + 20; n > s.opts.MaxEntryBytes {
		return fmt.Errorf("spool: %s id %s: %d bytes exceed the %d-byte entry limit", subject, msgID, n, s.opts.MaxEntryBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	now := s.opts.Now()
	q := s.q[kind]
	q.enqueued++
	var err error
	if kind == Telemetry {
		err = s.appendTelemetry(subject, msgID, data, now)
	} else {
		err = s.appendAlert(subject, msgID, data, now)
	}
	s.enforceBound()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return err
}

func (s *Spool) appendTelemetry(subject, msgID string, data []byte, now time.Time) error {
	q := s.q[Telemetry]
	if s.diskFull {
		q.dropped++
		return nil
	}
	if s.q[Alert].bytes+int64(s.opts.SegmentBytes) > s.limit {
		// No room for even one segment of telemetry (the filesystem is
		// nearly full): writing it would only be cut again at once, at the
		// cost of a rewrite and an fsync per message.
		q.dropped++
		if !s.noRoom {
			s.noRoom = true
			s.log.Warn("spool: no room for telemetry, dropping it", "dir", s.dir, "limit", s.limit, "alert_bytes", s.q[Alert].bytes)
		}
		return nil
	}
	s.noRoom = false
	s.buf = appendRecord(s.buf[:0], subject, msgID, data, now)
	err := q.append(s.buf)
	if err == nil {
		s.written += uint64(diskSize(len(s.buf)))
		return nil
	}
	q.dropped++
	s.setErr(err)
	if isNoSpace(err) {
		s.diskFull = true
		s.log.Warn("spool: disk full, dropping telemetry until space is freed", "dir", s.dir, "err", err)
		return nil
	}
	return fmt.Errorf("spool telemetry %s: %w", subject, err)
}

func (s *Spool) appendAlert(subject, msgID string, data []byte, now time.Time) error {
	q := s.q[Alert]
	var err error
	if len(s.overflow) == 0 { // otherwise queue behind the overflow to keep order
		s.buf = appendRecord(s.buf[:0], subject, msgID, data, now)
		err = q.append(s.buf)
		if err != nil && isNoSpace(err) {
			// Make room at telemetry's expense and try once more.
			s.shed(2 * int64(s.opts.SegmentBytes))
			err = q.append(s.buf)
		}
		if err == nil {
			s.written += uint64(diskSize(len(s.buf)))
			return nil
		}
		s.setErr(err)
		s.log.Error("spool: alert not written to disk, holding it in memory", "subject", subject, "msg_id", msgID, "err", err)
	}
	if s.ovBytes+len(data)+len(subject)+len(msgID) > s.opts.OverflowBytes {
		q.enqueued--
		return fmt.Errorf("%w: %s id %s (disk: %v)", ErrAlertOverflow, subject, msgID, err)
	}
	s.overflow = append(s.overflow, &entry{subject: subject, msgID: msgID, data: append([]byte(nil), data...), enqueued: now})
	s.ovBytes += len(data) + len(subject) + len(msgID)
	return nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func (s *Spool) setErr(err error) {
	s.lastErr, s.lastAt = err, s.opts.Now()
}

// enforceBound drops the oldest telemetry while the logs exceed the
// limit, down to one segment below it so that drops (each rewriting up to
// a segment) come in chunks rather than on every append.
func (s *Spool) enforceBound() {
	total := s.q[Alert].bytes + s.q[Telemetry].bytes
	if total <= s.limit {
		return
	}
	s.shed(total - (s.limit - int64(s.opts.SegmentBytes)))
}

// shed removes at least need bytes of the oldest telemetry (acked entries
// first, as they come first), or all of it: whole segment files first
// (no write, works on a full disk), then, if that is not enough, the front
// of the last segment (a rewrite of at most one segment).
func (s *Spool) shed(need int64) {
	q := s.q[Telemetry]
	if q.log == nil || q.first > q.last {
		return
	}
	before := q.bytes
	var lost uint64
	segs, err := q.segments()
	if err == nil {
		k := 0
		for freed := int64(0); k < len(segs)-1 && freed < need; k++ {
			freed += segs[k].size
		}
		lost, err = q.removeSegments(segs, k)
		q.dropped += lost
		need -= before - q.bytes
	}
	if err == nil && need > 0 && q.log != nil && q.first <= q.last {
		var l uint64
		l, err = s.cutFront(q, need)
		lost += l
	}
	if err != nil {
		s.setErr(err)
		s.log.Error("spool: cannot drop old telemetry", "err", err)
	}
	if lost > 0 {
		s.log.Warn("spool: full, dropped oldest telemetry", "dropped", lost, "dropped_total", q.dropped,
			"bytes_before", before, "bytes", q.bytes, "limit", s.limit)
	}
}

// cutFront removes entries from the front of q's single remaining segment
// until need bytes are freed, by rewriting the rest of the segment.
func (s *Spool) cutFront(q *queue, need int64) (uint64, error) {
	var freed, ackedFreed int64
	idx := q.first
	for ; idx <= q.last && freed < need; idx++ {
		raw, err := q.log.Read(idx)
		if err != nil {
			return 0, fmt.Errorf("read telemetry %d to drop it: %w", idx, err)
		}
		n := diskSize(len(raw))
		freed += n
		if idx < q.next {
			ackedFreed += n
		}
	}
	lost, err := q.truncate(idx)
	if err != nil {
		return 0, err
	}
	q.ackedBytes = max(0, q.ackedBytes-ackedFreed)
	q.dropped += lost
	s.written += uint64(s.rewritten(q, idx))
	return lost, nil
}

// rewritten is the size of the segment tidwall/wal rewrote when its front
// was cut at idx (0 when the log was emptied).
func (s *Spool) rewritten(q *queue, idx uint64) int64 {
	if idx > q.last {
		return 0
	}
	fi, err := os.Stat(filepath.Join(q.dir, fmt.Sprintf("%020d", idx)))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// refreshLimit lowers the bound to what the filesystem can hold: our
// current bytes plus the free space, less room for one compaction.
func (s *Spool) refreshLimit() {
	s.limit = s.opts.MaxBytes
	avail, err := freeBytes(s.dir)
	if err != nil {
		return
	}
	headroom := 2*int64(s.opts.SegmentBytes) + 64<<10
	fsCap := s.q[Alert].bytes + s.q[Telemetry].bytes + avail - headroom
	s.limit = max(0, min(s.limit, fsCap))
}

// syncer runs the periodic housekeeping until Close.
func (s *Spool) syncer(tick <-chan time.Time) {
	defer s.bg.Done()
	if tick == nil {
		t := time.NewTicker(s.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
			s.housekeep()
		}
	}
}

// housekeep is one tick: retry a full disk, move held alerts to disk,
// compact acked entries, enforce the bound, then fsync what changed.
func (s *Spool) housekeep() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	now := s.opts.Now()
	for _, q := range s.q {
		if q.log == nil {
			if err := q.reopen(); err != nil {
				s.setErr(err)
			}
		}
	}
	s.refreshLimit()
	if s.diskFull {
		s.diskFull = false // the next append finds out again
		s.log.Info("spool: retrying the disk for telemetry", "dropped_total", s.q[Telemetry].dropped)
	}
	s.flushOverflow()
	for _, q := range s.q {
		s.compact(q, now)
	}
	s.enforceBound()
	var toSync []syncer
	for _, q := range s.q {
		// Entries JetStream already acked need no local durability: when
		// the forwarder keeps up, appends are never fsynced and are
		// compacted away before the kernel's writeback (30 s) reaches the
		// card.
		if q.dirty && q.log != nil && q.depth() > 0 {
			toSync = append(toSync, q.log)
		}
		q.dirty = false
	}
	s.mu.Unlock()
	// fsync outside our lock (the wal holds its own while it syncs).
	for _, l := range toSync {
		if err := l.Sync(); err != nil {
			s.mu.Lock()
			s.setErr(fmt.Errorf("sync spool: %w", err))
			s.mu.Unlock()
			continue
		}
		s.syncs.Add(1)
	}
}

type syncer interface{ Sync() error }

// flushOverflow moves alerts held in memory to the alert log, in order,
// unless the forwarder is sending them right now.
func (s *Spool) flushOverflow() {
	if s.ovSent || len(s.overflow) == 0 {
		return
	}
	q := s.q[Alert]
	n := 0
	for _, e := range s.overflow {
		s.buf = appendRecord(s.buf[:0], e.subject, e.msgID, e.data, e.enqueued)
		if err := q.append(s.buf); err != nil {
			s.setErr(err)
			break
		}
		s.written += uint64(diskSize(len(s.buf)))
		s.ovBytes -= len(e.data) + len(e.subject) + len(e.msgID)
		n++
	}
	if n > 0 {
		clear(s.overflow[:n])
		s.overflow = s.overflow[n:]
		s.log.Info("spool: held alerts written to disk", "alerts", n, "still_held", len(s.overflow))
	}
}

// compact removes acked entries: all of them once the log is drained and
// enough has accumulated or CompactInterval passed (emptying a log costs
// one tiny file and one fsync), or the acked prefix once it reaches a
// segment (that rewrites at most the rest of one segment).
func (s *Spool) compact(q *queue, now time.Time) {
	if q.next <= q.first || q.log == nil {
		return
	}
	seg := int64(s.opts.SegmentBytes)
	drained := q.next > q.last
	var idx uint64
	switch {
	case drained && (q.ackedBytes >= seg/2 || now.Sub(q.lastCompact) >= s.opts.CompactInterval):
		idx = q.last + 1
	case !drained && q.ackedBytes >= seg:
		// A backlog is draining: delete the segments it has fully acked.
		segs, err := q.segments()
		if err != nil {
			s.setErr(err)
			return
		}
		k := 0
		for k+1 < len(segs) && segs[k+1].index <= q.next {
			k++
		}
		if _, err := q.removeSegments(segs, k); err != nil {
			s.setErr(err)
			s.log.Warn("spool: compaction failed", "kind", q.kind, "err", err)
		}
		q.lastCompact = now
		return
	default:
		return
	}
	if _, err := q.truncate(idx); err != nil {
		s.setErr(err)
		s.log.Warn("spool: compaction failed", "kind", q.kind, "err", err)
		return
	}
	q.ackedBytes = 0
	q.lastCompact = now
	s.written += uint64(s.rewritten(q, idx))
}

// Stats is a snapshot of the spool's counters.
type Stats struct {
	AlertDepth, TelemetryDepth uint64 // entries not yet acked by JetStream (on disk)
	AlertsHeld                 int    // alerts the disk refused, held in memory
	Bytes                      int64  // disk bytes of both logs
	Limit                      int64  // MaxBytes, lowered to what the filesystem holds
	AlertsEnqueued             uint64
	TelemetryEnqueued          uint64
	AlertsPublished            uint64 // acked by JetStream
	TelemetryPublished         uint64
	TelemetryDropped           uint64 // removed before their ack (bound or disk full)
	Corrupt                    uint64 // unreadable entries skipped on replay
	TornTails                  uint64 // logs whose last entry was cut at open (a failed or interrupted append)
	Rejected                   uint64 // refused by the server as too large, skipped
	Syncs                      uint64 // fsyncs: batched syncs, plus one per compaction or drop
	ForwardFailures            uint64 // forwarding attempts that failed (each followed by a backoff)
	BytesWritten               uint64 // bytes appended, plus rewritten by compaction
	DiskFull                   bool
	LastError                  string
	LastErrorAt                time.Time
}

// Stats returns the current counters. Enqueued = Published + Dropped +
// Depth (+ held, Corrupt, Rejected) holds for each kind.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, t := s.q[Alert], s.q[Telemetry]
	st := Stats{
		AlertDepth: a.depth(), TelemetryDepth: t.depth(), AlertsHeld: len(s.overflow),
		Bytes: a.bytes + t.bytes, Limit: s.limit,
		AlertsEnqueued: a.enqueued, TelemetryEnqueued: t.enqueued,
		AlertsPublished: a.published, TelemetryPublished: t.published,
		TelemetryDropped: t.dropped, Corrupt: a.corrupt + t.corrupt, Rejected: a.rejected + t.rejected,
		TornTails: a.torn + t.torn, ForwardFailures: s.fwdFailures,
		Syncs: s.syncs.Load() + a.truncations + t.truncations, BytesWritten: s.written, DiskFull: s.diskFull, LastErrorAt: s.lastAt,
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Drain waits until everything spooled has been acked by JetStream (Run
// must be running) or ctx ends. The agent calls it at shutdown, with a
// deadline, before cancelling Run and calling Close.
func (s *Spool) Drain(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		st := s.Stats()
		if st.AlertDepth == 0 && st.TelemetryDepth == 0 && st.AlertsHeld == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain spool (%d alerts, %d telemetry left): %w", st.AlertDepth+uint64(st.AlertsHeld), st.TelemetryDepth, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops the syncer and any Run, writes held alerts to disk if it
// can, fsyncs and closes the logs. What was not forwarded stays on disk
// for the next Open. Alerts still held in memory are reported as an error.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.bg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.ovSent = false
	s.flushOverflow()
	var errs []error
	for _, q := range s.q {
		if q.log == nil {
			continue
		}
		if err := q.log.Close(); err != nil { // Close fsyncs
			errs = append(errs, fmt.Errorf("close %s log: %w", q.kind, err))
		} else {
			s.syncs.Add(1)
		}
		q.log = nil
	}
	if n := len(s.overflow); n > 0 {
		errs = append(errs, fmt.Errorf("spool: %d alerts held in memory were lost at close (disk refused them)", n))
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
	}
	s.log.Info("spool closed", "alerts", s.q[Alert].depth(), "telemetry", s.q[Telemetry].depth())
	return errors.Join(errs...)
}
