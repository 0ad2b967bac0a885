// Package testenv starts the real servers that tests talk to: an in-process
// NATS server or cluster, and (in sibling files) InfluxDB, snmpd and PTY
// pairs. Every helper binds to loopback on a dynamic port and stops what it
// started in t.Cleanup, by PID for external processes.
//
// A missing external binary skips the test locally but fails it when CI=true,
// so that a broken bootstrap cannot pass green.
package testenv
