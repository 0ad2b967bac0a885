package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names the collector creates when no stream holds the subjects yet.
// If an operator (deploy/nats) or another component already made a stream
// covering them, the collector uses that one as is.
const (
	StreamTelemetry  = "EMBER_TELEMETRY"
	StreamAlerts     = "EMBER_ALERTS"
	StreamHeartbeats = "EMBER_HEARTBEATS"
)

// streamSpecs are the streams of the contract's three kinds, for every site
// ("ember.*.<kind>.>") so that one NATS system can serve several sites.
func streamSpecs(c *Config) []jetstream.StreamConfig {
	r := c.NATS.Replicas
	return []jetstream.StreamConfig{
		{
			Name: StreamTelemetry, Subjects: []string{wire.Wildcard("*", wire.KindTelemetry)},
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: r,
			MaxAge: c.NATS.telemetryMaxAge, Duplicates: 2 * time.Minute, Discard: jetstream.DiscardOld,
			Description: "ember telemetry (line protocol); the collector acks after InfluxDB accepted it",
		},
		{
			Name: StreamAlerts, Subjects: []string{wire.Wildcard("*", wire.KindAlert)},
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: r,
			MaxAge: c.NATS.alertMaxAge, Duplicates: 10 * time.Minute,
			Description: "ember alerts, acks included; the collector rebuilds its state from it",
		},
		{
			Name: StreamHeartbeats, Subjects: []string{wire.Wildcard("*", wire.KindHeartbeat)},
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: r,
			MaxAge: time.Hour, MaxMsgsPerSubject: 16,
			Description: "ember agent heartbeats (short retention)",
		},
	}
}

// ensureStream returns the name of the stream that stores spec's subjects,
// creating spec when none does.
func ensureStream(ctx context.Context, js jetstream.JetStream, spec jetstream.StreamConfig, sample string) (string, error) {
	name, err := js.StreamNameBySubject(ctx, sample)
	if err == nil && name != "" {
		return name, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", fmt.Errorf("look up stream for %s: %w", sample, err)
	}
	if _, err := js.CreateStream(ctx, spec); err != nil {
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return spec.Name, nil
		}
		return "", fmt.Errorf("create stream %s: %w", spec.Name, err)
	}
	return spec.Name, nil
}
