package detect_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/internal/wire"
)

var nmc = detect.DefaultConfig(detect.ChemistryNMC)

func TestQuietRackRaisesNothing(t *testing.T) {
	r := newRig(t, nmc)
	r.run(20*time.Minute, nil)
	if len(r.alerts) != 0 {
		r.dump()
		t.Fatalf("quiet rack: %d alerts, want none", len(r.alerts))
	}
}

// --- Signal hygiene ---

func TestSentinelIsSensorFaultAndExcluded(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.run(2*time.Minute, func(rs []drivers.Reading) { rs[r.cellT[2]].Value = 6553.5 })
	if got := r.stage(cellComp(2), wire.CategorySensorFault); got != wire.StageWatch {
		t.Fatalf("sensor_fault stage = %s, want watch", got)
	}
	if r.max(wire.CategoryThermal) != wire.StageNormal {
		r.dump()
		t.Fatal("a sentinel raised a thermal alert")
	}
	a, _ := r.first(wire.CategorySensorFault, wire.StageWatch)
	if !hasSig(a, "temp_invalid") {
		t.Fatalf("sensor alert %+v lacks temp_invalid", a.Signatures)
	}
}

func TestMarkedFaultIsNeverANumber(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	// A timed-out point whose Value holds garbage must be ignored.
	r.run(time.Minute, func(rs []drivers.Reading) {
		rs[r.cellT[0]].Fault, rs[r.cellT[0]].Value = drivers.FaultTimeout, 900
		rs[r.cellV[0]].Fault, rs[r.cellV[0]].Value = drivers.FaultException, 0.1
	})
	if r.max(wire.CategoryThermal) != wire.StageNormal || r.max(wire.CategoryElectrical) != wire.StageNormal {
		r.dump()
		t.Fatal("faulted readings were used as numbers")
	}
	if r.stage(cellComp(0), wire.CategorySensorFault) != wire.StageWatch {
		t.Fatal("faulted points not reported as sensor_fault")
	}
}

func TestOutOfRangeUncorroboratedIsFault(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.run(time.Minute, func(rs []drivers.Reading) { rs[r.cellT[4]].Value = 150 })
	if r.max(wire.CategoryThermal) != wire.StageNormal {
		r.dump()
		t.Fatal("an uncorroborated 150 degC raised a thermal alert")
	}
	if r.stage(cellComp(4), wire.CategorySensorFault) != wire.StageWatch {
		t.Fatal("out-of-range value not reported as sensor_fault")
	}
}

func TestPinnedHighWithGasIsReal(t *testing.T) {
	r := newRig(t, nmc)
	r.run(3*time.Minute, nil)
	start := r.at
	r.runEach(time.Minute, func() { r.gas["voc"] = 0.5 + 15*min(r.at.Sub(start).Minutes()*2, 1) })
	if r.stage("", wire.CategoryGas) != wire.StageWarning {
		t.Fatal("setup: no gas warning")
	}
	r.T[4] = 150 // pinned at the top while the rack vents: real, not a fault
	r.run(10*time.Second, nil)
	if got := r.stage(cellComp(4), wire.CategoryThermal); got != wire.StageEmergency {
		r.dump()
		t.Fatalf("150 degC with off-gas: thermal %s, want emergency", got)
	}
}

func TestPinnedHighWithVoltageCollapseIsReal(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.T[4], r.V[4] = 150, 0.4
	r.run(10*time.Second, nil)
	if got := r.stage(cellComp(4), wire.CategoryThermal); got != wire.StageEmergency {
		r.dump()
		t.Fatalf("150 degC with voltage collapse: thermal %s, want emergency", got)
	}
}

func TestSingleSpikeDiscarded(t *testing.T) {
	for _, v := range []float64{127.5, 85} {
		r := newRig(t, nmc)
		r.run(time.Minute, nil)
		r.step(func(rs []drivers.Reading) { rs[r.cellT[1]].Value = v })
		r.run(time.Minute, nil)
		if r.max(wire.CategoryThermal) != wire.StageNormal {
			r.dump()
			t.Fatalf("spike %g raised a thermal alert", v)
		}
		a, ok := r.first(wire.CategorySensorFault, wire.StageWatch)
		if !ok || !hasSig(a, "temp_spike") {
			t.Fatalf("spike %g not reported as temp_spike: %+v", v, a)
		}
	}
}

func TestPersistingJumpIsKept(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.T[3] = 90 // +65 degC and stays: never discard a persisting value
	r.run(30*time.Second, nil)
	if got := r.stage(cellComp(3), wire.CategoryThermal); got < wire.StageCritical {
		r.dump()
		t.Fatalf("persisting 90 degC cell (peers 25): thermal %s, want >= critical", got)
	}
	if a, ok := r.first(wire.CategorySensorFault, wire.StageWatch); ok && hasSig(a, "temp_spike") {
		t.Fatal("a persisting jump was called a spike")
	}
}

func TestStuckSensor(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.runEach(3*time.Minute, func() {
		for k := range r.T {
			r.T[k] += 0.02 // peers warm slowly
		}
	})
	_ = r
	r2 := newRig(t, nmc)
	r2.run(time.Minute, nil)
	r2.run(150*time.Second, func(rs []drivers.Reading) {
		rs[r2.cellT[5]].Value = 24.9
		rs[r2.cellV[6]].Value = 3.987
	})
	a, ok := r2.first(wire.CategorySensorFault, wire.StageWatch)
	if !ok {
		t.Fatal("no sensor_fault for stuck sensors")
	}
	if got := r2.stage(cellComp(5), wire.CategorySensorFault); got != wire.StageWatch {
		t.Fatalf("stuck temperature: %s, want watch (%s)", got, a.Summary)
	}
	if got := r2.stage(cellComp(6), wire.CategorySensorFault); got != wire.StageWatch {
		t.Fatalf("stuck voltage: %s, want watch", got)
	}
	if r2.max(wire.CategoryThermal) > wire.StageNormal || r2.max(wire.CategoryElectrical) > wire.StageNormal {
		r2.dump()
		t.Fatal("stuck sensors raised runaway categories")
	}
}

func TestCommsLossWatchAndRecovery(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	errPoll := errors.New("poll: timeout")
	r.fail(errPoll)
	r.fail(errPoll)
	if r.stage("", wire.CategoryComms) != wire.StageNormal {
		t.Fatal("comms watch before 3 missed polls")
	}
	r.fail(errPoll)
	if r.stage("", wire.CategoryComms) != wire.StageWatch {
		t.Fatal("no comms watch after 3 missed polls")
	}
	r.run(2*time.Minute, nil)
	if r.stage("", wire.CategoryComms) != wire.StageNormal {
		t.Fatal("comms watch did not clear after recovery")
	}
	if r.max(wire.CategoryThermal) != wire.StageNormal {
		t.Fatal("comms loss raised a thermal alert")
	}
}

func TestZeroFrameIsCommsNotCollapse(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.run(10*time.Second, func(rs []drivers.Reading) {
		for k := range nCells {
			rs[r.cellT[k]].Value, rs[r.cellV[k]].Value = 0, 0
		}
	})
	if r.stage("", wire.CategoryComms) != wire.StageWatch {
		t.Fatal("all-zero frame not treated as comms loss")
	}
	if r.max(wire.CategoryElectrical) != wire.StageNormal {
		t.Fatal("all-zero frame read as voltage collapse")
	}
}

func TestDataLossEscalatesWarning(t *testing.T) {
	r := newRig(t, nmc)
	r.I = -20 // charging
	r.run(time.Minute, nil)
	for k := range r.V {
		r.V[k] = 4.27 // the string over-voltage while charging: warning
	}
	r.run(30*time.Second, nil)
	if got := r.stage("string/1", wire.CategoryElectrical); got != wire.StageWarning {
		r.dump()
		t.Fatalf("string over-voltage: %s, want warning", got)
	}
	for range 61 {
		r.fail(errors.New("link down"))
	}
	if got := r.stage("string/1", wire.CategoryElectrical); got != wire.StageCritical {
		r.dump()
		t.Fatalf("warning rack silent for 61 s: %s, want critical", got)
	}
	a := r.alerts[len(r.alerts)-1]
	if !hasSig(a, "data_loss") {
		t.Fatalf("escalation alert lacks data_loss: %+v", a)
	}
}

// --- Signatures ---

func TestDeltaWatchOnDelay(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.T[0] = 28.6
	r.run(4*time.Minute+30*time.Second, nil)
	if r.stage(cellComp(0), wire.CategoryThermal) != wire.StageNormal {
		t.Fatal("dT watch before its 5 min on-delay")
	}
	r.run(time.Minute, nil)
	if r.stage(cellComp(0), wire.CategoryThermal) != wire.StageWatch {
		r.dump()
		t.Fatal("no dT watch after 5 min at +3.6 degC")
	}
}

func TestRateOfRiseStages(t *testing.T) {
	tests := []struct {
		name string
		rate float64 // degC/min on one cell
		want wire.Stage
	}{
		{"slow 0.1/min stays watch", 0.1, wire.StageWatch},
		{"0.4/min warns", 0.4, wire.StageWarning},
		{"1.5/min critical", 1.5, wire.StageCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nmc)
			r.run(time.Minute, nil)
			r.T[6] = 31 // already +6 degC
			r.runEach(6*time.Minute, func() { r.T[6] += tt.rate / 60 })
			got := r.stage(cellComp(6), wire.CategoryThermal)
			if tt.want == wire.StageWatch && got > wire.StageWatch || tt.want != wire.StageWatch && got < tt.want {
				r.dump()
				t.Fatalf("thermal %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRateIsPeriodIndependent(t *testing.T) {
	for _, p := range []time.Duration{500 * time.Millisecond, time.Second, 5 * time.Second, 10 * time.Second} {
		r := newRig(t, nmc)
		r.period = p
		r.run(3*time.Minute, nil)
		r.runEach(14*time.Minute, func() { r.T[6] += 0.5 * p.Minutes() })
		if got := r.stage(cellComp(6), wire.CategoryThermal); got != wire.StageWarning {
			r.dump()
			t.Fatalf("period %s: 0.5 degC/min at +6 degC: %s, want warning", p, got)
		}
	}
}

func TestRoomWideHeatIsEnvironment(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.amb = 38
	r.runEach(30*time.Minute, func() {
		for k := range r.T {
			if r.T[k] < 57 {
				r.T[k] += 2.0 / 60
			}
		}
	})
	if r.max(wire.CategoryThermal) != wire.StageNormal {
		r.dump()
		t.Fatal("room-wide heat raised a thermal alert")
	}
	if r.max(wire.CategoryEnvironment) != wire.StageWarning {
		r.dump()
		t.Fatalf("every cell at 57 degC: environment %s, want warning", r.max(wire.CategoryEnvironment))
	}
	a, _ := r.first(wire.CategoryEnvironment, wire.StageWatch)
	if !hasSig(a, "ambient_temp") && !hasSig(a, "rack_temp_rate") {
		t.Fatalf("environment alert without ambient or rack rate: %s", a.Summary)
	}
}

func TestVoltageDeviation(t *testing.T) {
	tests := []struct {
		name    string
		dv      float64
		I       float64
		balance bool
		want    wire.Stage
	}{
		{"-60 mV at rest warns", -0.060, 0, false, wire.StageWarning},
		{"-250 mV critical", -0.250, 0, false, wire.StageCritical},
		{"-60 mV while balancing is masked", -0.060, 0, true, wire.StageNormal},
		{"-60 mV at 300 A is explained by current (a dip watch only)", -0.060, 300, false, wire.StageWatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nmc)
			r.I = tt.I
			r.run(time.Minute, nil)
			r.V[3] += tt.dv
			r.bal[3] = tt.balance
			r.run(45*time.Second, nil)
			got := r.stage(cellComp(3), wire.CategoryElectrical)
			if got != tt.want {
				r.dump()
				t.Fatalf("electrical %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMicroShortDips(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	for i := range 3 {
		r.V[1] -= 0.040
		r.run(3*time.Second, nil)
		r.V[1] += 0.040
		r.run(5*time.Minute, nil)
		want := wire.StageWatch
		if i == 2 {
			want = wire.StageWarning
		}
		if got := r.stage(cellComp(1), wire.CategoryElectrical); got != want {
			r.dump()
			t.Fatalf("after %d dips: %s, want %s", i+1, got, want)
		}
	}
}

func TestOverVoltageOnlyWhileCharging(t *testing.T) {
	for _, tc := range []struct {
		I    float64
		v    float64
		want wire.Stage
	}{{-20, 4.27, wire.StageWarning}, {-20, 4.48, wire.StageCritical}, {80, 4.27, wire.StageNormal}} {
		r := newRig(t, nmc)
		r.I = tc.I
		for k := range r.V {
			r.V[k] = tc.v
		}
		r.run(30*time.Second, nil)
		if got := r.det.MaxStage(wire.CategoryElectrical); got != tc.want {
			r.dump()
			t.Fatalf("I=%g V=%g: %s, want %s", tc.I, tc.v, got, tc.want)
		}
	}
	// One cell over while its string is not: a per-cell condition, and only
	// a whole string makes the string condition.
	r1 := newRig(t, nmc)
	r1.I = -20
	for k := range r1.V {
		r1.V[k] = 4.235
	}
	r1.V[5] = 4.265
	r1.run(30*time.Second, nil)
	if got := r1.stage(cellComp(5), wire.CategoryElectrical); got != wire.StageWarning {
		r1.dump()
		t.Fatalf("one cell at 4.265 V: %s, want warning", got)
	}
	if got := r1.stage("string/1", wire.CategoryElectrical); got != wire.StageNormal {
		t.Fatalf("one cell over raised the string condition: %s", got)
	}
	lfp := detect.DefaultConfig(detect.ChemistryLFP)
	r := newRig(t, lfp)
	r.I = -20
	for k := range r.V {
		r.V[k] = 3.72
	}
	r.run(30*time.Second, nil)
	if got := r.det.MaxStage(wire.CategoryElectrical); got != wire.StageWarning {
		t.Fatalf("LFP at 3.72 V charging: %s, want warning", got)
	}
}

func TestImbalanceIsMaintenanceWatch(t *testing.T) {
	r := newRig(t, nmc)
	r.V[4] -= 0.035
	r.run(11*time.Minute, nil)
	if got := r.stage(cellComp(4), wire.CategoryElectrical); got != wire.StageWatch {
		r.dump()
		t.Fatalf("35 mV imbalance at rest: %s, want watch", got)
	}
	a, _ := r.first(wire.CategoryElectrical, wire.StageWatch)
	if !hasSig(a, "cell_voltage_imbalance") {
		t.Fatalf("want cell_voltage_imbalance, got %s", a.Summary)
	}
}

func TestSelfDischargeDrift(t *testing.T) {
	r := newRig(t, nmc)
	r.period = time.Minute
	r.runEach(4*24*time.Hour, func() { r.V[5] -= 0.008 / (24 * 60) }) // 8 mV/day
	found := false
	for _, a := range r.alerts {
		if a.Component == cellComp(5) && hasSig(a, "cell_voltage_drift") {
			found = true
		}
	}
	if !found {
		r.dump()
		t.Fatal("8 mV/day drift over 4 days not reported")
	}
	if r.max(wire.CategoryElectrical) > wire.StageWatch {
		r.dump()
		t.Fatal("slow drift went above watch")
	}
}

func TestGasRules(t *testing.T) {
	tests := []struct {
		name string
		set  func(r *rig, x float64) // x: 0..1 ramp over 2 min
		want wire.Stage
	}{
		{"voc +12 rising warns", func(r *rig, x float64) { r.gas["voc"] = 0.5 + 12*x }, wire.StageWarning},
		{"voc +60 alone stays warning", func(r *rig, x float64) { r.gas["voc"] = 0.5 + 60*x }, wire.StageWarning},
		{"voc +60 with co +15 critical", func(r *rig, x float64) { r.gas["voc"] = 0.5 + 60*x; r.gas["co"] = 1 + 15*x }, wire.StageCritical},
		{"h2 1200 ppm emergency", func(r *rig, x float64) { r.gas["h2"] = 2 + 1200*x }, wire.StageEmergency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nmc)
			r.run(3*time.Minute, nil)
			start := r.at
			r.runEach(3*time.Minute, func() { tt.set(r, min(r.at.Sub(start).Minutes()/2, 1)) })
			if got := r.stage("", wire.CategoryGas); got != tt.want {
				r.dump()
				t.Fatalf("gas %s, want %s", got, tt.want)
			}
		})
	}
}

func TestContacts(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.smoke = true
	r.run(5*time.Second, nil)
	if got := r.stage("", wire.CategoryThermal); got != wire.StageCritical {
		t.Fatalf("smoke alone: %s, want critical", got)
	}
	r.fire = true
	r.run(5*time.Second, nil)
	if got := r.stage("", wire.CategoryThermal); got != wire.StageEmergency {
		t.Fatalf("fire panel: %s, want emergency", got)
	}
}

// --- Stages ---

func TestCorroborationTwoFamilies(t *testing.T) {
	r := newRig(t, nmc)
	r.run(3*time.Minute, nil)
	// Gas alone: warning.
	start := r.at
	r.runEach(time.Minute, func() { r.gas["voc"] = 0.5 + 15*min(r.at.Sub(start).Minutes(), 1) })
	if got := r.stage("", wire.CategoryGas); got != wire.StageWarning {
		r.dump()
		t.Fatalf("gas alone: %s, want warning", got)
	}
	// A second, independent family at warning on the same rack: critical.
	r.I = -20
	for k := range r.V {
		r.V[k] = 4.27
	}
	r.run(20*time.Second, nil)
	gas := r.stage("", wire.CategoryGas)
	el := r.stage("string/1", wire.CategoryElectrical)
	if gas != wire.StageCritical || el != wire.StageCritical {
		r.dump()
		t.Fatalf("gas + electrical warnings: gas %s electrical %s, want critical both", gas, el)
	}
	a := r.alerts[len(r.alerts)-1]
	if len(a.Families) < 2 {
		t.Fatalf("corroborated alert families = %v", a.Families)
	}
}

func TestLatchingAndAck(t *testing.T) {
	r := newRig(t, nmc)
	r.I = -20
	r.run(time.Minute, nil)
	r.V[2] = 4.48
	r.run(20*time.Second, nil)
	comp := cellComp(2)
	if got := r.stage(comp, wire.CategoryElectrical); got != wire.StageCritical {
		t.Fatalf("over-voltage 4.48: %s, want critical", got)
	}
	r.V[2] = 4.0
	r.run(5*time.Minute, nil)
	if got := r.stage(comp, wire.CategoryElectrical); got != wire.StageCritical {
		t.Fatalf("critical did not latch: %s", got)
	}
	if err := r.det.Ack(comp, wire.CategoryThermal, wire.Ack{By: "op"}); err == nil {
		t.Fatal("ack of a normal condition succeeded")
	}
	if err := r.det.Ack(comp, wire.CategoryElectrical, wire.Ack{By: "op", Note: "replaced charger"}); err != nil {
		t.Fatal(err)
	}
	n := len(r.alerts)
	r.step(nil)
	// The 480 mV fall itself was a dip (watch), so below critical, not normal.
	if got := r.stage(comp, wire.CategoryElectrical); got >= wire.StageCritical {
		t.Fatalf("after ack: %s, want below critical", got)
	}
	if len(r.alerts) != n+1 || r.alerts[n].Ack == nil || r.alerts[n].Ack.By != "op" || r.alerts[n].PreviousStage != wire.StageCritical {
		t.Fatalf("after ack want one alert carrying the ack, got %+v", r.alerts[n:])
	}
}

func TestWarningClearsWithHysteresis(t *testing.T) {
	r := newRig(t, nmc)
	r.I = -20
	r.run(time.Minute, nil)
	setAll := func(v float64) {
		for k := range r.V {
			r.V[k] = v
		}
	}
	setAll(4.27)
	r.run(20*time.Second, nil)
	if r.stage("string/1", wire.CategoryElectrical) != wire.StageWarning {
		r.dump()
		t.Fatal("no warning")
	}
	setAll(4.245) // below the 4.25 entry but above the exit threshold: stays
	r.run(2*time.Minute, nil)
	if r.stage("string/1", wire.CategoryElectrical) != wire.StageWarning {
		r.dump()
		t.Fatal("warning dropped inside the hysteresis band")
	}
	r.runEach(10*time.Second, func() {
		for k := range r.V {
			r.V[k] -= 0.015 // fall smoothly: no dip
		}
	})
	r.run(20*time.Second, nil)
	if r.stage("string/1", wire.CategoryElectrical) != wire.StageWarning {
		t.Fatal("warning cleared before clear_after")
	}
	r.run(40*time.Second, nil)
	if got := r.stage("string/1", wire.CategoryElectrical); got != wire.StageNormal {
		t.Fatalf("warning did not clear: %s", got)
	}
	// Only stage changes are alerted: one up, one down.
	n := 0
	for _, a := range r.alerts {
		if a.Category == wire.CategoryElectrical && a.Component == "string/1" {
			n++
		}
	}
	if n != 2 {
		r.dump()
		t.Fatalf("%d electrical alerts, want 2 (up, down)", n)
	}
}

func TestSensorFaultNeverAboveWatch(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.run(10*time.Minute, func(rs []drivers.Reading) {
		for k := range 4 {
			rs[r.cellT[k]].Value = -40
			rs[r.cellV[k]].Fault = drivers.FaultSentinel
		}
	})
	if s := r.max(wire.CategorySensorFault); s != wire.StageWatch {
		t.Fatalf("sensor_fault max %s, want watch", s)
	}
	for range 20 {
		r.fail(errors.New("down"))
	}
	if s := r.max(wire.CategoryComms); s != wire.StageWatch {
		t.Fatalf("comms max %s, want watch", s)
	}
}

func TestAlertIDDeterministic(t *testing.T) {
	a := wire.Alert{Site: "s", Agent: "a", Device: "d", Component: "c", Category: "thermal", Stage: wire.StageWarning,
		SampleTime: time.Unix(100, 5)}
	b := a
	if detect.AlertID(&a) != detect.AlertID(&b) {
		t.Fatal("same alert, different ids")
	}
	b.Stage = wire.StageCritical
	if detect.AlertID(&a) == detect.AlertID(&b) {
		t.Fatal("different stage, same id")
	}
	if len(detect.AlertID(&a)) != 32 {
		t.Fatalf("id %q", detect.AlertID(&a))
	}
}

// TestGarbageNeverPanics feeds random values (NaN, Inf, huge, negative,
// wrong-length slices) and asserts the detector neither panics nor reaches
// critical from sensor garbage alone (random plausible values such as a
// 4.1 V sample on a 4.0 V cell are legitimately dips), and reports the
// garbage as sensor faults.
func TestGarbageNeverPanics(t *testing.T) {
	r := newRig(t, nmc)
	vals := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -1e300, 0, -40, 6553.5, 65.535, 4.1, 25}
	for i := range 2000 {
		r.fill()
		for k := range r.rs {
			if r.rng.IntN(4) == 0 {
				r.rs[k].Value = vals[r.rng.IntN(len(vals))]
				r.rs[k].Fault = drivers.Fault(r.rng.IntN(12))
			}
		}
		rs := r.rs
		switch i % 97 {
		case 5:
			rs = rs[:len(rs)/2]
		case 6:
			rs = append(append([]drivers.Reading(nil), rs...), drivers.Reading{})
		case 7:
			rs = nil
		}
		r.det.Step(r.at, rs, nil, func(a wire.Alert) { r.alerts = append(r.alerts, a) })
		r.at = r.at.Add(time.Second)
	}
	for _, a := range r.alerts {
		if a.Stage >= wire.StageCritical {
			t.Fatalf("garbage raised %s", a.Summary)
		}
	}
	if r.max(wire.CategorySensorFault) != wire.StageWatch {
		t.Fatal("garbage not reported as sensor_fault")
	}
}

// TestStringMedianFallback: modules of two cells have no usable module
// median, so cells are compared with their string.
func TestStringMedianFallback(t *testing.T) {
	var pts []*drivers.Point
	for j := 1; j <= 4; j++ {
		for k := 1; k <= 2; k++ {
			pts = append(pts, drivers.NewPoint(fmt.Sprintf("string[1].module[%d].cell[%d].temperature.celsius", j, k), "degC", drivers.KindNumber))
		}
	}
	d := detect.New(nmc, "rack-s", pts)
	rs := make([]drivers.Reading, len(pts))
	rng := rand.New(rand.NewPCG(3, 4))
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var got wire.Stage
	for i := range 20 * 60 {
		for k := range rs {
			v := 25 + 0.15*rng.NormFloat64()
			if k == 5 && i > 60 {
				v += 0.5 * float64(i-60) / 60 // +0.5 degC/min from minute 1
			}
			rs[k] = drivers.Reading{Point: pts[k], Value: q(v, 0.1)}
		}
		d.Step(at, rs, nil, func(a wire.Alert) {
			if a.Component == "string/1/module/3/cell/2" && a.Category == wire.CategoryThermal {
				got = max(got, a.Stage)
			}
		})
		at = at.Add(time.Second)
	}
	if got != wire.StageWarning {
		t.Fatalf("hot cell in a 2-cell module: thermal %s, want warning via the string median", got)
	}
}

// TestRunawayRateRule: the GB 38031 pattern (>= 1 degC/s for >= 3 s with
// the voltage collapsing) is an emergency on its own.
func TestRunawayRateRule(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	r.T[3] = 58
	r.run(3*time.Second, nil) // held once as a jump, then accepted
	for range 6 {
		r.T[3] += 2
		r.V[3] *= 0.85
		r.step(nil)
	}
	a, ok := r.first(wire.CategoryThermal, wire.StageEmergency)
	if !ok || !hasSig(a, "cell_temp_rise") {
		r.dump()
		t.Fatalf("2 degC/s with collapse: want emergency with cell_temp_rise, got %+v", a)
	}
}

func TestImplausibleCurrentIsUnknown(t *testing.T) {
	r := newRig(t, nmc)
	r.I = 1e300 // garbage must not "explain" the deviation below
	r.run(time.Minute, nil)
	r.V[3] -= 0.080
	r.run(45*time.Second, nil)
	if got := r.stage(cellComp(3), wire.CategoryElectrical); got != wire.StageWarning {
		r.dump()
		t.Fatalf("-80 mV with a garbage current: %s, want warning", got)
	}
}

// TestChatteringSensor (reliability design T18a): a cell oscillating
// around a threshold for an hour must not flap: at most one activation per
// 10 minutes.
func TestChatteringSensor(t *testing.T) {
	r := newRig(t, nmc)
	r.run(time.Minute, nil)
	i := 0
	r.runEach(time.Hour, func() {
		i++
		r.T[2] = 28.4 // dT swings 2.8..4.0 across the 3 degC watch threshold
		if (i/10)%2 == 0 {
			r.T[2] += 0.6
		} else {
			r.T[2] -= 0.6
		}
	})
	ups := 0
	for _, a := range r.alerts {
		if a.Component == cellComp(2) && a.Stage > a.PreviousStage {
			ups++
		}
	}
	if ups > 6 {
		r.dump()
		t.Fatalf("%d activations in an hour of chatter, want <= 6", ups)
	}
	if ups == 0 {
		t.Fatal("a cell ~3 degC above its peers for an hour never raised a watch")
	}
}

// TestClockJumps (T19): the sample clock jumping back an hour and forward
// again must neither panic nor raise anything on a quiet rack.
func TestClockJumps(t *testing.T) {
	r := newRig(t, nmc)
	r.run(5*time.Minute, nil)
	r.at = r.at.Add(-time.Hour)
	r.run(5*time.Minute, nil)
	r.at = r.at.Add(2 * time.Hour)
	r.run(5*time.Minute, nil)
	for _, a := range r.alerts {
		if a.Category != wire.CategorySensorFault && a.Category != wire.CategoryComms {
			r.dump()
			t.Fatalf("clock jump raised %s", a.Summary)
		}
	}
}
