package evacuate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the KV bucket holding the evacuation leader lease.
const LeaseBucket = "EMBER_EVAC_LEASE"

// Lease is a leader lease in a JetStream KV bucket whose TTL is the lease
// TTL: the holder renews it with Update(revision) (compare-and-swap) every
// TTL/3; if it stops renewing, the entry expires and another collector's
// Create (put-if-absent) succeeds. The fencing token is the revision at
// which the lease was acquired; it only grows.
type Lease struct {
	kv    jetstream.KeyValue
	key   string
	owner string
	ttl   time.Duration

	mu         sync.Mutex
	leader     bool
	rev        uint64 // last written revision
	fence      uint64 // revision at acquisition
	validUntil time.Time
}

// NewLease opens (creating if needed) the lease bucket. key is the site.
func NewLease(ctx context.Context, js jetstream.JetStream, bucket, key, owner string, ttl time.Duration, replicas int) (*Lease, error) {
	if bucket == "" {
		bucket = LeaseBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "emberwatch evacuation leader lease",
		TTL: ttl, History: 1, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	return &Lease{kv: kv, key: key, owner: owner, ttl: ttl}, nil
}

// Step acquires or renews the lease once. It returns whether we lead now
// and whether that changed. Errors other than losing a race are returned
// after stepping down (a leader that cannot renew must stop acting).
func (l *Lease) Step(ctx context.Context) (leader, changed bool, err error) {
	start := time.Now()
	// Safe margin: the entry lives ttl from the server's write, which is
	// after start; act only until start + 3/4 ttl.
	until := start.Add(l.ttl * 3 / 4)
	l.mu.Lock()
	was, rev := l.leader, l.rev
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	defer cancel()
	if was {
		nrev, uerr := l.kv.Update(ctx, l.key, []byte(l.owner), rev)
		l.mu.Lock()
		defer l.mu.Unlock()
		if uerr != nil {
			l.leader = false
			return false, true, fmt.Errorf("renew lease (rev %d): %w", rev, uerr)
		}
		l.rev, l.validUntil = nrev, until
		return true, false, nil
	}
	nrev, cerr := l.kv.Create(ctx, l.key, []byte(l.owner))
	if errors.Is(cerr, jetstream.ErrKeyExists) {
		return false, false, nil
	}
	if cerr != nil {
		return false, false, fmt.Errorf("acquire lease: %w", cerr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader, l.rev, l.fence, l.validUntil = true, nrev, nrev, until
	return true, true, nil
}

// Valid returns nil while we hold an unexpired lease; the engine checks it
// before every action (fencing on our side).
func (l *Lease) Valid() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leader {
		return errors.New("not the evacuation leader")
	}
	if time.Now().After(l.validUntil) {
		return fmt.Errorf("lease not renewed since %s: fenced out", l.validUntil.Format(time.RFC3339Nano))
	}
	return nil
}

// Fence returns the fencing token of the current tenure (0 if not leader).
func (l *Lease) Fence() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leader {
		return 0
	}
	return l.fence
}

// Release gives the lease up (clean shutdown), so a follower takes over
// without waiting for the TTL.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	was, rev := l.leader, l.rev
	l.leader = false
	l.mu.Unlock()
	if was {
		_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev))
	}
}

// Holder returns the current lease holder's id, or "".
func (l *Lease) Holder(ctx context.Context) string {
	e, err := l.kv.Get(ctx, l.key)
	if err != nil {
		return ""
	}
	return string(e.Value())
}
