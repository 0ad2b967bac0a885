// Package fallback is the agent's edge autonomy: when no collector takes
// charge of a critical alert within a deadline, the agent runs its own
// local fallback hooks.
//
// # When
//
// OnAlert starts a deadline for every critical or emergency alert of an
// actionable category (never sensor_fault, comms or security). Any of
// these before the deadline stands the fallback down for that domain:
//   - a hooks.CollectorAck from the leading collector on
//     ember.<site>.evacack.<agent> (or passed to OnCollectorAck);
//   - a verified (signed by a trusted collector, fresh, not replayed)
//     evacuation message for the domain on ember.<site>.evac.<domain>.
//
// An unsigned or forged evacuation message is not an acknowledgement: it
// is refused and raised as a security alert, and the deadline runs on.
//
// # Coordination
//
// Several agents may watch batteries of the same domain. When the deadline
// passes, an agent first tries to create the key <site>.<domain> in the
// JetStream KV bucket EMBER_FALLBACK (put-if-absent, entries expire after
// Config.Quiet); only the agent whose Create succeeds fires, the others
// stand down. If JetStream cannot be reached (the agent is isolated, which
// is exactly when the fallback matters) it fires locally without
// coordination. Inside one agent, a domain fires at most once per Quiet.
//
// The fallback evacuation is published (signed, if the agent has a key)
// with phase evacuate so that collectors and the NOC see it, and handed to
// the local hooks (internal/hooks) with EMBER_* variables as usual; drill
// alerts make dry-run fallbacks.
package fallback
