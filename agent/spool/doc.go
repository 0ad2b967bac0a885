// Package spool is the agent's on-disk store-and-forward buffer: every
// alert and telemetry message is appended to a local log before it is
// forwarded to JetStream, so that a broker outage, a dead link or a kill -9
// of the agent loses nothing that fit on disk. nats.go's reconnect buffer
// is memory only and dies with the process (design A1, test T1).
// docs/reliability.md ("Store-and-forward") has the measurements and the
// agent's wiring.
//
// # Logs
//
// Two tidwall/wal logs live under the spool directory, alert/ and
// telemetry/, and a flock on LOCK keeps a second process out. An entry is a
// CRC-checked record: subject, Nats-Msg-Id, data and enqueue time. Appends
// are write(2) calls with no fsync, so an entry survives a process kill as
// soon as Publish returns. A syncer goroutine fsyncs a log at most once per
// SyncInterval (1 s), and only if it holds entries JetStream has not acked
// yet: when the forwarder keeps up nothing is fsynced but compactions,
// which is what spares SD cards (design A7, T21). Publish never touches the
// network; heartbeats and other live-only subjects go to Options.Live.
//
// # Bound and drops
//
// Both logs together stay under Options.MaxBytes, lowered at each tick to
// what the filesystem can still hold. Over it the oldest telemetry segment
// files are deleted (no rewrite, so it works on a full disk) and the
// entries counted exactly in Stats.TelemetryDropped; alerts are never
// dropped. If the disk still refuses a write (ENOSPC from other files),
// telemetry is dropped and counted until the next tick, and an alert first
// makes room by deleting telemetry, then falls back to a bounded memory
// overflow that is written to disk at the next tick or forwarded directly;
// only when that is full does Publish fail (design T20). tidwall/wal needs
// help after a failed write (its tail buffer is then out of step with the
// file), so the log is reopened, with a torn tail cut back first.
//
// # Forwarding
//
// Run publishes with JetStream async publish in windows of MaxInFlight
// and waits for the acks in order. The cursor only moves past an entry
// once it and everything before it were acked, so a failure resends from
// the first unacked entry; the stream's Duplicates window de-duplicates on
// Nats-Msg-Id. The alert log, then held alerts, are drained before any
// telemetry batch. Acked entries are removed lazily: a drained log is
// emptied every CompactInterval (10 s) or after half a segment, and while a
// backlog drains, fully acked segments are deleted. After a crash at most
// that much is replayed, well inside the streams' Duplicates windows
// (2 min telemetry, 10 min alerts).
//
// # Why not a JetStream leaf node
//
// A leaf node with its own JetStream domain would give the same guarantee,
// but embedding nats-server adds about 10.8 MB (stripped arm64) to an agent
// that must stay under 12 MiB; the spool adds 0.65 MB. A separate leaf-node
// process is the deployment alternative (docs/deploy.md).
package spool
