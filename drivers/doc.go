// Package drivers holds what every device driver shares: the Reading a poll
// produces, the marked faults that replace a value when a device cannot give a
// trustworthy one, and the small Poller interface the agent's sampling loop
// drives.
//
// # Ownership
//
// A Poller is owned by exactly one goroutine of the agent (the one that owns
// its link). It is not safe for concurrent use.
//
// # Faults, never fake numbers
//
// A point that timed out, was answered with an exception, a garbage frame or a
// "not available" sentinel carries a Fault other than FaultNone and its Value
// must be ignored. Publishers never write such a value as a number.
//
// Implementations live in sub-packages: drivers/modbus, drivers/snmp and
// drivers/sensor. None of them may import the agent, the collector, NATS or
// InfluxDB.
package drivers
