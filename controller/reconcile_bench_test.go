package controller

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// scaleHost is host n0 of a fabric of peers+1 hosts serving nets networks besides default:
// the facts of its reconcile, its routed pipeline and the ports of its bridge as OVSDB shows
// them (the gateway, a tunnel per peer, one container on every network, default included).
type scaleHost struct {
	facts fabric.Facts
	pipe  pipeline
	ports []ovsdb.PortInfo
}

func newScaleHost(tb testing.TB, peers, nets int) scaleHost {
	tb.Helper()
	const node = "n0"
	now := time.Unix(1_800_000_000, 0)
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	f := fabric.Facts{
		Node: node, Underlay: netip.MustParseAddr("172.31.255.254"), UnderlayMTU: 1500,
		Subnet: fabric.NthSubnet(cluster, 24, 0), SubnetSince: 1, ClusterCIDR: cluster, Tunnel: fabric.TunnelVXLAN,
		Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev", Now: now, DeadPeerGrace: time.Minute,
	}
	for i := 1; i <= peers; i++ {
		f.Peers = append(f.Peers, fabric.Peer{Name: fmt.Sprintf("n%d", i), Underlay: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}),
			Subnet: fabric.NthSubnet(cluster, 24, i), SubnetSince: 1, State: fabric.PeerAlive, StateSince: now})
	}
	// Network k is 10.k.0.0/16; host i's slice of it 10.k.i.0/24.
	slice := func(k, i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k), byte(i), 0}), 24)
	}
	for k := range nets {
		n := fabric.NetworkFacts{Name: fmt.Sprintf("net%03d", k), Key: uint32(k + 1), CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k), 0, 0}), 16), Slice: slice(k, 0)}
		for i := 1; i <= peers; i++ {
			n.PeerSlices = append(n.PeerSlices, fabric.PeerSlice{Peer: fmt.Sprintf("n%d", i), Slice: slice(k, i)})
		}
		f.Networks = append(f.Networks, n)
	}
	d, err := fabric.Plan(f)
	if err != nil || len(d.Tunnels) != peers {
		tb.Fatalf("plan: %v, %d tunnels", err, len(d.Tunnels))
	}
	ids := func(role string, more map[string]string) map[string]string {
		m := map[string]string{ovsdb.KeyOwner: node, ovsdb.KeyRole: role}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	ports := []ovsdb.PortInfo{{Name: "fabric0", Bridge: "br-int", Type: "internal", ExternalIDs: ids(ovsdb.RoleGateway, nil),
		MACInUse: fabric.GatewayMAC(node).String(), Ofport: 1}}
	ofport := 2
	for _, t := range d.Tunnels {
		ports = append(ports, ovsdb.PortInfo{Name: t.Name, Bridge: "br-int", Type: "vxlan", ExternalIDs: ids(ovsdb.RoleTunnel, nil), Ofport: ofport})
		ofport++
	}
	for _, n := range d.Networks {
		ip := n.Gateway.Addr().Next()
		r := endpoint.Record{Port: fmt.Sprintf("vf%05d", ofport), Network: n.Name, Container: "c-" + n.Name, NetNS: "/var/run/netns/c-" + n.Name,
			IfName: "eth0", Addr: netip.PrefixFrom(ip, n.Gateway.Bits()), MAC: net.HardwareAddr{0x02, 0x42, 0, 0, byte(ofport >> 8), byte(ofport)}, OfportRequest: ofport}
		spec := r.PortSpec(node)
		ports = append(ports, ovsdb.PortInfo{Name: spec.Name, Bridge: "br-int", ExternalIDs: ids(ovsdb.RoleContainer, spec.ExternalIDs), OfportRequest: ofport, Ofport: ofport})
		ofport++
	}
	s := config.Settings{Config: config.Config{Name: node, Pipeline: config.PipelineRouted}, Cluster: cluster}
	return scaleHost{facts: f, pipe: newPipeline(s), ports: ports}
}

// noChange is the pure part of a reconcile pass that finds nothing to change: plan, the
// pipeline's flows, and their comparison with the flows the bridge was given last.
func (h scaleHost) noChange(applied []flows.Flow) ([]flows.Flow, bool, error) {
	d, err := fabric.Plan(h.facts)
	if err != nil {
		return nil, false, err
	}
	fs, err := h.pipe.flows(d, h.ports)
	if err != nil {
		return nil, false, err
	}
	return fs, sameFlows(fs, applied), nil
}

// TestNoChangeReconcileScale checks the input of BenchmarkReconcileNoChange100x100: every
// network is planned with every peer's slice, its flows hold a route per network and peer
// slice, and planning again compares equal.
func TestNoChangeReconcileScale(t *testing.T) {
	const peers, nets = 100, 100
	h := newScaleHost(t, peers, nets)
	d, err := fabric.Plan(h.facts)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Networks) != nets+1 {
		t.Fatalf("%d networks planned, want %d", len(d.Networks), nets+1)
	}
	for _, n := range d.Networks {
		if len(n.Peers) != peers {
			t.Fatalf("network %s: %d peer slices planned, want %d", n.Name, len(n.Peers), peers)
		}
	}
	fs, _, err := h.noChange(nil)
	if err != nil {
		t.Fatal(err)
	}
	toPeer := 0
	for _, f := range fs {
		if flows.PurposeOf(f.Cookie) == flows.PurposeToPeer {
			toPeer++
		}
	}
	if toPeer != (nets+1)*peers {
		t.Fatalf("%d to-peer flows of %d, want one per network and peer slice: %d", toPeer, len(fs), (nets+1)*peers)
	}
	if _, same, err := h.noChange(slices.Clone(fs)); err != nil || !same {
		t.Fatalf("planning again: same %v, %v", same, err)
	}
}

// BenchmarkReconcileNoChange100x100 times the pure part of a reconcile pass that finds
// nothing to change, for a host with 100 peers and 100 networks besides default, each with
// a slice of every peer (part=all), and each of its steps alone: fabric.Plan (part=plan),
// the routed pipeline's flows from the plan and the ports (part=flows), and the comparison
// with the flows applied last (part=compare). Besides ns/op (the mean) it reports the
// median of the calls (median-ns) and the number of flows.
func BenchmarkReconcileNoChange100x100(b *testing.B) {
	h := newScaleHost(b, 100, 100)
	d, err := fabric.Plan(h.facts)
	if err != nil {
		b.Fatal(err)
	}
	fs, err := h.pipe.flows(d, h.ports)
	if err != nil {
		b.Fatal(err)
	}
	applied := slices.Clone(fs)
	parts := []struct {
		name string
		run  func() error
	}{
		{"plan", func() error { _, err := fabric.Plan(h.facts); return err }},
		{"flows", func() error { _, err := h.pipe.flows(d, h.ports); return err }},
		{"compare", func() error {
			if !sameFlows(fs, applied) {
				return fmt.Errorf("the flows differ")
			}
			return nil
		}},
		{"all", func() error {
			_, same, err := h.noChange(applied)
			if err == nil && !same {
				err = fmt.Errorf("the flows differ")
			}
			return err
		}},
	}
	for _, p := range parts {
		b.Run("part="+p.name, func(b *testing.B) {
			b.ReportAllocs()
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				err := p.run()
				took = append(took, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "median-ns")
			b.ReportMetric(float64(len(fs)), "flows")
		})
	}
}
