package e2e

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
)

// tunnelPorts lists the ports of br-int that fabricd made as tunnels.
func tunnelPorts(t *testing.T, ctx context.Context, h *lab.Host) []string {
	t.Helper()
	out, err := h.Vsctl(ctx, "--bare", "--columns=name,external_ids", "find", "Interface", "external_ids:ovsfabric-role=tunnel")
	if err != nil {
		t.Fatalf("%s: find tunnels: %v", h.Name, err)
	}
	var names []string
	for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) > 0 && lines[0] != "" {
			names = append(names, strings.TrimSpace(lines[0]))
		}
	}
	sort.Strings(names)
	return names
}

// fabricRoutes lists the host's routes of fabricd's protocol, one line each.
func fabricRoutes(t *testing.T, ctx context.Context, h *lab.Host) []string {
	t.Helper()
	out, err := h.Run(ctx, "ip", "-4", "route", "show", "proto", "147")
	if err != nil {
		t.Fatalf("%s: ip route: %v", h.Name, err)
	}
	var rs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			rs = append(rs, l)
		}
	}
	sort.Strings(rs)
	return rs
}

var ovsVersionLine = regexp.MustCompile(`(?m)^\s*ovs_version:.*$`)

// vsctlShow is `ovs-vsctl show` on h without the version line.
func vsctlShow(t *testing.T, ctx context.Context, h *lab.Host) string {
	t.Helper()
	out, err := h.Vsctl(ctx, "show")
	if err != nil {
		t.Fatalf("%s: ovs-vsctl show: %v", h.Name, err)
	}
	return ovsVersionLine.ReplaceAllString(out, "")
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = check(); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
	return 0
}
