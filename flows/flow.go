package flows

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/digitalocean/go-openvswitch/ovs"
)

// Flow is one OpenFlow flow in ovs-ofctl syntax, a comparable value. Plan writes Match and
// Actions in the spelling `ovs-ofctl dump-flows` prints; Reconcile compares a desired and an
// installed flow after normalizing both (match fields in any order, actions as go-openvswitch
// parses and re-marshals them).
type Flow struct {
	// Table is the OpenFlow table (0-254).
	Table int
	// Priority is the flow's priority (0-65535).
	Priority int
	// Cookie identifies the flow: CookieBase, its Purpose and its ID (see makeCookie).
	Cookie uint64
	// Match is the match in ovs-ofctl syntax without table, priority and cookie, e.g.
	// "ip,nw_dst=10.244.7.0/24"; empty matches every packet.
	Match string
	// Actions are the actions in ovs-ofctl syntax, e.g. "dec_ttl,output:3".
	Actions string
}

// Purpose is what the flow is for, from its cookie.
func (f Flow) Purpose() Purpose { return PurposeOf(f.Cookie) }

// String is the flow as one ovs-ofctl add-flow argument, e.g.
// "table=10,priority=200,cookie=0xfab0003a1b2c3d4,ip,nw_dst=10.244.7.0/24,actions=dec_ttl,output:3".
func (f Flow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table=%d,priority=%d,cookie=%#x,", f.Table, f.Priority, f.Cookie)
	if f.Match != "" {
		b.WriteString(f.Match)
		b.WriteByte(',')
	}
	b.WriteString("actions=")
	b.WriteString(f.Actions)
	return b.String()
}

// normalized is a flow's comparable canonical form: match and actions parsed and re-marshaled
// by go-openvswitch, match fields sorted, so that a flow Plan wrote and the same flow as
// ovs-ofctl dumps it compare equal. go-openvswitch skips match fields it does not know, on
// both sides alike: such a field never makes two flows differ.
type normalized struct {
	table, priority int
	cookie          uint64
	match, actions  string
}

// normalize parses f with go-openvswitch and returns its canonical form.
func normalize(f Flow) (normalized, error) {
	text := "priority=" + strconv.Itoa(f.Priority) + ","
	if f.Match != "" {
		text += f.Match + ","
	}
	text += "actions=" + f.Actions
	var of ovs.Flow
	if err := of.UnmarshalText([]byte(text)); err != nil {
		return normalized{}, fmt.Errorf("flow %s: %w", f, err)
	}
	match, actions, err := fromOVS(&of)
	if err != nil {
		return normalized{}, fmt.Errorf("flow %s: %w", f, err)
	}
	return normalized{table: f.Table, priority: f.Priority, cookie: f.Cookie, match: sortedFields(match), actions: actions}, nil
}

// fromOVS renders a parsed go-openvswitch flow's match and actions back into ovs-ofctl syntax.
func fromOVS(of *ovs.Flow) (match, actions string, err error) {
	var m []string
	if of.Protocol != "" {
		m = append(m, string(of.Protocol))
	}
	switch {
	case of.InPort == ovs.PortLOCAL:
		m = append(m, "in_port=LOCAL")
	case of.InPort != 0:
		m = append(m, "in_port="+strconv.Itoa(of.InPort))
	}
	for _, x := range of.Matches {
		b, err := x.MarshalText()
		if err != nil {
			return "", "", fmt.Errorf("match %s: %w", x.GoString(), err)
		}
		m = append(m, string(b))
	}
	var a []string
	for _, x := range of.Actions {
		b, err := x.MarshalText()
		if err != nil {
			return "", "", fmt.Errorf("action %s: %w", x.GoString(), err)
		}
		a = append(a, string(b))
	}
	return strings.Join(m, ","), strings.Join(a, ","), nil
}

// sortedFields sorts the comma-separated fields of a match: OpenFlow matches are sets, and
// ovs-ofctl prints them in its own order.
func sortedFields(match string) string {
	if match == "" {
		return ""
	}
	f := strings.Split(match, ",")
	sort.Strings(f)
	return strings.Join(f, ",")
}

// equivalent reports whether a and b are the same flow once normalized: same table, priority
// and cookie, the same match fields in any order, and the same actions in the spelling
// go-openvswitch gives them. An error means one of them does not parse.
func equivalent(a, b Flow) (bool, error) {
	na, err := normalize(a)
	if err != nil {
		return false, err
	}
	nb, err := normalize(b)
	if err != nil {
		return false, err
	}
	return na == nb, nil
}
