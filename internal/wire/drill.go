package wire

import "time"

// KindDrill is the subject kind of drill requests to agents.
const KindDrill = "drill"

// DrillSubject is ember.<site>.drill.<agent>: a request/reply subject on
// which an agent accepts a DrillRequest and answers a DrillResponse.
func DrillSubject(site, agent string) string { return "ember." + site + ".drill." + agent }

// DrillReportSubject is ember.<site>.drillreport.<drill id>, stored in the
// EMBER_DRILL_REPORTS stream.
func DrillReportSubject(site, id string) string { return "ember." + site + ".drillreport." + id }

// DrillRequest asks an agent to feed a synthetic scenario into its
// detector for one device. Every sample and alert it causes is marked
// drill: true, end to end; evacuations it causes are dry runs.
type DrillRequest struct {
	ID       string `json:"id"`
	Site     string `json:"site"`
	Agent    string `json:"agent"`
	Device   string `json:"device"`
	Scenario string `json:"scenario"` // a scenario name the agent knows, e.g. "offgas-then-thermal"
	// Speed compresses the scenario's time (1 = real time).
	Speed float64   `json:"speed,omitempty"`
	By    string    `json:"by"`
	Time  time.Time `json:"time"`
}

// DrillResponse is the agent's answer. Started is when the first
// synthetic sample was taken.
type DrillResponse struct {
	ID        string    `json:"id"`
	Agent     string    `json:"agent"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Scenarios []string  `json:"scenarios,omitempty"` // what the agent offers (always set on an unknown scenario)
	Started   time.Time `json:"started,omitzero"`
}

// DrillReport is what emberctl drill prints and keeps: the time from the
// first sample to each step of the chain.
type DrillReport struct {
	ID       string    `json:"id"`
	Site     string    `json:"site"`
	Mode     string    `json:"mode"` // "inject" (alerts published by emberctl) or "agent"
	By       string    `json:"by"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// FirstSample is the sample time of the first drill alert.
	FirstSample time.Time    `json:"first_sample"`
	Steps       []DrillStep  `json:"steps"`
	Evacuations []Evacuation `json:"evacuations"`
	// Targets is what would have been evacuated.
	Targets []string `json:"targets"`
	OK      bool     `json:"ok"`
	Notes   []string `json:"notes,omitempty"`
}

// DrillStep is one observed step: an alert, a decision, a published phase
// or a hook event, with its delay after the first sample.
type DrillStep struct {
	Time    time.Time `json:"time"`
	AfterMS float64   `json:"after_ms"`
	Kind    string    `json:"kind"` // alert, decision, published, hook_start, hook_done, ...
	What    string    `json:"what"`
}
