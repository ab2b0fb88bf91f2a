package fabric

import "fmt"

// TunnelMode is how a host builds its tunnels: one port per peer, or one flow-based port.
type TunnelMode string

// The tunnel modes (--tunnel-mode).
const (
	// TunnelPerPeer keeps one tunnel port per live peer (options:remote_ip=<peer>): OVSDB work
	// grows with the number of peers, and `ovs-vsctl show` names every peer.
	TunnelPerPeer TunnelMode = "per-peer"
	// TunnelFlow keeps one tunnel port per host (options:remote_ip=flow, key=flow): the
	// pipeline's flows set tun_dst per peer slice and admit only known peers' tun_src, so
	// OVSDB work is constant in the number of peers.
	TunnelFlow TunnelMode = "flow"
)

// ParseTunnelMode validates s as a tunnel mode; "" is the default, per-peer.
func ParseTunnelMode(s string) (TunnelMode, error) {
	switch m := TunnelMode(s); m {
	case "":
		return TunnelPerPeer, nil
	case TunnelPerPeer, TunnelFlow:
		return m, nil
	}
	return "", fmt.Errorf("unknown tunnel mode %q (want per-peer or flow)", s)
}

// Flow reports whether m is the flow-based mode.
func (m TunnelMode) Flow() bool { return m == TunnelFlow }

// FlowTunnelPortName is the OVS port (and interface) name of the one flow-based tunnel port of
// type t: "vxlan-flow" or "gre-flow". No per-peer name ("vxl-…", "gre-…" and ten hex digits)
// can take this form.
func FlowTunnelPortName(t TunnelType) string {
	if t == TunnelGRE {
		return "gre-flow"
	}
	return "vxlan-flow"
}
