package fabricdns

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultResolvConf and SystemdResolvConf are where the host's resolvers are read from: the
// first names the resolvers, and when it names a local stub (systemd-resolved's 127.0.0.53),
// the second lists the stub's own upstreams.
const (
	DefaultResolvConf = "/etc/resolv.conf"
	SystemdResolvConf = "/run/systemd/resolve/resolv.conf"
)

// upstreamRecheck is how often the resolv.conf files are checked for changes (DHCP, VPNs and
// resolved rewrite them while fabricd runs).
const upstreamRecheck = 2 * time.Second

// parseResolvConf returns the nameserver addresses of a resolv.conf; lines it does not
// understand are skipped, as the C library does.
func parseResolvConf(r io.Reader) ([]netip.Addr, error) {
	var out []netip.Addr
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		if a = a.Unmap(); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading resolv.conf: %w", err)
	}
	return out, nil
}

func readResolvConf(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	addrs, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return addrs, nil
}

// resolveUpstreams reads the host's resolvers: resolvConf's nameservers, where a loopback
// stub is replaced by the stub's upstreams from stubConf when that file exists and names
// some (asking them directly saves a hop); otherwise the stub itself is used, which fabricd
// reaches because it runs in the host's namespace.
func resolveUpstreams(resolvConf, stubConf string) ([]netip.Addr, error) {
	addrs, err := readResolvConf(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("host resolvers: %w", err)
	}
	if !slices.ContainsFunc(addrs, netip.Addr.IsLoopback) || stubConf == "" {
		return addrs, nil
	}
	stubs, err := readResolvConf(stubConf)
	stubs = slices.DeleteFunc(stubs, netip.Addr.IsLoopback)
	if err != nil || len(stubs) == 0 {
		return addrs, nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if !a.IsLoopback() {
			out = append(out, a)
			continue
		}
		for _, s := range stubs {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// upstreams caches the host's resolvers and re-reads them when the files change.
type upstreams struct {
	fixed             []netip.AddrPort // from Config.Upstreams: used as they are
	resolvConf, stubs string
	log               *slog.Logger

	mu      sync.Mutex
	checked time.Time
	stamp   string
	list    []netip.AddrPort
	err     error
}

// get returns the current upstreams, or why there are none.
func (u *upstreams) get() ([]netip.AddrPort, error) {
	if len(u.fixed) > 0 {
		return u.fixed, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if !u.checked.IsZero() && now.Sub(u.checked) < upstreamRecheck {
		return u.list, u.err
	}
	u.checked = now
	stamp := fileStamp(u.resolvConf) + "|" + fileStamp(u.stubs)
	if stamp == u.stamp && (u.list != nil || u.err != nil) {
		return u.list, u.err
	}
	u.stamp = stamp
	addrs, err := resolveUpstreams(u.resolvConf, u.stubs)
	var list []netip.AddrPort
	for _, a := range addrs {
		list = append(list, netip.AddrPortFrom(a, DefaultPort))
	}
	if err == nil && len(list) == 0 {
		err = fmt.Errorf("no nameserver in %s", u.resolvConf)
	}
	if !slices.Equal(list, u.list) || (err == nil) != (u.err == nil) {
		u.log.Info("fabricdns upstream resolvers", "upstreams", list, "err", err)
	}
	u.list, u.err = list, err
	return list, err
}

// fileStamp identifies a file's version cheaply (resolvers replace it by rename, so the inode
// changes too).
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d", fi.Size(), fi.ModTime().UnixNano(), ino)
}
