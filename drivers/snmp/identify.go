package snmp

import (
	"context"
	"fmt"
	"strings"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/gosnmp/gosnmp"
)

// Well-known identity objects, read by Identify and emberctl probe.
const (
	OIDSysDescr    = "1.3.6.1.2.1.1.1.0"
	OIDSysObjectID = "1.3.6.1.2.1.1.2.0"
	OIDSysName     = "1.3.6.1.2.1.1.5.0"
	OIDSysUpTime   = "1.3.6.1.2.1.1.3.0"
)

// identityOIDs maps Identity.Extra keys to objects: MIB-II system, the
// UPS-MIB ident group and the vendor ident objects of the shipped
// profiles (APC PowerNet, Eaton XUPS, MGE, Liebert GP agent).
var identityOIDs = []struct{ key, oid string }{
	{"sysDescr", OIDSysDescr},
	{"sysObjectID", OIDSysObjectID},
	{"sysName", OIDSysName},
	{"upsIdentManufacturer", "1.3.6.1.2.1.33.1.1.1.0"},
	{"upsIdentModel", "1.3.6.1.2.1.33.1.1.2.0"},
	{"upsIdentUPSSoftwareVersion", "1.3.6.1.2.1.33.1.1.3.0"},
	{"upsIdentAgentSoftwareVersion", "1.3.6.1.2.1.33.1.1.4.0"},
	{"upsBasicIdentModel", "1.3.6.1.4.1.318.1.1.1.1.1.1.0"},
	{"upsAdvIdentFirmwareRevision", "1.3.6.1.4.1.318.1.1.1.1.2.1.0"},
	{"upsAdvIdentSerialNumber", "1.3.6.1.4.1.318.1.1.1.1.2.3.0"},
	{"xupsIdentManufacturer", "1.3.6.1.4.1.534.1.1.1.0"},
	{"xupsIdentModel", "1.3.6.1.4.1.534.1.1.2.0"},
	{"xupsIdentSoftwareVersion", "1.3.6.1.4.1.534.1.1.3.0"},
	{"upsmgIdentFamilyName", "1.3.6.1.4.1.705.1.1.1.0"},
	{"upsmgIdentModelName", "1.3.6.1.4.1.705.1.1.2.0"},
	{"upsmgIdentSerialNumber", "1.3.6.1.4.1.705.1.1.7.0"},
	{"lgpAgentIdentManufacturer", "1.3.6.1.4.1.476.1.42.2.1.1.0"},
	{"lgpAgentIdentModel", "1.3.6.1.4.1.476.1.42.2.1.2.0"},
	{"lgpAgentIdentFirmwareVersion", "1.3.6.1.4.1.476.1.42.2.1.3.0"},
	{"lgpAgentIdentSerialNumber", "1.3.6.1.4.1.476.1.42.2.1.4.0"},
	// The first device behind a Liebert card: its product OID tells a UPS
	// (lgpUpsProducts, ...42.4.2) from a cooling unit.
	{"lgpAgentDeviceId", "1.3.6.1.4.1.476.1.42.2.4.2.1.2.1"},
	{"lgpAgentDeviceModel", "1.3.6.1.4.1.476.1.42.2.4.2.1.4.1"},
}

// Identify reads what the device says about itself. Vendor, Model,
// Firmware and Serial come from the profile's identity objects if set,
// else from the vendor trees, else from the UPS-MIB ident group; Extra
// holds every answered identity object by name.
func (p *Poller) Identify(ctx context.Context) (drivers.Identity, error) {
	p.g.Context = ctx
	var extra []struct{ key, oid string }
	if p.prof.SNMP != nil && p.prof.SNMP.Identity != nil {
		id := p.prof.SNMP.Identity
		extra = append(extra,
			struct{ key, oid string }{"profile.vendor", id.Vendor},
			struct{ key, oid string }{"profile.model", id.Model},
			struct{ key, oid string }{"profile.firmware", id.Firmware},
			struct{ key, oid string }{"profile.serial", id.Serial})
	}
	id, err := ReadIdentity(ctx, p.g, extra...)
	if err != nil {
		_, werr := p.classify(err)
		return id, werr
	}
	return id, nil
}

// ReadIdentity reads the identity objects (plus extra ones) from a
// connected client. Objects the agent lacks are left out; on v1 a
// noSuchName drops the object and the rest are asked again.
func ReadIdentity(ctx context.Context, g *gosnmp.GoSNMP, extra ...struct{ key, oid string }) (drivers.Identity, error) {
	g.Context = ctx
	all := append(identityOIDs[:len(identityOIDs):len(identityOIDs)], extra...)
	keyOf := map[string]string{}
	var oids []string
	for _, e := range all {
		if e.oid == "" {
			continue
		}
		o := normOID(e.oid)
		if _, dup := keyOf[o]; !dup {
			oids = append(oids, o)
		}
		if _, dup := keyOf[o]; !dup || strings.HasPrefix(e.key, "profile.") {
			keyOf[o] = e.key
		}
	}
	ex := map[string]string{}
	for len(oids) > 0 {
		n := min(len(oids), 30)
		chunk := oids[:n]
		res, err := g.Get(chunk)
		if err != nil {
			return drivers.Identity{Extra: ex}, fmt.Errorf("read identity: %w", err)
		}
		if res.Error == gosnmp.NoSuchName && res.ErrorIndex > 0 && int(res.ErrorIndex) <= n {
			i := int(res.ErrorIndex) - 1
			oids = append(oids[:i:i], oids[i+1:]...)
			continue
		}
		for _, v := range res.Variables {
			switch v.Type {
			case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null:
				continue
			}
			if s := textOf(v); s != "" {
				ex[keyOf[v.Name]] = s
			}
		}
		oids = oids[n:]
	}
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := ex[k]; v != "" {
				return v
			}
		}
		return ""
	}
	id := drivers.Identity{
		Vendor:   first("profile.vendor", "xupsIdentManufacturer", "lgpAgentIdentManufacturer", "upsIdentManufacturer"),
		Model:    first("profile.model", "upsBasicIdentModel", "xupsIdentModel", "upsmgIdentModelName", "lgpAgentDeviceModel", "lgpAgentIdentModel", "upsIdentModel"),
		Firmware: first("profile.firmware", "upsAdvIdentFirmwareRevision", "xupsIdentSoftwareVersion", "lgpAgentIdentFirmwareVersion", "upsIdentUPSSoftwareVersion"),
		Serial:   first("profile.serial", "upsAdvIdentSerialNumber", "upsmgIdentSerialNumber", "lgpAgentIdentSerialNumber"),
		Extra:    ex,
	}
	if id.Vendor == "" {
		switch {
		case ex["upsBasicIdentModel"] != "":
			id.Vendor = "APC"
		case ex["upsmgIdentModelName"] != "":
			id.Vendor = "MGE / Eaton"
		}
	}
	return id, nil
}

// MatchProfile reports whether a profile's match block fits an identity
// (every non-empty field must match; regular expressions, case
// insensitive; sys_object_id is an OID prefix). A profile without a match
// block matches nothing.
func MatchProfile(m profile.Match, id drivers.Identity) (bool, error) {
	if m.Vendor == "" && m.Model == "" && m.Firmware == "" && m.SysObjectID == "" && len(m.Extra) == 0 {
		return false, nil
	}
	check := func(re, v string) (bool, error) {
		if re == "" {
			return true, nil
		}
		return matchRE(re, v)
	}
	vendorText := strings.Join([]string{id.Vendor, id.Extra["sysDescr"], id.Extra["upsIdentManufacturer"]}, "\n")
	modelText := strings.Join([]string{id.Model, id.Extra["upsIdentModel"]}, "\n")
	for _, c := range []struct{ re, v string }{{m.Vendor, vendorText}, {m.Model, modelText}, {m.Firmware, id.Firmware}} {
		ok, err := check(c.re, c.v)
		if err != nil || !ok {
			return false, err
		}
	}
	for k, re := range m.Extra {
		ok, err := matchRE(re, id.Extra[k])
		if err != nil || !ok {
			return false, err
		}
	}
	if m.SysObjectID != "" {
		oid := strings.TrimPrefix(id.Extra["sysObjectID"], ".")
		want := strings.TrimPrefix(m.SysObjectID, ".")
		if oid != want && !strings.HasPrefix(oid, want+".") {
			return false, nil
		}
	}
	return true, nil
}
