package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// TestSocketPrecedence: --socket wins over $FABRICCTL_SOCKET, which wins over the default.
func TestSocketPrecedence(t *testing.T) {
	dir := t.TempDir()
	env, flag := filepath.Join(dir, "env.sock"), filepath.Join(dir, "flag.sock")
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, api.DefaultSocket},
		{"env", env, nil, env},
		{"flag over env", env, []string{"--socket", flag}, flag},
		{"flag", "", []string{"--socket", flag}, flag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(api.SocketEnv, tc.env)
			root := newRoot(&bytes.Buffer{})
			root.SetArgs(append(tc.args, "status"))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), "no API socket at "+tc.want+" ") {
				t.Errorf("status: %v, want it to name %s", err, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	root := newRoot(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "fabricctl ") || !strings.Contains(out.String(), "go1") {
		t.Errorf("version: %v %q", err, out.String())
	}
}
