package engine

import (
	"net/netip"
	"time"

	"github.com/openutm/utm/dataplane/dnsmsg"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/intel"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

func secs(s uint32) time.Duration { return time.Duration(s) * time.Second }

// udp inspects a UDP packet: DNS on port 53, anything else opaque.
func (e *Engine) udp(b *bundle.Bundle, st *flowState, dir int) {
	p := &e.p
	if st.app == appUnknown {
		if p.DstPort == 53 || p.SrcPort == 53 {
			st.app = appDNS
		} else {
			st.app = appOpaque
		}
	}
	if dir == 1 {
		st.established = true
	}
	if st.app != appDNS {
		return
	}
	m := &e.dns
	if err := m.Decode(p.Payload); err != nil {
		e.stats.DNSMalformed.Add(1)
		return
	}
	name := m.Name()
	if len(name) == 0 {
		return
	}
	if !m.Response {
		e.stats.DNSQueries.Add(1)
		if b.Intel != nil {
			if ind, ok := b.Intel.LookupDomain(name); ok {
				if e.cfg.DNSBlock != DNSAlert {
					e.blockDNS(st, ind, m)
					return
				}
				e.alertDNS(st, ind, m)
			}
		}
		in := e.input(st, dir)
		in.Buf[rules.BufDNSQuery] = name
		e.matchRules(b, st, in, nil)
		return
	}
	e.dnsAnswer(st, p.Dst, name, m.Rcode == dnsmsg.RcodeNXDomain) // heuristics.go
	if b.Intel == nil || len(m.Answers) == 0 {
		return
	}
	ind, ok := b.Intel.LookupDomain(name)
	if !ok {
		return
	}
	domain := string(name)
	for _, a := range m.Answers {
		e.learn(p.Dst, a.Addr, domain, ind, a.TTL)
	}
}

// alertDNS raises the ★★ lookup alert. The lookup is let through: the
// connection that follows is what gets blocked, and the SOC sees both.
func (e *Engine) alertDNS(st *flowState, ind *intel.Indicator, m *dnsmsg.Msg) {
	if e.dnsAlertedRecently(m.Name()) {
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
// never happens to raise it).
func (e *Engine) blockDNS(st *flowState, ind *intel.Indicator, m *dnsmsg.Msg) {
	e.discard()
	e.stats.DNSBlocked.Add(1)
	sink := e.cfg.Sinkhole4
	if m.QType == dnsmsg.TypeAAAA {
		sink = e.cfg.Sinkhole6
	}
	if e.cfg.DNSBlock != DNSSinkhole {
		sink = netip.Addr{}
	}
	if r, ok := e.cfg.Reset.(UDPReplier); ok {
		var err error
		e.replyBuf, err = dnsmsg.AppendBlockReply(e.replyBuf[:0], e.p.Payload, sink, sinkholeTTL)
		if err == nil {
			err = r.ReplyUDP(e.raw, e.replyBuf)
		}
		if err != nil {
			e.stats.ResetErrors.Add(1)
			e.log.Warn("could not answer a blocked DNS query; it is dropped, the client will retry and time out", "flow_id", st.f.ID, "err", err)
		}
	}
	if e.dnsAlertedRecently(m.Name()) {
		return // the AAAA twin of an A query, or a retry: one alert a minute per host and name
	}
	ev := e.intelEvent(st, sidCNCDNS, string(m.Name()), ind, Accept, nil)
	if ev == nil {
		return
	}
	ev.AppProto = "dns"
	ev.Alert.Action = alert.ActionBlocked
	ev.Stars = 3
	answer := "NXDOMAIN"
	if sink.IsValid() {
		answer = "the sinkhole " + sink.String()
	}
	ev.Summary = "Blocked a DNS lookup of C&C domain " + string(m.Name()) + " (listed as " + ind.Value + "): answered " + answer + ", the host never gets the address; it is likely infected"
	dnsEvent(ev, m)
	e.emit(ev)
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

// dnsAlertedRecently reports whether the current packet's client was
// alerted for name within dnsDedupe, and records this lookup. Per worker;
// no allocation once the table is full size.
func (e *Engine) dnsAlertedRecently(name []byte) bool {
	h := uint64(14695981039346656037)
	for _, c := range name {
		h = (h ^ uint64(c)) * 1099511628211
	}
	k := dnsKey{e.p.Src, h}
	if at := e.dnsSeen.Get(k); at != nil && e.now.Sub(*at) < dnsDedupe {
		return true
	}
	v, _ := e.dnsSeen.Put(k)
	*v = e.now
	return false
}
