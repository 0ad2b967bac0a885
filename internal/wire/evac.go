package wire

import "time"

// Evacuation phases.
const (
	PhasePrestage = "prestage"
	PhaseEvacuate = "evacuate"
	PhaseAbort    = "abort"
	PhaseComplete = "complete"
)

// Urgency values.
const (
	UrgencyNormal    = "normal"
	UrgencyEmergency = "emergency"
)

// Evacuation is published on ember.<site>.evac.<domain> and handed to hooks.
type Evacuation struct {
	ID      string     `json:"id"`
	Site    string     `json:"site"`
	Domain  string     `json:"domain"`
	Phase   string     `json:"phase"`
	Urgency string     `json:"urgency"`
	Reason  EvacReason `json:"reason"`
	Targets []string   `json:"targets"`
	Time    time.Time  `json:"time"`
	Drill   bool       `json:"drill"`
	DryRun  bool       `json:"dry_run"`
	// Issuer and Signature (extension): the collector that decided and
	// its ed25519 signature; see docs/contract.md.
	Issuer    string `json:"issuer,omitempty"`
	Signature string `json:"signature,omitempty"`
	// Fence (extension) is the issuing leader's fencing token (the
	// revision of its lease); receivers refuse tokens lower than the
	// highest they have seen.
	Fence uint64 `json:"fence,omitempty"`
}

// EvacReason says why.
type EvacReason struct {
	AlertIDs []string `json:"alert_ids"`
	Summary  string   `json:"summary"`
}
