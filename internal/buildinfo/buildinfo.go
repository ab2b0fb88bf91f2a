// Package buildinfo describes the build of the running binary (module version and VCS
// state, as the Go toolchain records them) for `fabricd --version` and `fabricctl version`.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is what the toolchain recorded about a build.
type Info struct {
	// Version is the main module's version: a tag or pseudo-version when built with
	// `go install module@version` or from a VCS checkout, "(devel)" otherwise.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, when known.
	Revision string `json:"revision,omitempty"`
	// Modified is true when the work tree had uncommitted changes.
	Modified bool   `json:"modified,omitempty"`
	Time     string `json:"time,omitempty"`
	Go       string `json:"go"`
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown", Go: runtime.Version()}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, Go: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		case "vcs.time":
			info.Time = s.Value
		}
	}
	return info
}

// String is the one-line form: "v1.2.3 (commit 0123abcd4567, modified, 2026-11-30T17:00:00Z, go1.24.0)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += "commit " + rev
		if i.Modified {
			s += ", modified"
		}
		if i.Time != "" {
			s += ", " + i.Time
		}
		s += ", "
	}
	return s + i.Go + ")"
}

// Line is the version line a command prints: "NAME VERSION (...)".
func (i Info) Line(name string) string { return fmt.Sprintf("%s %s", name, i) }
