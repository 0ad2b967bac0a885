// Package evacuate decides and runs early, controlled workload evacuation
// of a power domain when its batteries show thermal-runaway precursors.
//
// It copies a releasing fire panel (reliability-security.md section (c)):
// cross-zoned voting, a pre-release countdown with abort, manual release
// overriding abort, plus SRE guardrails against runaway automation.
//
// # Pieces
//
//   - Topology: power domains (UPS / battery systems), their battery
//     devices and the racks, hosts and Kubernetes nodes they feed.
//   - Policy: a pure state machine, alerts in, Decisions out (clock passed
//     in). warning → prestage; critical → evacuate once corroborated (two
//     signature families, or two agents, or one emergency), after a hold
//     window an operator can abort (skipped for emergency); blast-radius
//     limits (domains at once, share of site capacity per window, a
//     common-mode breaker) turn automatic action into "waits for
//     approval"; empty or whole-site target lists are refused;
//     sensor_fault, comms and security alerts never act; drill alerts make
//     dry-run drill evacuations.
//   - Engine: runs the policy on each collector. All collectors follow the
//     alerts (they subscribe themselves, so each sees every alert); one
//     leads, through a JetStream KV lease (Lease) with revision fencing.
//     The leader stores each evacuation in the EMBER_EVAC bucket, publishes
//     signed messages on ember.<site>.evac.<domain>, runs hooks through
//     internal/hooks (each (id, phase, hook) at most once, via a KV
//     ledger), acknowledges critical alerts to agents (so their fallback
//     stands down) and writes every decision to the EMBER_AUDIT stream and
//     Config.OnAudit. Followers sync records from the bucket; a new leader
//     reads them and continues: phases already run are skipped by the
//     ledger, so no hook runs twice.
//   - Every collector verifies every message on ember.<site>.evac.>
//     (hooks.Verifier); a forged, unsigned or replayed one is refused and
//     the leader raises a "security" alert.
//   - Handler: GET/POST /api/v1/evacuations for emberctl evac.
//
// # Why deterministic ids
//
// Followers shadow the leader's policy to keep the evidence (votes), and
// name an evacuation from its first alert (EvacID), so a follower that
// takes over usually already knows the evacuation by the same id; when it
// does not, the leader's record wins (Policy.Restore).
//
// See docs/evacuation.md for operation and configuration.
package evacuate
