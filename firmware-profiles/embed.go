package firmwareprofiles

import "embed"

// FS holds every <folder>/<name>.yaml of this directory. A new file in any
// subfolder is picked up by the pattern without touching this file.
//
//go:embed */*.yaml
var FS embed.FS
