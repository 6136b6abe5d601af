package dnsmsg

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0xbeef, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The replies are parsed by an independent DNS implementation, as a client's
// resolver would.
func TestBlockReply(t *testing.T) {
	sink4, sink6 := netip.MustParseAddr("198.18.99.1"), netip.MustParseAddr("2001:db8::99")
	for _, c := range []struct {
		name      string
		typ       dnsmessage.Type
		sinkhole  netip.Addr
		rcode     dnsmessage.RCode
		wantAddr  netip.Addr
		wantCount int
	}{
		{"nxdomain A", dnsmessage.TypeA, netip.Addr{}, dnsmessage.RCodeNameError, netip.Addr{}, 0},
		{"nxdomain AAAA", dnsmessage.TypeAAAA, netip.Addr{}, dnsmessage.RCodeNameError, netip.Addr{}, 0},
		{"sinkhole A", dnsmessage.TypeA, sink4, dnsmessage.RCodeSuccess, sink4, 1},
		{"sinkhole AAAA", dnsmessage.TypeAAAA, sink6, dnsmessage.RCodeSuccess, sink6, 1},
		{"v4 sinkhole, AAAA query", dnsmessage.TypeAAAA, sink4, dnsmessage.RCodeSuccess, netip.Addr{}, 0},
		{"sinkhole, TXT query", dnsmessage.TypeTXT, sink4, dnsmessage.RCodeSuccess, netip.Addr{}, 0},
	} {
		q := query(t, "c2.bad.example.", c.typ)
		r, err := AppendBlockReply(nil, q, c.sinkhole, 300)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(r)
		if err != nil {
			t.Fatalf("%s: reply does not parse: %v", c.name, err)
		}
		if h.ID != 0xbeef || !h.Response || !h.RecursionDesired || !h.RecursionAvailable || h.RCode != c.rcode {
			t.Fatalf("%s: header %+v", c.name, h)
		}
		qs, err := p.AllQuestions()
		if err != nil || len(qs) != 1 || qs[0].Name.String() != "c2.bad.example." || qs[0].Type != c.typ {
			t.Fatalf("%s: question %+v %v", c.name, qs, err)
		}
		as, err := p.AllAnswers()
		if err != nil || len(as) != c.wantCount {
			t.Fatalf("%s: %d answers (%v), want %d", c.name, len(as), err, c.wantCount)
		}
		if c.wantCount == 1 {
			var got netip.Addr
			switch rr := as[0].Body.(type) {
			case *dnsmessage.AResource:
				got = netip.AddrFrom4(rr.A)
			case *dnsmessage.AAAAResource:
				got = netip.AddrFrom16(rr.AAAA)
			}
			if got != c.wantAddr || as[0].Header.TTL != 300 || as[0].Header.Name.String() != "c2.bad.example." {
				t.Fatalf("%s: answer %+v, want %v", c.name, as[0], c.wantAddr)
			}
		}
	}
	// Not a query: refused, nothing appended.
	q := query(t, "x.example.", dnsmessage.TypeA)
	q[2] |= 0x80
	if out, err := AppendBlockReply([]byte{1}, q, netip.Addr{}, 0); err == nil || len(out) != 1 {
		t.Fatalf("a response was answered: %v %v", out, err)
	}
	if _, err := AppendBlockReply(nil, q[:5], netip.Addr{}, 0); err == nil {
		t.Fatal("a truncated query was answered")
	}
}
