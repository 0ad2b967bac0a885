// Package collector is emberwatch's edge collector: it takes telemetry,
// alerts and heartbeats from NATS JetStream, stores them in InfluxDB,
// keeps the site state, serves the HTTP API and the live status page, and
// fans alerts out to NOC consumers. The evacuation engine
// (collector/evacuate) plugs in through EvacuationSource, OnAlert and
// Handle.
//
// # Streams and consumers
//
// At start the collector makes sure three streams exist (EMBER_TELEMETRY on
// ember.*.telemetry.>, EMBER_ALERTS on ember.*.alert.>, EMBER_HEARTBEATS
// on ember.*.heartbeat.>), creating them only when no stream holds those
// subjects yet. Each collector of a site then reads:
//
//   - a durable pull consumer "ember-collector-<site>-telemetry", shared by
//     all collectors of the site (work is split among them; a crashed
//     collector's messages are redelivered to the others after AckWait);
//   - a durable "ember-collector-<site>-alerts" (InfluxDB annotations and
//     NOC webhooks, once per site);
//   - a durable "ember-collector-<site>-blackbox" on the agents' black-box
//     stream once it exists (stored like telemetry);
//   - its own ordered consumers on all three streams for the site state,
//     which is therefore complete in every collector and rebuilt from the
//     streams after a restart (alerts from the start of the stream, the
//     last telemetry and heartbeat message of every subject).
//
// # Storage
//
// Telemetry payloads are already line protocol. The collector scans every
// line without allocating (lineproto.go), checks it (a timestamp that is
// present, not in the future and not from an unset clock; identity tags
// matching the subject) and appends it unchanged to a batch, so InfluxDB
// stores the sample's own timestamp and a replay overwrites rather than
// duplicates. Lines that fail go to the ember_quarantine measurement with a
// reason. Batches are written with WriteAPIBlocking (gzip) by one writer
// goroutine while the next batch fills; messages are acked only after
// InfluxDB accepted their batch. When InfluxDB is down the writer retries
// with capped exponential backoff, keeps its messages alive with
// InProgress, and ingestion stops pulling: memory is bounded by
// nats.max_in_flight (MaxAckPending) and JetStream holds the backlog.
//
// # Site state
//
// State holds every device's latest values (by vocabulary name), faults,
// location labels and health; every condition's current stage and ack;
// every agent's last heartbeat. Per rack it derives the hottest cell and
// the least-squares slope of the rack's hottest temperature over two
// minutes. An agent silent for heartbeat_timeout becomes a comms alert
// published by the collector (agent id = collector id, device = the agent);
// its message id depends only on the stream, so several collectors raise it
// once. Collectors publish heartbeats too, so they report each other's
// death. Alerts whose JSON identity contradicts their subject are refused.
//
// # Memory bound
//
// Telemetry in the collector's hands is bounded by nats.max_in_flight
// (MaxAckPending) and by bytes (8 MB per batch, one building and one being
// written, plus the pull buffer); the site state grows with the number of
// devices and points, not with time; the alert history keeps the last
// 10000 alerts.
//
// # HTTP
//
// GET /healthz, /metrics, /api/v1/state, /api/v1/alerts?since=,
// /api/v1/evacuations, /api/v1/events (server-sent events), POST
// /api/v1/ack (bearer token when http.token is set), and the status page at
// / (embedded, no external assets). See docs/collector.md.
package collector
