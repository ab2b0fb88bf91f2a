package fabriclab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ovsfabric/ovsfabric/lab"
)

// Snapshot is everything fabricd keeps on one host, in a form two snapshots can be compared
// in: the fault suite takes one before a fault and one after recovery and requires them equal
// (or equal but for what the fault legitimately changed). Every list is sorted.
type Snapshot struct {
	Host string
	// Ports are the OVSDB ports of every bridge: "bridge port uuid=… ofport=… type=… ids…".
	Ports []string
	// Links are the host's network devices: "name kind mtu=… mac=… master=… up|down".
	Links []string
	// Addrs are the IPv4/IPv6 addresses of the host's devices: "dev addr/len".
	Addrs []string
	// Routes are the routes of fabricd's protocol (147).
	Routes []string
	// NFT is `nft list table ip ovsfabric` with counters removed (nil when there is none).
	NFT []string
	// Attachments is fabricctl ls (this host's containers) and Peers fabricctl peers without
	// the state-change times.
	Attachments []string
	Peers       []string
	// Subnet is the host's claim.
	Subnet string
}

// StableIDs returns the snapshot with OVSDB UUIDs and OpenFlow port numbers blanked: what
// must match when ports were legitimately re-created (a peer left and came back) but nothing
// may have leaked or changed otherwise.
func (s Snapshot) StableIDs() Snapshot {
	out := s
	out.Ports = make([]string, len(s.Ports))
	for i, p := range s.Ports {
		out.Ports[i] = volatileIDs.ReplaceAllString(p, "$1=*")
	}
	sort.Strings(out.Ports)
	return out
}

var volatileIDs = regexp.MustCompile(`\b(uuid|ofport)=\S+`)

// lines renders the snapshot as "section: item" lines, for Equal and Diff.
func (s Snapshot) lines() []string {
	var out []string
	add := func(sec string, items []string) {
		for _, it := range items {
			out = append(out, sec+": "+it)
		}
	}
	add("subnet", []string{s.Subnet})
	add("port", s.Ports)
	add("link", s.Links)
	add("addr", s.Addrs)
	add("route", s.Routes)
	add("nft", s.NFT)
	add("attachment", s.Attachments)
	add("peer", s.Peers)
	return out
}

// Equal reports whether two snapshots hold the same state.
func (s Snapshot) Equal(o Snapshot) bool { return s.Diff(o) == "" }

// Diff is a readable difference from s (before) to o (after): "- line" for what went away,
// "+ line" for what appeared, or "" when they are equal.
func (s Snapshot) Diff(o Snapshot) string {
	a, b := s.lines(), o.lines()
	inA, inB := map[string]int{}, map[string]int{}
	for _, l := range a {
		inA[l]++
	}
	for _, l := range b {
		inB[l]++
	}
	var out []string
	for _, l := range a {
		if inB[l] > 0 {
			inB[l]--
			continue
		}
		out = append(out, "- "+l)
	}
	inA2 := map[string]int{}
	for k, v := range inA {
		inA2[k] = v
	}
	for _, l := range b {
		if inA2[l] > 0 {
			inA2[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	if len(out) == 0 {
		return ""
	}
	return s.Host + ":\n" + strings.Join(out, "\n")
}

// Snapshot reads the host state of node n (fabricd must answer its API).
func (f *Fabric) Snapshot(ctx context.Context, n *Node) (Snapshot, error) {
	s, err := HostSnapshot(ctx, n.Host)
	if err != nil {
		return s, err
	}
	c := n.Client()
	st, err := c.Status(ctx)
	if err != nil {
		return s, fmt.Errorf("%s: status: %w", n.Host.Name, err)
	}
	s.Subnet = st.Subnet
	for _, p := range st.Peers {
		s.Peers = append(s.Peers, fmt.Sprintf("%s addr=%s subnet=%s state=%s tunnel=%s note=%q", p.Name, p.Addr, p.Subnet, p.State, p.Tunnel, p.Note))
	}
	sort.Strings(s.Peers)
	as, err := c.Attachments(ctx)
	if err != nil {
		return s, fmt.Errorf("%s: attachments: %w", n.Host.Name, err)
	}
	for _, a := range as {
		s.Attachments = append(s.Attachments, fmt.Sprintf("%s netns=%s if=%s ip=%s mac=%s gw=%s mtu=%d port=%s published=%v",
			a.Container, a.NetNS, a.IfName, a.IP, a.MAC, a.Gateway, a.MTU, a.Port, a.Published))
	}
	sort.Strings(s.Attachments)
	return s, nil
}

// Snapshots takes a snapshot of every running node, by host name.
func (f *Fabric) Snapshots(ctx context.Context) (map[string]Snapshot, error) {
	out := map[string]Snapshot{}
	for _, n := range f.Nodes() {
		s, err := f.Snapshot(ctx, n)
		if err != nil {
			return nil, err
		}
		out[n.Host.Name] = s
	}
	return out, nil
}

// DiffAll compares two sets of snapshots host by host ("" when equal); with stable, UUIDs and
// OpenFlow port numbers are ignored (Snapshot.StableIDs).
func DiffAll(before, after map[string]Snapshot, stable bool) string {
	var names []string
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		a, b := before[n], after[n]
		a.Host, b.Host = n, n
		if stable {
			a, b = a.StableIDs(), b.StableIDs()
		}
		if d := a.Diff(b); d != "" {
			out = append(out, d)
		}
	}
	return strings.Join(out, "\n")
}

// HostSnapshot reads what a host holds without asking fabricd: OVSDB ports, links,
// addresses, fabricd's routes and NAT table. Peers, Attachments and Subnet stay empty.
func HostSnapshot(ctx context.Context, h *lab.Host) (Snapshot, error) {
	s := Snapshot{Host: h.Name}
	var err error
	if s.Ports, err = ovsdbPorts(ctx, h); err != nil {
		return s, err
	}
	if s.Links, err = links(ctx, h); err != nil {
		return s, err
	}
	if s.Addrs, err = addrs(ctx, h); err != nil {
		return s, err
	}
	out, err := h.Run(ctx, "ip", "route", "show", "table", "all", "proto", "147")
	if err != nil {
		return s, err
	}
	s.Routes = nonEmptyLines(out)
	if s.NFT, err = nftTable(ctx, h); err != nil {
		return s, err
	}
	return s, nil
}

// ovsdbRows runs `ovs-vsctl -f json list TABLE` and returns the rows as column → value,
// each value rendered as text (maps and sets sorted).
func ovsdbRows(ctx context.Context, h *lab.Host, table string, columns ...string) ([]map[string]string, error) {
	out, err := h.Vsctl(ctx, "-f", "json", "--columns="+strings.Join(columns, ","), "list", table)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Headings []string            `json:"headings"`
		Data     [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("%s: ovs-vsctl list %s: %w", h.Name, table, err)
	}
	var rows []map[string]string
	for _, d := range doc.Data {
		row := map[string]string{}
		for i, v := range d {
			if i < len(doc.Headings) {
				row[doc.Headings[i]] = ovsdbText(v)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// ovsdbText renders an OVSDB JSON value: atoms as themselves, ["uuid",U] as U, sets as
// [a b], maps as {k=v …}, all sorted.
func ovsdbText(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return ovsdbValue(v)
}

func ovsdbValue(v any) string {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return fmt.Sprint(v)
	}
	kind, _ := arr[0].(string)
	switch kind {
	case "uuid", "named-uuid":
		return fmt.Sprint(arr[1])
	case "set":
		items, _ := arr[1].([]any)
		var out []string
		for _, it := range items {
			out = append(out, ovsdbValue(it))
		}
		sort.Strings(out)
		return "[" + strings.Join(out, " ") + "]"
	case "map":
		pairs, _ := arr[1].([]any)
		var out []string
		for _, p := range pairs {
			kv, _ := p.([]any)
			if len(kv) == 2 {
				out = append(out, ovsdbValue(kv[0])+"="+ovsdbValue(kv[1]))
			}
		}
		sort.Strings(out)
		return "{" + strings.Join(out, " ") + "}"
	}
	return fmt.Sprint(v)
}

// ovsdbPorts lists every bridge's ports with their interfaces' number, type and options.
func ovsdbPorts(ctx context.Context, h *lab.Host) ([]string, error) {
	bridges, err := ovsdbRows(ctx, h, "Bridge", "name", "ports")
	if err != nil {
		return nil, err
	}
	portBridge := map[string]string{}
	for _, b := range bridges {
		for _, u := range strings.Fields(strings.Trim(b["ports"], "[]")) {
			portBridge[u] = b["name"]
		}
	}
	ifaces, err := ovsdbRows(ctx, h, "Interface", "_uuid", "name", "type", "ofport", "options", "external_ids")
	if err != nil {
		return nil, err
	}
	byUUID := map[string]map[string]string{}
	for _, i := range ifaces {
		byUUID[i["_uuid"]] = i
	}
	ports, err := ovsdbRows(ctx, h, "Port", "_uuid", "name", "interfaces", "external_ids")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ports {
		line := fmt.Sprintf("%s %s uuid=%s ids=%s", portBridge[p["_uuid"]], p["name"], p["_uuid"], p["external_ids"])
		for _, u := range strings.Fields(strings.Trim(p["interfaces"], "[]")) {
			if i := byUUID[u]; i != nil {
				line += fmt.Sprintf(" iface=%s type=%q ofport=%s options=%s iface_ids=%s", i["name"], i["type"], i["ofport"], i["options"], i["external_ids"])
			}
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out, nil
}

// links lists the host's devices: name, kind, MTU, MAC, master and whether it is up.
func links(ctx context.Context, h *lab.Host) ([]string, error) {
	out, err := h.Run(ctx, "ip", "-d", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var ls []struct {
		Name     string   `json:"ifname"`
		MTU      int      `json:"mtu"`
		Address  string   `json:"address"`
		Master   string   `json:"master"`
		Flags    []string `json:"flags"`
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("%s: ip link: %w", h.Name, err)
	}
	var res []string
	for _, l := range ls {
		up := "down"
		for _, f := range l.Flags {
			if f == "UP" {
				up = "up"
			}
		}
		res = append(res, fmt.Sprintf("%s kind=%s mtu=%d mac=%s master=%s %s", l.Name, l.LinkInfo.Kind, l.MTU, l.Address, l.Master, up))
	}
	sort.Strings(res)
	return res, nil
}

// addrs lists the addresses of the host's devices (link-local IPv6 ones left out: the kernel
// makes them for every device that comes up).
func addrs(ctx context.Context, h *lab.Host) ([]string, error) {
	out, err := h.Run(ctx, "ip", "-j", "addr", "show")
	if err != nil {
		return nil, err
	}
	var ls []struct {
		Name  string `json:"ifname"`
		Addrs []struct {
			Local  string `json:"local"`
			Prefix int    `json:"prefixlen"`
			Scope  string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("%s: ip addr: %w", h.Name, err)
	}
	var res []string
	for _, l := range ls {
		for _, a := range l.Addrs {
			if a.Scope == "link" && strings.Contains(a.Local, ":") {
				continue
			}
			res = append(res, fmt.Sprintf("%s %s/%d", l.Name, a.Local, a.Prefix))
		}
	}
	sort.Strings(res)
	return res, nil
}

var nftCounter = regexp.MustCompile(`\s*counter packets \d+ bytes \d+`)

// nftTable is fabricd's nftables table without counters, one item per line
// (nil when the table does not exist).
func nftTable(ctx context.Context, h *lab.Host) ([]string, error) {
	out, err := h.Run(ctx, "nft", "list", "table", "ip", "ovsfabric")
	if err != nil {
		if strings.Contains(out, "No such file or directory") {
			return nil, nil
		}
		return nil, errors.Join(fmt.Errorf("%s: nft list table: %s", h.Name, strings.TrimSpace(out)), err)
	}
	return nonEmptyLines(nftCounter.ReplaceAllString(out, " counter")), nil
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Without returns the snapshot without every item that mentions one of substrs (a
// container's port name, address or namespace): what the host should hold once that
// container is gone.
func (s Snapshot) Without(substrs ...string) Snapshot {
	drop := func(items []string) []string {
		var out []string
	next:
		for _, it := range items {
			for _, sub := range substrs {
				if sub != "" && strings.Contains(it, sub) {
					continue next
				}
			}
			out = append(out, it)
		}
		return out
	}
	out := s
	out.Ports, out.Links, out.Addrs, out.Routes = drop(s.Ports), drop(s.Links), drop(s.Addrs), drop(s.Routes)
	out.NFT, out.Attachments, out.Peers = drop(s.NFT), drop(s.Attachments), drop(s.Peers)
	return out
}
