package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ledger entry states.
const (
	StateStarted = "started"
	StateDone    = "done"
	StateFailed  = "failed"
	StateSkipped = "skipped"
)

// Entry is one ledger record for (evacuation id, phase, hook).
type Entry struct {
	State  string    `json:"state"`
	Owner  string    `json:"owner"`
	Fence  uint64    `json:"fence,omitempty"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"`
}

// Ledger records hook runs so that each runs at most once across
// processes. Implementations are safe for concurrent use.
type Ledger interface {
	// Claim records e (state started) under key if the key is absent, or,
	// when takeOver is set, replaces an unfinished (started or failed)
	// entry. granted=false returns the entry that prevented the claim.
	Claim(ctx context.Context, key string, e Entry, takeOver bool) (granted bool, rev uint64, prev Entry, err error)
	// Finish records the outcome of a granted claim.
	Finish(ctx context.Context, key string, rev uint64, e Entry) error
}

var ledgerKeyRE = regexp.MustCompile(`^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$`)

// LedgerKey is the ledger key of one hook run.
func LedgerKey(evacID, phase, hook string) string { return evacID + "." + phase + "." + hook }

// KVLedger keeps the ledger in a JetStream KV bucket.
type KVLedger struct{ kv jetstream.KeyValue }

// LedgerBucket is the default KV bucket of the hook ledger.
const LedgerBucket = "EMBER_EVAC_HOOKS"

// NewKVLedger creates or opens the ledger bucket. replicas is 1 or 3 (R3
// on a cluster); entries expire after ttl (0: never).
func NewKVLedger(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, ttl time.Duration) (*KVLedger, error) {
	if bucket == "" {
		bucket = LedgerBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "emberwatch evacuation hook runs (at most once)",
		Replicas: max(replicas, 1), TTL: ttl, History: 5, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open hook ledger bucket %s: %w", bucket, err)
	}
	return &KVLedger{kv: kv}, nil
}

// Claim implements Ledger with KV Create (put-if-absent) and Update (CAS).
func (l *KVLedger) Claim(ctx context.Context, key string, e Entry, takeOver bool) (bool, uint64, Entry, error) {
	if !ledgerKeyRE.MatchString(key) {
		return false, 0, Entry{}, fmt.Errorf("hook ledger: invalid key %q", key)
	}
	b, _ := json.Marshal(e)
	rev, err := l.kv.Create(ctx, key, b)
	if err == nil {
		return true, rev, Entry{}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, 0, Entry{}, fmt.Errorf("hook ledger: claim %s: %w", key, err)
	}
	cur, err := l.kv.Get(ctx, key)
	if err != nil {
		return false, 0, Entry{}, fmt.Errorf("hook ledger: read %s: %w", key, err)
	}
	var prev Entry
	if err := json.Unmarshal(cur.Value(), &prev); err != nil {
		return false, 0, Entry{}, fmt.Errorf("hook ledger: decode %s: %w", key, err)
	}
	if !takeOver || (prev.State != StateStarted && prev.State != StateFailed) {
		return false, 0, prev, nil
	}
	rev, err = l.kv.Update(ctx, key, b, cur.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, 0, prev, nil // someone else took it over first
	}
	if err != nil {
		return false, 0, prev, fmt.Errorf("hook ledger: take over %s: %w", key, err)
	}
	return true, rev, prev, nil
}

// Finish implements Ledger.
func (l *KVLedger) Finish(ctx context.Context, key string, rev uint64, e Entry) error {
	b, _ := json.Marshal(e)
	if _, err := l.kv.Update(ctx, key, b, rev); err != nil {
		return fmt.Errorf("hook ledger: finish %s: %w", key, err)
	}
	return nil
}

// Get returns the entry under key (for reports and tests).
func (l *KVLedger) Get(ctx context.Context, key string) (Entry, error) {
	cur, err := l.kv.Get(ctx, key)
	if err != nil {
		return Entry{}, fmt.Errorf("hook ledger: read %s: %w", key, err)
	}
	var e Entry
	err = json.Unmarshal(cur.Value(), &e)
	return e, err
}

// MemLedger is a process-local ledger: the agent's fallback uses it when
// isolated, and it makes RunPhase idempotent inside one process.
type MemLedger struct {
	mu  sync.Mutex
	m   map[string]Entry
	rev uint64
}

// NewMemLedger returns an empty in-memory ledger.
func NewMemLedger() *MemLedger { return &MemLedger{m: map[string]Entry{}} }

// Claim implements Ledger.
func (l *MemLedger) Claim(_ context.Context, key string, e Entry, takeOver bool) (bool, uint64, Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.m[key]; ok {
		if !takeOver || (prev.State != StateStarted && prev.State != StateFailed) {
			return false, 0, prev, nil
		}
	}
	l.rev++
	l.m[key] = e
	return true, l.rev, Entry{}, nil
}

// Finish implements Ledger.
func (l *MemLedger) Finish(_ context.Context, key string, _ uint64, e Entry) error {
	l.mu.Lock()
	l.m[key] = e
	l.mu.Unlock()
	return nil
}

// Get returns the entry under key.
func (l *MemLedger) Get(key string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	return e, ok
}

var (
	_ Ledger = (*KVLedger)(nil)
	_ Ledger = (*MemLedger)(nil)
)
