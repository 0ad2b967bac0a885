// Package demo runs a whole emberwatch site in one process, on embedded
// defaults: an in-process NATS server with JetStream, simulated racks and a
// UPS served over real Modbus TCP on loopback, an agent polling them, a
// collector with its live status page, a scripted thermal event in one
// rack, and the evacuation it leads to, in dry-run.
//
// It is what `make demo` runs (emberctl demo) and what the end-to-end
// demo test drives.
package demo
