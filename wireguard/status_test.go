package wireguard

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStatusString(t *testing.T) {
	priv, peer := mustKey(t), mustKey(t).PublicKey()
	st := Status{Name: "wgfab0", Implementation: Userspace, PublicKey: priv.PublicKey(), ListenPort: 51820, Peers: []PeerStatus{
		{PublicKey: peer, Endpoint: netip.MustParseAddrPort("172.30.0.12:51820"), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24"), netip.MustParsePrefix("10.245.2.0/24")},
			LastHandshake: time.Now().Add(-3 * time.Second), RxBytes: 1024, TxBytes: 2048, PersistentKeepalive: 25 * time.Second},
		{PublicKey: priv.PublicKey()},
	}}
	got := st.String()
	for _, want := range []string{
		"interface: wgfab0 (userspace)\n", "  public key: " + priv.PublicKey().String() + "\n", "  listening port: 51820\n",
		"peer: " + peer.String() + "\n  endpoint: 172.30.0.12:51820\n  allowed ips: 10.244.2.0/24, 10.245.2.0/24\n  latest handshake: 3s ago\n  transfer: 1024 B received, 2048 B sent\n  persistent keepalive: every 25s\n",
		"  allowed ips: (none)\n  latest handshake: never\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
}
