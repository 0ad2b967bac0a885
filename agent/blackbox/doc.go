// Package blackbox keeps the last minutes of a device's raw sampling rounds
// in memory, like a flight recorder, so that when a rack reaches warning the
// agent can publish exactly what led up to it.
//
// # Design
//
// A Recorder holds at most a fixed memory budget (DefaultBudget, 512 KiB,
// per device unless configured), cut into eight blocks used as a ring and
// allocated as the ring first reaches them. A round is stored as a delta: its time, a bitmap of the points
// whose value or fault mark changed since the previous round, and 9 bytes
// (float64 bits and fault) for each of them; the first round of a block is
// a keyframe with every point, so the oldest block can be forgotten whole.
// Values come back bit for bit. Registers mostly repeat between 100 ms
// rounds (a BMS refreshes its cells about once a second), so a 440-point
// rack costs about 64 bytes per quiet round and 4 KB per round in which
// everything changed: the budget holds 10 minutes of the first and about
// 12 s of the second. Memory is bounded by the budget, never by the device
// count times the window; a block whose rounds all left the window is
// reused before a new one is allocated. Record copies numbers and, once
// the ring is allocated, never allocates. Freeze decodes the
// rounds of the last window into a Snapshot; that is the only allocation
// and it happens on the rare warning. A Snapshot encodes itself as the
// agent's telemetry line protocol (internal/wire), one line per component
// and round, faulted points as "<field>.fault" strings, so the collector,
// InfluxDB and `emberctl replay` read it like live telemetry.
//
// String points (KindString) are not recorded: detection never uses them.
//
// A Recorder is owned by the device's sampling goroutine; it is not safe
// for concurrent use. A Snapshot is immutable and may be shared.
package blackbox
