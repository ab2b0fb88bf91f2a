package wireguard

import (
	"fmt"
	"strings"
	"time"
)

// String renders the status as `wg show` does (handshake ages relative to now), for
// `fabricctl status` and logs.
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface: %s (%s)\n", s.Name, s.Implementation)
	if s.PublicKey != (Key{}) {
		fmt.Fprintf(&b, "  public key: %s\n", s.PublicKey)
	}
	fmt.Fprintf(&b, "  listening port: %d\n", s.ListenPort)
	for _, p := range s.Peers {
		fmt.Fprintf(&b, "\npeer: %s\n", p.PublicKey)
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "  endpoint: %s\n", p.Endpoint)
		}
		allowed := make([]string, len(p.AllowedIPs))
		for i, a := range p.AllowedIPs {
			allowed[i] = a.String()
		}
		if len(allowed) == 0 {
			allowed = []string{"(none)"}
		}
		fmt.Fprintf(&b, "  allowed ips: %s\n", strings.Join(allowed, ", "))
		if p.LastHandshake.IsZero() {
			b.WriteString("  latest handshake: never\n")
		} else {
			fmt.Fprintf(&b, "  latest handshake: %s ago\n", time.Since(p.LastHandshake).Round(time.Second))
		}
		fmt.Fprintf(&b, "  transfer: %d B received, %d B sent\n", p.RxBytes, p.TxBytes)
		if p.PersistentKeepalive > 0 {
			fmt.Fprintf(&b, "  persistent keepalive: every %s\n", p.PersistentKeepalive)
		}
	}
	return b.String()
}
