// Package wire is the external contract on the wire: NATS subjects, the
// alert, heartbeat and evacuation JSON documents, and the InfluxDB line
// protocol the agent publishes as telemetry. See docs/contract.md.
//
// It depends on the standard library only, so that the agent, the
// collector, emberctl and NOC tools share one definition.
package wire
