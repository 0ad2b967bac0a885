// Package firmwareprofiles holds the built-in firmware profiles: one YAML
// file per device family, in a folder per vendor or protocol (sunspec/, apc/,
// discover/, snmp/, local/). The format is described in drivers/profile's
// documentation and docs/profiles.md; load them with
//
//	set, err := profile.Load(log, firmwareprofiles.FS, os.DirFS(profilesDir))
//
// This package imports nothing but embed, so anything may depend on it.
package firmwareprofiles

import "embed"

// FS holds every <folder>/<name>.yaml of this directory. A new file in any
// subfolder is picked up by the pattern without touching this file.
//
//go:embed */*.yaml
var FS embed.FS
