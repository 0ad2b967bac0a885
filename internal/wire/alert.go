package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// Stage is an alert's severity, in increasing order.
type Stage int

const (
	StageNormal Stage = iota
	StageWatch
	StageWarning
	StageCritical
	StageEmergency
)

var stageNames = [...]string{"normal", "watch", "warning", "critical", "emergency"}

func (s Stage) String() string {
	if s >= 0 && int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// ParseStage parses a stage name.
func ParseStage(s string) (Stage, error) {
	for i, n := range stageNames {
		if n == s {
			return Stage(i), nil
		}
	}
	return 0, fmt.Errorf("wire: unknown stage %q (want normal, watch, warning, critical or emergency)", s)
}

func (s Stage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Stage) UnmarshalText(b []byte) error {
	v, err := ParseStage(string(b))
	*s = v
	return err
}

// Latches reports whether the stage holds until acknowledged.
func (s Stage) Latches() bool { return s >= StageCritical }

// Alert categories.
const (
	CategoryThermal     = "thermal"
	CategoryGas         = "gas"
	CategoryElectrical  = "electrical"
	CategoryEnvironment = "environment"
	CategorySensorFault = "sensor_fault"
	CategoryComms       = "comms"
	CategorySecurity    = "security" // extension: forged or replayed commands, downgraded links
)

// Signature is one piece of evidence behind an alert.
type Signature struct {
	Kind      string  `json:"kind"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit,omitempty"`
	Threshold float64 `json:"threshold"`
	// Component narrows the evidence when the alert covers a whole rack.
	Component string `json:"component,omitempty"`
}

// Alert is published on every stage change of a condition.
type Alert struct {
	ID            string      `json:"id"`
	Site          string      `json:"site"`
	Agent         string      `json:"agent"`
	Device        string      `json:"device"`
	Component     string      `json:"component,omitempty"`
	Category      string      `json:"category"`
	Stage         Stage       `json:"stage"`
	PreviousStage Stage       `json:"previous_stage"`
	Signatures    []Signature `json:"signatures"`
	SampleTime    time.Time   `json:"sample_time"`
	Time          time.Time   `json:"time"`
	Drill         bool        `json:"drill"`
	// Extensions.
	Summary string `json:"summary,omitempty"`
	// Families lists the independent signature families (thermal, gas,
	// electrical) that agree, for the collector's corroboration.
	Families []string `json:"families,omitempty"`
	// Ack is set when the alert acknowledges an earlier latched one.
	Ack *Ack `json:"ack,omitempty"`
}

// Ack records who acknowledged a latched alert, and when.
type Ack struct {
	By   string    `json:"by"`
	Time time.Time `json:"time"`
	Note string    `json:"note,omitempty"`
}

// Key identifies the condition an alert belongs to: alerts with the same
// key are stage changes of one condition.
func (a *Alert) Key() string {
	return a.Agent + "/" + a.Device + "/" + a.Component + "/" + a.Category
}

// Marshal encodes the alert as JSON.
func (a *Alert) Marshal() ([]byte, error) { return json.Marshal(a) }
