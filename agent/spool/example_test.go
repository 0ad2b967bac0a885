package spool_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberwatch/emberwatch/agent/spool"
)

// heartbeats publishes live-only subjects on core NATS.
type heartbeats struct{ nc *nats.Conn }

func (h heartbeats) Publish(_ context.Context, subject, msgID string, data []byte) error {
	return h.nc.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{"Nats-Msg-Id": {msgID}}})
}

// The agent's wiring: spool every alert and telemetry message, forward in
// the background, kick the forwarder on reconnect, flush at shutdown.
func Example() {
	log := slog.New(slog.DiscardHandler)
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1)) // the spool is the buffer
	if err != nil {
		return
	}
	defer nc.Drain()
	sp, err := spool.Open("/var/lib/ember", spool.Options{Live: heartbeats{nc}}, log)
	if err != nil {
		return
	}
	nc.SetReconnectHandler(func(*nats.Conn) { sp.Kick() })
	js, err := spool.NewJetStream(nc, spool.Options{})
	if err != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx, js) }()

	// The sampling loop publishes through the spool; it never blocks on
	// the network.
	_ = sp.Publish(ctx, "ember.dc1.telemetry.gw1.ups-1", "gw1.ups-1.1700000000000000000",
		[]byte("ember,site=dc1,agent=gw1,device=ups-1 battery.voltage.volts=54.2 1700000000000000000"))

	// Shutdown: forward what can be in 5 s, stop the forwarder, final sync.
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = sp.Drain(dctx)
	cancel()
	stop()
	<-done
	_ = sp.Close()
}
