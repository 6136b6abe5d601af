package engine

import (
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
				e.alertDNS(st, ind, m)
			}
		}
		in := e.input(st, dir)
		in.Buf[rules.BufDNSQuery] = name
		e.matchRules(b, st, in, nil)
		return
	}
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
	if ev := e.intelEvent(st, sidCNCDNS, string(m.Name()), ind, Accept, nil); ev != nil {
		ev.AppProto = "dns"
		dnsEvent(ev, m)
		e.emit(ev)
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
