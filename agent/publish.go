package agent

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Publisher sends one message. Implementations must copy data before
// returning: the caller reuses the buffer.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

// natsPublisher publishes on core NATS with a Nats-Msg-Id header; JetStream
// streams that capture the subject de-duplicate on it. While disconnected,
// nats.go buffers up to its reconnect buffer; the store-and-forward buffer
// (when configured) holds the rest.
type natsPublisher struct {
	nc *nats.Conn
}

// NewNATSPublisher returns a Publisher on an open connection.
func NewNATSPublisher(nc *nats.Conn) Publisher { return &natsPublisher{nc: nc} }

func (p *natsPublisher) Publish(_ context.Context, subject, msgID string, data []byte) error {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{wire.MsgIDHeader: []string{msgID}}}
	if err := p.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// telemetryMsgID names a round uniquely and reproducibly, so that a round
// published twice (retry, replay after a restart) is stored once.
func telemetryMsgID(buf []byte, agent, device string, at time.Time) []byte {
	buf = append(buf[:0], agent...)
	buf = append(buf, '.')
	buf = append(buf, device...)
	buf = append(buf, '.')
	return strconv.AppendInt(buf, at.UnixNano(), 10)
}

// ConnectNATS connects with the options a field agent needs: unlimited
// reconnects across every server, fast detection of half-open links, and
// a bounded reconnect buffer.
func ConnectNATS(cfg NATSConfig, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(cfg.MaxPingsOut),
		nats.ReconnectBufSize(cfg.ReconnectBufBytes),
		nats.Timeout(2 * time.Second),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	opts = append(opts, extra...)
	url := ""
	for i, s := range cfg.Servers {
		if i > 0 {
			url += ","
		}
		url += s
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	return nc, nil
}
