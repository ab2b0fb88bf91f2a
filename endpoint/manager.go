package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// Switch is what endpoints need from OVSDB.
type Switch interface {
	EnsurePort(ctx context.Context, bridge string, spec ovsdb.PortSpec) error
	EnsurePorts(ctx context.Context, bridge string, specs []ovsdb.PortSpec) error
	WaitPort(ctx context.Context, bridge, name string) (ovsdb.PortInfo, error)
	DeletePort(ctx context.Context, bridge, name, owner string) error
	Ports(ctx context.Context, bridge string) ([]ovsdb.PortInfo, error)
}

// Host is what endpoints need from the host: veths into container namespaces, the gateway's
// neighbour table, and the NAT table.
type Host interface {
	Attach(a netplumb.Attachment) (netplumb.AttachResult, error)
	Detach(hostIf string) error
	NetNSExists(path string) bool
	ForgetNeighbor(dev string, ip netip.Addr) error
	ReconcileNAT(r natrules.Rules) (bool, error)
}

// Loop is what endpoints need from the reconcile loop (package controller).
type Loop interface {
	// WaitReady waits until the bridge and gateway exist (the first successful reconcile).
	WaitReady(ctx context.Context) error
	// Subnet is this host's subnet (invalid while it has none).
	Subnet() netip.Prefix
	// Network is the network name as this host serves it: its slice here among the rest.
	// The error is an api kind (api.ErrNotFound: no such network; api.ErrConflict: this
	// host has no slice of it yet).
	Network(name string) (Network, error)
	// Networks are every network of the fabric, default first, with this host's slice of
	// those it serves (zero for the others).
	Networks() []Network
	// PortsAdded adds the flows of container ports about to be recorded in OVSDB at once,
	// in one bundle, rather than on the loop's next sync: for the OpenFlow port numbers they
	// request, before ovs-vswitchd has numbered them. The loop keeps their flows until
	// PortsRecorded says whether they were recorded; the failed ones' flows it then removes.
	PortsAdded(ctx context.Context, ports []ovsdb.PortInfo) error
	PortsRecorded(ctx context.Context, recorded, failed []string) error
	// Kick asks for a reconcile soon (to spread a change by gossip).
	Kick()
}

// Resolver turns a Docker/Podman name or ID into a Target. ok=false means "no such
// container"; an error of an api kind (api.ErrConflict: not running) is the answer.
type Resolver interface {
	Resolve(ctx context.Context, nameOrID string) (t api.Target, ok bool, err error)
}

// Manager manages this host's endpoints. Create it with New and give it the loop with
// SetLoop before serving requests.
type Manager struct {
	s         config.Settings
	log       *slog.Logger
	sw        Switch
	host      Host
	loop      Loop
	resolvers []Resolver
	mtu       int
	// netnsDir is where `ip netns add` puts named network namespaces (a field for tests).
	netnsDir string
	// etcNetns is where `ip netns exec` finds per-netns files (empty: /etc/netns).
	etcNetns string

	// mu serialises detach, pruning, publishing and the address and OpenFlow port choice
	// of attaches; inflight holds the ports, addresses and OpenFlow port numbers of attaches
	// past that choice but not yet recorded in OVSDB, so concurrent attaches never pick the
	// same. gen counts the detaches and publishes made under mu, so Sync can tell a snapshot
	// that predates one. nextOfport is where the next OpenFlow port number search starts
	// (an offset into the container range).
	mu       sync.Mutex
	inflight map[string]reservation
	// holds are addresses the Docker plugin's IPAM handed out for endpoints not created
	// yet (see docker.go), by address.
	holds      map[netip.Addr]string
	gen        uint64
	nextOfport int

	// batch coalesces the OVSDB transactions of concurrent attaches, flows their flow
	// bundles.
	batch batcher
	flows flowBatcher
}

// reservation is what an attach in flight holds until its port is recorded in OVSDB.
type reservation struct {
	ip     netip.Addr
	ofport int
	// netns and ifname are the container's and its interface's: a concurrent attach of the
	// same container to another network picks another interface and no default route.
	netns, ifname string
}

// Network is what endpoints need of a network this host serves.
type Network struct {
	Name string
	// CIDR is the whole network; Slice this host's part of it, where its endpoints' addresses
	// come from.
	CIDR, Slice netip.Prefix
	// Internal networks have no egress and no published ports.
	Internal bool
}

// New returns the endpoint manager of the host s describes. resolvers turn container
// names into network namespaces (Docker, Podman), tried in order.
func New(s config.Settings, sw Switch, host Host, log *slog.Logger, resolvers ...Resolver) *Manager {
	mtu, _ := s.MTU() // validated by the loop's plan; 0 shows in the API if not
	return &Manager{s: s, log: log, sw: sw, host: host, resolvers: resolvers, mtu: mtu, netnsDir: "/var/run/netns", inflight: map[string]reservation{}, holds: map[netip.Addr]string{}}
}

// SetLoop attaches the reconcile loop.
func (m *Manager) SetLoop(l Loop) { m.loop = l }

// Generation counts the changes this manager made to the port table; read it before a
// snapshot of the ports and hand it to Sync with them.
func (m *Manager) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// records reads this host's endpoints from OVSDB.
func (m *Manager) records(ctx context.Context) ([]Record, error) {
	ports, err := m.sw.Ports(ctx, m.s.Bridge)
	if err != nil {
		return nil, fmt.Errorf("read ports of %s: %w", m.s.Bridge, err)
	}
	return Records(ports, m.s.Name), nil
}

// Attachments lists this host's endpoints from OVSDB, the durable record, by port.
func (m *Manager) Attachments(ctx context.Context) ([]api.Attachment, error) {
	rs, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Attachment, 0, len(rs))
	for _, r := range rs {
		out = append(out, m.api(r))
	}
	return out, nil
}

// resolve understands netns paths and pid:PID itself and asks the resolvers for the rest.
func (m *Manager) resolve(ctx context.Context, target string) (api.Target, error) {
	spec, err := ParseTarget(target)
	if err != nil {
		return api.Target{}, err
	}
	target = strings.TrimSpace(target)
	switch spec.Kind {
	case TargetPID:
		pid := spec.PID
		path := fmt.Sprintf("/proc/%d/ns/net", pid)
		if !m.host.NetNSExists(path) {
			return api.Target{}, api.Errorf(api.ErrNotFound, "target %q: no process %d (no %s)", target, pid, path)
		}
		return api.Target{Key: path, Name: target, NetNS: path}, nil
	case TargetNetNS:
		if _, err := os.Stat(target); err != nil {
			return api.Target{}, api.Errorf(api.ErrNotFound, "target %q: netns path does not exist", target)
		}
		if !m.host.NetNSExists(target) {
			return api.Target{}, api.Errorf(api.ErrInvalid, "target %q is not a network namespace", target)
		}
		name := target
		if strings.HasPrefix(target, "/var/run/netns/") || strings.HasPrefix(target, "/run/netns/") {
			name = target[strings.LastIndex(target, "/")+1:]
		}
		return api.Target{Key: target, Name: name, NetNS: target}, nil
	}
	var errs []string
	for _, r := range m.resolvers {
		t, ok, err := r.Resolve(ctx, target)
		if err != nil {
			if api.StatusCode(err) != http.StatusInternalServerError {
				return api.Target{}, err // the resolver's answer to the request (e.g. not running)
			}
			errs = append(errs, err.Error())
			continue
		}
		if ok {
			return t, nil
		}
	}
	hint := ""
	if ns := filepath.Join(m.netnsDir, target); !strings.Contains(target, "/") && m.host.NetNSExists(ns) {
		hint = fmt.Sprintf("; a network namespace of that name exists: attach %s", ns)
	}
	if len(errs) > 0 {
		return api.Target{}, api.Errorf(api.ErrNotFound, "container %q not found (%s)%s", target, strings.Join(errs, "; "), hint)
	}
	return api.Target{}, api.Errorf(api.ErrNotFound, "container %q not found: not a Docker or Podman container, pid:PID or netns path%s", target, hint)
}

// portNameOf is the OVS port (and host veth) name of a target's endpoint on network: the
// default network's keeps the name it had before networks existed.
func portNameOf(t api.Target, network string) string {
	if network == "" || network == DefaultNetwork {
		return fabric.ContainerPortName(t.Key)
	}
	return fabric.ContainerPortName(t.Key + "\x00" + network)
}

// Attach attaches a container: veth into its netns with address, MTU and default route, the
// host end on the bridge as an OVS port recording the endpoint. It is all or nothing, and
// repeating it with the same parameters changes nothing.
func (m *Manager) Attach(ctx context.Context, req api.AttachRequest) (api.Attachment, error) {
	return m.attach(ctx, req, nil, nil)
}

// attach is Attach of target t (nil: resolve req.Target); decorate, when set, completes the
// record before it is written (the CNI plugin's key, aliases and published ports).
func (m *Manager) attach(ctx context.Context, req api.AttachRequest, t *api.Target, decorate func(*Record)) (api.Attachment, error) {
	return m.attachWith(ctx, req, t, decorate, nil)
}

// attachWith is attach with plumb, when set, making the veth instead of Host.Attach (the
// Docker plugin's veth, which Docker moves into the container itself).
func (m *Manager) attachWith(ctx context.Context, req api.AttachRequest, t *api.Target, decorate func(*Record), plumb func(netplumb.Attachment) (netplumb.AttachResult, error)) (api.Attachment, error) {
	arrived := time.Now()
	if plumb == nil {
		plumb = m.host.Attach
	}
	// The flow batcher waits a little for attaches on their way to it (see flowBatcher).
	m.flows.arriving.add()
	flowsQueued := false
	defer func() {
		if !flowsQueued {
			m.flows.arriving.done()
		}
	}()
	if err := m.loop.WaitReady(ctx); err != nil {
		return api.Attachment{}, err
	}
	ifname := req.IfName
	if ifname != "" {
		if err := fabric.ValidIfName(ifname); err != nil {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "--ifname: %v", err)
		}
	}
	netName := req.Network
	if netName == "" {
		netName = DefaultNetwork
	}
	var mac net.HardwareAddr
	if req.MAC != "" {
		hw, err := net.ParseMAC(req.MAC)
		if err != nil || len(hw) != 6 {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "--mac %q is not a MAC address (want aa:bb:cc:dd:ee:ff)", req.MAC)
		}
		if hw[0]&1 == 1 || hw.String() == "00:00:00:00:00:00" {
			return api.Attachment{}, api.Errorf(api.ErrInvalid, "--mac %s is not a unicast address", hw)
		}
		mac = hw
	}
	reqIP, reqBits, err := parseReqIP(req.IP)
	if err != nil {
		return api.Attachment{}, err
	}
	name, aliases, err := parseNames(req.Name, req.Aliases)
	if err != nil {
		return api.Attachment{}, err
	}
	if t == nil {
		rt, err := m.resolve(ctx, req.Target)
		if err != nil {
			return api.Attachment{}, err
		}
		t = &rt
	}
	asked := name // what an attach of an attached target must match (a default need not)
	if name == "" {
		if spec, err := ParseTarget(req.Target); err == nil {
			name = defaultName(spec.Kind, *t)
		}
	}
	nw, err := m.loop.Network(netName)
	if err != nil {
		return api.Attachment{}, err
	}
	subnet := nw.Slice
	// ADDR/BITS (the pipework habit) is fine when BITS is the subnet's: the prefix length is
	// not the operator's to choose.
	if reqBits >= 0 && reqBits != subnet.Bits() {
		return api.Attachment{}, api.Errorf(api.ErrInvalid, "--ip %s: give the address without /%d (the prefix is this host's slice %s of network %s)", req.IP, reqBits, subnet, nw.Name)
	}
	port := portNameOf(*t, nw.Name)
	ip, ofport, ifname, primary, same, err := m.reserve(ctx, *t, port, subnet, ifname, reqIP, mac)
	if err != nil {
		return api.Attachment{}, err
	}
	if same != nil {
		if !sameNames(Record{Name: same.Name, Aliases: same.Aliases}, asked, aliases) {
			return api.Attachment{}, api.Errorf(api.ErrConflict, "%s is already attached with other names (%q, aliases %v); detach it first", t.Name, same.Name, same.Aliases)
		}
		return *same, nil
	}
	// The address and OpenFlow port number stay reserved until the port records them in
	// OVSDB (or the attach fails).
	defer m.unreserve(port)
	// The batcher waits a little for attaches making their veths (see batcher).
	m.batch.plumbing.add()
	queued := false
	defer func() {
		if !queued {
			m.batch.plumbing.done()
		}
	}()
	addr := netip.PrefixFrom(ip, subnet.Bits())
	mtu, err := m.s.MTU()
	if err != nil {
		return api.Attachment{}, err
	}
	// The MAC is chosen here rather than by the veth's creation, so that the port's flows
	// (which match on it) can go out now.
	if mac == nil {
		if mac, err = newMAC(); err != nil {
			return api.Attachment{}, err
		}
	}
	// The default route goes through the container's first network, as with Docker; a
	// further network's interface routes only that network.
	var routes []netip.Prefix
	if !primary {
		routes = []netip.Prefix{nw.CIDR}
	}
	r := Record{Port: port, Network: nw.Name, Container: t.Name, ID: t.ID, NetNS: t.NetNS, IfName: ifname, Addr: addr, MAC: mac,
		Name: name, Aliases: aliases, Routes: routes, ResolvConf: t.ResolvConf, OfportRequest: ofport}
	if decorate != nil {
		decorate(&r)
	}
	spec := r.PortSpec(m.s.Name)
	// A host veth of this name without an OVSDB record is the leftover of a crash between the
	// two steps below; the name is derived from the target, so it is ours to remove.
	if err := m.host.Detach(port); err != nil {
		return api.Attachment{}, fmt.Errorf("remove leftover veth %s: %w", port, err)
	}
	begin := time.Now()
	// The port's flows, for the OpenFlow port number it requests, go out now, while the veth
	// is made and the port recorded: ovs-vswitchd takes them while it is idle, rather than
	// after (behind) the reconfiguration that adds the port. They match nothing until the
	// port exists; should the attach fail, they are removed before it returns.
	flowsQueued = true
	fl := m.addFlows(portInfo(spec))
	flowsFailed := func() {
		<-fl.done
		if err := m.loop.PortsRecorded(context.WithoutCancel(ctx), nil, []string{port}); err != nil {
			m.log.Error("remove the flows of a failed attach", "port", port, "err", err)
		}
	}
	if _, err := plumb(netplumb.Attachment{
		NetNS: t.NetNS, IfName: ifname, HostIf: port, Addr: addr, Gateway: fabric.Gateway(subnet), Routes: routes,
		MAC: mac, GatewayMAC: fabric.GatewayMAC(m.s.Name), MTU: mtu, Datapath: m.s.DatapathType,
	}); err != nil {
		flowsFailed()
		return api.Attachment{}, classifyAttachErr(err)
	}
	plumbed := time.Now()
	// Recorded with the attaches that arrive meanwhile, in one transaction.
	queued = true
	rec := m.recordPort(spec)
	if err := rec.err; err != nil {
		flowsFailed()
		if derr := m.host.Detach(port); derr != nil {
			m.log.Error("roll back veth after failed port add", "port", port, "err", derr)
		}
		return api.Attachment{}, portError(err)
	}
	<-fl.done
	// Not an attach failure: the port is recorded, and the loop keeps at its flows.
	if fl.err != nil {
		m.log.Warn("flows of new port not added yet", "port", port, "err", fl.err)
	}
	if err := m.loop.PortsRecorded(ctx, []string{port}, nil); err != nil {
		m.log.Error("flows after recording port", "port", port, "err", err)
	}
	// The address may have belonged to a container detached a moment ago.
	if err := m.host.ForgetNeighbor(m.s.GatewayPort, ip); err != nil {
		m.log.Warn("forget stale neighbour", "ip", ip, "err", err)
	}
	flowsDone := time.Now()
	m.waitLive(ctx, port, ofport)
	m.loop.Kick() // spread the new endpoint by gossip
	switch {
	case !primary:
		// The container's first network's gateway stays its nameserver.
	case r.CNIKey != "":
		// The CNI runtime writes the container's resolv.conf from the ADD result's dns.
	default:
		f, err := m.writeResolvConf(r)
		if err != nil {
			m.log.Warn("point the container at the fabric DNS", "netns", r.NetNS, "err", err)
		} else if f != "" {
			m.log.Debug("pointed the container at the fabric DNS", "file", f)
		}
	}
	a := m.api(r)
	// The phases, in order: veth, ovsdb (queued and the transaction), live (from the
	// transaction to the end: the rest of the flow bundle, if any, and the wait for
	// ovs-vswitchd). flows is the bundle, which began with the veth (queued behind another
	// bundle and sent); numbered the wait for ovs-vswitchd after both; total from the
	// request's arrival (its address chosen, its veth made, …) to here.
	m.log.Info("attached", "container", a.Container, "netns", a.NetNS, "ip", a.IP, "mac", a.MAC, "port", port, "ofport", ofport,
		"veth", plumbed.Sub(begin).Round(time.Millisecond), "ovsdb", rec.recorded.Sub(plumbed).Round(time.Millisecond),
		"live", time.Since(rec.recorded).Round(time.Millisecond), "batch", rec.size,
		"flows", fl.took.Round(time.Millisecond), "flowbatch", fl.size, "numbered", time.Since(flowsDone).Round(time.Millisecond),
		"total", time.Since(arrived).Round(time.Millisecond))
	return a, nil
}

// portLiveWait bounds how long an attach waits for ovs-vswitchd to take its new port.
const portLiveWait = 3 * time.Second

// waitLive waits until ovs-vswitchd has numbered the new port (it is then in the datapath;
// woken by OVSDB change events), so that the container can send the moment attach returns.
// Its flows are already there, unless ovs-vswitchd gave it another number than the one it
// requested: then they are added again for that one.
func (m *Manager) waitLive(ctx context.Context, port string, ofport int) {
	ctx, cancel := context.WithTimeout(ctx, portLiveWait)
	defer cancel()
	p, err := m.sw.WaitPort(ctx, m.s.Bridge, port)
	if err != nil {
		m.log.Warn("new port not live yet", "port", port, "err", err)
		return
	}
	if p.Ofport != ofport {
		m.log.Warn("ovs-vswitchd numbered the port otherwise than requested; adding its flows again", "port", port, "requested", ofport, "ofport", p.Ofport)
		if err := m.loop.PortsAdded(ctx, []ovsdb.PortInfo{p}); err != nil {
			m.log.Warn("flows of new port not added yet", "port", port, "err", err)
		}
		if err := m.loop.PortsRecorded(ctx, []string{port}, nil); err != nil {
			m.log.Warn("flows of new port", "port", port, "err", err)
		}
	}
}

// portError makes a port name OVSDB refuses because it belongs to someone else (another
// owner, another role, a bridge's local port) a conflict (409) rather than a failure.
func portError(err error) error {
	if errors.Is(err, ovsdb.ErrNotOwned) || errors.Is(err, ovsdb.ErrConflict) {
		return api.WithKind(api.ErrConflict, err)
	}
	return err
}

// reserve picks the container's address and its port's OpenFlow port number under mu and
// reserves them, with the port, for the attach in flight, so that concurrent attaches never
// pick the same and the slow part (veth, netlink, OVSDB, flows) runs outside the lock. It
// also picks the interface name when none was asked for (eth0 for the container's first
// network, the next free ethN for a further one) and says whether this endpoint is the
// container's first (primary: it carries the default route). same is the existing endpoint
// when the target is already attached exactly so.
func (m *Manager) reserve(ctx context.Context, t api.Target, port string, subnet netip.Prefix, ifname string, reqIP netip.Addr, mac net.HardwareAddr) (ip netip.Addr, ofport int, ifn string, primary bool, same *api.Attachment, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.inflight[port]; busy {
		return ip, 0, "", false, nil, api.Errorf(api.ErrConflict, "an attach of %s is already in progress", t.Name)
	}
	ports, err := m.sw.Ports(ctx, m.s.Bridge)
	if err != nil {
		return ip, 0, "", false, nil, fmt.Errorf("read ports of %s: %w", m.s.Bridge, err)
	}
	existing := Records(ports, m.s.Name)
	used := map[netip.Addr]bool{}
	holder := map[netip.Addr]string{} // who holds each used address, for the error
	taken := map[string]string{}      // the container's interfaces on other networks
	for p, r := range m.inflight {
		used[r.ip] = true
		holder[r.ip] = "an attach in progress (port " + p + ")"
		if r.netns == t.NetNS {
			taken[r.ifname] = "an attach in progress"
		}
	}
	for ip, who := range m.holds {
		if ip == reqIP && isDockerTarget(t) {
			continue // the hold this Docker endpoint comes with
		}
		used[ip] = true
		holder[ip] = who
	}
	for _, r := range existing {
		if r.Port == port {
			a := m.api(r)
			if sameAttach(r, ifname, reqIP, mac) {
				a.Unchanged = true
				return ip, 0, "", false, &a, nil
			}
			return ip, 0, "", false, nil, api.Errorf(api.ErrConflict, "%s is already attached to network %s as %s %s on %s; detach it first", t.Name, r.Network, a.IP, a.MAC, a.IfName)
		}
		if r.Addr.IsValid() {
			used[r.Addr.Addr()] = true
			holder[r.Addr.Addr()] = fmt.Sprintf("%s (port %s)", r.Container, r.Port)
		}
		if r.NetNS == t.NetNS {
			taken[r.IfName] = "its endpoint on network " + r.Network
		}
	}
	primary = len(taken) == 0
	if ifname == "" {
		ifname = nextIfName(taken)
	} else if use, ok := taken[ifname]; ok {
		return ip, 0, "", false, nil, api.Errorf(api.ErrConflict, "--ifname %s: %s already has %s as %s; choose another name", ifname, t.Name, ifname, use)
	}
	ip = reqIP
	if ip.IsValid() {
		if h, ok := holder[ip]; ok && subnet.Contains(ip) {
			return ip, 0, "", false, nil, api.Errorf(api.ErrInvalid, "--ip: %s is already in use by %s; detach it or pick another address", ip, h)
		}
		if err := fabric.CheckContainerIP(subnet, ip, used); err != nil {
			return ip, 0, "", false, nil, api.Errorf(api.ErrInvalid, "--ip: %v", err)
		}
	} else if ip, err = fabric.AllocateIP(subnet, used); err != nil {
		return ip, 0, "", false, nil, api.Errorf(api.ErrConflict, "%v", err)
	}
	if ofport, err = m.allocOfport(ports); err != nil {
		return ip, 0, "", false, nil, api.Errorf(api.ErrConflict, "%v", err)
	}
	m.inflight[port] = reservation{ip: ip, ofport: ofport, netns: t.NetNS, ifname: ifname}
	if isDockerTarget(t) {
		delete(m.holds, ip) // the reservation holds it from now on
	}
	return ip, ofport, ifname, primary, nil, nil
}

// nextIfName is the first of eth0, eth1, … that taken does not hold.
func nextIfName(taken map[string]string) string {
	for i := 0; ; i++ {
		n := "eth" + strconv.Itoa(i)
		if _, ok := taken[n]; !ok {
			return n
		}
	}
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

// unreserve ends the reservation reserve made for port, which is recorded in OVSDB now or
// never will be. (A new endpoint does not move gen: a snapshot without it prunes nothing of
// it, and it has no published ports for NAT yet.)
func (m *Manager) unreserve(port string) {
	m.mu.Lock()
	delete(m.inflight, port)
	m.mu.Unlock()
}

func sameAttach(r Record, ifname string, ip netip.Addr, mac net.HardwareAddr) bool {
	if ifname != "" && r.IfName != ifname {
		return false
	}
	if ip.IsValid() && (!r.Addr.IsValid() || r.Addr.Addr() != ip) {
		return false
	}
	return mac == nil || strings.EqualFold(r.MAC.String(), mac.String())
}

// classifyAttachErr makes the kernel side's validation failures 400s.
func classifyAttachErr(err error) error {
	if netplumb.IsInvalid(err) {
		return api.WithKind(api.ErrInvalid, err)
	}
	return fmt.Errorf("attach: %w", err)
}

// Detach removes a container's endpoints — the one on req.Network, or all of them — each
// with its port, veth and address; their IPs return to the pool.
func (m *Manager) Detach(ctx context.Context, req api.DetachRequest) ([]api.Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	existing, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	// A container that is gone can still be detached by the name it was attached with.
	rs := m.findAll(ctx, existing, req.Target)
	if len(rs) == 0 {
		return nil, api.Errorf(api.ErrNotFound, "%s is not attached on this host", req.Target)
	}
	if req.Network != "" {
		var on []Record
		var nets []string
		for _, r := range rs {
			if r.Network == req.Network {
				on = append(on, r)
			}
			nets = append(nets, r.Network)
		}
		if len(on) == 0 {
			return nil, api.Errorf(api.ErrNotFound, "%s is not attached to network %s on this host (only to %s)", req.Target, req.Network, strings.Join(nets, ", "))
		}
		rs = on
	}
	var out []api.Attachment
	nat := false
	for _, r := range rs {
		existing = without(existing, r.Port)
		if err := m.removeLocked(ctx, r, existing); err != nil {
			return out, err
		}
		a := m.api(r)
		nat = nat || len(a.Published) > 0
		out = append(out, a)
	}
	if nat {
		if err := m.applyNATLocked(existing); err != nil {
			return out, err
		}
	}
	return out, nil
}

// without is rs less the endpoint on port.
func without(rs []Record, port string) []Record {
	out := make([]Record, 0, len(rs))
	for _, r := range rs {
		if r.Port != port {
			out = append(out, r)
		}
	}
	return out
}

// removeLocked deletes an endpoint's port and veth, and points the container's resolver
// at the fabric DNS of the endpoints it keeps (rest: this host's others), or restores it;
// mu must be held.
func (m *Manager) removeLocked(ctx context.Context, r Record, rest []Record) error {
	m.gen++
	if err := m.sw.DeletePort(ctx, m.s.Bridge, r.Port, m.s.Name); err != nil {
		return fmt.Errorf("delete port %s: %w", r.Port, err)
	}
	if err := m.host.Detach(r.Port); err != nil {
		return fmt.Errorf("delete veth %s: %w", r.Port, err)
	}
	if r.Addr.IsValid() {
		if err := m.host.ForgetNeighbor(m.s.GatewayPort, r.Addr.Addr()); err != nil {
			m.log.Warn("forget neighbour", "ip", r.Addr.Addr(), "err", err)
		}
	}
	m.resolverAfterDetach(r, rest)
	m.loop.Kick()
	m.log.Info("detached", "container", r.Container, "ip", addrText(r.Addr), "port", r.Port)
	return nil
}

// Sync is the reconcile loop's pass over the endpoints, with the snapshot of this host's
// endpoints the loop read after generation gen: it removes those whose network namespace
// is gone (container stopped or removed), freeing their addresses, and reconciles the NAT
// table. It returns the endpoints that remain. When an attach, detach or publish is running,
// or one ran since the snapshot, it does nothing: the sync that change triggers does it.
func (m *Manager) Sync(ctx context.Context, gen uint64, rs []Record) ([]Record, error) {
	if !m.mu.TryLock() {
		return rs, nil
	}
	defer m.mu.Unlock()
	if m.gen != gen {
		return rs, nil
	}
	kept := make([]Record, 0, len(rs))
	for _, r := range rs {
		// Docker deletes its endpoints itself (DeleteEndpoint); their namespaces are
		// Docker's sandboxes, maybe in a mount namespace fabricd does not see. Only one
		// whose veth is gone (the host rebooted, the container died with dockerd) is ours
		// to remove.
		if r.DockerEP != "" && dockerVethAlive(r) || r.DockerEP == "" && r.NetNS != "" && m.host.NetNSExists(r.NetNS) {
			kept = append(kept, r)
			continue
		}
		m.log.Info("container network namespace is gone; removing its attachment", "container", r.Container, "netns", r.NetNS)
		if err := m.removeLocked(ctx, r, nil); err != nil {
			return rs, err
		}
	}
	return kept, m.applyNATLocked(kept)
}
