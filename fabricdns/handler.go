package fabricdns

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// maxUDPSize is the largest UDP answer the server sends, whatever a client's EDNS buffer
// says: 1232 bytes avoid IP fragmentation (DNS flag day 2020); bigger answers set TC and
// the client retries over TCP.
const maxUDPSize = 1232

// query is one received message and where it came from.
type query struct {
	network string     // the network whose gateway it was sent to, or AnyNetwork
	client  netip.Addr // its source address
	raw     []byte     // the message; not kept past respond
	tcp     bool
}

// pending is a query to forward upstream: only what the forwarder needs, copied out of the
// parsed request.
type pending struct {
	id       uint16
	question dns.Question
	rd, cd   bool
	edns     bool // the client sent OPT, so the answer may carry one (and an EDE)
	do       bool
	limit    int // the client's answer size limit
}

// handle answers one query, forwarding it when needed; nil means drop it.
func (s *Server) handle(ctx context.Context, q query) []byte {
	resp, fwd := s.respond(q)
	if fwd != nil {
		return s.forward(ctx, fwd)
	}
	return resp
}

// respond answers q from the directory, or returns what to forward. It never returns a
// refusal or an error larger than the query, so the server cannot amplify a spoofed one.
func (s *Server) respond(q query) ([]byte, *pending) {
	raw := q.raw
	if len(raw) < 12 || raw[2]&0x80 != 0 {
		// No header to answer, or a response: answering responses invites loops.
		s.stats.dropped.Add(1)
		return nil, nil
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		s.stats.malformed.Add(1)
		return headerOnly(raw, dns.RcodeFormatError), nil
	}
	if req.Opcode != dns.OpcodeQuery {
		s.stats.malformed.Add(1)
		return s.small(raw, req, dns.RcodeNotImplemented), nil
	}
	if len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Ns) > 0 {
		s.stats.malformed.Add(1)
		return s.small(raw, req, dns.RcodeFormatError), nil
	}
	if q.network == AnyNetwork {
		q.network = s.clientNetwork(q.client)
	}
	if q.network == "" || !s.dir.Contains(q.network, q.client) {
		s.stats.refused.Add(1)
		return s.small(raw, req, dns.RcodeRefused), nil
	}
	opt := req.IsEdns0()
	if opt != nil && opt.Version() != 0 {
		s.stats.malformed.Add(1)
		resp := new(dns.Msg).SetReply(req)
		resp.Question = nil
		resp.SetEdns0(maxUDPSize, false)
		resp.Rcode = dns.RcodeBadVers
		return s.fit(raw, resp, len(raw)), nil
	}
	qs := req.Question[0]
	switch {
	case qs.Qtype == dns.TypeNone || qs.Qclass == 0 ||
		qs.Qtype == dns.TypeOPT || qs.Qtype == dns.TypeTSIG || qs.Qtype == dns.TypeTKEY:
		// Missing type or class, or a meta type that is never a question.
		s.stats.malformed.Add(1)
		return s.small(raw, req, dns.RcodeFormatError), nil
	case qs.Qclass != dns.ClassINET,
		qs.Qtype == dns.TypeAXFR || qs.Qtype == dns.TypeIXFR || qs.Qtype == dns.TypeMAILA || qs.Qtype == dns.TypeMAILB:
		s.stats.refused.Add(1)
		return s.small(raw, req, dns.RcodeRefused), nil
	}

	limit := dns.MaxMsgSize
	if !q.tcp {
		limit = dns.MinMsgSize
		if opt != nil {
			limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}
	resp, local := s.local(q.network, req, qs)
	if !local || resp.Rcode == dns.RcodeNameError {
		// A container on several networks resolves the names of each: a name its
		// network's server does not know is looked up on its other networks.
		for _, other := range s.dir.Also(q.client) {
			if r, ok := s.local(other, req, qs); ok && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				resp, local = r, true
				break
			}
		}
	}
	if !local {
		s.stats.forwarded.Add(1)
		p := &pending{id: req.Id, question: qs, rd: req.RecursionDesired, cd: req.CheckingDisabled, edns: opt != nil, limit: limit}
		if opt != nil {
			p.do = opt.Do()
		}
		return nil, p
	}
	s.stats.answered.Add(1)
	if opt != nil {
		resp.SetEdns0(maxUDPSize, false)
	}
	return s.fit(nil, resp, limit), nil
}

// local answers qs from the directory; false means the name is not the fabric's and goes
// upstream.
func (s *Server) local(network string, req *dns.Msg, qs dns.Question) (*dns.Msg, bool) {
	network = canonical(network)
	name := canonical(qs.Name)
	resp := new(dns.Msg).SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: qs.Name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
	}

	if addr, ok := reverseName(name); ok {
		names := s.dir.Reverse(network, addr)
		if len(names) == 0 {
			if s.dir.Owned(addr) {
				// The fabric's address space never leaves the host: an address of this
				// network nobody holds and one of another network get the same answer.
				resp.Rcode = dns.RcodeNameError
				return resp, true
			}
			return nil, false
		}
		if qs.Qtype == dns.TypePTR || qs.Qtype == dns.TypeANY {
			for _, n := range names {
				resp.Answer = append(resp.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: n + "." + network + "."})
			}
		}
		return resp, true
	}

	if name == "" {
		return nil, false // the root: upstream's business
	}
	addrs := s.dir.Lookup(network, name)
	suffixed := strings.HasSuffix(name, "."+network)
	if len(addrs) == 0 && suffixed {
		addrs = s.dir.Lookup(network, strings.TrimSuffix(name, "."+network))
	}
	if len(addrs) == 0 {
		dot := strings.LastIndexByte(name, '.')
		if dot < 0 || suffixed || s.dir.IsNetwork(name[dot+1:]) {
			// Single labels are container names and NAME.NETWORK is ours (another network's
			// too, answered as a name nobody has, so isolation leaks nothing): none goes out.
			resp.Rcode = dns.RcodeNameError
			return resp, true
		}
		return nil, false
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (qs.Qtype == dns.TypeA || qs.Qtype == dns.TypeANY):
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		case a.Is6() && (qs.Qtype == dns.TypeAAAA || qs.Qtype == dns.TypeANY):
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	// A known name without records of the asked type: NOERROR and no answer (NODATA).
	return resp, true
}

// forward asks the upstream resolvers in order, retrying over TCP a truncated UDP answer, and
// gives SERVFAIL with the reason when none answers.
func (s *Server) forward(ctx context.Context, p *pending) []byte {
	ctx, cancel := context.WithTimeout(ctx, forwardBudget)
	defer cancel()
	out := new(dns.Msg)
	out.Id = dns.Id()
	out.RecursionDesired = p.rd
	out.CheckingDisabled = p.cd
	out.Question = []dns.Question{p.question}
	out.SetEdns0(maxUDPSize, p.do)

	ups, err := s.up.get()
	var reasons []string
	if err != nil {
		reasons = append(reasons, err.Error())
	}
	var last *dns.Msg // a SERVFAIL or REFUSED from an upstream, kept in case no other does better
	for _, u := range ups {
		if s.listening(u.Addr()) {
			continue // the host's resolver is us: asking it would loop
		}
		in, err := s.exchange(ctx, "udp", out, u)
		if err == nil && in.Truncated {
			in, err = s.exchange(ctx, "tcp", out, u)
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", u, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if in.Rcode == dns.RcodeServerFailure || in.Rcode == dns.RcodeRefused {
			reasons = append(reasons, fmt.Sprintf("%s: %s", u, dns.RcodeToString[in.Rcode]))
			last = in
			continue
		}
		return s.relay(p, in)
	}
	if last != nil {
		return s.relay(p, last)
	}
	s.stats.forwardFailed.Add(1)
	if len(reasons) == 0 {
		reasons = append(reasons, "no upstream resolver")
	}
	resp := new(dns.Msg)
	resp.Id = p.id
	resp.Response = true
	resp.RecursionDesired = p.rd
	resp.RecursionAvailable = true
	resp.Question = []dns.Question{p.question}
	resp.Rcode = dns.RcodeServerFailure
	if p.edns {
		resp.SetEdns0(maxUDPSize, false)
		text := "fabricdns: no upstream answered: " + strings.Join(reasons, "; ")
		if len(text) > 200 {
			text = text[:200]
		}
		opt := resp.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority, ExtraText: text})
	}
	return s.fit(nil, resp, p.limit)
}

func (s *Server) exchange(ctx context.Context, network string, m *dns.Msg, u netip.AddrPort) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: s.fwTimeout, UDPSize: maxUDPSize}
	conn, err := c.DialContext(ctx, u.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// miekg/dns honours only the context's deadline; closing the socket makes a cancel
	// (server closing, listener removed) end the wait at once too.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	in, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if len(in.Question) != 1 || !strings.EqualFold(in.Question[0].Name, m.Question[0].Name) || in.Question[0].Qtype != m.Question[0].Qtype {
		return nil, fmt.Errorf("answer for another question")
	}
	return in, nil
}

// relay turns an upstream's answer into the client's: the client's ID and flags, the
// upstream's records without its OPT, fitted to the client's size limit.
func (s *Server) relay(p *pending, in *dns.Msg) []byte {
	resp := new(dns.Msg)
	resp.Id = p.id
	resp.Response = true
	resp.RecursionDesired = p.rd
	resp.CheckingDisabled = p.cd
	resp.RecursionAvailable = true
	resp.AuthenticatedData = in.AuthenticatedData
	resp.Rcode = in.Rcode
	resp.Question = []dns.Question{p.question}
	resp.Answer = in.Answer
	resp.Ns = in.Ns
	for _, rr := range in.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			resp.Extra = append(resp.Extra, rr)
		}
	}
	if p.edns {
		resp.SetEdns0(maxUDPSize, p.do)
	} else if resp.Rcode > 0xF {
		resp.Rcode = dns.RcodeServerFailure // an extended rcode needs the OPT the client did not send
	}
	return s.fit(nil, resp, p.limit)
}

// fit packs resp within limit bytes, truncating (TC) when the records do not fit; when
// capRaw is set (errors and refusals) the result is no larger than it, falling back to a
// bare header.
func (s *Server) fit(capRaw []byte, resp *dns.Msg, limit int) []byte {
	resp.Truncate(limit)
	resp.Compress = true
	b, err := resp.Pack()
	if err != nil || len(b) > limit {
		s.log.Debug("fabricdns packing answer", "err", err, "len", len(b))
		b = nil
	}
	if capRaw != nil && (b == nil || len(b) > len(capRaw)) {
		return headerOnly(capRaw, resp.Rcode&0xF)
	}
	if b == nil {
		r := &dns.Msg{MsgHdr: resp.MsgHdr}
		r.Rcode = dns.RcodeServerFailure
		r.Question = resp.Question
		b, _ = r.Pack()
	}
	return b
}

// small is an error answer to a parsed request: its question echoed when that fits within
// the query's own size, else a bare header.
func (s *Server) small(raw []byte, req *dns.Msg, rcode int) []byte {
	resp := new(dns.Msg).SetReply(req)
	resp.RecursionAvailable = true
	resp.Rcode = rcode
	return s.fit(raw, resp, len(raw))
}

// headerOnly answers a query it could not parse: its ID, opcode and RD bit, rcode, no
// sections: 12 bytes, never more than the query.
func headerOnly(raw []byte, rcode int) []byte {
	b := make([]byte, 12)
	copy(b, raw[:2])
	b[2] = 0x80 | raw[2]&0x79 // QR, opcode, RD
	b[3] = 0x80 | byte(rcode&0xF)
	return b
}

// reverseName decodes an in-addr.arpa or ip6.arpa name (canonical form) to its address.
func reverseName(name string) (netip.Addr, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			if len(p) == 0 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.Atoi(p)
			if err != nil || n > 255 {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		if len(v6) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := range 32 {
			c := v6[2*i]
			if 2*i+1 < len(v6) && v6[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var n byte
			switch {
			case c >= '0' && c <= '9':
				n = c - '0'
			case c >= 'a' && c <= 'f':
				n = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// Nibbles come least significant first.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= n << 4
			} else {
				b[pos/2] |= n
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
