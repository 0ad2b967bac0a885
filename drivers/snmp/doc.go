// Package snmp polls UPS network cards over SNMP (v1, v2c, v3 USM) with a
// firmware profile, and receives their traps.
//
// # Poller
//
// NewPoller compiles a profile for one device. Scalars are packed into Get
// requests of up to max_oids varbinds (default 60): the ups-mib profile's
// 32 fields take one Get plus one GetBulk per populated table. Table blocks
// are walked with GetBulk, all their columns in lockstep. NewPoller does no
// SNMP I/O (an agent starts even when a UPS is down); Prepare, or the first
// Poll, walks the tables once to fix the rows, after which Points is final
// (empty before) and each round walks them again. NewPollerContext does
// both at once. Rows are picked by their index (or one component of it,
// index_part), by the value of an index column (APC local indices), by the
// value of a select column (Liebert well-known measurement points), and
// nested table blocks link child rows to their parent row through a
// parent_column (APC string -> module -> cell).
//
// Faults, never fake numbers:
//   - noSuchObject / noSuchInstance (v2c) and noSuchName (v1) mark the point
//     absent; the object is remembered and not asked again for 500 rounds;
//   - vendor sentinels (-1, 65535, 2147483647, 4294967295, 'NOT SUPPORTED')
//     listed in the profile's invalid / invalid_text are FaultSentinel;
//     a point's fallback sources (APC HighPrec -> Adv, XUPS -> MGE) are
//     tried in order before giving up;
//   - values are decoded by meaning, whatever the ASN.1 tag (TimeTicks for
//     INTEGER, numbers sent as strings);
//   - counter points with rate: true give a per-second rate, handling
//     Counter32/64 wraps and treating a counter that fell back far from its
//     top as an agent reset;
//   - a timeout is FaultTimeout; when no request of a round was answered
//     Poll returns an error naming the device, and a wrong v3 user or
//     passphrase is an error wrapping ErrAuth.
//
// # Traps
//
// TrapReceiver listens for v1/v2c/v3 traps and informs (gosnmp's
// TrapListener; informs are acknowledged), drops unknown communities and
// unauthenticated v3 messages, and hands each one to a callback as a
// TrapEvent: device (by source address), trap name, severity and
// varbinds. It knows RFC 1628 upsTraps (alarm-table traps take the
// severity of the alarm they carry), the XUPS well-known alarms and the
// Liebert GP notifications. It knows nothing of NATS.
//
// # References
//
// RFC 1628 (UPS-MIB); PowerNet-MIB v4.5.8; XUPS-MIB and MG-SNMP-UPS-MIB;
// LIEBERT-GP MIBs. See docs/snmp.md and firmware-profiles/snmp/.
package snmp
