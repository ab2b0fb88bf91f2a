package controller

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// Target is a resolved attach target.
type Target = api.Target

// Resolver turns a Docker/Podman name or ID into a Target. ok=false means "no such container".
type Resolver interface {
	Resolve(ctx context.Context, nameOrID string) (t Target, ok bool, err error)
}

// resolve understands netns paths and pid:PID itself and asks the resolvers for the rest.
func (c *Controller) resolve(ctx context.Context, target string) (Target, error) {
	spec, err := ParseTarget(target)
	if err != nil {
		return Target{}, err
	}
	target = strings.TrimSpace(target)
	switch spec.Kind {
	case TargetPID:
		pid := spec.PID
		path := fmt.Sprintf("/proc/%d/ns/net", pid)
		if !c.k.NetNSExists(path) {
			return Target{}, api.Errorf(api.ErrNotFound, "target %q: no process %d (no %s)", target, pid, path)
		}
		return Target{Key: path, Name: target, NetNS: path}, nil
	case TargetNetNS:
		if _, err := os.Stat(target); err != nil {
			return Target{}, api.Errorf(api.ErrNotFound, "target %q: netns path does not exist", target)
		}
		if !c.k.NetNSExists(target) {
			return Target{}, api.Errorf(api.ErrInvalid, "target %q is not a network namespace", target)
		}
		name := target
		if strings.HasPrefix(target, "/var/run/netns/") || strings.HasPrefix(target, "/run/netns/") {
			name = target[strings.LastIndex(target, "/")+1:]
		}
		return Target{Key: target, Name: name, NetNS: target}, nil
	}
	var errs []string
	for _, r := range c.resolvers {
		t, ok, err := r.Resolve(ctx, target)
		if err != nil {
			if api.StatusCode(err) != http.StatusInternalServerError {
				return Target{}, err // the resolver's answer to the request (e.g. not running)
			}
			errs = append(errs, err.Error())
			continue
		}
		if ok {
			return t, nil
		}
	}
	hint := ""
	if ns := filepath.Join(netnsDir, target); !strings.Contains(target, "/") && c.k.NetNSExists(ns) {
		hint = fmt.Sprintf("; a network namespace of that name exists: attach %s", ns)
	}
	if len(errs) > 0 {
		return Target{}, api.Errorf(api.ErrNotFound, "container %q not found (%s)%s", target, strings.Join(errs, "; "), hint)
	}
	return Target{}, api.Errorf(api.ErrNotFound, "container %q not found: not a Docker or Podman container, pid:PID or netns path%s", target, hint)
}

// netnsDir is where `ip netns add` puts named network namespaces; a variable for tests.
var netnsDir = "/var/run/netns"

// attachmentFromPort reads an attachment back from its OVS port.
func (c *Controller) attachmentFromPort(p ovsdb.PortInfo) (api.Attachment, bool) {
	ids := p.ExternalIDs
	if ids[ovsdb.KeyOwner] != c.s.Name || ids[ovsdb.KeyRole] != ovsdb.RoleContainer {
		return api.Attachment{}, false
	}
	a := api.Attachment{
		Host: c.s.Name, Container: ids[ovsdb.KeyContainer], ID: ids[ovsdb.KeyContainerID],
		NetNS: ids[ovsdb.KeyNetNS], IfName: ids[ovsdb.KeyIfName], IP: ids[ovsdb.KeyIP], MAC: ids[ovsdb.KeyMAC],
		Port: p.Name, Published: publishedOf(ids),
	}
	if pfx, err := netip.ParsePrefix(a.IP); err == nil {
		a.Gateway = fabric.Gateway(pfx.Masked()).String()
	}
	a.MTU, _ = fabric.ContainerMTU(c.s.UnderlayMTU, c.s.TunnelType, c.s.Advertise.Is6())
	return a, true
}

// Attachments lists this host's attachments from OVSDB, the durable record.
func (c *Controller) Attachments(ctx context.Context) ([]api.Attachment, error) {
	ports, err := c.sw.Ports(ctx, c.s.Bridge)
	if err != nil {
		return nil, fmt.Errorf("read ports of %s: %w", c.s.Bridge, err)
	}
	out := []api.Attachment{}
	for _, p := range ports {
		if a, ok := c.attachmentFromPort(p); ok {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, nil
}

// Attach attaches a container: veth into its netns with address, MTU and default route, the
// host end on the bridge as an OVS port recording the attachment. It is all or nothing, and
// repeating it with the same parameters changes nothing.
func (c *Controller) Attach(ctx context.Context, req api.AttachRequest) (api.Attachment, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Attachment{}, err
	}
	ifname := req.IfName
	if ifname == "" {
		ifname = "eth0"
	}
	if err := fabric.ValidIfName(ifname); err != nil {
		return api.Attachment{}, api.Errorf(api.ErrInvalid, "--ifname: %v", err)
	}
	var mac net.HardwareAddr
	if req.MAC != "" {
		m, err := net.ParseMAC(req.MAC)
		if err != nil || len(m) != 6 {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "--mac %q is not a MAC address (want aa:bb:cc:dd:ee:ff)", req.MAC)
		}
		if m[0]&1 == 1 || m.String() == "00:00:00:00:00:00" {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "--mac %s is not a unicast address", m)
		}
		mac = m
	}
	reqIP, reqBits, err := parseReqIP(req.IP)
	if err != nil {
		return api.Attachment{}, err
	}
	t, err := c.resolve(ctx, req.Target)
	if err != nil {
		return api.Attachment{}, err
	}
	c.mu.Lock()
	subnet := c.claim.Subnet
	c.mu.Unlock()
	if !subnet.IsValid() {
		return api.Attachment{}, api.Errorf(api.ErrConflict, "this host has no subnet yet; retry in a few seconds")
	}
	// ADDR/BITS (the pipework habit) is fine when BITS is the subnet's: the prefix length is
	// not the operator's to choose.
	if reqBits >= 0 && reqBits != subnet.Bits() {
		return api.Attachment{}, api.Errorf(api.ErrInvalid, "--ip %s: give the address without /%d (the prefix is this host's subnet %s)", req.IP, reqBits, subnet)
	}
	port := portNameOf(t)
	ip, same, err := c.reserve(ctx, t, port, subnet, ifname, reqIP, mac)
	if err != nil {
		return api.Attachment{}, err
	}
	if same != nil {
		return *same, nil
	}
	// The address stays reserved until the port records it in OVSDB (or the attach fails).
	defer c.unreserve(port)
	addr := netip.PrefixFrom(ip, subnet.Bits())
	mtu, err := fabric.ContainerMTU(c.s.UnderlayMTU, c.s.TunnelType, c.s.Advertise.Is6())
	if err != nil {
		return api.Attachment{}, err
	}
	// A host veth of this name without an OVSDB record is the leftover of a crash between the
	// two steps below; the name is derived from the target, so it is ours to remove.
	if err := c.k.Detach(port); err != nil {
		return api.Attachment{}, fmt.Errorf("remove leftover veth %s: %w", port, err)
	}
	begin := time.Now()
	res, err := c.k.Attach(netplumb.Attachment{
		NetNS: t.NetNS, IfName: ifname, HostIf: port, Addr: addr, Gateway: fabric.Gateway(subnet),
		MAC: mac, GatewayMAC: fabric.GatewayMAC(c.s.Name), MTU: mtu, TxChecksumOff: c.s.DatapathType == "netdev",
	})
	if err != nil {
		return api.Attachment{}, classifyAttachErr(err)
	}
	a := api.Attachment{
		Host: c.s.Name, Container: t.Name, ID: t.ID, NetNS: t.NetNS, IfName: ifname, IP: addr.String(),
		MAC: res.MAC.String(), Gateway: fabric.Gateway(subnet).String(), MTU: mtu, Port: port,
	}
	plumbed := time.Now()
	if err := c.sw.EnsurePort(ctx, c.s.Bridge, c.portSpec(a)); err != nil {
		if derr := c.k.Detach(port); derr != nil {
			c.log.Error("roll back veth after failed port add", "port", port, "err", derr)
		}
		return api.Attachment{}, fmt.Errorf("add port %s to %s: %w", port, c.s.Bridge, err)
	}
	// The address may have belonged to a container detached a moment ago.
	if err := c.k.ForgetNeighbor(c.s.GatewayPort, ip); err != nil {
		c.log.Warn("forget stale neighbour", "ip", ip, "err", err)
	}
	// Not an attach failure: the port is recorded, and the loop keeps at it.
	recorded := time.Now()
	if err := c.makeLive(ctx, port); err != nil {
		c.log.Warn("new port not live yet", "port", port, "err", err)
	}
	c.Kick() // spread the new attachment by gossip
	c.log.Info("attached", "container", a.Container, "netns", a.NetNS, "ip", a.IP, "mac", a.MAC, "port", port,
		"veth", plumbed.Sub(begin).Round(time.Millisecond), "ovsdb", recorded.Sub(plumbed).Round(time.Millisecond),
		"live", time.Since(recorded).Round(time.Millisecond))
	return a, nil
}

// reserve picks the container's address under attachMu and reserves it, with the port, for
// the attach in flight, so that concurrent attaches never pick the same address and the slow
// part (veth, netlink, OVSDB, flows) runs outside the lock. same is the existing attachment
// when the target is already attached exactly so.
func (c *Controller) reserve(ctx context.Context, t Target, port string, subnet netip.Prefix, ifname string, reqIP netip.Addr, mac net.HardwareAddr) (ip netip.Addr, same *api.Attachment, err error) {
	c.attachMu.Lock()
	defer c.attachMu.Unlock()
	if _, busy := c.inflight[port]; busy {
		return ip, nil, api.Errorf(api.ErrConflict, "an attach of %s is already in progress", t.Name)
	}
	existing, err := c.Attachments(ctx)
	if err != nil {
		return ip, nil, err
	}
	used := map[netip.Addr]bool{}
	holder := map[netip.Addr]string{} // who holds each used address, for the error
	for p, r := range c.inflight {
		used[r] = true
		holder[r] = "an attach in progress (port " + p + ")"
	}
	for _, a := range existing {
		if a.Port == port {
			if sameAttach(a, ifname, reqIP, mac) {
				a.Unchanged = true
				return ip, &a, nil
			}
			return ip, nil, api.Errorf(api.ErrConflict, "%s is already attached as %s %s on %s; detach it first", t.Name, a.IP, a.MAC, a.IfName)
		}
		if p, err := netip.ParsePrefix(a.IP); err == nil {
			used[p.Addr()] = true
			holder[p.Addr()] = fmt.Sprintf("%s (port %s)", a.Container, a.Port)
		}
	}
	ip = reqIP
	if ip.IsValid() {
		if h, ok := holder[ip]; ok && subnet.Contains(ip) {
			return ip, nil, api.Errorf(api.ErrInvalid, "--ip: %s is already in use by %s; detach it or pick another address", ip, h)
		}
		if err := fabric.CheckContainerIP(subnet, ip, used); err != nil {
			return ip, nil, api.Errorf(api.ErrInvalid, "--ip: %v", err)
		}
	} else if ip, err = fabric.AllocateIP(subnet, used); err != nil {
		return ip, nil, api.Errorf(api.ErrConflict, "%v", err)
	}
	c.inflight[port] = ip
	return ip, nil, nil
}

// parseReqIP parses --ip: an address, or ADDR/BITS as pipework takes it; bits is -1 when no
// prefix length was given.
func parseReqIP(s string) (ip netip.Addr, bits int, err error) {
	if s == "" {
		return ip, -1, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return ip, -1, api.Errorf(api.ErrInvalid, "--ip %q is not an IP address", s)
		}
		return p.Addr(), p.Bits(), nil
	}
	if ip, err = netip.ParseAddr(s); err != nil {
		return ip, -1, api.Errorf(api.ErrInvalid, "--ip %q is not an IP address", s)
	}
	return ip, -1, nil
}

// unreserve ends the reservation reserve made for port.
func (c *Controller) unreserve(port string) {
	c.attachMu.Lock()
	delete(c.inflight, port)
	c.attachMu.Unlock()
}

// portNameOf is the OVS port (and host veth) name of a target.
func portNameOf(t Target) string { return fabric.ContainerPortName(t.Key) }

func sameAttach(a api.Attachment, ifname string, ip netip.Addr, mac net.HardwareAddr) bool {
	if a.IfName != ifname {
		return false
	}
	if ip.IsValid() {
		if p, err := netip.ParsePrefix(a.IP); err != nil || p.Addr() != ip {
			return false
		}
	}
	return mac == nil || strings.EqualFold(a.MAC, mac.String())
}

// classifyAttachErr makes the kernel side's validation failures 400s.
func classifyAttachErr(err error) error {
	if netplumb.IsInvalid(err) {
		return api.WithKind(api.ErrInvalid, err)
	}
	return fmt.Errorf("attach: %w", err)
}

// Detach removes a container's port, veth and address; its IP returns to the pool.
func (c *Controller) Detach(ctx context.Context, target string) (api.Attachment, error) {
	c.attachMu.Lock()
	defer c.attachMu.Unlock()
	existing, err := c.Attachments(ctx)
	if err != nil {
		return api.Attachment{}, err
	}
	// A container that is gone can still be detached by the name it was attached with.
	a, ok := c.findAttachment(ctx, existing, target)
	if !ok {
		return api.Attachment{}, api.Errorf(api.ErrNotFound, "%s is not attached on this host", target)
	}
	if err := c.removeAttachment(ctx, a); err != nil {
		return api.Attachment{}, err
	}
	if len(a.Published) > 0 {
		if err := c.applyNATLocked(ctx); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (c *Controller) removeAttachment(ctx context.Context, a api.Attachment) error {
	if err := c.sw.DeletePort(ctx, c.s.Bridge, a.Port, c.s.Name); err != nil {
		return fmt.Errorf("delete port %s: %w", a.Port, err)
	}
	if err := c.k.Detach(a.Port); err != nil {
		return fmt.Errorf("delete veth %s: %w", a.Port, err)
	}
	if p, err := netip.ParsePrefix(a.IP); err == nil {
		if err := c.k.ForgetNeighbor(c.s.GatewayPort, p.Addr()); err != nil {
			c.log.Warn("forget neighbour", "ip", p.Addr(), "err", err)
		}
	}
	c.Kick()
	c.log.Info("detached", "container", a.Container, "ip", a.IP, "port", a.Port)
	return nil
}

// pruneAttachments removes attachments whose network namespace is gone (container stopped or
// removed), freeing their addresses.
func (c *Controller) pruneAttachments(ctx context.Context) error {
	if !c.attachMu.TryLock() {
		return nil // an attach or detach is running; the next sync prunes
	}
	defer c.attachMu.Unlock()
	existing, err := c.Attachments(ctx)
	if err != nil {
		return err
	}
	for _, a := range existing {
		if a.NetNS != "" && c.k.NetNSExists(a.NetNS) {
			continue
		}
		c.log.Info("container network namespace is gone; removing its attachment", "container", a.Container, "netns", a.NetNS)
		if err := c.removeAttachment(ctx, a); err != nil {
			return err
		}
	}
	return c.applyNATLocked(ctx)
}
