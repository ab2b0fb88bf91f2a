package fabricdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Port choices for [Config.Port].
const (
	// DefaultPort is DNS's port, what containers ask.
	DefaultPort = 53
	// AnyPort lets the kernel pick a free port per listener (tests); [Server.Addrs] tells it.
	AnyPort = -1
)

// MaxTTL is the longest TTL the server gives its own answers: names follow endpoints that
// come and go, so clients must not keep them long.
const MaxTTL = 5

// Defaults for the zero values of [Config].
const (
	DefaultForwardTimeout = 2 * time.Second
	DefaultRateLimit      = 500 // queries per second per client
	DefaultRateBurst      = 1000
)

const (
	maxInflight   = 1024            // forwarded queries waiting for upstreams, per server
	maxTCPConns   = 128             // open TCP connections per listener
	tcpIdle       = 5 * time.Second // a TCP client must send its next query within this
	forwardBudget = 5 * time.Second // all upstreams together, per query
)

// Config configures a [Server].
type Config struct {
	// Directory answers names; required.
	Directory Directory
	// Port is where to listen: 0 means [DefaultPort], [AnyPort] a kernel-chosen one.
	Port int
	// ResolvConf names the host's resolvers; empty means [DefaultResolvConf].
	ResolvConf string
	// StubResolvConf lists a local stub's upstreams; empty means [SystemdResolvConf].
	StubResolvConf string
	// Upstreams, when set, replaces the resolvers read from ResolvConf.
	Upstreams []netip.AddrPort
	// TTL of the server's own answers, capped at [MaxTTL]; 0 means MaxTTL.
	TTL uint32
	// ForwardTimeout bounds one attempt at one upstream; 0 means [DefaultForwardTimeout].
	ForwardTimeout time.Duration
	// RateLimit is the queries per second one client address may send; beyond it (after a
	// burst of RateBurst) its queries are dropped. 0 means the defaults, negative no limit.
	RateLimit float64
	RateBurst int
	// Logger, or slog.Default.
	Logger *slog.Logger
}

// Listener is one address to answer on: the gateway address of a network this host serves,
// or [WellKnownAddr] for [AnyNetwork].
type Listener struct {
	Network string
	Addr    netip.Addr
}

func (l Listener) String() string { return l.Network + "@" + l.Addr.String() }

// Stats counts queries since the server started.
type Stats struct {
	// Queries is every message received, well-formed or not.
	Queries uint64
	// Answered were answered from the directory (addresses, NODATA or NXDOMAIN).
	Answered uint64
	// Forwarded were sent to upstream resolvers; ForwardFailed of them got SERVFAIL because
	// none answered.
	Forwarded     uint64
	ForwardFailed uint64
	// Refused came from clients on none of the listener's network, or asked what the server
	// does not serve (classes other than IN, zone transfers).
	Refused uint64
	// Malformed got FORMERR or NOTIMP.
	Malformed uint64
	// Dropped got no answer: over a client's rate limit, too short to answer, a response
	// rather than a query, or the server overloaded.
	Dropped uint64
}

type counters struct {
	queries, answered, forwarded, forwardFailed, refused, malformed, dropped atomic.Uint64
}

// Server is the fabric's DNS server. Its methods are safe for concurrent use.
type Server struct {
	dir       Directory
	port      int
	ttl       uint32
	fwTimeout time.Duration
	log       *slog.Logger
	up        *upstreams
	limit     *limiter
	stats     counters
	inflight  chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	work      sync.WaitGroup                      // forwarded queries in flight
	own       atomic.Pointer[map[netip.Addr]bool] // listener addresses, read without s.mu
	nets      atomic.Pointer[[]string]            // listener networks but AnyNetwork, read without s.mu

	mu        sync.Mutex
	listeners map[Listener]*listener
	closed    bool
}

// New returns a server with no listeners; call [Server.Set] to open them.
func New(cfg Config) (*Server, error) {
	if cfg.Directory == nil {
		return nil, errors.New("fabricdns: no directory")
	}
	if cfg.Port < AnyPort || cfg.Port > 65535 {
		return nil, fmt.Errorf("fabricdns: port %d out of range", cfg.Port)
	}
	port := cfg.Port
	switch port {
	case 0:
		port = DefaultPort
	case AnyPort:
		port = 0
	}
	ttl := cfg.TTL
	if ttl == 0 || ttl > MaxTTL {
		ttl = MaxTTL
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit, cfg.RateBurst = DefaultRateLimit, DefaultRateBurst
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = max(1, int(2*cfg.RateLimit))
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if cfg.StubResolvConf == "" {
		cfg.StubResolvConf = SystemdResolvConf
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, u := range cfg.Upstreams {
		if !u.IsValid() || u.Port() == 0 {
			return nil, fmt.Errorf("fabricdns: invalid upstream %v", u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		dir:       cfg.Directory,
		port:      port,
		ttl:       ttl,
		fwTimeout: cfg.ForwardTimeout,
		log:       log,
		up:        &upstreams{fixed: cfg.Upstreams, resolvConf: cfg.ResolvConf, stubs: cfg.StubResolvConf, log: log},
		limit:     newLimiter(cfg.RateLimit, cfg.RateBurst),
		inflight:  make(chan struct{}, maxInflight),
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[Listener]*listener{},
	}, nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Queries: c.queries.Load(), Answered: c.answered.Load(), Forwarded: c.forwarded.Load(),
		ForwardFailed: c.forwardFailed.Load(), Refused: c.refused.Load(), Malformed: c.malformed.Load(),
		Dropped: c.dropped.Load(),
	}
}

// Set makes the server listen on exactly these listeners: it opens what is missing and
// closes what is no longer wanted, leaving the rest untouched. A listener that cannot be
// opened is reported in the joined error and tried again on the next call; the others
// are served regardless.
func (s *Server) Set(want []Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fabricdns: server closed")
	}
	wanted := make(map[Listener]bool, len(want))
	var errs []error
	for _, l := range want {
		l.Addr = l.Addr.Unmap()
		l.Network = canonical(l.Network)
		if !l.Addr.IsValid() || l.Network == "" {
			errs = append(errs, fmt.Errorf("fabricdns: invalid listener %v", l))
			continue
		}
		wanted[l] = true
	}
	for k, l := range s.listeners {
		if !wanted[k] {
			l.close()
			delete(s.listeners, k)
			s.log.Info("fabricdns stopped listening", "network", k.Network, "addr", l.addr)
		}
	}
	for k := range wanted {
		if s.listeners[k] != nil {
			continue
		}
		udp, tcp, err := bindPair(s.ctx, k.Addr, s.port)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", k.Network, err))
			continue
		}
		l := &listener{key: k, udp: udp, tcp: tcp, addr: udp.LocalAddr().(*net.UDPAddr).AddrPort(), conns: map[net.Conn]bool{}}
		l.ctx, l.cancel = context.WithCancel(s.ctx)
		l.addr = netip.AddrPortFrom(k.Addr, l.addr.Port())
		s.listeners[k] = l
		l.wg.Add(2)
		go s.serveUDP(l)
		go s.serveTCP(l)
		s.log.Info("fabricdns listening", "network", k.Network, "addr", l.addr)
	}
	s.noteAddrs()
	return errors.Join(errs...)
}

// Addrs returns the address and port each open listener is bound to.
func (s *Server) Addrs() map[Listener]netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Listener]netip.AddrPort, len(s.listeners))
	for k, l := range s.listeners {
		out[k] = l.addr
	}
	return out
}

// listening reports whether a is one of the server's own addresses (never an upstream: that
// would loop). It does not take s.mu: a TCP query being forwarded calls it while Set, holding
// s.mu, waits for that connection to end.
func (s *Server) listening(a netip.Addr) bool {
	own := s.own.Load()
	return own != nil && (*own)[a]
}

// noteAddrs publishes the listener addresses for listening; s.mu must be held.
func (s *Server) noteAddrs() {
	own := make(map[netip.Addr]bool, len(s.listeners))
	var nets []string
	for k := range s.listeners {
		own[k.Addr] = true
		if k.Network != AnyNetwork && !slices.Contains(nets, k.Network) {
			nets = append(nets, k.Network)
		}
	}
	s.own.Store(&own)
	s.nets.Store(&nets)
}

// clientNetwork is the network, among the listeners' (the networks this host serves), whose
// subnets hold client; "" when none does. Networks never overlap: at most one does.
func (s *Server) clientNetwork(client netip.Addr) string {
	nets := s.nets.Load()
	if nets == nil {
		return ""
	}
	for _, n := range *nets {
		if s.dir.Contains(n, client) {
			return n
		}
	}
	return ""
}

// Close stops every listener and waits for the queries in progress.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for k, l := range s.listeners {
		l.close()
		delete(s.listeners, k)
	}
	s.mu.Unlock()
	s.cancel()
	s.work.Wait()
	return nil
}

type listener struct {
	key    Listener
	addr   netip.AddrPort
	udp    *net.UDPConn
	tcp    *net.TCPListener
	wg     sync.WaitGroup
	ctx    context.Context // cancelled on close, so a TCP query being forwarded ends at once
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func (l *listener) close() {
	l.cancel()
	l.mu.Lock()
	l.closed = true
	l.udp.Close()
	l.tcp.Close()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

func (s *Server) serveUDP(l *listener) {
	defer l.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("fabricdns udp read", "addr", l.addr, "err", err)
			continue
		}
		s.stats.queries.Add(1)
		client := from.Addr().Unmap()
		if !s.limit.allow(client, time.Now()) {
			s.stats.dropped.Add(1)
			continue
		}
		q := query{network: l.key.Network, client: client, raw: buf[:n]}
		resp, fwd := s.respond(q)
		if fwd == nil {
			if resp != nil {
				_, _ = l.udp.WriteToUDPAddrPort(resp, from)
			}
			continue
		}
		// Forwarding waits on the network: off the read loop, bounded.
		select {
		case s.inflight <- struct{}{}:
		default:
			s.stats.dropped.Add(1)
			continue
		}
		s.work.Add(1)
		go func() {
			defer s.work.Done()
			defer func() { <-s.inflight }()
			if resp := s.forward(s.ctx, fwd); resp != nil {
				_, _ = l.udp.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
}

func (s *Server) serveTCP(l *listener) {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("fabricdns tcp accept", "addr", l.addr, "err", err)
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		l.mu.Lock()
		if l.closed || len(l.conns) >= maxTCPConns {
			l.mu.Unlock()
			c.Close()
			s.stats.dropped.Add(1)
			continue
		}
		l.conns[c] = true
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			s.serveConn(l, c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers the length-prefixed queries of one TCP connection in order, until the
// client goes idle, misbehaves or leaves.
func (s *Server) serveConn(l *listener, c net.Conn) {
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	var lenBuf [2]byte
	buf := make([]byte, 0, 512)
	for {
		_ = c.SetDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		s.stats.queries.Add(1)
		if !s.limit.allow(client, time.Now()) {
			s.stats.dropped.Add(1)
			return
		}
		resp := s.handle(l.ctx, query{network: l.key.Network, client: client, raw: buf, tcp: true})
		if resp == nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
