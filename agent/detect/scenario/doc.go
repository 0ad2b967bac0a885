// Package scenario is a library of synthetic but physically grounded
// battery-rack time series for testing and tuning the detector: real
// thermal-runaway events (internal short, overcharge, external heating,
// off-gas first, propagation, two racks with one event) and benign traps
// (heavy discharge, HVAC failure, single spikes, stuck sensors, sentinels,
// comms loss, balancing steps, normal imbalance).
//
// # Model
//
// Each rack is a set of cells with a lumped thermal model (exact
// exponential update toward rack air plus I²R heating, so the physics does
// not depend on the sampling period), an OCV curve that climbs past full
// charge, per-cell resistance, capacity and offset spread, and a sensor
// layer with noise and quantisation (0.15 degC / 0.1 degC LSB, 1.5 mV /
// 1 mV LSB, 0.2 ppm gas). Scenario hooks add the event on top: precursor
// self-heating fitted to the ARC rates of the design note
// (9/(tau+5) degC/min), voltage deficits and micro-short dips, venting, the
// runaway itself (>= 1 degC/s, then ~450 degC), neighbour heating, smoke and
// fire-panel contacts, and sensors that die in the fire. Numbers and their
// sources are in each scenario's Description and in docs/detection.md.
//
// # Use
//
//	run := s.Start(scenario.Options{Period: time.Second, Seed: 1})
//	for run.Next(func(dev string, at time.Time, rs []drivers.Reading, err error) { ... }) {}
//
// Runs are streamed (constant memory), deterministic for a seed, and can be
// written as the agent's line protocol (WriteLineProtocol, for emberctl
// replay and the simulator) or CSV (WriteCSV). Evaluate runs a scenario
// through fresh detectors and checks it against the ground truth (Truth):
// the earliest allowed warning, the latest acceptable warning and critical,
// and the runaway onset; it also times a conventional fixed 60 degC alarm.
package scenario
