// Package sim is emberwatch's Modbus device simulator, used by ember-sim,
// tests and the demo. It builds devices from the same firmware profiles the
// agent reads them with, serves them over Modbus TCP, RTU (serial port or
// PTY) and RTU over TCP, drives their values with scripts or CSV replays,
// and injects faults.
//
// # Devices and images
//
// A Device is a set of named points over a register Image (holding, input,
// coil and discrete spaces). Reading an address no point maps answers
// "illegal data address", as real devices do.
//
//   - Fixed-address profiles (NewFixedDevice): every point of the profile,
//     blocks expanded, at its address, with a plausible starting value from
//     its name, unit and range; bitfield bits are points of their own;
//     scale-factor registers ({sf: NAME}) get the finest exponent that
//     leaves room for twice the starting value.
//   - SunSpec profiles (NewSunSpecRack): a whole Li-ion rack: "SunS" at
//     40000, models 1, 802, 803 (NStr string groups), one 804 per string
//     (NMod module groups), one 805 per module (K cells, L = 42 + 4K) and
//     the 0xFFFF end marker. Cell voltages and temperatures, string
//     currents, bank charge and health are the primary values; every
//     aggregate (module/string/bank voltage, max/min/avg and where, module
//     temperatures, balancing counts, charge state) is derived from them each
//     tick unless Set or a script pins it. The bank's charge is counted
//     from the string currents against the rated capacity. The layout is written from the
//     SunSpec model definitions; the sunspec profile's names are added as
//     aliases, so the profile's vocabulary works in Set and scripts.
//
// # Encoding
//
// The Encoding type turns a value into raw registers: type, word and byte
// order, constant scale times 10^sf, offset and sign. It is written
// independently of drivers/modbus's decoder so that each checks the other.
// Values given to the simulator follow the project's conventions (SI after
// scaling, battery current + = discharge); the encoder applies the
// device's. A value that does not fit its register is an error, never
// clamped. An unavailable point serves its "not available" sentinel (the
// profile's first invalid value, else SunSpec's for the type).
//
// # Time and scripts
//
// Values change on ticks (Config.Tick, default 100 ms) evaluated at the
// injected Clock's time, so tests drive scripts with a fake clock and
// Update. Script kinds: constant, ramp, step, sine, noise (seeded),
// unavailable and csv (interpolated replay). Patterns use * and ?.
//
// # Serving and faults
//
// Devices naming the same listen URL share one listener, one device per
// unit id. Modbus TCP uses simonvetter's server with this package's
// handler; an unknown unit id gets "gateway target failed to respond". RTU
// uses package rtu with the same handler; an unknown unit id gets no answer.
// Faults: Fault{Mode: FaultTimeout} leaves requests unanswered (held on
// TCP, dropped on RTU), FaultException answers an exception code (on an
// address range or everywhere), and Kill/Restart stop and restart a
// listener on the same address.
//
// # Concurrency
//
// A Device's values are guarded by its mutex and its image by a RWMutex,
// so serving never waits for a tick to finish. Sim methods are safe for
// concurrent use.
package sim
