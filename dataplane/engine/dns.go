package engine

import (
	"net/netip"
	"time"

	"github.com/openutm/utm/dataplane/dnsmsg"
	"github.com/openutm/utm/dataplane/quic"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/intel"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

func secs(s uint32) time.Duration { return time.Duration(s) * time.Second }

// udp inspects a UDP packet: DNS on port 53, QUIC (quic.go) from a
// client's Initial packet, anything else opaque.
func (e *Engine) udp(b *bundle.Bundle, st *flowState, dir int) {
	p := &e.p
	if st.app == appUnknown {
		switch {
		case p.DstPort == 53 || p.SrcPort == 53:
			st.app = appDNS
		case dir == 0 && quic.LooksInitial(p.Payload):
			st.app = appQUIC
		default:
			st.app = appOpaque
		}
	}
	if dir == 1 {
		st.established = true
	}
	if st.app == appQUIC {
		e.quicPacket(st, dir)
		return
	}
	if st.app != appDNS {
		return
	}
	e.dnsMessage(b, st, dir, p.Payload, false)
}

// dnsMessage inspects one DNS message of st, sent in direction dir: a
// query's name against the threat intelligence and the dns.query rules,
// an answer's addresses learned for the client when the name is listed.
// tcp: the message came over a TCP connection (its 2-byte length taken
// off), which a blocked lookup resets.
func (e *Engine) dnsMessage(b *bundle.Bundle, st *flowState, dir int, msg []byte, tcp bool) {
	m := &e.dns
	if err := m.Decode(msg); err != nil {
		e.stats.DNSMalformed.Add(1)
		return
	}
	name := m.Name()
	if len(name) == 0 {
		return
	}
	// The office host asking: a datagram's sender or addressee (whichever
	// way its flow was first seen), a connection's client.
	client := st.f.Client.Addr()
	if !tcp {
		client = e.p.Src
		if m.Response {
			client = e.p.Dst
		}
	}
	if !m.Response {
		e.stats.DNSQueries.Add(1)
		if b.Intel != nil {
			if ind, ok := b.Intel.LookupDomain(name); ok {
				if e.cfg.DNSBlock != DNSAlert {
					e.blockDNS(st, ind, m, msg, client, tcp)
					return
				}
				e.alertDNS(st, ind, m, client)
			}
		}
		in := e.input(st, dir)
		in.Buf[rules.BufDNSQuery] = name
		e.matchRules(b, st, in, nil)
		return
	}
	e.dnsAnswer(st, client, name, m.Rcode == dnsmsg.RcodeNXDomain) // heuristics.go
	if b.Intel == nil || len(m.Answers) == 0 {
		return
	}
	ind, ok := b.Intel.LookupDomain(name)
	if !ok {
		return
	}
	domain := string(name)
	for _, a := range m.Answers {
		e.learn(client, a.Addr, domain, ind, a.TTL)
	}
}

// dnsTCPMax is the longest DNS message over TCP that is inspected; a
// longer one (a zone transfer, a huge TXT answer) is passed uninspected and
// counted (dns_tcp_oversize). Queries are a few hundred bytes.
const dnsTCPMax = 4096

// dnsStream frames one direction of DNS over TCP (RFC 1035 4.2.2: each
// message after its 2-byte length), across segments.
type dnsStream struct {
	lenb [2]byte
	nlen int    // bytes of the length read
	want int    // the message's length, once read
	msg  []byte // its bytes so far, when it spans segments
	skip int    // bytes of an oversized message still to pass
}

// next frames the bytes of b up to the end of the next complete message
// and returns that message (a slice of b when it lies whole in b, else of
// s's buffer; nil when b ran out first) and the bytes after it. oversize:
// a message over dnsTCPMax began, to be passed over.
func (s *dnsStream) next(b []byte) (msg, rest []byte, oversize bool) {
	for len(b) > 0 {
		switch {
		case s.skip > 0:
			n := min(s.skip, len(b))
			s.skip -= n
			b = b[n:]
		case s.nlen < 2:
			s.lenb[s.nlen] = b[0]
			s.nlen++
			b = b[1:]
			if s.nlen < 2 {
				break
			}
			s.want, s.msg = int(s.lenb[0])<<8|int(s.lenb[1]), s.msg[:0]
			switch {
			case s.want == 0:
				s.nlen = 0
			case s.want > dnsTCPMax:
				s.skip, s.nlen = s.want, 0
				return nil, b, true
			}
		case len(s.msg) == 0 && len(b) >= s.want:
			s.nlen = 0
			return b[:s.want], b[s.want:], false
		default:
			n := min(s.want-len(s.msg), len(b))
			s.msg = append(s.msg, b[:n]...)
			b = b[n:]
			if len(s.msg) == s.want {
				s.nlen = 0
				return s.msg, b, false
			}
		}
	}
	return nil, nil, false
}

// dnsTCP inspects the in-order bytes of direction d of a DNS connection
// (TCP port 53): each message as a datagram's, until one is blocked.
func (st *flowState) dnsTCP(d int, b []byte) {
	e := st.e
	if st.dns == nil {
		st.dns = poolGet[[2]dnsStream](&e.dnsPool)
	}
	for len(b) > 0 && e.cur.verdict == Accept {
		msg, rest, oversize := st.dns[d].next(b)
		if oversize {
			e.stats.DNSTCPOversize.Add(1)
		}
		if msg != nil {
			e.dnsMessage(e.pb, st, d, msg, true)
		}
		b = rest
	}
}

// alertDNS raises the ★★ lookup alert. The lookup is let through: the
// connection that follows is what gets blocked, and the SOC sees both.
func (e *Engine) alertDNS(st *flowState, ind *intel.Indicator, m *dnsmsg.Msg, client netip.Addr) {
	if e.dnsAlertedRecently(client, m.Name()) {
		return
	}
	if ev := e.intelEvent(st, sidCNCDNS, string(m.Name()), ind, Accept, nil); ev != nil {
		ev.AppProto = "dns"
		dnsEvent(ev, m)
		e.emit(ev)
	}
}

// blockDNS answers a query for a listed domain in the resolver's place
// (NXDOMAIN, or the sinkhole address) and drops the query, so the client
// never learns the C&C address and never connects. Only this datagram is
// dropped: the flow may be an office DNS forwarder's, whose other lookups
// must go on. A blocked lookup of a listed domain is the infected host's
// attempt to call home, hence ★★★ (the connection that would have followed
// never happens to raise it). A lookup over TCP is not answered: its
// connection is reset.
func (e *Engine) blockDNS(st *flowState, ind *intel.Indicator, m *dnsmsg.Msg, msg []byte, client netip.Addr, tcp bool) {
	e.stats.DNSBlocked.Add(1)
	sink := e.cfg.Sinkhole4
	if m.QType == dnsmsg.TypeAAAA {
		sink = e.cfg.Sinkhole6
	}
	if e.cfg.DNSBlock != DNSSinkhole {
		sink = netip.Addr{}
	}
	done := "answered NXDOMAIN"
	if sink.IsValid() {
		done = "answered the sinkhole " + sink.String()
	}
	if tcp {
		e.verdict(Reject)
		done = "the connection was reset"
	} else {
		e.discard()
		e.replyDNS(st, msg, sink)
	}
	if e.dnsAlertedRecently(client, m.Name()) {
		return // the AAAA twin of an A query, or a retry: one alert a minute per host and name
	}
	ev := e.intelEvent(st, sidCNCDNS, string(m.Name()), ind, Accept, nil)
	if ev == nil {
		return
	}
	ev.AppProto = "dns"
	ev.Alert.Action = alert.ActionBlocked
	ev.Stars = 3
	ev.Summary = "Blocked a DNS lookup of C&C domain " + string(m.Name()) + " (listed as " + ind.Value + "): " + done + ", the host never gets the address; it is likely infected"
	if tcp && e.action(Reject) != alert.ActionBlocked { // the connection's last bytes, seen at its end
		ev.Alert.Action = alert.ActionAllowed
		ev.Summary = "Found a DNS lookup of C&C domain " + string(m.Name()) + " (listed as " + ind.Value + ") over TCP when the connection ended; the host is likely infected"
	}
	dnsEvent(ev, m)
	e.emit(ev)
}

// replyDNS answers the blocked query msg in the resolver's place, when the
// box can send a datagram.
func (e *Engine) replyDNS(st *flowState, msg []byte, sink netip.Addr) {
	r, ok := e.cfg.Reset.(UDPReplier)
	if !ok {
		return
	}
	var err error
	e.replyBuf, err = dnsmsg.AppendBlockReply(e.replyBuf[:0], msg, sink, sinkholeTTL)
	if err == nil {
		err = r.ReplyUDP(e.raw, e.replyBuf)
	}
	if err != nil {
		e.stats.ResetErrors.Add(1)
		e.log.Warn("could not answer a blocked DNS query; it is dropped, the client will retry and time out", "flow_id", st.f.ID, "err", err)
	}
}

// dnsEvent adds the DNS section to an event.
func dnsEvent(ev *alert.Event, m *dnsmsg.Msg) {
	typ := "query"
	if m.Response {
		typ = "answer"
	}
	ev.DNS = &alert.DNS{Type: typ, RRName: string(m.Name()), RRType: dnsmsg.TypeString(m.QType)}
	if m.Response {
		ev.DNS.RCode = dnsmsg.RcodeString(m.Rcode)
	}
}

// dnsDedupe is how long a host's lookups of one listed name share one alert
// (resolvers ask A and AAAA on separate sockets, and retry).
const dnsDedupe = time.Minute

type dnsKey struct {
	client netip.Addr
	name   uint64 // FNV-1a of the lowercased name
}

// dnsAlertedRecently reports whether client was alerted for name within
// dnsDedupe, and records this lookup. Per worker; no allocation once the
// table is full size.
func (e *Engine) dnsAlertedRecently(client netip.Addr, name []byte) bool {
	h := uint64(14695981039346656037)
	for _, c := range name {
		h = (h ^ uint64(c)) * 1099511628211
	}
	k := dnsKey{client, h}
	if at := e.dnsSeen.Get(k); at != nil && e.now.Sub(*at) < dnsDedupe {
		return true
	}
	v, _ := e.dnsSeen.Put(k)
	*v = e.now
	return false
}
