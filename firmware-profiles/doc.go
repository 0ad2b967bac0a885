// Package firmwareprofiles holds the built-in firmware profiles: one YAML
// file per device family, in a folder per vendor or protocol:
//
//	sunspec/   SunSpec battery models 1, 802-805 (id sunspec)
//	apc/       APC Smart-UPS native Modbus (apc-smart-ups-modbus)
//	discover/  Discover AES rack BMS (discover-aes-rack)
//	snmp/      SNMP profiles (ups-mib and vendor MIBs)
//	local/     locally attached sensors and contacts
//
// The format is described in drivers/profile's documentation and
// docs/profiles.md; names follow docs/points.md. Load them with
//
//	set, err := profile.Load(log, firmwareprofiles.FS, os.DirFS(profilesDir))
//
// so that a site's profiles_dir overrides a built-in profile by id.
//
// This package imports nothing but embed, so anything may depend on it.
package firmwareprofiles
