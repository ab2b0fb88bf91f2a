package controller

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// KeyPublish is the container port's external_ids key listing its published ports
// (PROTO:HOSTPORT:CONTAINERPORT, comma-separated): OVSDB keeps them with the attachment, so
// they survive restarts and vanish with a detach.
const KeyPublish = "ovsfabric-publish"

// PortMapping is one published port.
type PortMapping struct {
	Proto         string
	HostPort      uint16
	ContainerPort uint16
}

// String is the mapping as stored in external_ids: PROTO:HOSTPORT:CONTAINERPORT.
func (m PortMapping) String() string {
	return fmt.Sprintf("%s:%d:%d", m.Proto, m.HostPort, m.ContainerPort)
}

// ParsePortSpec parses HOSTPORT:CONTAINERPORT[/tcp|udp] as typed by operators.
func ParsePortSpec(spec string) (PortMapping, error) {
	m := PortMapping{Proto: "tcp"}
	ports, proto, hasProto := strings.Cut(strings.TrimSpace(spec), "/")
	if hasProto {
		m.Proto = strings.ToLower(proto)
		if m.Proto != "tcp" && m.Proto != "udp" {
			return m, fmt.Errorf("port spec %q: protocol %q is not tcp or udp", spec, proto)
		}
	}
	hp, cp, ok := strings.Cut(ports, ":")
	if !ok {
		return m, fmt.Errorf("port spec %q: want HOSTPORT:CONTAINERPORT[/tcp|udp]", spec)
	}
	var err error
	if m.HostPort, err = parsePort(hp); err != nil {
		return m, fmt.Errorf("port spec %q: host port: %w", spec, err)
	}
	if m.ContainerPort, err = parsePort(cp); err != nil {
		return m, fmt.Errorf("port spec %q: container port: %w", spec, err)
	}
	return m, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// parseStored reads the stored form PROTO:HOSTPORT:CONTAINERPORT.
func parseStored(s string) (PortMapping, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return PortMapping{}, fmt.Errorf("bad stored mapping %q", s)
	}
	return ParsePortSpec(parts[1] + ":" + parts[2] + "/" + parts[0])
}

func publishedOf(ids map[string]string) []string {
	v := ids[KeyPublish]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Publish publishes a port of an attached container on this host's underlay address.
func (c *Controller) Publish(ctx context.Context, target, spec string) (api.Attachment, error) {
	return c.changePublish(ctx, target, spec, true)
}

// Unpublish removes a published port.
func (c *Controller) Unpublish(ctx context.Context, target, spec string) (api.Attachment, error) {
	return c.changePublish(ctx, target, spec, false)
}

func (c *Controller) changePublish(ctx context.Context, target, spec string, add bool) (api.Attachment, error) {
	m, err := ParsePortSpec(spec)
	if err != nil {
		return api.Attachment{}, api.Errorf(api.ErrInvalid, "%v", err)
	}
	if add {
		if use := c.reservedPort(m.Proto, m.HostPort); use != "" {
			return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d on this host is %s; publishing it would take it over, choose another host port", m.Proto, m.HostPort, use)
		}
	}
	c.attachMu.Lock()
	defer c.attachMu.Unlock()
	all, err := c.Attachments(ctx)
	if err != nil {
		return api.Attachment{}, err
	}
	a, ok := c.findAttachment(ctx, all, target)
	if !ok {
		return api.Attachment{}, api.Errorf(api.ErrNotFound, "%s is not attached on this host; attach it first", target)
	}
	var kept []string
	found := false
	for _, s := range a.Published {
		pm, err := parseStored(s)
		if err == nil && pm.Proto == m.Proto && pm.HostPort == m.HostPort {
			found = true
			if add && pm == m {
				return a, nil // already published exactly so
			}
			continue
		}
		kept = append(kept, s)
	}
	if add {
		if found {
			return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d is already published by %s; unpublish it first", m.Proto, m.HostPort, a.Container)
		}
		for _, o := range all {
			for _, s := range o.Published {
				if pm, err := parseStored(s); err == nil && pm.Proto == m.Proto && pm.HostPort == m.HostPort {
					return api.Attachment{}, api.Errorf(api.ErrConflict, "%s port %d is already published by %s", m.Proto, m.HostPort, o.Container)
				}
			}
		}
		kept = append(kept, m.String())
	} else if !found {
		return api.Attachment{}, api.Errorf(api.ErrNotFound, "%s port %d is not published by %s", m.Proto, m.HostPort, a.Container)
	}
	sort.Strings(kept)
	a.Published = kept
	if err := c.sw.EnsurePort(ctx, c.s.Bridge, c.portSpec(a)); err != nil {
		return api.Attachment{}, fmt.Errorf("record published ports on %s: %w", a.Port, err)
	}
	if err := c.applyNATLocked(ctx); err != nil {
		return api.Attachment{}, err
	}
	verb := "published"
	if !add {
		verb = "unpublished"
	}
	c.log.Info(verb, "container", a.Container, "port", m.String(), "host", c.s.Advertise)
	return a, nil
}

// DNSPort is reserved for the fabric's DNS service: no container may publish it.
const DNSPort = 53

// reservedPort says what on this host uses host port proto/port, or "" when a container may
// publish it: fabricd's gossip (TCP and UDP), its metrics listener, and DNS. A DNAT of one of
// them would divert fabricd's own traffic to the container.
func (c *Controller) reservedPort(proto string, port uint16) string {
	switch {
	case int(port) == c.s.GossipPort:
		return fmt.Sprintf("fabricd's gossip port (--gossip-port %d)", c.s.GossipPort)
	case proto == "tcp" && c.s.MetricsAddr != "" && metricsPort(c.s.MetricsAddr) == port:
		return fmt.Sprintf("fabricd's metrics port (--metrics-addr %s)", c.s.MetricsAddr)
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

// findAttachment matches target against the attachments, also when its container is gone.
func (c *Controller) findAttachment(ctx context.Context, all []api.Attachment, target string) (api.Attachment, bool) {
	port := ""
	if t, err := c.resolve(ctx, target); err == nil {
		port = portNameOf(t)
	}
	for _, a := range all {
		if a.Port == port || a.Container == target || a.ID == target || a.NetNS == target ||
			(a.ID != "" && len(target) >= 12 && strings.HasPrefix(a.ID, target)) {
			return a, true
		}
	}
	return api.Attachment{}, false
}

// portSpec is the OVS port recording attachment a.
func (c *Controller) portSpec(a api.Attachment) ovsdb.PortSpec {
	ids := map[string]string{
		ovsdb.KeyContainer: a.Container, ovsdb.KeyNetNS: a.NetNS, ovsdb.KeyIfName: a.IfName,
		ovsdb.KeyIP: a.IP, ovsdb.KeyMAC: a.MAC,
	}
	if a.ID != "" {
		ids[ovsdb.KeyContainerID] = a.ID
	}
	if len(a.Published) > 0 {
		ids[KeyPublish] = strings.Join(a.Published, ",")
	}
	return ovsdb.PortSpec{Name: a.Port, Owner: c.s.Name, Role: ovsdb.RoleContainer, ExternalIDs: ids}
}

// natRules is the NAT table this host needs: masquerade for traffic leaving the cluster, and
// a DNAT per published port.
func (c *Controller) natRules(all []api.Attachment) natrules.Rules {
	r := natrules.Rules{Table: natrules.DefaultTable, ClusterCIDR: c.s.Cluster, Masquerade: c.s.Masquerade}
	for _, a := range all {
		ip, err := netip.ParsePrefix(a.IP)
		if err != nil {
			continue
		}
		for _, s := range a.Published {
			m, err := parseStored(s)
			if err != nil {
				c.log.Warn("ignoring a malformed published port", "port", a.Port, "value", s)
				continue
			}
			// Recorded before fabricd refused such ports: never divert fabricd's own traffic.
			if use := c.reservedPort(m.Proto, m.HostPort); use != "" {
				c.log.Warn("ignoring a published port that fabricd uses", "container", a.Container, "value", s, "use", use)
				continue
			}
			r.Publish = append(r.Publish, natrules.Publish{
				Proto: m.Proto, HostAddr: c.s.Advertise, HostPort: m.HostPort,
				ContainerIP: ip.Addr(), ContainerPort: m.ContainerPort, Container: a.Container,
			})
		}
	}
	return r
}

// applyNATLocked reconciles the NAT table from the attachments; attachMu must be held.
func (c *Controller) applyNATLocked(ctx context.Context) error {
	all, err := c.Attachments(ctx)
	if err != nil {
		return err
	}
	changed, err := c.k.ReconcileNAT(c.natRules(all))
	if err != nil {
		return fmt.Errorf("reconcile NAT table: %w", err)
	}
	if changed {
		c.log.Info("NAT table updated", "table", natrules.DefaultTable)
	}
	return nil
}
