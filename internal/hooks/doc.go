// Package hooks runs evacuation hooks: exec programs, signed webhooks and
// NATS requests. The collector's evacuation engine and the agent's local
// fallback share it.
//
// # Hook kinds
//
//   - exec: argv only, never a shell. The evacuation JSON goes to stdin and
//     EMBER_EVAC_ID, EMBER_PHASE, EMBER_DOMAIN, EMBER_DRILL, EMBER_DRY_RUN
//     to the environment. The program runs in its own process group, and
//     the whole group is killed when the timeout expires, so a hook that
//     forks cannot outlive it.
//   - webhook: POST of the JSON with Ember-Signature: t=<unix>,v1=<hex
//     HMAC-SHA256(secret, "<t>.<body>")> (Stripe style, so a receiver can
//     refuse replays older than its tolerance) and Ember-Event-Id:
//     <evac id>.<phase> for de-duplication. VerifyWebhook and Receiver are
//     the receiver side.
//   - nats: a request on a subject; a reply {"ok": true} means done.
//
// Every hook is retried with jittered exponential backoff (at most
// Spec.Retries extra attempts, 2 by default) unless the failure is
// permanent (a 4xx answer other than 408/429, a malformed reply).
//
// # Exactly once
//
// Set.RunPhase claims each (evacuation id, phase, hook) in a Ledger before
// running it and records the outcome after. The KV ledger uses JetStream
// KV Create (put-if-absent), so two collectors, or a new leader continuing
// an evacuation, never run a completed hook again. A hook whose claim exists
// but never finished (its runner died mid-way) is "in doubt": it is not run
// again unless Spec.RerunInDoubt says the hook is idempotent.
//
// Set.Limit (PerMinute) bounds hook attempts with a token bucket, a
// guardrail against runaway automation.
//
// # Signed evacuation messages
//
// Signer signs evacuation messages with an ed25519 nkey; Verifier checks
// signature, issuer allow-list, freshness, replay of (id, phase) and the
// leader's fencing token. SecurityAlert builds the alert for a refused
// message. CollectorAck is what the leading collector tells an agent whose
// critical alert it has taken charge of (see package fallback).
//
// # Dry run
//
// Drill evacuations carry dry_run: true. Hooks still run (exec hooks see
// EMBER_DRY_RUN=1 and should only print what they would do) unless
// Spec.DryRun is "skip".
package hooks
