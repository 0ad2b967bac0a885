package hooks

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Signer signs evacuation messages with an ed25519 nkey.
//
// The signature covers the JSON encoding of the evacuation (encoding/json,
// struct field order) with "signature" empty, and is carried base64url in
// Evacuation.Signature; Issuer is the nkey public key ("U...").
type Signer struct {
	kp  nkeys.KeyPair
	pub string
}

// NewSigner wraps a key pair.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer public key: %w", err)
	}
	return &Signer{kp: kp, pub: pub}, nil
}

// LoadSigner reads an nkey seed ("SU...", as written by `nk -gen user`)
// from a file.
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return NewSigner(kp)
}

// PublicKey is the issuer id receivers put on their allow-list.
func (s *Signer) PublicKey() string { return s.pub }

func signingInput(ev *wire.Evacuation) ([]byte, error) {
	c := *ev
	c.Signature = ""
	return json.Marshal(&c)
}

// Sign sets ev.Issuer and ev.Signature.
func (s *Signer) Sign(ev *wire.Evacuation) error {
	ev.Issuer = s.pub
	in, err := signingInput(ev)
	if err != nil {
		return fmt.Errorf("sign evacuation %s: %w", ev.ID, err)
	}
	sig, err := s.kp.Sign(in)
	if err != nil {
		return fmt.Errorf("sign evacuation %s: %w", ev.ID, err)
	}
	ev.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// Verification failures; every one is a security event.
var (
	ErrUnsigned      = errors.New("evacuation is not signed")
	ErrUntrusted     = errors.New("evacuation issuer is not on the allow-list")
	ErrForged        = errors.New("evacuation signature does not verify")
	ErrStaleMessage  = errors.New("evacuation timestamp outside the freshness window")
	ErrReplayed      = errors.New("evacuation (id, phase) already seen")
	ErrFenced        = errors.New("evacuation fencing token lower than one already seen")
	ErrMalformedEvac = errors.New("evacuation message is not valid JSON")
)

// Verifier checks evacuation messages: signature, issuer allow-list,
// freshness, replay of (id, phase) and fencing-token monotonicity. Safe for
// concurrent use.
type Verifier struct {
	trusted map[string]bool
	maxAge  time.Duration
	now     func() time.Time

	mu       sync.Mutex
	seen     map[string]time.Time
	maxFence uint64
}

// NewVerifier trusts the given issuer public keys. maxAge (default 30 s)
// bounds |now - ev.Time|; now defaults to time.Now.
func NewVerifier(trusted []string, maxAge time.Duration, now func() time.Time) *Verifier {
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{trusted: map[string]bool{}, maxAge: maxAge, now: now, seen: map[string]time.Time{}}
	for _, k := range trusted {
		v.trusted[k] = true
	}
	return v
}

// Check verifies signature, issuer and freshness without recording the
// message (for observers that must not consume the replay budget).
func (v *Verifier) Check(data []byte) (wire.Evacuation, error) {
	var ev wire.Evacuation
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("%w: %v", ErrMalformedEvac, err)
	}
	if ev.Signature == "" || ev.Issuer == "" {
		return ev, ErrUnsigned
	}
	if !v.trusted[ev.Issuer] {
		return ev, fmt.Errorf("%w: %s", ErrUntrusted, ev.Issuer)
	}
	sig, err := base64.RawURLEncoding.DecodeString(ev.Signature)
	if err != nil {
		return ev, fmt.Errorf("%w: signature encoding: %v", ErrForged, err)
	}
	pk, err := nkeys.FromPublicKey(ev.Issuer)
	if err != nil {
		return ev, fmt.Errorf("%w: issuer key: %v", ErrUntrusted, err)
	}
	in, err := signingInput(&ev)
	if err != nil {
		return ev, fmt.Errorf("%w: %v", ErrMalformedEvac, err)
	}
	if err := pk.Verify(in, sig); err != nil {
		return ev, ErrForged
	}
	if d := v.now().Sub(ev.Time); d > v.maxAge || d < -v.maxAge {
		return ev, fmt.Errorf("%w: %v old", ErrStaleMessage, d.Round(time.Millisecond))
	}
	return ev, nil
}

// Verify is Check plus replay and fencing checks; an accepted message is
// recorded so that the same (id, phase) is refused next time.
func (v *Verifier) Verify(data []byte) (wire.Evacuation, error) {
	ev, err := v.Check(data)
	if err != nil {
		return ev, err
	}
	key := ev.ID + "/" + ev.Phase
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, t := range v.seen {
		if now.Sub(t) > 2*v.maxAge { // older ones fail freshness anyway
			delete(v.seen, k)
		}
	}
	if _, dup := v.seen[key]; dup {
		return ev, fmt.Errorf("%w: %s", ErrReplayed, key)
	}
	// Only collector leaders fence their messages; an agent's fallback
	// message carries none and is not compared.
	if ev.Fence > 0 {
		if ev.Fence < v.maxFence {
			return ev, fmt.Errorf("%w: %d < %d", ErrFenced, ev.Fence, v.maxFence)
		}
		v.maxFence = ev.Fence
	}
	v.seen[key] = now
	return ev, nil
}

// SecurityAlert builds the alert raised for a refused evacuation message.
// reporter is the collector or agent that refused it.
func SecurityAlert(site, reporter string, refused error, subject string, now time.Time) wire.Alert {
	return wire.Alert{
		ID:   fmt.Sprintf("sec-%s-%d", reporter, now.UnixNano()),
		Site: site, Agent: reporter, Device: "evac",
		Category: wire.CategorySecurity, Stage: wire.StageWarning, PreviousStage: wire.StageNormal,
		Signatures: []wire.Signature{{Kind: "evac_message_refused", Value: 1, Threshold: 0}},
		SampleTime: now, Time: now,
		Summary: fmt.Sprintf("refused evacuation message on %s: %v", subject, refused),
	}
}
