package collector

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Site state is built from the three streams: telemetry gives every device's
// latest values and location, alerts give the stage of every condition (and
// acks), heartbeats give health. It is rebuilt from JetStream at start, so it
// needs no store of its own.

const (
	historyCap  = 10000           // alerts kept in memory for /api/v1/alerts
	trendWindow = 2 * time.Minute // span of the hottest-cell slope
	trendKeep   = 5 * time.Minute
)

type deviceState struct {
	Agent, Device   string
	Room, Row, Rack string
	Labels          map[string]string
	LastSample      time.Time
	Health          string
	HealthError     string
	comps           map[string]map[string]*float64 // component -> field -> value (pointers: updates do not allocate)
	faults          map[string]map[string]string   // component -> field -> fault
	compTS          map[string]*int64              // component -> sample time of its values
	hottest         float64
	hottestComp     string
	hasHottest      bool
	placed          bool // listed in its rack's devices
}

type agentState struct {
	Agent         string
	Version       string
	Uptime        float64
	LastHeartbeat time.Time // agent's clock
	arrived       time.Time // collector's clock (monotonic), for the timeout
	lastSeq       uint64    // stream sequence of the last heartbeat
	Silent        bool
	ClockSynced   *bool
	Devices       []wire.DeviceHealth
}

type trendSample struct {
	t time.Time
	v float64
}

type rackState struct {
	key     rackKey
	devices map[[2]string]*deviceState
	trend   []trendSample
}

type rackKey struct{ Room, Row, Rack string }

type condition struct {
	Alert wire.Alert
	Ack   *wire.Ack
}

// State is the site state. It is safe for concurrent use.
type State struct {
	mu         sync.RWMutex
	site       string
	devices    map[[2]string]*deviceState // agent, device
	agents     map[string]*agentState
	racks      map[rackKey]*rackState
	conditions map[string]*condition // wire.Alert.Key()
	history    []wire.Alert          // ring
	histStart  int
	version    uint64
	changed    chan struct{} // closed and replaced on every change
	now        func() time.Time
}

func newState(site string, now func() time.Time) *State {
	return &State{
		site: site, now: now,
		devices:    map[[2]string]*deviceState{},
		agents:     map[string]*agentState{},
		racks:      map[rackKey]*rackState{},
		conditions: map[string]*condition{},
		changed:    make(chan struct{}),
	}
}

// bump must be called with mu held for writing.
func (s *State) bump() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change, and the version.
func (s *State) Changed() (<-chan struct{}, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed, s.version
}

// applyTelemetry folds one telemetry message into the state. agent and
// device come from the subject; location comes from the tags.
func (s *State) applyTelemetry(agent, device string, payload []byte, l *lpLine) (points int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{agent, device}
	d := s.devices[key]
	if d == nil {
		d = &deviceState{Agent: agent, Device: device, Health: wire.HealthOK,
			comps: map[string]map[string]*float64{}, faults: map[string]map[string]string{}, compTS: map[string]*int64{}}
		s.devices[key] = d
	}
	oldRack, hadRack := d.rackKey(), d.placed
	var latest int64
	for line, rest := nextLine(payload); line != nil; line, rest = nextLine(rest) {
		if perr := l.parse(line); perr != nil {
			err = perr
			continue
		}
		if string(l.measurement) != wire.Measurement {
			continue
		}
		points++
		if latest == 0 || l.ts > latest {
			latest = l.ts
		}
		comp := l.tag("component")
		// An older sample (an agent replaying its buffer after an outage
		// while live data flows) is stored, but must not replace newer
		// values in the state.
		if ts := d.compTS[string(comp)]; ts == nil {
			v := l.ts
			d.compTS[string(comp)] = &v
		} else if l.ts < *ts {
			continue
		} else {
			*ts = l.ts
		}
		s.setLocation(d, l)
		vals := d.comps[string(comp)]
		if vals == nil {
			vals = map[string]*float64{}
			d.comps[string(comp)] = vals
		}
		flt := d.faults[string(comp)]
		for _, f := range l.fields {
			if f.isStr {
				if name, ok := strings.CutSuffix(string(f.key), wire.FaultSuffix); ok {
					if flt == nil {
						flt = map[string]string{}
						d.faults[string(comp)] = flt
					}
					flt[name] = string(f.str)
					delete(vals, name)
				}
				continue
			}
			if p := vals[string(f.key)]; p != nil {
				*p = f.num
			} else {
				v := f.num
				vals[string(f.key)] = &v
			}
			if len(flt) > 0 {
				delete(flt, string(f.key))
			}
		}
	}
	if points == 0 {
		return 0, err
	}
	at := time.Unix(0, latest).UTC()
	if at.After(d.LastSample) {
		d.LastSample = at
	}
	s.updateHottest(d)
	if nk := d.rackKey(); !hadRack || nk != oldRack {
		if r := s.racks[oldRack]; hadRack && r != nil {
			delete(r.devices, key)
		}
		r := s.racks[nk]
		if r == nil {
			r = &rackState{key: nk, devices: map[[2]string]*deviceState{}}
			s.racks[nk] = r
		}
		r.devices[key] = d
		d.placed = true
	}
	s.updateRackTrend(d, at)
	s.bump()
	return points, err
}

func (s *State) setLocation(d *deviceState, l *lpLine) {
	for _, t := range l.tags {
		switch string(t.key) {
		case "site", "agent", "device", "component":
		case "room":
			if string(t.val) != d.Room {
				d.Room = string(t.val)
			}
		case "row":
			if string(t.val) != d.Row {
				d.Row = string(t.val)
			}
		case "rack":
			if string(t.val) != d.Rack {
				d.Rack = string(t.val)
			}
		default:
			if d.Labels[string(t.key)] != string(t.val) {
				if d.Labels == nil {
					d.Labels = map[string]string{}
				}
				d.Labels[string(t.key)] = string(t.val)
			}
		}
	}
}

func isCell(comp string) bool {
	return strings.HasPrefix(comp, "cell/") || strings.Contains(comp, "/cell/")
}

// updateHottest finds the device's hottest cell (or, lacking cell
// sensors, module / battery temperature).
func (s *State) updateHottest(d *deviceState) {
	d.hasHottest = false
	best, bestRank := 0.0, -1
	for comp, vals := range d.comps {
		p, ok := vals["temperature.celsius"]
		if !ok {
			continue
		}
		v := *p
		rank := 0 // battery/module level
		if isCell(comp) {
			rank = 1
		}
		if rank > bestRank || rank == bestRank && (v > best || v == best && comp < d.hottestComp) {
			best, bestRank, d.hottestComp = v, rank, comp
		}
	}
	if vals, ok := d.comps[""]; ok && bestRank < 0 {
		if p, ok := vals["battery.temperature.celsius"]; ok {
			best, bestRank, d.hottestComp = *p, 0, ""
		}
	}
	if bestRank >= 0 {
		d.hottest, d.hasHottest = best, true
	}
}

func (d *deviceState) rackKey() rackKey {
	k := rackKey{Room: d.Room, Row: d.Row, Rack: d.Rack}
	if k.Rack == "" {
		k.Rack = d.Device // a device without a rack label is shown on its own
	}
	return k
}

// updateRackTrend records the rack's hottest temperature at the sample time.
func (s *State) updateRackTrend(d *deviceState, at time.Time) {
	r := s.racks[d.rackKey()]
	if r == nil {
		return
	}
	v, ok := r.hottest()
	if !ok {
		return
	}
	if n := len(r.trend); n > 0 {
		last := r.trend[n-1].t
		if at.Before(last) {
			return // late sample: the trend is the present, not history
		}
		if at.Sub(last) < 500*time.Millisecond {
			r.trend[n-1] = trendSample{at, max(v, r.trend[n-1].v)}
			return
		}
	}
	r.trend = append(r.trend, trendSample{at, v})
	cut := 0
	for cut < len(r.trend) && at.Sub(r.trend[cut].t) > trendKeep {
		cut++
	}
	if cut > 0 {
		r.trend = append(r.trend[:0], r.trend[cut:]...)
	}
}

func (r *rackState) hottest() (float64, bool) {
	v, ok := 0.0, false
	for _, d := range r.devices {
		if d.hasHottest && (!ok || d.hottest > v) {
			v, ok = d.hottest, true
		}
	}
	return v, ok
}

// slope is the least-squares slope of the trend over the last window, in
// units per minute; ok is false with too little data.
func slope(tr []trendSample, window time.Duration) (float64, bool) {
	if len(tr) < 2 {
		return 0, false
	}
	end := tr[len(tr)-1].t
	var n, sx, sy, sxx, sxy float64
	var first time.Time
	for _, p := range tr {
		if end.Sub(p.t) > window {
			continue
		}
		if first.IsZero() {
			first = p.t
		}
		x := p.t.Sub(end).Minutes()
		n++
		sx += x
		sy += p.v
		sxx += x * x
		sxy += x * p.v
	}
	if n < 2 || end.Sub(first) < 5*time.Second {
		return 0, false
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / den, true
}

// applyAlert records an alert: a stage change of a condition or an ack.
func (s *State) applyAlert(a wire.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := a.Key()
	c := s.conditions[key]
	if c != nil && c.Alert.ID == a.ID {
		// The same message twice (an ack applied locally, then read back
		// from the stream): history keeps one.
		if a.Ack == nil && c.Alert.Time.Equal(a.Time) && c.Alert.Stage == a.Stage {
			return
		}
		if a.Ack != nil && c.Ack != nil && c.Ack.By == a.Ack.By && c.Ack.Time.Equal(a.Ack.Time) {
			return
		}
	}
	if len(s.history) < historyCap {
		s.history = append(s.history, a)
	} else {
		s.history[s.histStart] = a
		s.histStart = (s.histStart + 1) % historyCap
	}
	switch {
	case a.Ack != nil:
		if c != nil && (c.Alert.ID == a.ID || c.Alert.Stage == a.Stage) {
			ack := *a.Ack
			c.Ack = &ack
		}
	case a.Stage == wire.StageNormal:
		delete(s.conditions, key)
	default:
		if c != nil && !a.Time.IsZero() && a.Time.Before(c.Alert.Time) {
			break // an older stage change arriving late
		}
		nc := &condition{Alert: a}
		if c != nil && c.Alert.Stage == a.Stage {
			nc.Ack = c.Ack
		}
		s.conditions[key] = nc
	}
	s.bump()
}

// findAlert returns the latest alert with this id (not an ack).
func (s *State) findAlert(id string) (wire.Alert, *wire.Ack, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.conditions {
		if c.Alert.ID == id {
			return c.Alert, c.Ack, true
		}
	}
	for i := len(s.history) - 1; i >= 0; i-- {
		a := s.history[(s.histStart+i)%len(s.history)]
		if a.ID == id && a.Ack == nil {
			return a, nil, true
		}
	}
	return wire.Alert{}, nil, false
}

// applyHeartbeat records a heartbeat; arrived is the collector's clock.
func (s *State) applyHeartbeat(hb wire.Heartbeat, seq uint64, arrived time.Time) (wasSilent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[hb.Agent]
	if a == nil {
		a = &agentState{Agent: hb.Agent}
		s.agents[hb.Agent] = a
	}
	wasSilent = a.Silent
	a.Version, a.Uptime, a.LastHeartbeat, a.ClockSynced = hb.Version, hb.Uptime, hb.Time, hb.ClockSync
	a.arrived, a.lastSeq, a.Silent = arrived, seq, false
	a.Devices = hb.Devices
	for _, dh := range hb.Devices {
		d := s.devices[[2]string{hb.Agent, dh.Device}]
		if d == nil {
			d = &deviceState{Agent: hb.Agent, Device: dh.Device,
				comps: map[string]map[string]*float64{}, faults: map[string]map[string]string{}, compTS: map[string]*int64{}}
			s.devices[[2]string{hb.Agent, dh.Device}] = d
		}
		d.Health, d.HealthError = dh.Health, dh.Error
	}
	s.bump()
	return wasSilent
}

// silentAgents marks and returns agents whose last heartbeat arrived more
// than timeout ago and that were not yet marked.
func (s *State) silentAgents(now time.Time, timeout time.Duration) []agentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []agentState
	for _, a := range s.agents {
		if !a.Silent && now.Sub(a.arrived) > timeout {
			a.Silent = true
			out = append(out, *a)
		}
	}
	if len(out) > 0 {
		s.bump()
	}
	return out
}

// commsActive reports whether a collector's comms condition for agent is
// active, and which collector raised it, so that no collector raises it
// again and the clear goes to the same condition.
func (s *State) commsActive(agent string) (collector string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.conditions {
		if c.Alert.Category == wire.CategoryComms && c.Alert.Device == agent && c.Alert.Component == "" && c.Alert.Stage > wire.StageNormal {
			return c.Alert.Agent, true
		}
	}
	return "", false
}

// --- snapshots served over HTTP ---

// Snapshot is GET /api/v1/state.
type Snapshot struct {
	Site    string           `json:"site"`
	Time    time.Time        `json:"time"`
	Agents  []AgentView      `json:"agents"`
	Racks   []RackView       `json:"racks"`
	Devices []DeviceView     `json:"devices,omitempty"`
	Active  []ConditionView  `json:"active_alerts"`
	Counts  map[string]int64 `json:"counts,omitempty"`
}

// AgentView is one agent in the state.
type AgentView struct {
	Agent         string    `json:"agent"`
	Version       string    `json:"version,omitempty"`
	Uptime        float64   `json:"uptime_seconds"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Silent        bool      `json:"silent"`
	ClockSynced   *bool     `json:"clock_synced,omitempty"`
}

// RackView is one rack: its stage and its hottest cell with trend.
type RackView struct {
	Room    string       `json:"room"`
	Row     string       `json:"row"`
	Rack    string       `json:"rack"`
	Stage   wire.Stage   `json:"stage"`
	Hottest *HottestView `json:"hottest,omitempty"`
	Devices []string     `json:"devices"` // agent/device
	Alerts  []string     `json:"alerts,omitempty"`
	Stale   bool         `json:"stale"` // an agent of this rack is silent
}

// HottestView is a rack's hottest cell.
type HottestView struct {
	Agent     string  `json:"agent"`
	Device    string  `json:"device"`
	Component string  `json:"component"`
	Celsius   float64 `json:"celsius"`
	// TrendPerMin is the slope of the rack's hottest temperature over the
	// last two minutes, in degC/min; absent with too little data.
	TrendPerMin *float64 `json:"trend_c_per_min,omitempty"`
}

// DeviceView is one device with its latest values by vocabulary name.
type DeviceView struct {
	Agent       string             `json:"agent"`
	Device      string             `json:"device"`
	Room        string             `json:"room,omitempty"`
	Row         string             `json:"row,omitempty"`
	Rack        string             `json:"rack,omitempty"`
	Labels      map[string]string  `json:"labels,omitempty"`
	Health      string             `json:"health"`
	HealthError string             `json:"health_error,omitempty"`
	Stage       wire.Stage         `json:"stage"`
	LastSample  time.Time          `json:"last_sample"`
	Values      map[string]float64 `json:"values,omitempty"`
	Faults      map[string]string  `json:"faults,omitempty"`
}

// ConditionView is an active (non-normal) condition and its ack.
type ConditionView struct {
	wire.Alert
	Acked *wire.Ack `json:"acked,omitempty"`
}

// PointName rebuilds a vocabulary name from a component and field:
// ("string/1/cell/7", "voltage.volts") -> "string[1].cell[7].voltage.volts".
func PointName(component, field string) string {
	if component == "" {
		return field
	}
	parts := strings.Split(component, "/")
	var b strings.Builder
	for i := 0; i < len(parts); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(parts[i])
		if i+1 < len(parts) {
			b.WriteByte('[')
			b.WriteString(parts[i+1])
			b.WriteByte(']')
		}
	}
	b.WriteByte('.')
	b.WriteString(field)
	return b.String()
}

// Snapshot copies the state; withValues adds every device's values.
func (s *State) Snapshot(withValues bool) Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := Snapshot{Site: s.site, Time: s.now().UTC()}
	for _, a := range s.agents {
		snap.Agents = append(snap.Agents, AgentView{Agent: a.Agent, Version: a.Version, Uptime: a.Uptime,
			LastHeartbeat: a.LastHeartbeat, Silent: a.Silent, ClockSynced: a.ClockSynced})
	}
	slices.SortFunc(snap.Agents, func(a, b AgentView) int { return cmp.Compare(a.Agent, b.Agent) })

	devStage := map[[2]string]wire.Stage{}
	devAlerts := map[[2]string][]string{}
	for _, c := range s.conditions {
		snap.Active = append(snap.Active, ConditionView{Alert: c.Alert, Acked: c.Ack})
		k := [2]string{c.Alert.Agent, c.Alert.Device}
		devStage[k] = max(devStage[k], c.Alert.Stage)
		devAlerts[k] = append(devAlerts[k], c.Alert.ID)
	}
	slices.SortFunc(snap.Active, func(a, b ConditionView) int {
		return cmp.Or(cmp.Compare(b.Stage, a.Stage), a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID))
	})

	racks := map[rackKey]*RackView{}
	for k, d := range s.devices {
		if len(d.comps) == 0 && d.LastSample.IsZero() {
			continue // known from a heartbeat only: no location yet
		}
		rk := d.rackKey()
		r := racks[rk]
		if r == nil {
			r = &RackView{Room: rk.Room, Row: rk.Row, Rack: rk.Rack}
			racks[rk] = r
		}
		r.Devices = append(r.Devices, k[0]+"/"+k[1])
		r.Stage = max(r.Stage, devStage[k])
		r.Alerts = append(r.Alerts, devAlerts[k]...)
		if a := s.agents[d.Agent]; a != nil && a.Silent {
			r.Stale = true
		}
		if d.hasHottest && (r.Hottest == nil || d.hottest > r.Hottest.Celsius) {
			r.Hottest = &HottestView{Agent: d.Agent, Device: d.Device, Component: d.hottestComp, Celsius: d.hottest}
		}
		if withValues {
			dv := DeviceView{Agent: d.Agent, Device: d.Device, Room: d.Room, Row: d.Row, Rack: d.Rack,
				Health: d.Health, HealthError: d.HealthError, Stage: devStage[k], LastSample: d.LastSample,
				Values: map[string]float64{}}
			if len(d.Labels) > 0 {
				dv.Labels = map[string]string{}
				for lk, lv := range d.Labels {
					dv.Labels[lk] = lv
				}
			}
			for comp, vals := range d.comps {
				for f, v := range vals {
					dv.Values[PointName(comp, f)] = *v
				}
			}
			for comp, flts := range d.faults {
				for f, v := range flts {
					if dv.Faults == nil {
						dv.Faults = map[string]string{}
					}
					dv.Faults[PointName(comp, f)] = v
				}
			}
			snap.Devices = append(snap.Devices, dv)
		}
	}
	for rk, r := range racks {
		if rs := s.racks[rk]; rs != nil && r.Hottest != nil {
			if sl, ok := slope(rs.trend, trendWindow); ok {
				r.Hottest.TrendPerMin = &sl
			}
		}
		slices.Sort(r.Devices)
		slices.Sort(r.Alerts)
		snap.Racks = append(snap.Racks, *r)
	}
	slices.SortFunc(snap.Racks, func(a, b RackView) int {
		return cmp.Or(cmp.Compare(a.Room, b.Room), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Rack, b.Rack))
	})
	slices.SortFunc(snap.Devices, func(a, b DeviceView) int {
		return cmp.Or(cmp.Compare(a.Agent, b.Agent), cmp.Compare(a.Device, b.Device))
	})
	return snap
}

// Alerts returns the alerts (stage changes and acks) with Time >= since,
// oldest first, at most limit (the newest ones).
func (s *State) Alerts(since time.Time, limit int) []wire.Alert {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []wire.Alert
	for i := range s.history {
		a := s.history[(s.histStart+i)%len(s.history)]
		if !a.Time.Before(since) {
			out = append(out, a)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}
