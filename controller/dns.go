package controller

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/registry"
)

// DNSTable is the fabric DNS's record table as the loop feeds it (fabricdns.Table).
type DNSTable interface {
	SetNetworks(nets []fabricdns.Network) error
	SetAlso(also map[netip.Addr][]string)
	Replace(records []fabricdns.Record) error
	Records() []fabricdns.Record
}

// DNSServer is the fabric DNS server as the loop drives it (fabricdns.Server): the
// addresses it listens on, level-triggered, and its counters.
type DNSServer interface {
	Set(want []fabricdns.Listener) error
	Stats() fabricdns.Stats
}

// dnsState is the loop's side of the fabric DNS: the table and server, and the last
// errors reported (so a lasting one is logged once, not at every sync).
type dnsState struct {
	mu sync.Mutex
	// refresh serialises RefreshDNS from the list to the Replace: a refresh that listed the
	// registry earlier must not replace the table after one that listed it later.
	refresh           sync.Mutex
	tab               DNSTable
	srv               DNSServer
	lastSet, lastRecs string
}

// SetDNS attaches the fabric DNS: every sync hands the table the networks and every live
// endpoint record in the registry, and the server this host's gateway per network. Call it
// before Run; with a server, its counters join the controller's metrics.
func (c *Controller) SetDNS(tab DNSTable, srv DNSServer) {
	c.dns.mu.Lock()
	c.dns.tab, c.dns.srv = tab, srv
	c.dns.mu.Unlock()
	if srv == nil {
		return
	}
	stat := func(name, help string, get func(fabricdns.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(srv.Stats())) })
	}
	c.metrics.reg.MustRegister(
		stat("fabricd_dns_queries_total", "DNS queries received.", func(s fabricdns.Stats) uint64 { return s.Queries }),
		stat("fabricd_dns_answered_total", "DNS queries answered from the fabric's names.", func(s fabricdns.Stats) uint64 { return s.Answered }),
		stat("fabricd_dns_forwarded_total", "DNS queries forwarded upstream.", func(s fabricdns.Stats) uint64 { return s.Forwarded }),
		stat("fabricd_dns_forward_failures_total", "Forwarded DNS queries no upstream answered (SERVFAIL).", func(s fabricdns.Stats) uint64 { return s.ForwardFailed }),
		stat("fabricd_dns_refused_total", "DNS queries refused (client on no network of ours, or another network's name).", func(s fabricdns.Stats) uint64 { return s.Refused }),
		stat("fabricd_dns_malformed_total", "Malformed DNS messages.", func(s fabricdns.Stats) uint64 { return s.Malformed }),
		stat("fabricd_dns_dropped_total", "DNS queries dropped by the per-client rate limit.", func(s fabricdns.Stats) uint64 { return s.Dropped }),
	)
}

// dnsNetworks are the networks the fabric DNS knows, with the gateway this host serves each
// on, and the address shared by every network (fabricdns.WellKnownAddr, which answers each
// client as one of its own network): a name resolves only for clients of its own network.
func (c *Controller) dnsNetworks(d fabric.Desired) ([]fabricdns.Network, []fabricdns.Listener) {
	nets := []fabricdns.Network{{Name: endpoint.DefaultNetwork, Subnets: []netip.Prefix{c.s.Cluster}}}
	var ls []fabricdns.Listener
	if d.Gateway.IsValid() {
		ls = append(ls, fabricdns.Listener{Network: endpoint.DefaultNetwork, Addr: d.Gateway.Addr()})
	}
	for _, n := range d.Networks {
		if n.Name == endpoint.DefaultNetwork {
			continue
		}
		nets = append(nets, fabricdns.Network{Name: n.Name, Subnets: []netip.Prefix{n.CIDR}})
		ls = append(ls, fabricdns.Listener{Network: n.Name, Addr: n.Gateway.Addr()})
	}
	if len(ls) > 0 {
		ls = append(ls, fabricdns.Listener{Network: fabricdns.AnyNetwork, Addr: fabricdns.WellKnown()})
	}
	return nets, ls
}

// syncDNS is the sync's pass over the fabric DNS: networks, records, listeners. Errors are
// logged (once while they last), never a failed sync: names are not the data path.
func (c *Controller) syncDNS(d fabric.Desired, members func() []peers.Peer) {
	c.dns.mu.Lock()
	tab, srv := c.dns.tab, c.dns.srv
	c.dns.mu.Unlock()
	if tab == nil {
		return
	}
	nets, ls := c.dnsNetworks(d)
	if err := tab.SetNetworks(nets); err != nil {
		c.log.Error("fabric DNS networks", "err", err)
	}
	c.mu.Lock()
	tab.SetAlso(alsoNetworks(c.localEndpoints))
	c.mu.Unlock()
	c.refreshDNS(members)
	if srv == nil {
		return
	}
	err := srv.Set(ls)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.dns.mu.Lock()
	changed := msg != c.dns.lastSet
	c.dns.lastSet = msg
	c.dns.mu.Unlock()
	switch {
	case err != nil && changed:
		c.log.Warn("fabric DNS cannot listen", "err", err)
	case err == nil && changed:
		c.log.Info("fabric DNS listening", "listeners", len(ls))
	}
}

// RefreshDNS hands the fabric DNS table every endpoint record the registry holds of this
// host and of the live peers (hosts that left excluded; those dead past the grace the
// loop's Forget drops). It runs at every sync and whenever the registry changes.
func (c *Controller) RefreshDNS() {
	c.refreshDNS(func() []peers.Peer { return c.m.Peers() })
}

// refreshDNS is RefreshDNS with gossip's members read by members (a sync passes the ones it
// read: with thousands of peers each read copies and sorts them all).
func (c *Controller) refreshDNS(members func() []peers.Peer) {
	c.dns.mu.Lock()
	tab := c.dns.tab
	c.dns.mu.Unlock()
	c.pubMu.Lock()
	reg := c.reg
	c.pubMu.Unlock()
	if tab == nil || reg == nil {
		return
	}
	c.dns.refresh.Lock()
	defer c.dns.refresh.Unlock()
	live := map[string]bool{c.s.Name: true}
	if c.m != nil {
		for _, p := range members() {
			if p.State != peers.StateLeft {
				live[p.Name] = true
			}
		}
	}
	var recs []fabricdns.Record
	for _, r := range reg.List(registry.KindEndpoint) {
		if !live[r.Origin] {
			continue
		}
		a, err := endpoint.DecodeShared(r.Origin, r.Value, c.networkCIDR)
		if err != nil || (a.Name == "" && len(a.Aliases) == 0) {
			continue // a bad record is reported by RemoteAttachments' readers; nameless: nothing to serve
		}
		p, err := netip.ParsePrefix(a.IP)
		if err != nil {
			continue
		}
		recs = append(recs, fabricdns.Record{Network: a.Network, Name: a.Name, Aliases: a.Aliases, Addr: p.Addr(), Origin: r.Origin})
	}
	err := tab.Replace(recs)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.dns.mu.Lock()
	changed := msg != c.dns.lastRecs
	c.dns.lastRecs = msg
	c.dns.mu.Unlock()
	if err != nil && changed {
		c.log.Warn("fabric DNS records", "err", err)
	}
}

// WatchDNS refreshes the fabric DNS table whenever the registry's endpoint records change
// (changes from Subscribe), so a new name is served on every host as soon as gossip brings
// it, not at the next sync. It returns when ctx ends or changes closes.
func (c *Controller) WatchDNS(ctx context.Context, changes <-chan registry.KindSet) {
	for {
		select {
		case <-ctx.Done():
			return
		case ks, ok := <-changes:
			if !ok {
				return
			}
			if ks.Has(registry.KindEndpoint) {
				c.RefreshDNS()
			}
		}
	}
}

// DNSRecords lists the names the fabric DNS serves (network: only that network's), by
// network, name and address.
func (c *Controller) DNSRecords(network string) []api.DNSRecord {
	c.dns.mu.Lock()
	tab := c.dns.tab
	c.dns.mu.Unlock()
	if tab == nil {
		return nil
	}
	out := []api.DNSRecord{}
	for _, r := range tab.Records() {
		if network != "" && r.Network != network {
			continue
		}
		out = append(out, api.DNSRecord{Network: r.Network, Name: r.Name, Aliases: slices.Clone(r.Aliases), IP: r.Addr.String(), Host: r.Origin})
	}
	return out
}

// alsoNetworks maps each address of a container on several networks (this host's endpoints
// rs, grouped by network namespace) to the container's other networks, so the fabric DNS
// answers it the names of each of its networks.
func alsoNetworks(rs []endpoint.Record) map[netip.Addr][]string {
	byNS := map[string][]endpoint.Record{}
	for _, r := range rs {
		if r.NetNS != "" && r.Addr.IsValid() {
			byNS[r.NetNS] = append(byNS[r.NetNS], r)
		}
	}
	out := map[netip.Addr][]string{}
	for _, eps := range byNS {
		if len(eps) < 2 {
			continue
		}
		for _, r := range eps {
			for _, o := range eps {
				if o.Network != r.Network && !slices.Contains(out[r.Addr.Addr()], o.Network) {
					out[r.Addr.Addr()] = append(out[r.Addr.Addr()], o.Network)
				}
			}
		}
	}
	return out
}
