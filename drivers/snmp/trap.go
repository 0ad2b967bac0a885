package snmp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Severities of a TrapEvent, from the trap's meaning.
const (
	SeverityInfo     = "info"     // a test result, a firmware message
	SeverityWarning  = "warning"  // on battery, on bypass, a battery needing care
	SeverityCritical = "critical" // low/depleted battery, battery over temperature, shutdown imminent
	SeverityClear    = "clear"    // an alarm was removed, power restored
	SeverityUnknown  = "unknown"  // a trap this package has no meaning for
)

// TrapVar is one varbind of a trap, its value rendered as text.
type TrapVar struct {
	OID   string // without the leading dot
	Name  string // known object name ("upsEstimatedMinutesRemaining"), else ""
	Value string
	Type  string // ASN.1 type name
}

// TrapEvent is a decoded trap or inform.
type TrapEvent struct {
	// Device is the id the source address was mapped to ("" = unknown
	// source; the event is still delivered).
	Device string
	Source netip.Addr
	// Version is "1", "2c" or "3"; User is the v3 user, Community the v1/v2c
	// community.
	Version, Community, User string
	Inform                   bool
	OID                      string // the trap OID (v1 traps mapped as RFC 3584 says)
	Name                     string // "upsTrapOnBattery"; "" when unknown
	Severity                 string
	// Alarm is, for alarm-table traps (upsTrapAlarmEntryAdded/Removed,
	// xupsAlarmEntryAdded/Removed), the alarm's well-known name
	// ("upsAlarmLowBattery"); Severity follows the alarm.
	Alarm string
	Vars  []TrapVar
	Time  time.Time // when it was received
}

// TrapUser is an SNMPv3 user allowed to send traps and informs.
type TrapUser struct {
	V3
	// EngineID of the sender (hex, "0x8000..." or "8000..."); required for
	// traps (the sender is authoritative), unused for informs.
	EngineID string `yaml:"engine_id"`
}

// TrapConfig configures a TrapReceiver.
type TrapConfig struct {
	// Listen is udp://host:port (default udp://0.0.0.0:162).
	Listen string `yaml:"listen"`
	// Communities accepted for v1/v2c traps; empty accepts any.
	Communities []string `yaml:"communities,omitempty"`
	// Users accepted for v3 traps/informs (authPriv unless allow_insecure).
	Users []TrapUser `yaml:"users,omitempty"`
	// AllowInsecure accepts v3 users below authPriv.
	AllowInsecure bool `yaml:"allow_insecure,omitempty"`
	// Devices maps a source IP address to a device id.
	Devices map[string]string `yaml:"devices,omitempty"`
}

// TrapReceiver listens for v1/v2c/v3 traps and informs and delivers each
// decoded one to a callback. It knows nothing of NATS: the agent turns the
// events into alerts and an immediate re-poll of the device.
type TrapReceiver struct {
	cfg     TrapConfig
	onTrap  func(TrapEvent)
	log     *slog.Logger
	tl      *gosnmp.TrapListener
	devices map[netip.Addr]string
	comm    map[string]bool

	mu      sync.Mutex
	started bool
	dropped atomic.Uint64
}

// NewTrapReceiver checks the config and prepares the listener; Run
// starts it. onTrap runs on the listener's goroutine: it must be quick
// (hand the event to a channel).
func NewTrapReceiver(cfg TrapConfig, onTrap func(TrapEvent), log *slog.Logger) (*TrapReceiver, error) {
	if onTrap == nil {
		return nil, errors.New("snmp traps: no callback")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = "udp://0.0.0.0:162"
	}
	r := &TrapReceiver{cfg: cfg, onTrap: onTrap, log: log.With("component", "snmp-traps"),
		devices: map[netip.Addr]string{}, comm: map[string]bool{}}
	for ip, dev := range cfg.Devices {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("snmp traps: devices: %q is not an IP address", ip)
		}
		r.devices[a.Unmap()] = dev
	}
	for _, c := range cfg.Communities {
		r.comm[c] = true
	}
	if _, _, _, err := parseTarget(cfg.Listen); err != nil {
		return nil, fmt.Errorf("snmp traps: listen: %w", err)
	}
	params := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(slogPrinter{r.log})}
	if len(cfg.Users) > 0 {
		table := gosnmp.NewSnmpV3SecurityParametersTable(params.Logger)
		for i, u := range cfg.Users {
			c := Config{Target: "udp://127.0.0.1", Version: "3", V3: &u.V3, AllowInsecure: cfg.AllowInsecure}
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("snmp traps: users[%d]: %w", i, err)
			}
			g, _ := c.client(1, 1)
			usm := g.SecurityParameters.(*gosnmp.UsmSecurityParameters)
			if u.EngineID != "" {
				id, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(u.EngineID), "0x"))
				if err != nil || len(id) < 5 || len(id) > 32 {
					return nil, fmt.Errorf("snmp traps: users[%d].engine_id: %q is not 5..32 bytes of hex", i, u.EngineID)
				}
				usm.AuthoritativeEngineID = string(id)
			}
			if err := table.Add(u.User, usm); err != nil {
				return nil, fmt.Errorf("snmp traps: users[%d]: %w", i, err)
			}
			params.MsgFlags = g.MsgFlags
		}
		params.Version = gosnmp.Version3
		params.SecurityModel = gosnmp.UserSecurityModel
		params.SetTrapSecurityParametersTable(table)
	}
	tl := gosnmp.NewTrapListener()
	tl.Params = params
	tl.OnNewTrap = r.handle
	r.tl = tl
	return r, nil
}

// slogPrinter routes gosnmp's debug lines (dropped traps, auth failures)
// to slog at debug level.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Print(v ...any) { p.l.Debug(strings.TrimSpace(fmt.Sprint(v...))) }
func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// Run listens until ctx is done. It returns an error if it cannot bind.
func (r *TrapReceiver) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("snmp traps: Run called twice")
	}
	r.started = true
	r.mu.Unlock()
	_, host, port, _ := parseTarget(r.cfg.Listen)
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	errc := make(chan error, 1)
	go func() { errc <- r.tl.Listen(addr) }()
	select {
	case <-r.tl.Listening():
	case err := <-errc:
		return fmt.Errorf("snmp traps: listen %s: %w", addr, err)
	case <-ctx.Done():
		r.tl.Close()
		<-errc
		return ctx.Err()
	}
	r.log.Info("listening for traps", "addr", addr)
	<-ctx.Done()
	r.tl.Close()
	<-errc
	return nil
}

// Dropped counts traps refused (unknown community) or undecodable.
func (r *TrapReceiver) Dropped() uint64 { return r.dropped.Load() }

const oidSnmpTrapOID = ".1.3.6.1.6.3.1.1.4.1.0"

func (r *TrapReceiver) handle(pkt *gosnmp.SnmpPacket, from *net.UDPAddr) {
	ev := TrapEvent{Time: time.Now(), Inform: pkt.IsInform}
	if from != nil {
		if a, ok := netip.AddrFromSlice(from.IP); ok {
			ev.Source = a.Unmap()
			ev.Device = r.devices[ev.Source]
		}
	}
	switch pkt.Version {
	case gosnmp.Version1:
		ev.Version = "1"
	case gosnmp.Version2c:
		ev.Version = "2c"
	case gosnmp.Version3:
		ev.Version = "3"
		if usm, ok := pkt.SecurityParameters.(*gosnmp.UsmSecurityParameters); ok {
			ev.User = usm.UserName
		}
	}
	if pkt.Version != gosnmp.Version3 {
		ev.Community = pkt.Community
		if len(r.comm) > 0 && !r.comm[pkt.Community] {
			r.dropped.Add(1)
			r.log.Warn("trap with an unknown community dropped", "source", ev.Source)
			return
		}
	}
	if pkt.PDUType == gosnmp.Trap {
		// A v1 trap names its agent; behind a proxy or NAT it tells the
		// device better than the source address.
		if a, err := netip.ParseAddr(pkt.AgentAddress); err == nil {
			if dev, ok := r.devices[a.Unmap()]; ok {
				ev.Device = dev
			}
		}
	}
	if pkt.PDUType == gosnmp.Trap {
		// RFC 3584 3.1: enterprise.0.specific, or snmpTraps.(generic+1).
		if pkt.GenericTrap == 6 {
			ev.OID = strings.TrimPrefix(pkt.Enterprise, ".") + ".0." + fmt.Sprint(pkt.SpecificTrap)
		} else {
			ev.OID = "1.3.6.1.6.3.1.1.5." + fmt.Sprint(pkt.GenericTrap+1)
		}
	}
	for _, v := range pkt.Variables {
		if v.Name == oidSnmpTrapOID {
			s, _ := v.Value.(string)
			ev.OID = strings.TrimPrefix(s, ".")
			continue
		}
		if v.Name == ".1.3.6.1.2.1.1.3.0" {
			continue // sysUpTime.0
		}
		oid := strings.TrimPrefix(v.Name, ".")
		tv := TrapVar{OID: oid, Type: v.Type.String(), Value: textOf(v), Name: varName(oid)}
		ev.Vars = append(ev.Vars, tv)
	}
	if ev.OID == "" {
		r.dropped.Add(1)
		return
	}
	ev.Name, ev.Severity = trapMeaning(ev.OID)
	// Alarm-table traps carry the alarm's OID in a varbind: their severity is
	// the alarm's.
	if t, ok := alarmTraps[normTrap(ev.OID)]; ok {
		for _, v := range ev.Vars {
			if strings.HasPrefix(v.OID, t.descrCol+".") {
				if a, ok := knownAlarms[strings.TrimPrefix(v.Value, ".")]; ok {
					ev.Alarm = a.name
					if t.added {
						ev.Severity = a.severity
					}
				}
			}
		}
	}
	r.onTrap(ev)
}

type meaning struct{ name, severity string }

// knownTraps maps trap OIDs (normalised by normTrap) to their meaning.
// Sources: RFC 1628 upsTraps; XUPS-MIB well-known alarm/trap OIDs
// (eaton-xups-and-mge.md); LIEBERT-GP-NOTIFICATIONS-MIB lgpEventNotifications.
var knownTraps = map[string]meaning{
	"1.3.6.1.2.1.33.2.1": {"upsTrapOnBattery", SeverityWarning},
	"1.3.6.1.2.1.33.2.2": {"upsTrapTestCompleted", SeverityInfo},
	"1.3.6.1.2.1.33.2.3": {"upsTrapAlarmEntryAdded", SeverityWarning},
	"1.3.6.1.2.1.33.2.4": {"upsTrapAlarmEntryRemoved", SeverityClear},

	"1.3.6.1.4.1.534.1.7.3":  {"xupsOnBattery", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.4":  {"xupsLowBattery", SeverityCritical},
	"1.3.6.1.4.1.534.1.7.5":  {"xupsUtilityPowerRestored", SeverityClear},
	"1.3.6.1.4.1.534.1.7.6":  {"xupsReturnFromLowBattery", SeverityClear},
	"1.3.6.1.4.1.534.1.7.7":  {"xupsOutputOverload", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.8":  {"xupsInternalFailure", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.9":  {"xupsBatteryDischarged", SeverityCritical},
	"1.3.6.1.4.1.534.1.7.11": {"xupsOnBypass", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.16": {"xupsShutdownImminent", SeverityCritical},
	"1.3.6.1.4.1.534.1.7.21": {"xupsAlarmEntryAdded", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.22": {"xupsAlarmEntryRemoved", SeverityClear},
	"1.3.6.1.4.1.534.1.7.23": {"xupsAlarmBatteryBad", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.25": {"xupsDiagnosticTestFailed", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.29": {"xupsAmbientTempBad", SeverityCritical},
	"1.3.6.1.4.1.534.1.7.31": {"xupsAlarmTempBad", SeverityCritical},
	"1.3.6.1.4.1.534.1.7.32": {"xupsAlarmChargerFailed", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.33": {"xupsAlarmFanFailure", SeverityWarning},
	"1.3.6.1.4.1.534.1.7.34": {"xupsAlarmFuseFailure", SeverityWarning},

	"1.3.6.1.4.1.476.1.42.3.3.0.1":  {"lgpEventConditionEntryAdded", SeverityWarning},
	"1.3.6.1.4.1.476.1.42.3.3.0.2":  {"lgpEventConditionEntryRemoved", SeverityClear},
	"1.3.6.1.4.1.476.1.42.3.3.0.3":  {"lgpEventLowBatteryWarning", SeverityCritical},
	"1.3.6.1.4.1.476.1.42.3.3.0.4":  {"lgpEventLoadTransferedToBypass", SeverityWarning},
	"1.3.6.1.4.1.476.1.42.3.3.0.5":  {"lgpEventInternalFault", SeverityWarning},
	"1.3.6.1.4.1.476.1.42.3.3.0.6":  {"lgpEventBatteryTestFailed", SeverityWarning},
	"1.3.6.1.4.1.476.1.42.3.3.0.7":  {"lgpEventOutputOverload", SeverityWarning},
	"1.3.6.1.4.1.476.1.42.3.3.0.11": {"lgpEventBatteryModuleFailure", SeverityCritical},
	"1.3.6.1.4.1.476.1.42.3.3.0.14": {"lgpEventBatteryModuleWarning", SeverityWarning},

	"1.3.6.1.6.3.1.1.5.1": {"coldStart", SeverityInfo},
	"1.3.6.1.6.3.1.1.5.2": {"warmStart", SeverityInfo},
}

// alarmTraps are the traps whose varbinds name an alarm-table entry.
var alarmTraps = map[string]struct {
	descrCol string
	added    bool
}{
	"1.3.6.1.2.1.33.2.3":     {"1.3.6.1.2.1.33.1.6.2.1.2", true},
	"1.3.6.1.2.1.33.2.4":     {"1.3.6.1.2.1.33.1.6.2.1.2", false},
	"1.3.6.1.4.1.534.1.7.21": {"1.3.6.1.4.1.534.1.7.2.1.2", true},
	"1.3.6.1.4.1.534.1.7.22": {"1.3.6.1.4.1.534.1.7.2.1.2", false},
}

// knownAlarms maps well-known alarm OIDs (UPS-MIB upsWellKnownAlarms) to
// their name and the severity of their appearance.
var knownAlarms = map[string]meaning{
	"1.3.6.1.2.1.33.1.6.3.1":  {"upsAlarmBatteryBad", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.2":  {"upsAlarmOnBattery", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.3":  {"upsAlarmLowBattery", SeverityCritical},
	"1.3.6.1.2.1.33.1.6.3.4":  {"upsAlarmDepletedBattery", SeverityCritical},
	"1.3.6.1.2.1.33.1.6.3.5":  {"upsAlarmTempBad", SeverityCritical},
	"1.3.6.1.2.1.33.1.6.3.6":  {"upsAlarmInputBad", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.7":  {"upsAlarmOutputBad", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.8":  {"upsAlarmOutputOverload", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.9":  {"upsAlarmOnBypass", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.10": {"upsAlarmBypassBad", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.11": {"upsAlarmOutputOffAsRequested", SeverityInfo},
	"1.3.6.1.2.1.33.1.6.3.12": {"upsAlarmUpsOffAsRequested", SeverityInfo},
	"1.3.6.1.2.1.33.1.6.3.13": {"upsAlarmChargerFailed", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.14": {"upsAlarmUpsOutputOff", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.15": {"upsAlarmUpsSystemOff", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.16": {"upsAlarmFanFailure", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.17": {"upsAlarmFuseFailure", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.18": {"upsAlarmGeneralFault", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.19": {"upsAlarmDiagnosticTestFailed", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.20": {"upsAlarmCommunicationsLost", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.21": {"upsAlarmAwaitingPower", SeverityWarning},
	"1.3.6.1.2.1.33.1.6.3.22": {"upsAlarmShutdownPending", SeverityCritical},
	"1.3.6.1.2.1.33.1.6.3.23": {"upsAlarmShutdownImminent", SeverityCritical},
	"1.3.6.1.2.1.33.1.6.3.24": {"upsAlarmTestInProgress", SeverityInfo},
}

// varNames names the varbinds the known traps carry.
var varNames = map[string]string{
	"1.3.6.1.2.1.33.1.2.3":      "upsEstimatedMinutesRemaining",
	"1.3.6.1.2.1.33.1.2.2":      "upsSecondsOnBattery",
	"1.3.6.1.2.1.33.1.9.7":      "upsConfigLowBattTime",
	"1.3.6.1.2.1.33.1.7.1":      "upsTestId",
	"1.3.6.1.2.1.33.1.7.3":      "upsTestResultsSummary",
	"1.3.6.1.2.1.33.1.7.4":      "upsTestResultsDetail",
	"1.3.6.1.2.1.33.1.7.5":      "upsTestStartTime",
	"1.3.6.1.2.1.33.1.7.6":      "upsTestElapsedTime",
	"1.3.6.1.2.1.33.1.6.2.1.1":  "upsAlarmId",
	"1.3.6.1.2.1.33.1.6.2.1.2":  "upsAlarmDescr",
	"1.3.6.1.2.1.33.1.2.1":      "upsBatteryStatus",
	"1.3.6.1.4.1.534.1.7.2.1.1": "xupsAlarmID",
	"1.3.6.1.4.1.534.1.7.2.1.2": "xupsAlarmDescr",
}

// varName names a varbind by its object (scalar .0 or a table column).
func varName(oid string) string {
	for o := oid; o != ""; {
		if n, ok := varNames[o]; ok {
			return n
		}
		i := strings.LastIndexByte(o, '.')
		if i < 0 {
			break
		}
		o = o[:i]
	}
	return ""
}

// normTrap folds the forms one notification arrives in: SMIv2 agents send
// upsTraps.1, SMIv1-minded ones (and v1 traps mapped by RFC 3584) send
// upsTraps.0.1; XUPS traps arrive as xupsTrap...0.N too.
func normTrap(oid string) string {
	oid = strings.TrimPrefix(oid, ".")
	if _, ok := knownTraps[oid]; ok {
		return oid
	}
	if i := strings.LastIndex(oid, ".0."); i > 0 {
		alt := oid[:i] + oid[i+2:]
		if _, ok := knownTraps[alt]; ok {
			return alt
		}
	}
	return oid
}

// trapMeaning names a trap OID and gives its severity.
func trapMeaning(oid string) (name, severity string) {
	if m, ok := knownTraps[normTrap(oid)]; ok {
		return m.name, m.severity
	}
	return "", SeverityUnknown
}
