package hooks

import "time"

// CollectorAck is what the leading collector publishes on
// AckSubject(site, agent) for every critical or emergency alert it has
// taken charge of. An agent's fallback stands down when it sees one (or a
// verified evacuation for its domain) before its deadline.
type CollectorAck struct {
	AlertID   string    `json:"alert_id"`
	Agent     string    `json:"agent"`
	Device    string    `json:"device"`
	Domain    string    `json:"domain,omitempty"`
	EvacID    string    `json:"evac_id,omitempty"`
	Decision  string    `json:"decision"`
	Collector string    `json:"collector"`
	Time      time.Time `json:"time"`
}

// AckSubject is ember.<site>.evacack.<agent>.
func AckSubject(site, agent string) string { return "ember." + site + ".evacack." + agent }
