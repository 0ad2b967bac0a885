// Package agent is ember-agent's core: it samples devices through drivers,
// detects thermal-runaway signatures, and publishes telemetry, alerts and
// heartbeats on NATS.
//
// # Sampling
//
// Devices are grouped by link (a serial line or a TCP endpoint): one
// goroutine owns each link and polls its devices in turn, each at its own
// period on drift-free deadlines (start + n*period, never "now + period").
// A round that overruns is counted and the deadlines it missed are skipped,
// not queued, so a slow device never makes the loop run back-to-back. A
// device can be switched to a faster burst period (detection asks for it on
// watch or above) and back.
//
// # Hand-off
//
// A finished round goes to the device's processor through a bounded queue of
// preallocated round buffers. When the processor lags (slow network), the
// oldest queued round is dropped and counted; sampling never waits. The
// processor runs the detector, records the round in the black box, encodes
// line protocol into a reused buffer and hands it to the publisher.
//
// # Publishing
//
// Telemetry goes to ember.<site>.telemetry.<agent>.<device> as InfluxDB line
// protocol, one or more lines per round, with a Nats-Msg-Id derived from
// agent, device and sample time so that JetStream drops duplicates after a
// retry or a replay. See docs/contract.md.
package agent
