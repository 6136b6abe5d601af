package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/telemetry/alert"
	"golang.org/x/net/dns/dnsmessage"
)

// replier records the UDP replies the engine asks for.
type replier struct {
	resets
	replies [][]byte
}

func (r *replier) ReplyUDP(pkt, payload []byte) error {
	r.replies = append(r.replies, append([]byte(nil), payload...))
	return nil
}

func dnsQuery(t testing.TB, id uint16, name string, typ layers.DNSType) []byte {
	t.Helper()
	d := &layers.DNS{ID: id, RD: true, Questions: []layers.DNSQuestion{{Name: []byte(name), Type: typ, Class: layers.DNSClassIN}}}
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDNSBlockPolicies: under NXDOMAIN and sinkhole policies a query for a
// listed domain is dropped and answered in the resolver's place (the answer
// parsed by x/net's DNS parser), with one ★★★ blocked alert for the A and
// AAAA twins; the flow stays open for the next, benign query (it may be an
// office DNS forwarder's). Under the alert policy the query passes with ★★.
func TestDNSBlockPolicies(t *testing.T) {
	sink4, sink6 := netip.MustParseAddr("198.18.99.1"), netip.MustParseAddr("2001:db8::99")
	for _, c := range []struct {
		policy   DNSPolicy
		verdict  Verdict
		rcode    dnsmessage.RCode
		answer   netip.Addr
		stars    alert.Stars
		action   string
		nReplies int
	}{
		{DNSAlert, Accept, 0, netip.Addr{}, 2, alert.ActionAllowed, 0},
		{DNSNXDomain, Drop, dnsmessage.RCodeNameError, netip.Addr{}, 3, alert.ActionBlocked, 2},
		{DNSSinkhole, Drop, dnsmessage.RCodeSuccess, sink4, 3, alert.ActionBlocked, 2},
	} {
		tr := testpcap.NewTrace(t0)
		tr.UDP("198.18.1.2:40001", "198.18.2.53:53", dnsQuery(t, 1, "cnc.utm-lab.test", layers.DNSTypeA))
		tr.UDP("198.18.1.2:40001", "198.18.2.53:53", dnsQuery(t, 2, "www.cnc.utm-lab.test", layers.DNSTypeAAAA))
		tr.UDP("198.18.1.2:40001", "198.18.2.53:53", dnsQuery(t, 3, "www.lab.test", layers.DNSTypeA))
		pkts := tr.Sorted()
		var rec recorder
		var rp replier
		e := New(Config{Sink: &rec, Reset: &rp, DNSBlock: c.policy, Sinkhole4: sink4, Sinkhole6: sink6}, defaultBundle(t))
		var vs []Verdict
		for _, p := range pkts {
			vs = append(vs, e.Process(p.TS, p.Data))
		}
		if vs[0] != c.verdict || vs[1] != c.verdict || vs[2] != Accept {
			t.Fatalf("policy %d: verdicts %v, want %v %v Accept", c.policy, vs, c.verdict, c.verdict)
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].Stars != c.stars || al[0].Alert.Action != c.action || al[0].Alert.SignatureID != sidCNCDNS ||
			al[0].DNS == nil || al[0].DNS.RRName != "cnc.utm-lab.test" || al[0].Intel == nil {
			t.Fatalf("policy %d: want one DNS alert %v %s, got %+v", c.policy, c.stars, c.action, al)
		}
		if len(rp.replies) != c.nReplies {
			t.Fatalf("policy %d: %d replies, want %d", c.policy, len(rp.replies), c.nReplies)
		}
		for i, r := range rp.replies {
			var p dnsmessage.Parser
			h, err := p.Start(r)
			if err != nil || h.ID != uint16(i+1) || h.RCode != c.rcode || !h.Response {
				t.Fatalf("policy %d: reply %d header %+v %v", c.policy, i, h, err)
			}
			p.SkipAllQuestions()
			as, _ := p.AllAnswers()
			want := c.answer
			if i == 1 && c.policy == DNSSinkhole {
				want = sink6
			}
			var got netip.Addr
			if len(as) == 1 {
				switch rr := as[0].Body.(type) {
				case *dnsmessage.AResource:
					got = netip.AddrFrom4(rr.A)
				case *dnsmessage.AAAAResource:
					got = netip.AddrFrom16(rr.AAAA)
				}
			}
			if got != want {
				t.Fatalf("policy %d: reply %d answers %v, want %v", c.policy, i, got, want)
			}
		}
		if c.policy != DNSAlert && e.Stats().DNSBlocked.Load() != 2 {
			t.Fatalf("dns_blocked %d, want 2", e.Stats().DNSBlocked.Load())
		}
	}
}

// TestDNSAlertDedupe: a resolver asking A and AAAA for a listed name on two
// sockets raises one alert; the same host asking again two minutes later
// raises another; another host asking raises its own.
func TestDNSAlertDedupe(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	tr.UDP("198.18.1.2:40001", "198.18.2.53:53", dnsQuery(t, 1, "cnc.utm-lab.test", layers.DNSTypeA))
	tr.UDP("198.18.1.2:40002", "198.18.2.53:53", dnsQuery(t, 2, "cnc.utm-lab.test", layers.DNSTypeAAAA))
	tr.UDP("198.18.1.3:40003", "198.18.2.53:53", dnsQuery(t, 3, "cnc.utm-lab.test", layers.DNSTypeA))
	later := testpcap.NewTrace(t0.Add(2 * time.Minute))
	later.UDP("198.18.1.2:40004", "198.18.2.53:53", dnsQuery(t, 4, "cnc.utm-lab.test", layers.DNSTypeA))
	var rec recorder
	e := New(Config{Sink: &rec}, defaultBundle(t))
	verdicts(e, append(tr.Sorted(), later.Sorted()...))
	var src []string
	for _, a := range rec.alerts() {
		src = append(src, a.SrcIP)
	}
	if fmt.Sprint(src) != "[198.18.1.2 198.18.1.3 198.18.1.2]" {
		t.Fatalf("DNS alerts from %v; want one per host, and one more after the minute", src)
	}
}

// tcpDNS puts DNS messages on a TCP stream, each after its 2-byte length.
func tcpDNS(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, byte(len(m)>>8), byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// TestDNSOverTCP: DNS over TCP gets what a datagram gets. A lookup of a
// listed name, its message split across segments after a benign one, is
// blocked by resetting the connection (★★★) or, under the alert policy,
// let through with ★★; dns.query rules see both lookups; an answer naming
// a listed domain teaches its address, and the connection to it that
// follows is blocked.
func TestDNSOverTCP(t *testing.T) {
	stream := tcpDNS(dnsQuery(t, 1, "www.lab.test", layers.DNSTypeA), dnsQuery(t, 2, "cnc.utm-lab.test", layers.DNSTypeA))
	cut := len(stream) - 9 // the listed name's query ends in the second segment
	for _, c := range []struct {
		policy  DNSPolicy
		verdict Verdict
		stars   alert.Stars
		action  string
		resets  int
	}{
		{DNSNXDomain, Reject, 3, alert.ActionBlocked, 1},
		{DNSAlert, Accept, 2, alert.ActionAllowed, 0},
	} {
		tr := testpcap.NewTrace(t0)
		k := tr.NewTCP("198.18.1.2:40010", "198.18.2.53:53").Handshake()
		k.Client(stream[:cut], 0)
		second := len(tr.Sorted()) // the index of the second segment
		k.Client(stream[cut:], 0)
		var rec recorder
		var rs resets
		e := New(Config{Sink: &rec, Reset: &rs, DNSBlock: c.policy}, defaultBundle(t))
		vs := verdicts(e, tr.Sorted())
		if slices.ContainsFunc(vs[:second], func(v Verdict) bool { return v != Accept }) || vs[second] != c.verdict {
			t.Fatalf("policy %d: verdicts %v, want packets before %d accepted and it %v", c.policy, vs, second, c.verdict)
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].Stars != c.stars || al[0].Alert.Action != c.action || al[0].Alert.SignatureID != sidCNCDNS ||
			al[0].DNS == nil || al[0].DNS.RRName != "cnc.utm-lab.test" || al[0].AppProto != "dns" || al[0].Proto != "TCP" {
			t.Fatalf("policy %d: want one TCP DNS alert %v %s for cnc.utm-lab.test, got %+v", c.policy, c.stars, c.action, al)
		}
		if c.policy != DNSAlert && !strings.Contains(al[0].Summary, "the connection was reset") {
			t.Errorf("summary %q does not say the connection was reset", al[0].Summary)
		}
		if len(rs.calls) != c.resets || e.Stats().DNSQueries.Load() != 2 {
			t.Errorf("policy %d: %d resets, %d queries; want %d, 2", c.policy, len(rs.calls), e.Stats().DNSQueries.Load(), c.resets)
		}
	}

	tr := testpcap.NewTrace(t0)
	k := tr.NewTCP("198.18.1.2:40011", "198.18.2.53:53").Handshake()
	k.Client(tcpDNS(dnsQuery(t, 3, "cnc.utm-lab.test", layers.DNSTypeA)), 0)
	k.Server(tcpDNS(dnsAnswer(t, "cnc.utm-lab.test", "198.18.2.66")), 0)
	tr.NewTCP("198.18.1.2:40012", "198.18.2.66:80").Handshake()
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, ruleBundle(t, `alert dns any any -> any any (msg:"query over tcp"; dns.query; content:"cnc.utm-lab.test"; sid:1;)`))
	b := *e.pb
	b.Intel = defaultBundle(t).Intel
	e.SetBundle(&b)
	verdicts(e, tr.Sorted())
	sids := map[int]bool{}
	for _, a := range rec.alerts() {
		sids[a.Alert.SignatureID] = true
	}
	if !sids[1] || !sids[sidCNCLearned] {
		t.Fatalf("alerts by sid %v: want the dns.query rule (1) and the connection to the learned address (%d)", sids, sidCNCLearned)
	}
}

// TestDNSStream: messages are framed whatever the segmentation; an
// oversized one is passed over and counted, and the next one still found.
func TestDNSStream(t *testing.T) {
	big := make([]byte, dnsTCPMax+1)
	in := tcpDNS([]byte("one"), nil, big, []byte("three"))
	for _, seg := range []int{1, 2, 3, 5, 4100, len(in)} {
		var s dnsStream
		var got []string
		over := 0
		for b := in; len(b) > 0; {
			n := min(seg, len(b))
			for c := b[:n]; len(c) > 0; {
				msg, rest, oversize := s.next(c)
				if oversize {
					over++
				}
				if msg != nil {
					got = append(got, string(msg))
				}
				c = rest
			}
			b = b[n:]
		}
		if fmt.Sprint(got) != "[one three]" || over != 1 {
			t.Errorf("segments of %d: messages %q, %d oversized; want [one three], 1", seg, got, over)
		}
	}
}
