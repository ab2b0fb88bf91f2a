package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"tagged", debug.BuildInfo{GoVersion: "go1.24.0", Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0 (go1.24.0)"},
		{"checkout", debug.BuildInfo{GoVersion: "go1.24.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "d113573aabbccddeeff00112233445566778899"},
			{Key: "vcs.time", Value: "2026-11-30T17:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, "(devel) (commit d113573aabbc, modified, 2026-11-30T17:00:00Z, go1.24.0)"},
		{"clean checkout", debug.BuildInfo{GoVersion: "go1.24.0", Main: debug.Module{Version: "v0.3.1-0.20261130170000-d113573aabbc"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "d113573aabbc"}, {Key: "vcs.modified", Value: "false"},
		}}, "v0.3.1-0.20261130170000-d113573aabbc (commit d113573aabbc, go1.24.0)"},
		{"no version", debug.BuildInfo{GoVersion: "go1.24.0"}, "(devel) (go1.24.0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(&tc.bi).String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if Read().Go == "" {
		t.Error("Read: no Go version")
	}
}
