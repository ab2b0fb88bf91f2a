package flows

import (
	"errors"
	"strings"
	"testing"
)

// TestPlanPeersViaGateway: with encryption the to-peer flows hand packets to the host kernel
// through the gateway port (no tunnel key, no TTL change: the kernel routes them), the tunnel
// ports' OpenFlow numbers do not matter, and no flow classifies or delivers from a tunnel.
// Isolation holds as with tunnels.
func TestPlanPeersViaGateway(t *testing.T) {
	in := testInput()
	in.PeersViaGateway = true
	// No tunnel port exists in this mode.
	for i := range in.Networks {
		for j := range in.Networks[i].Tunnels {
			in.Networks[i].Tunnels[j].OFPort = 0
		}
	}
	fs := mustPlan(t, in)
	for _, c := range []struct{ match, net string }{
		{"ip,reg6=0,nw_dst=10.244.7.0/24", "default"},
		{"ip,reg6=0,nw_dst=10.244.9.0/24", "default"},
		{"ip,reg6=0x64,nw_dst=10.50.7.0/24", "blue"},
		{"ip,reg6=0xc8,nw_dst=10.60.9.0/24", "red"},
	} {
		f, ok := find(fs, TableFromLocal, 200, c.match)
		if !ok {
			t.Errorf("%s: no to-peer flow %q", c.net, c.match)
			continue
		}
		if want := "mod_dl_dst:" + gwMAC + ",output:1"; f.Actions != want {
			t.Errorf("%s: to-peer actions %q, want %q", c.net, f.Actions, want)
		}
	}
	for _, f := range fs {
		if f.Table == TableFromTunnel && f.Priority != 0 {
			t.Errorf("flow from a tunnel in via-gateway mode: %v", f)
		}
		if strings.Contains(f.Actions, "TUN_ID") || strings.Contains(f.Match, "tun_id") {
			t.Errorf("tunnel key in via-gateway mode: %v", f)
		}
		if f.Table == TableClassifier && strings.Contains(f.Actions, "resubmit(,20)") {
			t.Errorf("tunnel classifier in via-gateway mode: %v", f)
		}
	}
	checkIsolation(t, in, fs)

	// A peer slice overlapping the local one is refused as with tunnels.
	bad := testInput()
	bad.PeersViaGateway = true
	def(&bad).Tunnels[0].Subnet = prefix("10.244.3.0/25")
	if _, err := Plan(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("overlapping slice via gateway: err %v, want ErrInvalid", err)
	}
}
