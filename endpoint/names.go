package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
)

// maxAliases bounds an endpoint's aliases (a shared record must stay small).
const maxAliases = 32

// CheckName accepts an endpoint's DNS name or alias: one DNS label of 1–63 lower-case
// letters, digits, '-' and '_' (what Docker accepts in container names, less the dot: a
// dot would make NAME.NETWORK ambiguous), not starting or ending with '-'.
func CheckName(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("name %.80q: want 1 to 63 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %.80q: the character %q is not allowed (a DNS label: letters, digits, '-', '_')", s, c)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("name %q: starts or ends with '-'", s)
	}
	return nil
}

// parseNames checks the names an attach request gives (lower-cased, duplicates dropped);
// the error is an api.ErrInvalid (400).
func parseNames(name string, aliases []string) (string, []string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name != "" {
		if err := CheckName(name); err != nil {
			return "", nil, api.Errorf(api.ErrInvalid, "--name: %v", err)
		}
	}
	if len(aliases) > maxAliases {
		return "", nil, api.Errorf(api.ErrInvalid, "--alias: %d aliases, at most %d", len(aliases), maxAliases)
	}
	var out []string
	for _, a := range aliases {
		a = strings.ToLower(strings.TrimSpace(a))
		if err := CheckName(a); err != nil {
			return "", nil, api.Errorf(api.ErrInvalid, "--alias: %v", err)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return name, out, nil
}

// defaultName is the DNS name of an endpoint attached without --name: a Docker/Podman
// container's name, a netns path's base name, none for pid:PID, and none when that is not
// a DNS label (e.g. a container name with a dot).
func defaultName(kind TargetKind, t api.Target) string {
	var n string
	switch kind {
	case TargetContainer:
		n = strings.TrimPrefix(t.Name, "/")
	case TargetNetNS:
		n = filepath.Base(t.NetNS)
	default:
		return ""
	}
	n = strings.ToLower(n)
	if CheckName(n) != nil {
		return ""
	}
	return n
}

// decodeNames reads the names a port records; what does not check is dropped.
func decodeNames(name, aliases string) (string, []string) {
	if CheckName(name) != nil {
		name = ""
	}
	var out []string
	if aliases != "" {
		for _, a := range strings.Split(aliases, ",") {
			if CheckName(a) == nil && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return name, out
}

// sameNames says whether r carries the names an attach asks for (none asked: any).
func sameNames(r Record, name string, aliases []string) bool {
	if name != "" && r.Name != name {
		return false
	}
	return len(aliases) == 0 || slices.Equal(r.Aliases, aliases)
}

// api is r as the API shows it on this host: with the nameserver when fabricd serves DNS.
func (m *Manager) api(r Record) api.Attachment {
	a := r.API(m.s.Name, m.mtu)
	if m.s.DNS && a.Gateway != "" {
		a.Nameserver = a.Gateway
	}
	return a
}

// resolvMark is the first line of the resolv.conf files fabricd writes: what it may
// replace and remove.
const resolvMark = "# written by ovsfabric for the fabric DNS; removed on detach"

// namedNetNS is the name of a named network namespace (/var/run/netns/NAME,
// /run/netns/NAME), which `ip netns exec` gives /etc/netns/NAME/resolv.conf.
func (m *Manager) namedNetNS(path string) (string, bool) {
	dir, name := filepath.Split(filepath.Clean(path))
	dir = filepath.Clean(dir)
	if name == "" || (dir != filepath.Clean(m.netnsDir) && dir != "/run/netns" && dir != "/var/run/netns") {
		return "", false
	}
	return name, true
}

// writeResolvConf points a container at the fabric DNS (its gateway): a Docker/Podman
// container through its runtime's resolv.conf (see writeRuntimeResolvConf), a named netns
// through /etc/netns/NAME/resolv.conf unless that file exists and is not ours. It reports
// the file written ("" when none).
func (m *Manager) writeResolvConf(r Record) (string, error) {
	gw := r.Gateway()
	if !m.s.DNS || !gw.IsValid() {
		return "", nil
	}
	if r.ResolvConf != "" {
		return m.writeRuntimeResolvConf(r, gw.String())
	}
	name, ok := m.namedNetNS(r.NetNS)
	if !ok {
		return "", nil
	}
	dir := filepath.Join(m.etcNetnsDir(), name)
	file := filepath.Join(dir, "resolv.conf")
	if cur, err := os.ReadFile(file); err == nil && !bytes.HasPrefix(cur, []byte(resolvMark)) {
		return "", nil // the operator's own: left alone
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("resolv.conf for netns %s: %w", name, err)
	}
	body := fmt.Sprintf("%s\nnameserver %s\noptions ndots:0\n", resolvMark, gw)
	tmp := file + ".ovsfabric.tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("resolv.conf for netns %s: %w", name, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("resolv.conf for netns %s: %w", name, err)
	}
	return file, nil
}

// resolverAfterDetach points the container of a detached endpoint r at the fabric DNS of
// the endpoint it keeps on this host (rest: the host's other endpoints; the lowest
// interface name when several), or, when r was its last, takes fabricd's resolv.conf away.
func (m *Manager) resolverAfterDetach(r Record, rest []Record) {
	var next *Record
	for i, o := range rest {
		if o.NetNS != "" && o.NetNS == r.NetNS && (next == nil || o.IfName < next.IfName) {
			next = &rest[i]
		}
	}
	if next == nil {
		m.removeResolvConf(r)
		return
	}
	if _, err := m.writeResolvConf(*next); err != nil {
		m.log.Warn("point the container at the fabric DNS of its remaining network", "netns", r.NetNS, "network", next.Network, "err", err)
	}
}

// removeResolvConf undoes writeResolvConf for r's container: the runtime's resolv.conf of a
// Docker/Podman container is restored; the /etc/netns/NAME/resolv.conf of a named netns is
// removed if it is still ours, with its directory when that is left empty.
func (m *Manager) removeResolvConf(r Record) {
	if r.ResolvConf != "" {
		if err := m.restoreRuntimeResolvConf(r); err != nil {
			m.log.Warn("restore the container's resolv.conf", "container", r.Container, "file", r.ResolvConf, "err", err)
		}
		return
	}
	name, ok := m.namedNetNS(r.NetNS)
	if !ok {
		return
	}
	dir := filepath.Join(m.etcNetnsDir(), name)
	file := filepath.Join(dir, "resolv.conf")
	cur, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(cur, []byte(resolvMark)) {
		return
	}
	if err := os.Remove(file); err != nil {
		m.log.Warn("remove the resolv.conf of a detached netns", "file", file, "err", err)
		return
	}
	_ = os.Remove(dir) // only when empty
}

func (m *Manager) etcNetnsDir() string {
	if m.etcNetns != "" {
		return m.etcNetns
	}
	return "/etc/netns"
}
