package fabric

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Claim is a node's claim on a per-host subnet. Competing claims are ordered by Seq, a
// logical clock, never by wall clocks: the lower Seq keeps the subnet, and on a tie the lower
// node name does (see Wins).
type Claim struct {
	Node   string
	Subnet netip.Prefix
	// Since is the wall-clock time the claim was made (Unix milliseconds, the claimant's
	// clock): shown to operators, and the order used against a claim without a Seq.
	Since int64
	// Seq is the claim's Lamport time: one more than the highest Seq its node had seen in any
	// claim when it made this one (see NextSeq), persisted with the claim. A claim made after
	// its node learnt of another claim therefore always orders after it, whatever the hosts'
	// clocks say. 0 means the claim comes from a node of the previous version, which announces
	// only Since.
	Seq uint64
}

// Wins reports whether claim c keeps its subnet over a competing claim o: the lower Seq wins,
// then the lower node name. When either claim has no Seq (a node of the previous version),
// both are ordered the way that version orders them, by Since then name, so that the old
// node and this one agree on the winner during a rolling upgrade.
func (c Claim) Wins(o Claim) bool {
	if c.Seq != 0 && o.Seq != 0 {
		if c.Seq != o.Seq {
			return c.Seq < o.Seq
		}
		return c.Node < o.Node
	}
	if c.Since != o.Since {
		return c.Since < o.Since
	}
	return c.Node < o.Node
}

// NextSeq is the Seq of a new claim made by a node that knows of claims with the given Seqs
// (its own previous claim included): one more than the highest, as in Lamport's rule.
func NextSeq(known ...uint64) uint64 {
	var hi uint64
	for _, q := range known {
		hi = max(hi, q)
	}
	return hi + 1
}

// SubnetCount is how many subnets of length bits the cluster CIDR holds.
func SubnetCount(cluster netip.Prefix, bits int) (int, error) {
	if err := checkSubnetBits(cluster, bits); err != nil {
		return 0, err
	}
	return 1 << (bits - cluster.Bits()), nil
}

func checkSubnetBits(cluster netip.Prefix, bits int) error {
	if !cluster.IsValid() || cluster != cluster.Masked() {
		return fmt.Errorf("cluster CIDR %s is not a network address", cluster)
	}
	if !cluster.Addr().Is4() {
		return fmt.Errorf("cluster CIDR %s: only IPv4 is supported", cluster)
	}
	if bits <= cluster.Bits() || bits > 30 {
		return fmt.Errorf("subnet prefix /%d must be longer than the cluster CIDR %s and at most /30", bits, cluster)
	}
	if bits-cluster.Bits() > 20 {
		return fmt.Errorf("subnet prefix /%d splits %s into more than 2^20 subnets", bits, cluster)
	}
	return nil
}

// NthSubnet is subnet number i (0-based) of length bits inside cluster.
func NthSubnet(cluster netip.Prefix, bits, i int) netip.Prefix {
	base := binary.BigEndian.Uint32(cluster.Addr().AsSlice())
	v := base + uint32(i)<<(32-bits)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

// ValidateSubnet checks that subnet is a network address of length bits inside cluster.
func ValidateSubnet(cluster netip.Prefix, bits int, subnet netip.Prefix) error {
	if err := checkSubnetBits(cluster, bits); err != nil {
		return err
	}
	if !subnet.IsValid() || subnet != subnet.Masked() {
		return fmt.Errorf("subnet %s is not a network address", subnet)
	}
	if subnet.Bits() != bits {
		return fmt.Errorf("subnet %s is not a /%d", subnet, bits)
	}
	if !cluster.Contains(subnet.Addr()) {
		return fmt.Errorf("subnet %s is outside the cluster CIDR %s", subnet, cluster)
	}
	return nil
}

// PickSubnet chooses a free subnet for node: it starts at a slot derived from the node's name,
// so a node tends to get the same subnet every time, and probes linearly past taken ones.
// taken reports whether a candidate overlaps a subnet already claimed by someone else.
func PickSubnet(node string, cluster netip.Prefix, bits int, taken func(netip.Prefix) bool) (netip.Prefix, error) {
	n, err := SubnetCount(cluster, bits)
	if err != nil {
		return netip.Prefix{}, err
	}
	sum := sha256.Sum256([]byte(node))
	start := int(binary.BigEndian.Uint32(sum[:4]) % uint32(n))
	for k := 0; k < n; k++ {
		cand := NthSubnet(cluster, bits, (start+k)%n)
		if !taken(cand) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("cluster CIDR %s is exhausted: all %d /%d subnets are claimed", cluster, n, bits)
}

// TakenBy returns a taken-function for PickSubnet over the given claims.
func TakenBy(claims []netip.Prefix) func(netip.Prefix) bool {
	return func(p netip.Prefix) bool {
		for _, c := range claims {
			if c.IsValid() && c.Overlaps(p) {
				return true
			}
		}
		return false
	}
}

// Conflict finds the claim among others that beats local for an overlapping subnet, if any.
// A node whose claim is beaten must give its subnet up (re-pick, or refuse a static one).
func Conflict(local Claim, others []Claim) (Claim, bool) {
	var winner Claim
	found := false
	for _, o := range others {
		if o.Node == local.Node || !o.Subnet.IsValid() || !o.Subnet.Overlaps(local.Subnet) {
			continue
		}
		if o.Wins(local) && (!found || o.Wins(winner)) {
			winner, found = o, true
		}
	}
	return winner, found
}

// claimIndex answers "which claim wins this subnet?" for many subnets at once: near O(1) per
// question when all claims share a prefix length (the normal case), instead of a scan.
type claimIndex struct {
	byLen map[int]map[netip.Prefix][]Claim
}

func newClaimIndex(claims []Claim) claimIndex {
	ix := claimIndex{byLen: map[int]map[netip.Prefix][]Claim{}}
	for _, c := range claims {
		if !c.Subnet.IsValid() {
			continue
		}
		m := ix.byLen[c.Subnet.Bits()]
		if m == nil {
			m = make(map[netip.Prefix][]Claim, len(claims))
			ix.byLen[c.Subnet.Bits()] = m
		}
		k := c.Subnet.Masked()
		m[k] = append(m[k], c)
	}
	return ix
}

// conflict is Conflict(local, claims) over the index.
func (ix claimIndex) conflict(local Claim) (Claim, bool) {
	var winner Claim
	found := false
	consider := func(o Claim) {
		if o.Node != local.Node && o.Subnet.Overlaps(local.Subnet) && o.Wins(local) && (!found || o.Wins(winner)) {
			winner, found = o, true
		}
	}
	for bits, m := range ix.byLen {
		if bits <= local.Subnet.Bits() {
			// A claim this long or shorter overlaps local only by containing it.
			for _, o := range m[netip.PrefixFrom(local.Subnet.Addr(), bits).Masked()] {
				consider(o)
			}
			continue
		}
		for _, cs := range m { // longer claims inside local: rare, scanned
			for _, o := range cs {
				consider(o)
			}
		}
	}
	return winner, found
}
