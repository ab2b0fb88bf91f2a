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

// TestPlanPeersVia: with the GRO veth port (Input.PeersVia) the to-peer flows leave by it,
// with its MAC (here the gateway's, as fabricd pins it) as destination; everything else that
// goes to the host kernel (DNS, egress) still takes the gateway port, and nothing the veth
// port sends is admitted. Without an ofport yet the gateway port serves. A port that collides
// with another or has no usable MAC is refused.
func TestPlanPeersVia(t *testing.T) {
	in := testInput()
	in.PeersViaGateway = true
	in.DNS = addr("169.254.53.53")
	in.PeersVia = Port{Name: "fabric0-wgp", OFPort: 42, MAC: mac(gwMAC)}
	fs := mustPlan(t, in)
	f, ok := find(fs, TableFromLocal, 200, "ip,reg6=0,nw_dst=10.244.7.0/24")
	if want := "mod_dl_dst:" + gwMAC + ",output:42"; !ok || f.Actions != want {
		t.Errorf("to-peer flow %v (found %v), want actions %q", f, ok, want)
	}
	for _, f := range fs {
		if f.Table == TableClassifier && strings.Contains(f.Match, "in_port=42") {
			t.Errorf("the GRO veth port is admitted from: %v", f)
		}
		if f.Table == TableFromLocal && f.Priority != 200 && strings.Contains(f.Actions, "output:42") {
			t.Errorf("a flow other than to-peer leaves by the GRO veth port: %v", f)
		}
	}
	checkIsolation(t, in, fs)

	in.PeersVia.OFPort = 0
	f, _ = find(mustPlan(t, in), TableFromLocal, 200, "ip,reg6=0,nw_dst=10.244.7.0/24")
	if want := "mod_dl_dst:" + gwMAC + ",output:1"; f.Actions != want {
		t.Errorf("GRO veth port without ofport: actions %q, want %q", f.Actions, want)
	}
	// Unused without encryption.
	plain := testInput()
	plain.PeersVia = Port{Name: "fabric0-wgp", OFPort: 42, MAC: mac(gwMAC)}
	for _, f := range mustPlan(t, plain) {
		if strings.Contains(f.Actions, "output:42") {
			t.Errorf("GRO veth port used without PeersViaGateway: %v", f)
		}
	}

	for name, pv := range map[string]Port{
		"ofport of a container": {Name: "x", OFPort: 3, MAC: mac(gwMAC)},
		"ofport of the gateway": {Name: "x", OFPort: 1, MAC: mac(gwMAC)},
		"no MAC":                {Name: "x", OFPort: 42},
		"multicast MAC":         {Name: "x", OFPort: 42, MAC: mac("01:00:5e:00:00:01")},
	} {
		bad := testInput()
		bad.PeersViaGateway = true
		bad.PeersVia = pv
		if _, err := Plan(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if a, b := in, in; !a.Equal(b) {
		t.Error("Equal: same input differs")
	} else if b.PeersVia.OFPort = 43; a.Equal(b) {
		t.Error("Equal ignores PeersVia")
	}
}
