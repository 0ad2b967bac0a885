// Package snmpsim is the SNMP side of the device simulator: a small v1/v2c
// agent (Get, GetNext, GetBulk; read-only) serving a sorted store of object
// instances over UDP.
//
// The store is filled either from a firmware profile (FromProfile, the
// inverse of drivers/snmp's decoding: give point values in SI units and a
// poll reads them back) or from a real recording in snmpsim's .snmprec
// format (ParseSnmprec, LoadFile). testdata/ holds eight real UPS-agent
// walks from etingof/snmpsim-data (BSD-2-Clause, see its LICENSE and
// SOURCES.md), with their quirks: Huawei -1 sentinels, Eaton 65535 runtime,
// INTEGER objects sent as TimeTicks, an agent without UPS-MIB.
//
// # Why not snmpd or GoSNMPServer
//
// Tests that need real USM (v3 authPriv, engine discovery) run Debian's
// snmpd through internal/testenv.StartSNMPD. This agent covers what snmpd
// cannot serve easily: whole vendor trees replayed from a file, values
// changed between polls (Store.Set), a silent device (SetSilent), v1
// noSuchName errors. It uses gosnmp's own codec, so it adds no module.
//
// Only bind it to loopback in tests.
package snmpsim
