package fabricdns

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(10, 5)
	a, b := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
	now := time.Unix(1000, 0)
	allowed := 0
	for range 20 {
		if l.allow(a, now) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("a burst of 20 at once: %d allowed, want the bucket's 5", allowed)
	}
	if !l.allow(b, now) {
		t.Error("another client was limited by the first one's flood")
	}
	if l.allow(a, now.Add(50*time.Millisecond)) {
		t.Error("allowed before a token refilled (10/s: one per 100 ms)")
	}
	if !l.allow(a, now.Add(150*time.Millisecond)) {
		t.Error("not allowed after a token refilled")
	}
	// Refilled buckets are forgotten, so a flood of sources cannot grow the map for ever.
	l.allow(netip.MustParseAddr("10.1.0.3"), now.Add(time.Hour))
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after a sweep, want 1", len(l.buckets))
	}
	if off := newLimiter(-1, 0); !off.allow(a, now) || len(off.buckets) != 0 {
		t.Error("a disabled limiter limited or kept state")
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Unix(1000, 0)
	for i := range maxClients {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if l.allow(netip.MustParseAddr("192.0.2.1"), now) {
		t.Error("a new client was let in past maxClients fresh buckets")
	}
	if len(l.buckets) > maxClients {
		t.Errorf("%d buckets, over the bound %d", len(l.buckets), maxClients)
	}
	if !l.allow(netip.MustParseAddr("192.0.2.1"), now.Add(2*time.Second)) {
		t.Error("a new client was refused after the old buckets refilled")
	}
}
