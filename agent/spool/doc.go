// Package spool is the agent's on-disk store-and-forward buffer: every
// alert and telemetry message is appended to a local log before it is
// forwarded to JetStream, so that a broker outage, a dead link or a kill -9
// of the agent loses nothing that fit on disk. nats.go's reconnect buffer
// is memory only and dies with the process (design A1, test T1).
//
// # Logs
//
// Two tidwall/wal logs live under the spool directory, alert/ and
// telemetry/. An entry is a CRC-checked record: subject, Nats-Msg-Id, data
// and enqueue time. Appends are write(2) calls with no fsync; a syncer
// goroutine fsyncs each log that changed at most once per SyncInterval
// (1 s), the SD-card wear budget of design A7/T21. An entry thus survives a
// process kill as soon as Publish returns and a power cut after the next
// sync. Publish never touches the network.
//
// # Bound and drops
//
// Both logs together stay under Options.MaxBytes, lowered at each tick to
// what the filesystem can still hold. Over it the oldest telemetry is cut
// (a whole segment's worth at a time, Telegraf's drop-oldest semantics) and
// counted exactly in Stats.TelemetryDropped; alerts are never dropped. If
// the disk still refuses a write (ENOSPC from other files), telemetry is
// dropped and counted until the next tick, and an alert first makes room by
// cutting telemetry, then falls back to a bounded memory overflow that is
// written to disk at the next tick or forwarded directly (design T20).
//
// # Forwarding
//
// Run publishes with JetStream async publish in windows of MaxInFlight
// and waits for the acks in order. The cursor only moves past an entry
// once it and everything before it were acked, so a failure resends from
// the first unacked entry; the stream's Duplicates window de-duplicates on
// Nats-Msg-Id. The alert log, then held alerts, are drained before any
// telemetry batch. Acked entries are removed lazily (compaction): when a
// log is drained, every CompactInterval or after half a segment, by
// emptying it (one tiny file); while a backlog drains, once a segment's
// worth is acked. After a crash at most that much is replayed, well inside
// the streams' Duplicates windows (2 min telemetry, 10 min alerts).
//
// # Why not a JetStream leaf node
//
// A leaf node with its own JetStream domain would give the same guarantee,
// but embedding nats-server adds about 10 MB to an agent that must stay
// under 12 MiB stripped on arm64; running one as a separate process is the
// deployment alternative documented in docs/reliability.md.
package spool
