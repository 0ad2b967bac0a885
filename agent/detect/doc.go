// Package detect is emberwatch's thermal-runaway detector: a pure,
// deterministic function of a device's sampling rounds. It has no clock, no
// I/O and no goroutines; the agent's sampling loop owns one Detector per
// device and calls Step once per round.
//
// # Binding
//
// New binds once to the device's compiled points by vocabulary name
// (docs/architecture.md): per-cell temperature, voltage and balancing flag,
// module temperature sensors, string and battery current (+ = discharge),
// battery temperature, off-gas heads (gas.<species>.ppm), ambient
// temperature and the smoke / fire-panel contacts. Unknown points are
// ignored. All state is allocated here; Step does not allocate in steady
// state (alerts, which are rare, do).
//
// # Pipeline of a round
//
//  1. Round hygiene: a poll error, every point faulted by the link, all
//     cells reading exactly 0 or a bit-identical frame is a lost round
//     (comms), never data. Evidence is held, not cleared, while data is
//     missing.
//  2. Sample hygiene (design note 7.1): driver fault marks, sentinel
//     values, plausibility ranges, one-sample look-ahead for spikes (a jump
//     is held one period and dropped if the next sample returns), stuck
//     sensors (bit-identical while peers vary). A temperature above the
//     channel is real when it continues a corroborated rise (voltage
//     collapse, gas, the cell already hot); a collapsed voltage of a hot
//     cell is evidence, not a fault. Invalid and stuck sensors are left out
//     of the peer medians and reported as sensor_fault (watch at most).
//  3. Features (7.2): dT = T - median(peers), its least-squares slope over a
//     time window that widens at slow sampling (period-independent,
//     bounded ring), the GB 38031 rate (degC/s), the voltage deviation from
//     the peer median minus the cell's own slow baseline, compensated by an
//     allowance proportional to |current| and masked while the cell or a
//     neighbour balances, micro-short dips, rest imbalance and its drift,
//     over-voltage while charging, gas above a rolling low percentile and
//     its rise, ambient and rack-median warming.
//  4. Rules with on-delays and hysteresis feed conditions (component x
//     category). Rising is immediate; falling waits Stages.ClearAfter;
//     critical and emergency latch until Ack.
//  5. Rack-level rules: two independent families (thermal, gas, electrical,
//     smoke) at warning promote each other to critical (corroboration); two
//     cells thermally critical is propagation (emergency); data lost for
//     Hygiene.DataLossAfter on a condition at warning or above escalates it
//     one stage.
//
// Alerts are emitted on stage changes only, in a fixed order, with the
// signatures (value, threshold, unit) that hold, the agreeing families and
// a one-line summary. The caller fills ID (AlertID gives a content-derived
// one), Site, Agent and Time.
//
// # Configuration
//
// Config holds every threshold with yaml tags. DefaultConfig(chemistry)
// gives the design note's section 7 numbers (NMC; LFP changes the charge
// voltage limit). LoadOverrides reads per-site, per-chemistry and
// per-profile overrides; see docs/detection.md for the table of defaults,
// their sources and how to tune them, and the scenario sub-package for the
// synthetic library the defaults are tested against.
package detect
