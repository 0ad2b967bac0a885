package wire

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var idRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// ValidID reports whether s is a valid site, agent or device id ([a-z0-9-]+).
func ValidID(s string) bool { return idRE.MatchString(s) }

// Subject kinds, the third token of every emberwatch subject.
const (
	KindTelemetry = "telemetry"
	KindAlert     = "alert"
	KindHeartbeat = "heartbeat"
	KindEvac      = "evac"
)

// TelemetrySubject is ember.<site>.telemetry.<agent>.<device>.
func TelemetrySubject(site, agent, device string) string {
	return "ember." + site + ".telemetry." + agent + "." + device
}

// AlertSubject is ember.<site>.alert.<agent>.<device>.
func AlertSubject(site, agent, device string) string {
	return "ember." + site + ".alert." + agent + "." + device
}

// HeartbeatSubject is ember.<site>.heartbeat.<agent>.
func HeartbeatSubject(site, agent string) string {
	return "ember." + site + ".heartbeat." + agent
}

// EvacSubject is ember.<site>.evac.<domain>.
func EvacSubject(site, domain string) string {
	return "ember." + site + ".evac." + domain
}

// Wildcard returns the subject filter for one kind across a site ("*" for
// every site): ember.<site>.<kind>.>
func Wildcard(site, kind string) string {
	return "ember." + site + "." + kind + ".>"
}

// Subject is a parsed emberwatch subject.
type Subject struct {
	Site, Kind, Agent, Device, Domain string
}

// ErrSubject is returned for subjects outside the contract.
var ErrSubject = errors.New("wire: not an emberwatch subject")

// ParseSubject splits an emberwatch subject into its parts.
func ParseSubject(s string) (Subject, error) {
	t := strings.Split(s, ".")
	if len(t) < 4 || t[0] != "ember" {
		return Subject{}, fmt.Errorf("%w: %q", ErrSubject, s)
	}
	sub := Subject{Site: t[1], Kind: t[2]}
	switch {
	case (sub.Kind == KindTelemetry || sub.Kind == KindAlert) && len(t) == 5:
		sub.Agent, sub.Device = t[3], t[4]
	case sub.Kind == KindHeartbeat && len(t) == 4:
		sub.Agent = t[3]
	case sub.Kind == KindEvac && len(t) == 4:
		sub.Domain = t[3]
	default:
		return Subject{}, fmt.Errorf("%w: %q", ErrSubject, s)
	}
	return sub, nil
}

// MsgIDHeader is the NATS header JetStream de-duplicates on.
const MsgIDHeader = "Nats-Msg-Id"
