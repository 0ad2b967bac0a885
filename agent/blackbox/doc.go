// Package blackbox keeps the last minutes of a device's raw sampling rounds
// in memory, like a flight recorder, so that when a rack reaches warning the
// agent can publish exactly what led up to it.
//
// # Design
//
// A Recorder is a fixed ring of rounds sized once from the window and the
// sampling period: values and fault marks live in two flat preallocated
// slices (rounds x points), so Record copies numbers and never allocates.
// Freeze copies the ring, oldest first, into a Snapshot; that is the only
// allocation and it happens on the rare warning. A Snapshot encodes itself
// as the agent's telemetry line protocol (internal/wire), one line per
// component and round, faulted points as "<field>.fault" strings, so the
// collector, InfluxDB and `emberctl replay` read it like live telemetry.
//
// String points (KindString) are not recorded: detection never uses them.
//
// A Recorder is owned by the device's sampling goroutine; it is not safe
// for concurrent use. A Snapshot is immutable and may be shared.
package blackbox
