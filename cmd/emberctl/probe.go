package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/modbus"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

const probeUsage = `usage:
  emberctl probe [flags] snmp://[user@]host[:port]?version=2c&community=public
  emberctl probe [flags] snmp://user@host?version=3&auth=SHA256&authpass=...&priv=AES&privpass=...
  emberctl probe [flags] modbus://host[:port]?unit=1

Reads the device's identity (SNMP: sysObjectID, sysDescr, UPS-MIB and vendor
ident; Modbus: the SunSpec common model, else each profile's identity
points), lists the profiles whose match block fits, reads the device once
with the best one and prints every point with its unit or its fault.
v3 passphrases may come from $EMBER_SNMP_AUTHPASS / $EMBER_SNMP_PRIVPASS.

flags:
`

// cmdProbe identifies a device, proposes profiles and reads it once.
func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("probe", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, probeUsage); fset.PrintDefaults() }
	profID := fset.String("profile", "", "read with this profile id instead of the best match")
	dir := fset.String("profiles", "", "extra profiles directory (overrides built-ins by id)")
	timeout := fset.Duration("timeout", 2*time.Second, "per-request timeout")
	orders := fset.String("orders", "", "Modbus: try the four word/byte orders on this point (name or name pattern)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		fset.Usage()
		return errors.New("one device URL expected")
	}
	u, err := url.Parse(fset.Arg(0))
	if err != nil {
		return fmt.Errorf("device URL: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sources := []fs.FS{firmwareprofiles.FS}
	if *dir != "" {
		sources = append(sources, os.DirFS(*dir))
	}
	set, err := profile.Load(log, sources...)
	if err != nil {
		return fmt.Errorf("load profiles: %w", err)
	}
	switch u.Scheme {
	case "snmp":
		return probeSNMP(ctx, u, set, *profID, *timeout, log, stdout)
	case "modbus":
		return probeModbus(ctx, u, set, *profID, *orders, *timeout, log, stdout)
	}
	return fmt.Errorf("device URL: scheme %q is not snmp or modbus", u.Scheme)
}

// snmpConfigFromURL turns snmp://[user@]host[:port]?... into a Config.
func snmpConfigFromURL(u *url.URL, timeout time.Duration) (snmp.Config, error) {
	q := u.Query()
	port := u.Port()
	if port == "" {
		port = "161"
	}
	cfg := snmp.Config{
		Target:    "udp://" + u.Hostname() + ":" + port,
		Version:   q.Get("version"),
		Community: q.Get("community"),
		Timeout:   timeout,
		Name:      u.Host,
	}
	if cfg.Version == "" {
		cfg.Version = "2c"
		if u.User != nil {
			cfg.Version = "3"
		}
	}
	if cfg.Version == "3" {
		if u.User == nil {
			return cfg, errors.New("device URL: version 3 needs a user: snmp://user@host")
		}
		get := func(key, env string) string {
			if v := q.Get(key); v != "" {
				return v
			}
			return os.Getenv(env)
		}
		cfg.V3 = &snmp.V3{User: u.User.Username(), AuthProtocol: get("auth", "EMBER_SNMP_AUTH"),
			AuthPassphrase: get("authpass", "EMBER_SNMP_AUTHPASS"), PrivProtocol: get("priv", "EMBER_SNMP_PRIV"),
			PrivPassphrase: get("privpass", "EMBER_SNMP_PRIVPASS"), SecurityLevel: q.Get("level"), ContextName: q.Get("context")}
		if cfg.V3.AuthProtocol == "" {
			cfg.V3.AuthProtocol = "SHA256"
		}
		if cfg.V3.PrivProtocol == "" {
			cfg.V3.PrivProtocol = "AES"
		}
		cfg.AllowInsecure = q.Get("level") != ""
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("device URL: %w", err)
	}
	return cfg, nil
}

func probeSNMP(ctx context.Context, u *url.URL, set *profile.Set, profID string, timeout time.Duration, log *slog.Logger, w io.Writer) error {
	cfg, err := snmpConfigFromURL(u, timeout)
	if err != nil {
		return err
	}
	// An empty profile: identity only, no table discovery.
	idp, err := snmp.NewPollerContext(ctx, cfg, &profile.Profile{ID: "probe", Protocol: "snmp"}, log)
	if err != nil {
		return err
	}
	id, err := idp.Identify(ctx)
	idp.Close()
	if err != nil {
		return err
	}
	printIdentity(w, id)
	var cands []*profile.Profile
	for _, p := range set.All() {
		if p.Protocol != "snmp" {
			continue
		}
		ok, err := snmp.MatchProfile(p.Match, id)
		if err != nil {
			return fmt.Errorf("profile %s: %w", p.ID, err)
		}
		if ok {
			cands = append(cands, p)
		}
	}
	// Vendor profiles before the generic RFC 1628 one.
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].ID != "ups-mib" && cands[j].ID == "ups-mib" })
	chosen, err := choose(set, cands, profID, w)
	if err != nil {
		return err
	}
	if chosen == nil {
		return nil
	}
	p, err := snmp.NewPollerContext(ctx, cfg, chosen, log)
	if err != nil {
		return err
	}
	defer p.Close()
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		return err
	}
	printReadings(w, chosen.ID, out)
	fmt.Fprintf(w, "\n%d points in %d requests\n", len(out), p.Requests())
	return nil
}

// choose prints the candidates and picks the one to read with.
func choose(set *profile.Set, cands []*profile.Profile, profID string, w io.Writer) (*profile.Profile, error) {
	fmt.Fprintln(w, "\nmatching profiles:")
	if len(cands) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, p := range cands {
		fmt.Fprintf(w, "  %-16s %s, %s (firmware %s)\n", p.ID, p.Vendor, p.Model, p.Firmware)
	}
	if profID != "" {
		p, ok := set.Get(profID)
		if !ok {
			return nil, fmt.Errorf("no profile %q", profID)
		}
		return p, nil
	}
	if len(cands) == 0 {
		fmt.Fprintln(w, "\nno profile matches; give one with -profile ID to read anyway")
		return nil, nil
	}
	return cands[0], nil
}

func printIdentity(w io.Writer, id drivers.Identity) {
	fmt.Fprintln(w, "identity:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, kv := range [][2]string{{"vendor", id.Vendor}, {"model", id.Model}, {"firmware", id.Firmware}, {"serial", id.Serial}} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(id.Extra))
	for k := range id.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, oneLine(id.Extra[k]))
	}
	tw.Flush()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// formatReading renders a value with its unit, or its fault.
func formatReading(r *drivers.Reading) string {
	if !r.OK() {
		if r.Detail != "" {
			return "FAULT " + r.Fault.String() + " (" + r.Detail + ")"
		}
		return "FAULT " + r.Fault.String()
	}
	switch r.Point.Kind {
	case drivers.KindString:
		return strconv.Quote(r.Text)
	case drivers.KindBool:
		return strconv.FormatBool(r.Value != 0)
	case drivers.KindEnum:
		if r.Text != "" {
			return fmt.Sprintf("%s (%g)", r.Text, r.Value)
		}
		return fmt.Sprintf("%g (unknown code)", r.Value)
	}
	s := strconv.FormatFloat(r.Value, 'f', -1, 64)
	if r.Point.Unit != "" {
		s += " " + r.Point.Unit
	}
	return s
}

func printReadings(w io.Writer, profID string, out []drivers.Reading) {
	fmt.Fprintf(w, "\nread once with %s:\n", profID)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for i := range out {
		fmt.Fprintf(tw, "  %s\t%s\n", out[i].Point.Name, formatReading(&out[i]))
	}
	tw.Flush()
}

// modbusConfigFromURL turns modbus://host[:port]?unit=1 into a Config.
func modbusConfigFromURL(u *url.URL, timeout time.Duration) (modbus.Config, error) {
	port := u.Port()
	if port == "" {
		port = "502"
	}
	unit := 1
	if s := u.Query().Get("unit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return modbus.Config{}, fmt.Errorf("device URL: unit %q is not 0..255", s)
		}
		unit = n
	}
	cfg := modbus.Config{URL: "tcp://" + u.Hostname() + ":" + port, UnitID: unit, Timeout: timeout}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("device URL: %w", err)
	}
	return cfg, nil
}

// matchModbus checks a Modbus profile's match block against an identity.
func matchModbus(m profile.Match, id drivers.Identity) bool {
	if m.Vendor == "" && m.Model == "" && m.Firmware == "" && len(m.SunSpecModel) == 0 {
		return false
	}
	for _, c := range [][2]string{{m.Vendor, id.Vendor}, {m.Model, id.Model}, {m.Firmware, id.Firmware}} {
		if c[0] == "" {
			continue
		}
		re, err := regexp.Compile("(?i)" + c[0])
		if err != nil || !re.MatchString(c[1]) {
			return false
		}
	}
	have := map[string]bool{}
	for _, s := range strings.Split(id.Extra["sunspec.models"], ",") {
		have[s] = true
	}
	for _, want := range m.SunSpecModel {
		if !have[strconv.Itoa(want)] {
			return false
		}
	}
	return true
}

func probeModbus(ctx context.Context, u *url.URL, set *profile.Set, profID, orders string, timeout time.Duration, log *slog.Logger, w io.Writer) error {
	cfg, err := modbusConfigFromURL(u, timeout)
	if err != nil {
		return err
	}
	pool := modbus.NewPool(log)
	// SunSpec first: its common model names any compliant device.
	var id drivers.Identity
	found := false
	if sp, ok := set.Get("sunspec"); ok {
		if p, err := pool.NewPoller(cfg, sp); err == nil {
			if id, err = p.Identify(ctx); err == nil {
				found = true
			} else {
				fmt.Fprintf(w, "no SunSpec device: %v\n", err)
			}
			p.Close()
		} else {
			return err
		}
	}
	var cands []*profile.Profile
	for _, p := range set.All() {
		if p.Protocol != "modbus" {
			continue
		}
		if found && matchModbus(p.Match, id) {
			cands = append(cands, p)
			continue
		}
		if found || p.SunSpec != nil || profID != "" {
			// With -profile the operator already chose: no identity reads.
			continue
		}
		// A vendor map: read its identity points and see if they match.
		mp, err := pool.NewPoller(cfg, p)
		if err != nil {
			continue
		}
		vid, err := mp.Identify(ctx)
		mp.Close()
		if err == nil && matchModbus(p.Match, vid) {
			if !found {
				id, found = vid, true
			}
			cands = append(cands, p)
		}
	}
	if found {
		printIdentity(w, id)
	} else {
		fmt.Fprintln(w, "identity: not found (no SunSpec common model, no vendor identity points answered)")
	}
	chosen, err := choose(set, cands, profID, w)
	if err != nil || chosen == nil {
		return err
	}
	if chosen.Protocol != "modbus" {
		return fmt.Errorf("profile %s speaks %s, not modbus", chosen.ID, chosen.Protocol)
	}
	p, err := pool.NewPoller(cfg, chosen)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Prepare(ctx); err != nil {
		return err
	}
	out := make([]drivers.Reading, len(p.Points()))
	if err := p.Poll(ctx, out); err != nil {
		return err
	}
	printReadings(w, chosen.ID, out)
	if orders != "" {
		return probeOrders(w, cfg, chosen, orders)
	}
	return nil
}

// probeOrders reads one absolutely addressed point raw and decodes it with
// the four word/byte orders, marking the plausible ones.
func probeOrders(w io.Writer, cfg modbus.Config, prof *profile.Profile, name string) error {
	var pt *profile.Point
	for i := range prof.Points {
		if prof.Points[i].Name == name && prof.Points[i].Address != nil {
			pt = &prof.Points[i]
		}
	}
	if pt == nil {
		return fmt.Errorf("-orders: profile %s has no top-level point %q with an address", prof.ID, name)
	}
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: cfg.URL, Timeout: cfg.Timeout})
	if err != nil {
		return fmt.Errorf("-orders: %w", err)
	}
	if err := c.Open(); err != nil {
		return fmt.Errorf("-orders: open %s: %w", cfg.URL, err)
	}
	defer c.Close()
	if err := c.SetUnitId(uint8(cfg.UnitID)); err != nil {
		return err
	}
	rt := mb.HOLDING_REGISTER
	if pt.Space == "input" {
		rt = mb.INPUT_REGISTER
	}
	n := max(pt.RegCount(), 1)
	regs, err := c.ReadRegisters(*pt.Address, uint16(n), rt)
	if err != nil {
		return fmt.Errorf("-orders: read %s@%d+%d: %w", pt.Space, *pt.Address, n, err)
	}
	fmt.Fprintf(w, "\n%s raw registers at %d: %04x\n", name, *pt.Address, regs)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  word\tbyte\tvalue\tplausible")
	for _, wo := range []string{"big", "little"} {
		for _, bo := range []string{"big", "little"} {
			q := *pt
			q.WordOrder, q.ByteOrder = wo, bo
			q.Bits, q.Name = nil, name
			d, err := modbus.NewDecoder(&q, modbus.DecodeOptions{CurrentSign: prof.CurrentSign})
			if err != nil {
				return fmt.Errorf("-orders: %w", err)
			}
			out := make([]drivers.Reading, d.Outputs())
			for i := range out {
				out[i].Point = drivers.NewPoint(name, pt.Unit, drivers.KindNumber)
			}
			d.Decode(regs, 0, false, out)
			r := &out[0]
			plausible := r.OK() && !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0) && math.Abs(r.Value) < 1e6
			if pt.Range != nil {
				plausible = r.OK() && r.Value >= pt.Range.Min && r.Value <= pt.Range.Max
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%v\n", wo, bo, formatReading(r), plausible)
		}
	}
	return tw.Flush()
}
