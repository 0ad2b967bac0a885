package wire

import "time"

// Device health in heartbeats and site state.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded" // some points faulted
	HealthDown     = "down"     // the last round failed as a whole
)

// Heartbeat is published by every agent at least every 5 s.
type Heartbeat struct {
	Agent     string         `json:"agent"`
	Site      string         `json:"site"`
	Version   string         `json:"version"`
	Uptime    float64        `json:"uptime_seconds"`
	Time      time.Time      `json:"time"`
	Devices   []DeviceHealth `json:"devices"`
	ClockSync *bool          `json:"clock_synced,omitempty"`
	// Counters for self-monitoring.
	Rounds  uint64 `json:"rounds"`
	Overrun uint64 `json:"overruns"`
	Dropped uint64 `json:"dropped"`
}

// DeviceHealth is one device's health in a heartbeat.
type DeviceHealth struct {
	Device     string    `json:"device"`
	Health     string    `json:"health"`
	LastSample time.Time `json:"last_sample,omitempty"`
	Error      string    `json:"error,omitempty"`
	Faults     int       `json:"faulted_points,omitempty"`
}
