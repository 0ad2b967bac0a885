package evacuate

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AuditStream is the JetStream stream of evacuation audit records.
const AuditStream = "EMBER_AUDIT"

// AuditSubject is ember.<site>.audit.evac.
func AuditSubject(site string) string { return "ember." + site + ".audit.evac" }

// AuditRecord is one entry of the audit trail: a policy decision, an
// operator action, a published phase or a hook step.
type AuditRecord struct {
	Time      time.Time `json:"time"`
	Site      string    `json:"site"`
	Collector string    `json:"collector"`
	Leader    bool      `json:"leader"`
	Fence     uint64    `json:"fence,omitempty"`
	// Kind is a Decision action ("prestage", "hold"...), "published", or
	// a hooks.Event kind ("hook_start", "hook_done"...).
	Kind    string   `json:"kind"`
	EvacID  string   `json:"evac_id,omitempty"`
	Domain  string   `json:"domain,omitempty"`
	Phase   string   `json:"phase,omitempty"`
	State   string   `json:"state,omitempty"`
	AlertID string   `json:"alert_id,omitempty"`
	Actor   string   `json:"actor,omitempty"`
	Hook    string   `json:"hook,omitempty"`
	Attempt int      `json:"attempt,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Error   string   `json:"error,omitempty"`
	Drill   bool     `json:"drill"`
	DryRun  bool     `json:"dry_run"`
	Targets []string `json:"targets,omitempty"`
	// SampleTime is the first alert's sample time (drill timing).
	SampleTime time.Time `json:"sample_time,omitzero"`
}

// EnsureAuditStream creates or updates the audit stream: file storage,
// deletes and purges denied, a year of history.
func EnsureAuditStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: AuditStream, Description: "emberwatch evacuation decisions, operator actions and hook runs",
		Subjects: []string{"ember.*.audit.>"}, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		MaxAge: 365 * 24 * time.Hour, DenyDelete: true, DenyPurge: true, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("create audit stream %s: %w", AuditStream, err)
	}
	return s, nil
}
