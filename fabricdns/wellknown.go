package fabricdns

import "net/netip"

// WellKnownAddr is the one address the fabric DNS answers on for every network, on every
// host: a link-local address (no network may use 169.254.0.0/16) that fabricd puts on the
// gateway port as a /32 and that the pipeline lets every network, internal ones too, reach
// on port 53. A resolver setting that cannot name a per-network gateway (Docker's
// daemon.json "dns") names this address. docs/dns.md.
const WellKnownAddr = "169.254.53.53"

// WellKnown is [WellKnownAddr] as an address.
func WellKnown() netip.Addr { return netip.MustParseAddr(WellKnownAddr) }

// AnyNetwork as a [Listener]'s Network answers each client as a client of the network,
// among the server's other listeners, whose subnets hold the client's source address; a
// client of none is refused.
const AnyNetwork = "*"
