package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Webhook headers.
const (
	SignatureHeader = "Ember-Signature"
	EventIDHeader   = "Ember-Event-Id"
)

// DefaultTolerance is how far a webhook timestamp may be from the
// receiver's clock (Stripe and Svix use 5 minutes).
const DefaultTolerance = 5 * time.Minute

// Webhook POSTs the evacuation JSON, signed.
type Webhook struct {
	URL     string
	Secret  []byte
	Timeout time.Duration
	// Client defaults to a client with Timeout.
	Client *http.Client
	// Now defaults to time.Now; tests move it.
	Now func() time.Time
}

// SignWebhook returns the Ember-Signature value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Run POSTs once. 2xx is success; 4xx other than 408 and 429 is permanent.
func (w *Webhook) Run(ctx context.Context, ev *wire.Evacuation, body []byte) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: %w", w.URL, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, SignWebhook(w.Secret, now(), body))
	req.Header.Set(EventIDHeader, ev.ID+"."+ev.Phase)
	c := w.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook %s: %s: %s", w.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return Permanent(fmt.Errorf("webhook %s: %s: %s", w.URL, resp.Status, bytes.TrimSpace(msg)))
}

// Webhook verification errors.
var (
	ErrNoSignature  = errors.New("hooks: missing or malformed Ember-Signature")
	ErrBadSignature = errors.New("hooks: signature does not match")
	ErrStale        = errors.New("hooks: signature timestamp outside tolerance")
	ErrReplay       = errors.New("hooks: delivery already seen")
)

// VerifyWebhook checks an Ember-Signature header against body. Any of
// secrets may match (rotation); any v1 entry may match (the sender's
// rotation). tolerance <= 0 means DefaultTolerance.
func VerifyWebhook(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	t := time.Unix(sec, 0)
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %v off", ErrStale, d.Round(time.Second))
	}
	for _, s := range secrets {
		want := mac(s, ts, body)
		for _, got := range sigs {
			if hmac.Equal(want, got) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// Receiver verifies webhook deliveries and refuses replays: a delivery
// whose signed body was already accepted within the tolerance is
// ErrReplay. The replay key is a hash of the body, which the signature
// covers: the Ember-Event-Id header is not signed, and neither is the
// spelling of the signature's hex, so neither can decide what is new.
// Safe for concurrent use.
type Receiver struct {
	Secrets   [][]byte
	Tolerance time.Duration

	mu   sync.Mutex
	seen map[[sha256.Size]byte]time.Time
}

// Verify checks one request's headers and body at now.
func (r *Receiver) Verify(h http.Header, body []byte, now time.Time) error {
	sig := h.Get(SignatureHeader)
	if err := VerifyWebhook(sig, body, r.Secrets, now, r.Tolerance); err != nil {
		return err
	}
	key := sha256.Sum256(body)
	tol := r.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[[sha256.Size]byte]time.Time{}
	}
	for k, t := range r.seen {
		// Older entries cannot be replayed: their timestamps are stale.
		if now.Sub(t) > 2*tol {
			delete(r.seen, k)
		}
	}
	if _, dup := r.seen[key]; dup {
		return fmt.Errorf("%w: %s", ErrReplay, h.Get(EventIDHeader))
	}
	r.seen[key] = now
	return nil
}

// Forget removes a delivery (its body) from the replay cache, so that the
// sender's retry is accepted after the receiver failed to process it.
func (r *Receiver) Forget(body []byte) {
	key := sha256.Sum256(body)
	r.mu.Lock()
	delete(r.seen, key)
	r.mu.Unlock()
}
