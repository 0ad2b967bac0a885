// Package modbus is emberwatch's Modbus driver: it compiles a firmware
// profile into a minimal read plan, reads it over a shared link with
// github.com/simonvetter/modbus and decodes registers into drivers.Reading
// values with marked faults.
//
// # Design
//
//   - Config is the agent's `modbus:` device section (URL, unit id, timeout,
//     serial and TLS settings, per-device quirk overrides); Validate names
//     the key of every problem.
//   - Decoder (codec.go) is compiled once per point: type, word and byte
//     order, scale (constant, pow10, pow2 or a SunSpec scale-factor
//     register), offset, sign, sentinels, range, enum names and bits. It
//     holds no maps and Decode does not allocate; a string allocates only
//     when its text changed.
//   - The builder (compile.go) expands blocks (count, count_from read from
//     the device, SunSpec "fit") and SunSpec model instances into slots:
//     one point at an absolute address. Names are expanded once here.
//   - plan (plan.go) packs slots into the fewest reads: at most
//     max_registers each (2000 bits for coils and discrete inputs), merging
//     across gaps up to max_gap, never spanning unreadable ranges or mixing
//     spaces, reading a point and its scale factor in one request when they
//     fit. Greedy left-to-right packing is optimal for these constraints.
//   - SunSpec discovery (sunspec.go) finds "SunS" at the profile's bases,
//     walks the model chain and reads each mapped model's index registers
//     (string and module numbers) to name its instances. It runs at the
//     first poll and again when a dead device answers again.
//   - Pool and link (link.go): devices with the same URL share one client
//     (SetUnitId before a request when the unit changes). A link is owned by
//     one goroutine: the agent runs one goroutine per Poller.Link() key.
//     After a transport error the client is closed and reopened by the next
//     request, since simonvetter does not reconnect by itself.
//   - Poller (poller.go) runs a round: per-request outcome (exceptions,
//     timeouts, garbage frames) becomes per-point faults; a round in which
//     the device did not answer puts it into capped, jittered exponential
//     backoff, during which Poll and Prepare return at once with FaultComms
//     and an error, so a dead device never delays the others on its link.
//     A timeout ends the round: the remaining reads are marked FaultComms
//     ("not asked") instead of costing one timeout each.
//   - Devices that refuse a merged read because it spans undefined
//     registers ("illegal data address") get that read's points probed one
//     by one, once: values still arrive that round, points that do not
//     exist become FaultAbsent and are no longer read, and the holes are
//     learned as unreadable so the next plan avoids them.
//   - Layout: profiles whose points depend on the device (SunSpec, blocks
//     with count_from) have no points until Prepare (or the first Poll).
//     When a rediscovery finds a different layout, Poll returns
//     ErrLayoutChanged and Points returns the new list.
//   - Stats counts rounds, reads, timeouts, exceptions, garbage frames,
//     failed rounds and link reopens with atomics, for heartbeats and
//     metrics.
//   - Probe identifies an unknown device from its SunSpec common model;
//     Poller.Identify does the same for a configured device, or reads a
//     profile's *.model / *.serial / *.firmware string points.
//
// Only read function codes (1, 2, 3, 4) are sent: the driver has no write
// path.
//
// # Allocation
//
// The driver's own code does not allocate in a steady-state round. The
// simonvetter client allocates a few small buffers per request (request
// PDU, MBAP frame, response); BenchmarkPollRound reports the total.
//
// # References
//
// Modbus Application Protocol 1.1b3; SunSpec Information Model
// Specification (model chain, sentinels, scale factors); see
// docs/architecture.md for the point vocabulary.
package modbus
