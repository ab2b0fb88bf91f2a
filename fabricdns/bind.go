package fabricdns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrPortTaken is wrapped by the error of a listener whose address and port another socket
// holds.
var ErrPortTaken = errors.New("port taken")

// freebind lets a socket bind an address no interface has yet: fabricd opens the gateway's
// DNS socket before (or while) the gateway port gets its address.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting IP_FREEBIND: %w", serr)
	}
	return nil
}

// bindPair opens UDP and TCP sockets on addr:port with IP_FREEBIND. Port 0 lets the kernel
// pick the UDP port, and TCP then takes the same one.
func bindPair(ctx context.Context, addr netip.Addr, port int) (*net.UDPConn, *net.TCPListener, error) {
	lc := net.ListenConfig{Control: freebind}
	udpNet, tcpNet := "udp4", "tcp4"
	if addr.Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	tries := 1
	if port == 0 {
		tries = 5 // the TCP port may be taken when the kernel picked the UDP one
	}
	var err error
	for range tries {
		ap := netip.AddrPortFrom(addr, uint16(port))
		var pc net.PacketConn
		pc, err = lc.ListenPacket(ctx, udpNet, ap.String())
		if err != nil {
			return nil, nil, bindError("udp", ap, err)
		}
		udp := pc.(*net.UDPConn)
		ap = netip.AddrPortFrom(addr, udp.LocalAddr().(*net.UDPAddr).AddrPort().Port())
		var ln net.Listener
		ln, err = lc.Listen(ctx, tcpNet, ap.String())
		if err == nil {
			return udp, ln.(*net.TCPListener), nil
		}
		udp.Close()
		err = bindError("tcp", ap, err)
		if !errors.Is(err, ErrPortTaken) {
			break
		}
	}
	return nil, nil, err
}

// bindError says which address and port could not be bound, and by whom it is held when the
// port is taken and /proc tells cheaply.
func bindError(proto string, ap netip.AddrPort, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("fabricdns: listening on %s/%s: %w", ap, proto, err)
	}
	who := "another socket"
	if h := holder(proto, ap); h != "" {
		who = h
	}
	return fmt.Errorf("fabricdns: cannot listen on %s/%s: the port is held by %s (is another DNS server such as dnsmasq listening on all addresses?): %w: %w",
		ap, proto, who, ErrPortTaken, err)
}

// holder names the process holding proto port ap.Port() on ap's address or the wildcard,
// e.g. `"dnsmasq" (pid 812)`, from /proc of the calling thread's network namespace; "" when
// it cannot tell.
func holder(proto string, ap netip.AddrPort) string {
	file := proto
	if ap.Addr().Is6() {
		file += "6"
	}
	inodes := socketInodes(filepath.Join("/proc/thread-self/net", file), ap)
	if len(inodes) == 0 {
		return ""
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return fmt.Sprintf("%q (pid %d)", strings.TrimSpace(string(comm)), pid)
			}
		}
	}
	return ""
}

// socketInodes returns the inodes of the sockets in a /proc/net/{udp,tcp}[6] table bound to
// ap's port on ap's address or the wildcard address.
func socketInodes(path string, ap netip.AddrPort) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || uint16(port) != ap.Port() {
			continue
		}
		if a, ok := procAddr(hexAddr); ok && (a == ap.Addr() || a.IsUnspecified()) {
			out[fields[9]] = true
		}
	}
	return out
}

// procAddr decodes /proc/net's address: 32-bit words in host (little-endian on our targets)
// byte order.
func procAddr(h string) (netip.Addr, bool) {
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	n := len(h) / 2
	for w := 0; w < n/4; w++ {
		v, err := strconv.ParseUint(h[w*8:w*8+8], 16, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		b[w*4], b[w*4+1], b[w*4+2], b[w*4+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	if n == 4 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b).Unmap(), true
}
