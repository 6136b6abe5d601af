package engine

import (
	"fmt"
	"net/netip"
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

func dnsQuery(t *testing.T, id uint16, name string, typ layers.DNSType) []byte {
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
