// Package chaos holds emberwatch's fault-injection and attack tests: the
// T-tests of the reliability design (docs/reliability.md, "Fault and attack
// tests"). It has no production code; everything is in _test.go files.
//
// # Shape of a test
//
// Every test is named TestChaosT<n>... (a fault) or TestAttackT<n>... (an
// attacker), so that `make chaos` (go test -run 'Chaos|Attack' ./...)
// selects them, and follows the roachtest lifecycle:
//
//	Setup -> Inject -> WaitPropagate -> Recover -> WaitRecover -> Check
//
// Correctness properties (0 lost, 0 duplicates, 0 executions, 0 fabricated
// values, 0 panics) are asserted. Timing figures are measured, logged with
// t.Logf next to the design's criterion, and asserted only against generous
// bounds, because CI runs on two shared cores.
//
// # Real parts only
//
// Faults are injected into real components on loopback: in-process
// nats-server (single node and clusters), an in-process Toxiproxy between
// client and server (timeout, slicer), simonvetter Modbus servers and a
// raw-TCP "evil" Modbus server written here, Debian snmpd behind a UDP
// mangler written here, real exec hooks and HTTP receivers, and child
// processes of the test binary for kill -9. Durations are compressed (ping
// intervals of 1 s instead of 5 s, outages of seconds instead of minutes) so
// that the whole package runs in a few minutes; the scale factor is stated
// in each test's log line.
package chaos
