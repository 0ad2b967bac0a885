package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// NATSRequest sends the evacuation JSON as a NATS request; the responder
// answers Reply.
type NATSRequest struct {
	Conn    *nats.Conn
	Subject string
	Timeout time.Duration
}

// Reply is what a NATS hook responder answers.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Run sends one request and waits for the reply.
func (n *NATSRequest) Run(ctx context.Context, ev *wire.Evacuation, body []byte) error {
	if n.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.Timeout)
		defer cancel()
	}
	m := nats.NewMsg(n.Subject)
	m.Data = body
	m.Header.Set("Ember-Evac-Id", ev.ID)
	m.Header.Set("Ember-Phase", ev.Phase)
	resp, err := n.Conn.RequestMsgWithContext(ctx, m)
	if err != nil {
		return fmt.Errorf("nats hook %s: %w", n.Subject, err)
	}
	var r Reply
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return Permanent(fmt.Errorf("nats hook %s: malformed reply %q: %w", n.Subject, resp.Data, err))
	}
	if !r.OK {
		return fmt.Errorf("nats hook %s: responder said not ok: %s", n.Subject, r.Error)
	}
	return nil
}
