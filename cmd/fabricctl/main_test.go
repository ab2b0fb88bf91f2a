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

// TestPrintPeersFlowMode: in flow tunnel mode the peers table shows the shared port and each
// peer's flow cookie; per-peer mode shows no cookie column.
func TestPrintPeersFlowMode(t *testing.T) {
	flow := []api.Peer{
		{Name: "h2", Addr: "172.30.0.12", Subnet: "10.244.2.0/24", State: "alive", Tunnel: "vxlan-flow", Cookie: "0xfab0003bcc40000/0xffffffffffff0000"},
		{Name: "h3", Addr: "172.30.0.13", State: "alive", Note: "no subnet claimed yet"},
	}
	var out bytes.Buffer
	printPeers(&out, flow)
	for _, want := range []string{"FLOW COOKIE", "vxlan-flow", "0xfab0003bcc40000/0xffffffffffff0000", "- (no subnet claimed yet)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("flow mode: no %q in\n%s", want, out.String())
		}
	}
	out.Reset()
	printPeers(&out, []api.Peer{{Name: "h2", Addr: "172.30.0.12", State: "alive", Tunnel: "vxl-f998fe06af"}})
	if strings.Contains(out.String(), "COOKIE") || !strings.Contains(out.String(), "vxl-f998fe06af") {
		t.Errorf("per-peer mode:\n%s", out.String())
	}
	if got := tunnelLine(api.Status{Tunnel: "gre", TunnelMode: "flow"}); !strings.Contains(got, "flow") {
		t.Errorf("tunnelLine = %q", got)
	}
}
