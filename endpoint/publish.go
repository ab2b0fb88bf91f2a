package endpoint

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/natrules"
)

// Publish publishes a port of an attached container on this host's underlay address.
func (m *Manager) Publish(ctx context.Context, target, spec string) (api.Attachment, error) {
	return m.changePublish(ctx, target, spec, true)
}

// Unpublish removes a published port.
func (m *Manager) Unpublish(ctx context.Context, target, spec string) (api.Attachment, error) {
	return m.changePublish(ctx, target, spec, false)
}

func (m *Manager) changePublish(ctx context.Context, target, spec string, add bool) (api.Attachment, error) {
	pm, err := ParsePortSpec(spec)
	if err != nil {
		return api.Attachment{}, api.Errorf(api.ErrInvalid, "%v", err)
	}
	if add {
		if use := m.reservedPort(pm.Proto, pm.HostPort); use != "" {
			return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d on this host is %s; publishing it would take it over, choose another host port", pm.Proto, pm.HostPort, use)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.records(ctx)
	if err != nil {
		return api.Attachment{}, err
	}
	r, ok := m.find(ctx, all, target)
	if !ok {
		return api.Attachment{}, api.Errorf(api.ErrNotFound, "%s is not attached on this host; attach it first", target)
	}
	var kept []PortMapping
	found := false
	for _, o := range r.Published {
		if o.Proto == pm.Proto && o.HostPort == pm.HostPort {
			found = true
			if add && o == pm {
				return m.api(r), nil // already published exactly so
			}
			continue
		}
		kept = append(kept, o)
	}
	if add {
		if n, ok := m.networkOf(r); ok && n.Internal {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "%s is on the internal network %s, which has no published ports", r.Container, n.Name)
		}
		if found {
			return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d is already published by %s; unpublish it first", pm.Proto, pm.HostPort, r.Container)
		}
		for _, o := range all {
			for _, op := range o.Published {
				if op.Proto == pm.Proto && op.HostPort == pm.HostPort {
					return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d is already published by %s", pm.Proto, pm.HostPort, o.Container)
				}
			}
		}
		kept = append(kept, pm)
	} else if !found {
		return api.Attachment{}, api.Errorf(api.ErrNotFound, "%s port %d is not published by %s", pm.Proto, pm.HostPort, r.Container)
	}
	r.Published = kept
	m.gen++
	if err := m.sw.EnsurePort(ctx, m.s.Bridge, r.PortSpec(m.s.Name)); err != nil {
		return api.Attachment{}, portError(fmt.Errorf("record published ports on %s: %w", r.Port, err))
	}
	i := slices.IndexFunc(all, func(o Record) bool { return o.Port == r.Port })
	all[i] = r
	if err := m.applyNATLocked(all); err != nil {
		return api.Attachment{}, err
	}
	verb := "published"
	if !add {
		verb = "unpublished"
	}
	m.log.Info(verb, "container", r.Container, "port", pm.String(), "host", m.s.Advertise)
	return m.api(r), nil
}

// DNSPort is reserved for the fabric's DNS service: no container may publish it.
const DNSPort = 53

// reservedPort says what on this host uses host port proto/port, or "" when a container may
// publish it: fabricd's gossip (TCP and UDP), its metrics listener, and DNS. A DNAT of one of
// them would divert fabricd's own traffic to the container.
func (m *Manager) reservedPort(proto string, port uint16) string {
	switch {
	case int(port) == m.s.GossipPort:
		return fmt.Sprintf("fabricd's gossip port (--gossip-port %d)", m.s.GossipPort)
	case proto == "tcp" && m.s.MetricsAddr != "" && metricsPort(m.s.MetricsAddr) == port:
		return fmt.Sprintf("fabricd's metrics port (--metrics-addr %s)", m.s.MetricsAddr)
	case port == DNSPort:
		return "reserved for the fabric's DNS service"
	}
	return ""
}

// metricsPort is the port of a --metrics-addr HOST:PORT, or 0.
func metricsPort(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := parsePort(p)
	if err != nil {
		return 0
	}
	return n
}

// find matches target against the endpoints, also when its container is gone.
func (m *Manager) find(ctx context.Context, all []Record, target string) (Record, bool) {
	rs := m.findAll(ctx, all, target)
	if len(rs) == 0 {
		return Record{}, false
	}
	return rs[0], true
}

// findAll is every endpoint of target among all, its first interface (eth0 before eth1)
// first: the one published ports go to.
func (m *Manager) findAll(ctx context.Context, all []Record, target string) []Record {
	var t *api.Target
	if rt, err := m.resolve(ctx, target); err == nil {
		t = &rt
	}
	var out []Record
	for _, r := range all {
		if (t != nil && (r.Port == portNameOf(*t, r.Network) || r.NetNS == t.NetNS)) || r.Container == target || r.ID == target || r.NetNS == target ||
			(r.ID != "" && len(target) >= 12 && strings.HasPrefix(r.ID, target)) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return ifOrder(a.IfName, b.IfName) })
	return out
}

// ifOrder orders interface names as their numbers (eth2 before eth10), then as text.
func ifOrder(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// networks are every network of the fabric (the default one alone before the loop is
// attached), with this host's slice of those it serves.
func (m *Manager) networks() []Network {
	if m.loop == nil {
		return []Network{{Name: DefaultNetwork, CIDR: m.s.Cluster}}
	}
	return m.loop.Networks()
}

// networkOf is the network of endpoint r.
func (m *Manager) networkOf(r Record) (Network, bool) {
	for _, n := range m.networks() {
		if n.Name == r.Network {
			return n, true
		}
	}
	return Network{}, false
}

// natRules is the NAT table this host needs for endpoints rs: masquerade for traffic
// leaving the networks, isolation between them, and a DNAT per published port. Every
// network of the fabric is in it (isolation covers those this host serves no slice of).
func (m *Manager) natRules(rs []Record) natrules.Rules {
	nets := m.networks()
	r := natrules.Rules{Table: natrules.DefaultTable, Masquerade: m.s.Masquerade}
	if m.s.Encrypted() {
		// What arrives from WireGuard must stay within one network (docs/encryption.md).
		r.WireGuard = m.s.WireGuardInterface
	}
	internal := map[string]bool{}
	for _, n := range nets {
		r.Networks = append(r.Networks, natrules.Network{Name: n.Name, CIDR: n.CIDR, Slice: n.Slice, Internal: n.Internal})
		internal[n.Name] = n.Internal
	}
	for _, e := range rs {
		if !e.Addr.IsValid() {
			continue
		}
		if isInternal, known := internal[e.Network]; !known || isInternal {
			if len(e.Published) > 0 {
				m.log.Warn("ignoring the published ports of an endpoint on an internal or removed network", "container", e.Container, "network", e.Network)
			}
			continue
		}
		for _, s := range e.Unreadable {
			m.log.Warn("ignoring a malformed published port", "port", e.Port, "value", s)
		}
		for _, pm := range e.Published {
			// Recorded before fabricd refused such ports: never divert fabricd's own traffic.
			if use := m.reservedPort(pm.Proto, pm.HostPort); use != "" {
				m.log.Warn("ignoring a published port that fabricd uses", "container", e.Container, "value", pm.String(), "use", use)
				continue
			}
			r.Publish = append(r.Publish, natrules.Publish{
				Proto: pm.Proto, HostAddr: m.s.Advertise, HostPort: pm.HostPort,
				ContainerIP: e.Addr.Addr(), ContainerPort: pm.ContainerPort, Container: e.Container,
			})
		}
	}
	return r
}

// applyNATLocked reconciles the NAT table for endpoints rs; mu must be held.
func (m *Manager) applyNATLocked(rs []Record) error {
	changed, err := m.host.ReconcileNAT(m.natRules(rs))
	if err != nil {
		return fmt.Errorf("reconcile NAT table: %w", err)
	}
	if changed {
		m.log.Info("NAT table updated", "table", natrules.DefaultTable)
	}
	return nil
}
