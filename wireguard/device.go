package wireguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Implementation says which WireGuard runs a Device.
type Implementation string

const (
	// Auto (the zero value) picks Kernel when the kernel can make a wireguard link, else Userspace.
	Auto Implementation = ""
	// Kernel is the kernel's WireGuard (a link of type wireguard), configured through netlink.
	Kernel Implementation = "kernel"
	// Userspace is wireguard-go on a TUN device, embedded in this process or in a device
	// process of its own (Options.Process); it serves the UAPI socket
	// /var/run/wireguard/<name>.sock that wgctrl and `wg` speak.
	Userspace Implementation = "userspace"
)

// DefaultMTU is the interface MTU when Options.MTU is 0: WireGuard's own default (room for
// its 80 bytes over an IPv6 underlay of 1500).
const DefaultMTU = 1420

// Options say which interface Open brings up, and where.
type Options struct {
	// Name is the interface name (1-15 bytes). A userspace device's UAPI socket is named after
	// it in /var/run/wireguard, which every network namespace of the machine shares: two
	// userspace devices on one machine (lab hosts) need different names.
	Name string
	// MTU of the interface (default DefaultMTU): the underlay MTU minus 60 (IPv4) or 80 (IPv6).
	MTU int
	// Implementation to use; Auto tries the kernel first.
	Implementation Implementation
	// NetNS is the path of the network namespace (/var/run/netns/…) holding the interface and
	// its UDP socket; "" is the calling process's. fabricd runs inside its host's namespace
	// and leaves it empty; tests put two devices of one process in two namespaces.
	NetNS string
	// Logger receives what wireguard-go reports (Debug) and its errors (Info). Default: discard.
	Logger *slog.Logger
	// Process, when set, runs a userspace device in a device process of its own, which
	// outlives this one (see ProcessOptions); nil embeds wireguard-go in this process.
	Process *ProcessOptions
}

// Device is one WireGuard interface, kernel or userspace. Its methods are safe for concurrent use.
type Device struct {
	name string
	impl Implementation
	log  *slog.Logger
	ns   ns.NetNS // nil: the process's own namespace

	mu     sync.Mutex // serialises Set, Status and Close
	client *wgctrl.Client
	closed bool

	// userspace in a device process only
	sup *supervisor

	// embedded userspace only
	dev  *device.Device
	uapi net.Listener
	done chan struct{} // closed when the UAPI accept loop ends
}

// Open brings up the interface described by opts (kernel or userspace, see Implementation),
// up and with its MTU, without address, key or peers: Set configures it. An existing kernel
// wireguard link of that name is taken over as it is, so a restarted fabricd never interrupts
// kernel WireGuard traffic.
func Open(opts Options) (*Device, error) {
	if err := checkName(opts.Name); err != nil {
		return nil, err
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.MTU < 576 || opts.MTU > 65535 {
		return nil, fmt.Errorf("wireguard %s: MTU %d: want 576-65535", opts.Name, opts.MTU)
	}
	switch opts.Implementation {
	case Auto, Kernel, Userspace:
	default:
		return nil, fmt.Errorf("wireguard %s: implementation %q: want kernel, userspace or auto", opts.Name, opts.Implementation)
	}
	d := &Device{name: opts.Name, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("wireguard", opts.Name)
	if opts.NetNS != "" {
		h, err := ns.GetNS(opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("wireguard %s: %w", opts.Name, err)
		}
		d.ns = h
	}
	if err := d.open(opts); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// open does Open's work; on error the caller releases what it made.
func (d *Device) open(opts Options) error {
	var procs *osProcs
	if opts.Process != nil {
		if opts.Process.Binary == "" || opts.Process.Pidfile == "" {
			return fmt.Errorf("wireguard %s: a device process needs a binary and a pidfile", opts.Name)
		}
		procs = &osProcs{name: opts.Name, bin: opts.Process.Binary, pidfile: opts.Process.Pidfile, mtu: opts.MTU, out: opts.Process.Output, do: d.do}
		if pid := procs.find(); pid > 0 {
			// A device process of an earlier run: adopted (auto, userspace), or ended when
			// the kernel's WireGuard is asked for.
			if opts.Implementation == Kernel {
				d.log.Info("kernel WireGuard asked for: stopping the userspace device process", "pid", pid)
				if _, err := StopProcess(opts.Name, opts.Process.Binary, opts.Process.Pidfile); err != nil {
					return fmt.Errorf("wireguard %s: %w", opts.Name, err)
				}
			} else {
				opts.Implementation = Userspace
			}
		}
	}
	if opts.Implementation != Userspace {
		err := d.openKernel(opts.MTU)
		switch {
		case err == nil:
			d.impl = Kernel
		case opts.Implementation == Kernel || !errors.Is(err, errNoKernel):
			return fmt.Errorf("wireguard %s: %w", opts.Name, err)
		default:
			d.log.Info("no kernel WireGuard here: using userspace wireguard-go", "reason", err)
		}
	}
	if d.impl == "" && procs != nil {
		if err := d.openProcess(procs, opts); err != nil {
			return fmt.Errorf("wireguard %s: userspace: %w", opts.Name, err)
		}
		d.impl = Userspace
	}
	if d.impl == "" {
		if err := d.openUserspace(opts.MTU); err != nil {
			return fmt.Errorf("wireguard %s: userspace: %w", opts.Name, err)
		}
		d.impl = Userspace
	}
	// wgctrl's netlink socket must live in the interface's namespace; its userspace client
	// dials the UAPI socket by path, which works from anywhere.
	return d.do(func() error {
		c, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("wireguard %s: wgctrl: %w", opts.Name, err)
		}
		d.client = c
		return nil
	})
}

// errNoKernel marks the kernel lacking WireGuard (the cue to fall back to userspace).
var errNoKernel = errors.New("kernel WireGuard unavailable")

func (d *Device) openKernel(mtu int) error {
	return d.do(func() error {
		err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: d.name, MTU: mtu}})
		if errors.Is(err, syscall.EEXIST) {
			link, lerr := netlink.LinkByName(d.name)
			if lerr != nil {
				return fmt.Errorf("link %s: %w", d.name, lerr)
			}
			if link.Type() != "wireguard" {
				return fmt.Errorf("link %s exists and is a %s, not a kernel wireguard link (another process's userspace device?)", d.name, link.Type())
			}
			if link.Attrs().MTU != mtu {
				if err := netlink.LinkSetMTU(link, mtu); err != nil {
					return fmt.Errorf("link %s: MTU: %w", d.name, err)
				}
			}
		} else if err != nil {
			return fmt.Errorf("%w: ip link add %s type wireguard: %w", errNoKernel, d.name, err)
		}
		link, err := netlink.LinkByName(d.name)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err != nil {
			return fmt.Errorf("link %s up: %w", d.name, err)
		}
		return nil
	})
}

func (d *Device) openUserspace(mtu int) error {
	var t tun.Device
	err := d.do(func() error {
		var err error
		// The TUN and its netlink watcher are made in the namespace this thread is in.
		t, err = tun.CreateTUN(d.name, mtu)
		return err
	})
	if err != nil {
		return fmt.Errorf("create TUN: %w", err)
	}
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { d.log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { d.log.Info(fmt.Sprintf(format, args...)) },
	}
	// The device owns t from here: Close closes it.
	d.dev = device.NewDevice(t, &netnsBind{Bind: conn.NewDefaultBind(), do: d.do}, logger)
	f, err := ipc.UAPIOpen(d.name)
	if err != nil {
		return fmt.Errorf("UAPI socket: %w", err)
	}
	l, err := ipc.UAPIListen(d.name, f)
	f.Close()
	if err != nil {
		return fmt.Errorf("UAPI socket: %w", err)
	}
	d.uapi = l
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go d.dev.IpcHandle(c)
		}
	}()
	err = d.do(func() error {
		link, err := netlink.LinkByName(d.name)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("link %s up: %w", d.name, err)
	}
	return d.dev.Up()
}

// openProcess adopts or starts the device process and gives its interface the MTU.
func (d *Device) openProcess(procs *osProcs, opts Options) error {
	d.sup = newSupervisor(procs, d.log, opts.Process.OnRestart)
	adopted, err := d.sup.open()
	if err != nil {
		d.sup = nil
		return err
	}
	if adopted {
		d.log.Info("adopted the running WireGuard device process", "pid", d.sup.PID())
	} else {
		d.log.Info("started the WireGuard device process", "pid", d.sup.PID(), "binary", procs.bin)
	}
	return d.do(func() error {
		link, err := netlink.LinkByName(d.name)
		if err == nil && link.Attrs().MTU != opts.MTU {
			err = netlink.LinkSetMTU(link, opts.MTU)
		}
		if err != nil {
			return fmt.Errorf("link %s: MTU: %w", d.name, err)
		}
		return nil
	})
}

// PID is the device process's PID (0: kernel WireGuard or embedded in this process).
func (d *Device) PID() int {
	if d.sup == nil {
		return 0
	}
	return d.sup.PID()
}

// netnsBind opens wireguard-go's UDP sockets in the device's namespace, whichever goroutine
// (the UAPI handler, on a listen-port change) asks: a socket stays in the namespace it was
// made in.
type netnsBind struct {
	conn.Bind
	do func(func() error) error
}

func (b *netnsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = b.do(func() error {
		var err error
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}

// do runs fn in the device's namespace (on a locked thread), or directly when it has none.
func (d *Device) do(fn func() error) error {
	if d.ns == nil {
		return fn()
	}
	return d.ns.Do(func(ns.NetNS) error { return fn() })
}

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Implementation says whether the kernel or embedded wireguard-go runs the device.
func (d *Device) Implementation() Implementation { return d.impl }

// Config is the whole desired configuration of a Device.
type Config struct {
	// PrivateKey is this host's key (LoadOrCreateKey).
	PrivateKey Key
	// ListenPort is the UDP port (1-65535); 0 keeps the current one (a random one at first).
	ListenPort int
	// Peers is the complete set of peers: any other peer of the device is removed.
	Peers []Peer
}

// Peer is the desired configuration of one peer.
type Peer struct {
	// PublicKey identifies the peer.
	PublicKey Key
	// Endpoint is where to send to it; the zero value leaves the endpoint WireGuard has learnt
	// from the peer's authenticated packets (none at first: then only the peer can start).
	Endpoint netip.AddrPort
	// AllowedIPs are the destinations routed to the peer and the only sources accepted from it
	// (cryptokey routing). A prefix may belong to one peer only.
	AllowedIPs []netip.Prefix
	// PersistentKeepalive (whole seconds, 0 = off) keeps NAT and firewall state alive.
	PersistentKeepalive time.Duration
}

// validate checks cfg: what WireGuard would refuse, or silently resolve against our intent
// (one prefix given to two peers: the last would take it).
func (cfg Config) validate() error {
	if cfg.PrivateKey == (Key{}) {
		return errors.New("no private key")
	}
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		return fmt.Errorf("listen port %d: want 0-65535", cfg.ListenPort)
	}
	self := cfg.PrivateKey.PublicKey()
	keys := map[Key]bool{}
	owner := map[netip.Prefix]Key{}
	for _, p := range cfg.Peers {
		switch {
		case p.PublicKey == (Key{}):
			return errors.New("peer without public key")
		case p.PublicKey == self:
			return fmt.Errorf("peer %s: that is this device's own public key", p.PublicKey)
		case keys[p.PublicKey]:
			return fmt.Errorf("peer %s: listed twice", p.PublicKey)
		case p.Endpoint.IsValid() && (p.Endpoint.Port() == 0 || p.Endpoint.Addr().IsUnspecified()):
			return fmt.Errorf("peer %s: endpoint %s: want an address and a port", p.PublicKey, p.Endpoint)
		case p.PersistentKeepalive < 0 || p.PersistentKeepalive > 65535*time.Second || p.PersistentKeepalive%time.Second != 0:
			return fmt.Errorf("peer %s: keepalive %s: want whole seconds, 0-65535", p.PublicKey, p.PersistentKeepalive)
		}
		keys[p.PublicKey] = true
		for _, a := range p.AllowedIPs {
			if !a.IsValid() || a != a.Masked() || a.Addr().Is4In6() {
				return fmt.Errorf("peer %s: allowed IP %s: want a network prefix without host bits", p.PublicKey, a)
			}
			if o, ok := owner[a]; ok {
				return fmt.Errorf("allowed IP %s given to two peers (%s and %s)", a, o, p.PublicKey)
			}
			owner[a] = p.PublicKey
		}
	}
	return nil
}

// Set makes the device's configuration equal to cfg, changing only what differs (nothing at
// all when it already matches: sessions and counters are kept), in one configuration call.
// It reports whether anything changed. Invalid cfg is refused with an error and changes nothing.
func (d *Device) Set(cfg Config) (changed bool, err error) {
	if err := cfg.validate(); err != nil {
		return false, fmt.Errorf("wireguard %s: %w", d.name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false, fmt.Errorf("wireguard %s: closed", d.name)
	}
	cur, err := d.client.Device(d.name)
	if err != nil {
		return false, fmt.Errorf("wireguard %s: read configuration: %w", d.name, err)
	}
	want := diff(cur, cfg)
	if want == nil {
		return false, nil
	}
	if err := d.client.ConfigureDevice(d.name, *want); err != nil {
		return false, fmt.Errorf("wireguard %s: configure: %w", d.name, err)
	}
	return true, nil
}

// diff returns the configuration call that turns cur into cfg, or nil when they match.
func diff(cur *wgtypes.Device, cfg Config) *wgtypes.Config {
	var out wgtypes.Config
	changed := false
	if cur.PrivateKey != cfg.PrivateKey {
		k := cfg.PrivateKey
		out.PrivateKey, changed = &k, true
	}
	if cfg.ListenPort != 0 && cur.ListenPort != cfg.ListenPort {
		port := cfg.ListenPort
		out.ListenPort, changed = &port, true
	}
	have := map[Key]wgtypes.Peer{}
	for _, p := range cur.Peers {
		have[p.PublicKey] = p
	}
	wanted := map[Key]bool{}
	for _, p := range cfg.Peers {
		wanted[p.PublicKey] = true
	}
	// Removals first, so that a prefix moving between peers is free when it is added.
	for _, p := range cur.Peers {
		if !wanted[p.PublicKey] {
			out.Peers = append(out.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
		}
	}
	for _, p := range cfg.Peers {
		h, exists := have[p.PublicKey]
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey}
		need := !exists
		if p.Endpoint.IsValid() && (!exists || addrPort(h.Endpoint) != p.Endpoint) {
			pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
			need = true
		}
		if want := sortedPrefixes(p.AllowedIPs); !exists || !slices.Equal(want, prefixes(h.AllowedIPs)) {
			pc.ReplaceAllowedIPs = true
			for _, a := range want {
				pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
			}
			need = true
		}
		if !exists || h.PersistentKeepaliveInterval != p.PersistentKeepalive {
			ka := p.PersistentKeepalive
			pc.PersistentKeepaliveInterval = &ka
			need = true
		}
		if need {
			out.Peers = append(out.Peers, pc)
		}
	}
	if !changed && len(out.Peers) == 0 {
		return nil
	}
	return &out
}

func addrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// prefixes converts what wgctrl reports into sorted netip prefixes.
func prefixes(nets []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(nets))
	for _, n := range nets {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		ones, _ := n.Mask.Size()
		out = append(out, netip.PrefixFrom(a, ones).Masked())
	}
	return sortedPrefixes(out)
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// Status is the device as `wg show` reports it.
type Status struct {
	Name           string
	Implementation Implementation
	PID            int // the device process (userspace in a process of its own), else 0
	PublicKey      Key // zero before the first Set
	ListenPort     int
	Peers          []PeerStatus // sorted by public key
}

// PeerStatus is one peer's state.
type PeerStatus struct {
	PublicKey           Key
	Endpoint            netip.AddrPort // zero: not known yet
	AllowedIPs          []netip.Prefix
	LastHandshake       time.Time // zero: never
	RxBytes, TxBytes    int64
	PersistentKeepalive time.Duration
}

// Status reads the device's current state.
func (d *Device) Status() (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Status{}, fmt.Errorf("wireguard %s: closed", d.name)
	}
	cur, err := d.client.Device(d.name)
	if err != nil {
		return Status{}, fmt.Errorf("wireguard %s: status: %w", d.name, err)
	}
	st := Status{Name: d.name, Implementation: d.impl, PID: d.PID(), PublicKey: cur.PublicKey, ListenPort: cur.ListenPort}
	for _, p := range cur.Peers {
		ps := PeerStatus{PublicKey: p.PublicKey, Endpoint: addrPort(p.Endpoint), AllowedIPs: prefixes(p.AllowedIPs),
			RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes, PersistentKeepalive: p.PersistentKeepaliveInterval}
		if !p.LastHandshakeTime.IsZero() && p.LastHandshakeTime.Unix() > 0 {
			ps.LastHandshake = p.LastHandshakeTime
		}
		st.Peers = append(st.Peers, ps)
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int { return strings.Compare(a.PublicKey.String(), b.PublicKey.String()) })
	return st, nil
}

// Close releases the device. An embedded userspace device stops and its interface goes away
// with its UAPI socket. A kernel link, and a device process, are left running with their
// configuration, so traffic keeps flowing while fabricd restarts (the next Open takes them
// over); Delete removes them.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.release()
}

// Delete removes the interface, kernel or userspace, and closes the device (fabricd left the
// fabric); a device process is stopped. After Close it is a no-op for an embedded userspace
// device (already gone) and an error for a kernel one or a device process.
func (d *Device) Delete() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		if d.impl == Userspace && d.sup == nil {
			return nil // Close removed it already
		}
		return fmt.Errorf("wireguard %s: closed; the kernel link or device process is left: Open it again to delete it", d.name)
	}
	var err error
	if d.impl == Kernel {
		err = d.do(func() error {
			link, err := netlink.LinkByName(d.name)
			if err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					return nil
				}
				return err
			}
			return netlink.LinkDel(link)
		})
		if err != nil {
			err = fmt.Errorf("wireguard %s: delete link: %w", d.name, err)
		}
	}
	if d.sup != nil {
		// The supervisor stays (stopped): PID keeps naming the process it ended.
		if serr := d.sup.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("wireguard %s: %w", d.name, serr))
		}
	}
	d.closed = true
	return errors.Join(err, d.release())
}

// release frees what the device holds (idempotent over partial opens).
func (d *Device) release() error {
	var errs []error
	if d.client != nil {
		errs = append(errs, d.client.Close())
		d.client = nil
	}
	if d.sup != nil {
		d.sup.detach() // the process runs on: the next Open adopts it
	}
	if d.uapi != nil {
		// Closing the listener also unlinks the socket file.
		errs = append(errs, d.uapi.Close())
		<-d.done
		d.uapi = nil
	}
	if d.dev != nil {
		d.dev.Close() // closes the TUN: the interface goes away
		d.dev = nil
	}
	if d.ns != nil {
		errs = append(errs, d.ns.Close())
		d.ns = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wireguard %s: close: %w", d.name, err)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/ \t\n:%") {
		return fmt.Errorf("wireguard interface name %q: want 1-15 bytes, no '/', ':', '%%' or space", name)
	}
	return nil
}
