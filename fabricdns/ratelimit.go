package fabricdns

import (
	"net/netip"
	"sync"
	"time"
)

// maxClients bounds the limiter's memory: a flood from many (spoofed) sources cannot grow it
// past this; beyond it, unknown clients are dropped until idle buckets are swept.
const maxClients = 1 << 16

// limiter is a token bucket per client address.
type limiter struct {
	rate, burst float64 // tokens per second, bucket size; rate <= 0 disables the limiter

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if burst < 1 {
		burst = 1
	}
	return &limiter{rate: rate, burst: float64(burst), buckets: map[netip.Addr]*bucket{}}
}

// allow takes one token from client's bucket and reports whether there was one.
func (l *limiter) allow(client netip.Addr, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= maxClients || now.Sub(l.lastSweep) > time.Minute {
			l.sweep(now)
		}
		if len(l.buckets) >= maxClients {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled: a full bucket is the same as no bucket.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for a, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, a)
		}
	}
}
