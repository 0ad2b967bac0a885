package spool

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tidwall/wal"
)

// Kind is the class of a spooled message. Alerts are forwarded first and
// never dropped; telemetry is dropped oldest first when the spool is full.
type Kind int

const (
	Alert Kind = iota
	Telemetry
	numKinds
)

func (k Kind) String() string {
	if k == Alert {
		return "alert"
	}
	return "telemetry"
}

// queue is one on-disk log, entries [first, last], with the forwarder's
// cursor: entries before next are acked and only wait for compaction.
// The Spool's mutex guards every field.
type queue struct {
	kind    Kind
	dir     string
	segSize int
	log     *wal.Log // nil while broken (reopen failed); retried on each tick
	first   uint64   // first entry on disk; first > last when empty
	last    uint64
	next    uint64 // first entry not yet acked by JetStream
	bytes   int64  // bytes of the log's files on disk
	dirty   bool   // written since the last fsync

	ackedBytes  int64     // disk bytes of acked entries not yet compacted
	lastCompact time.Time // when acked entries were last removed

	enqueued, published, dropped, corrupt, rejected uint64
	truncations                                     uint64 // each fsyncs the rewritten segment
	torn                                            uint64 // torn tails cut at open (a failed or interrupted append)
	opened                                          bool   // open succeeded before (reopens count front losses)
}

func walOptions(segSize int) *wal.Options {
	return &wal.Options{
		NoSync:           true, // our syncer fsyncs at most once per SyncInterval
		NoCopy:           true, // entries are never modified in place; we copy what we keep
		AllowEmpty:       true, // a drained log is truncated to nothing
		SegmentSize:      segSize,
		SegmentCacheSize: 2,
		DirPerms:         0o750,
		FilePerms:        0o640,
	}
}

// open opens (or creates) the log. A torn tail (power loss with unsynced
// appends, or a write that failed half way on a full disk) is cut back to
// the last whole entry first: tidwall/wal would refuse it as corrupt, and
// leak the tail's file descriptor doing so.
func (q *queue) open() error {
	cut, err := repairTail(q.dir)
	if err != nil {
		return fmt.Errorf("open %s log %s: repair tail: %w", q.kind, q.dir, err)
	}
	if cut > 0 {
		q.torn++
	}
	l, err := wal.Open(q.dir, walOptions(q.segSize))
	if err != nil {
		return fmt.Errorf("open %s log %s: %w", q.kind, q.dir, err)
	}
	first, err := l.FirstIndex()
	if err == nil {
		q.last, err = l.LastIndex()
	}
	if err != nil {
		l.Close()
		return fmt.Errorf("open %s log %s: %w", q.kind, q.dir, err)
	}
	if q.opened && first > max(q.next, q.first) {
		// Unacked entries vanished from the front while the log was
		// closed (a half-done truncation or segment removal): count them.
		q.dropped += first - max(q.next, q.first)
	}
	q.opened = true
	q.log, q.first = l, first
	q.next = max(q.next, first)
	if q.next > q.last+1 {
		q.next = q.first // the log lost entries we had acked (power loss): resend
	}
	q.bytes = dirBytes(q.dir)
	return nil
}

// reopen discards the in-memory state of the wal after a failed write
// (tidwall/wal's tail buffer is then out of step with the file) and loads
// it again from disk.
func (q *queue) reopen() error {
	if q.log != nil {
		closeLog(q.log)
		q.log = nil
	}
	return q.open()
}

// closeLog closes a log being discarded. wal.Log.Close fsyncs first and
// returns without closing the file if the fsync fails; a second Close
// retries (Linux reports a write-back error once per descriptor). Should
// that fail too, os.File's cleanup closes the fd when the log is collected.
func closeLog(l *wal.Log) {
	if err := l.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
		_ = l.Close()
	}
}

// depth is the number of entries not yet acked.
func (q *queue) depth() uint64 {
	if q.next > q.last {
		return 0
	}
	return q.last - max(q.next, q.first) + 1
}

// append writes rec as the next entry. On error the log has been reloaded
// from disk and the entry is known not to be in it.
func (q *queue) append(rec []byte) error {
	if q.log == nil {
		if err := q.reopen(); err != nil {
			return err
		}
	}
	idx := q.last + 1
	err := q.log.Write(idx, rec)
	if err == nil {
		q.last = idx
		q.bytes += diskSize(len(rec))
		q.dirty = true
		return nil
	}
	werr := fmt.Errorf("append to %s log: %w", q.kind, err)
	if rerr := q.reopen(); rerr != nil {
		return errors.Join(werr, rerr)
	}
	if q.last >= idx {
		// The entry landed before the error (the wal failed while rolling
		// to a new segment).
		q.dirty = true
		return nil
	}
	return werr
}

// truncate removes every entry before idx (idx = last+1 empties the log).
// It returns the number of unacked entries removed.
func (q *queue) truncate(idx uint64) (lost uint64, err error) {
	if q.log == nil || idx <= q.first {
		return 0, nil
	}
	idx = min(idx, q.last+1)
	if err := q.log.TruncateFront(idx); err != nil {
		terr := fmt.Errorf("truncate %s log before %d: %w", q.kind, idx, err)
		if errors.Is(err, wal.ErrCorrupt) {
			// The front was cut but the files were left half renamed; a
			// reopen finishes the job (the wal's START file protocol).
			if rerr := q.reopen(); rerr != nil {
				return 0, errors.Join(terr, rerr)
			}
		}
		return 0, terr
	}
	q.truncations++
	if idx > q.next {
		lost = idx - max(q.next, q.first)
		q.next = idx
		q.ackedBytes = 0
	}
	q.first = idx
	q.bytes = dirBytes(q.dir)
	if q.first > q.last {
		q.dirty = false // nothing left that a sync could save
		q.ackedBytes = 0
	}
	return lost, nil
}

// segFile is one segment file of a tidwall/wal log: its name is the index
// of its first entry as 20 decimal digits.
type segFile struct {
	index uint64
	name  string
	size  int64
}

// segments lists q's segment files, oldest first.
func (q *queue) segments() ([]segFile, error) {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s segments: %w", q.kind, err)
	}
	var segs []segFile
	for _, e := range ents {
		n := e.Name()
		if len(n) != 20 || !e.Type().IsRegular() || !isDigits(n) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("list %s segments: %w", q.kind, err)
		}
		idx, _ := strconv.ParseUint(n, 10, 64)
		segs = append(segs, segFile{index: idx, name: n, size: fi.Size()})
	}
	slices.SortFunc(segs, func(a, b segFile) int { return cmp.Compare(a.index, b.index) })
	return segs, nil
}

// removeSegments deletes the k oldest segment files (never the tail), with
// the log closed, and reopens it. Unlike TruncateFront it writes nothing,
// so it frees space on a full disk and costs the card no wear. It returns
// the number of unacked entries removed.
func (q *queue) removeSegments(segs []segFile, k int) (lost uint64, err error) {
	k = min(k, len(segs)-1)
	if k <= 0 {
		return 0, nil
	}
	newFirst := segs[k].index
	if q.log != nil {
		closeLog(q.log)
		q.log = nil
		q.truncations++
	}
	var errs []error
	var freed int64
	for _, sg := range segs[:k] {
		// Oldest first, so that a crash half way leaves a valid log.
		if err := os.Remove(filepath.Join(q.dir, sg.name)); err != nil {
			errs = append(errs, err)
			break
		}
		freed += sg.size
	}
	if len(errs) == 0 && newFirst > q.next {
		lost = newFirst - max(q.next, q.first)
		q.next = newFirst
		q.ackedBytes = 0
	} else {
		q.ackedBytes = max(0, q.ackedBytes-freed)
	}
	if err := q.open(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return lost, fmt.Errorf("remove old %s segments: %w", q.kind, err)
	}
	return lost, nil
}

// dirBytes sums the sizes of the files in dir: what the log really costs on
// disk, segments and any leftover temporary file alike.
func dirBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// repairTail cuts the last segment of a tidwall/wal log after its last
// complete entry and returns how many bytes it cut. Segments are named by
// their first index as 20 decimal digits; entries are a uvarint length and
// the data, so a torn entry is always recognisable as one that runs past
// the end of the file, and zeros as empty entries.
func repairTail(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // a new log
	}
	if err != nil {
		return 0, err
	}
	var segs []string
	for _, e := range ents {
		if n := e.Name(); len(n) == 20 && e.Type().IsRegular() && isDigits(n) {
			segs = append(segs, n)
		}
	}
	if len(segs) == 0 {
		return 0, nil
	}
	slices.Sort(segs)
	path := filepath.Join(dir, segs[len(segs)-1])
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	good := 0
	for good < len(b) {
		size, n := binary.Uvarint(b[good:])
		// We never write an empty record: a zero length is the zero-filled
		// tail that a power cut can leave after unsynced appends.
		if n <= 0 || size == 0 || size > uint64(len(b)-good-n) {
			break
		}
		good += n + int(size)
	}
	if good == len(b) {
		return 0, nil
	}
	if err := os.Truncate(path, int64(good)); err != nil {
		return 0, err
	}
	return int64(len(b) - good), nil
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
