package rules

import (
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestIPOnlyAgainstBruteForce: for packets from and to the addresses at
// the edges of every keyed rule's ranges, Match returns exactly the rules
// a check of every rule returns.
func TestIPOnlyAgainstBruteForce(t *testing.T) {
	s := etOpen(t)
	s.pf.compile()
	x := &s.pf.ip
	if len(x.rules) < 500 {
		t.Fatalf("%d ET Open rules keyed by address, want the reputation rules (500+)", len(x.rules))
	}
	r := rand.New(rand.NewSource(9))
	v4 := func(u uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
	}
	home := netip.MustParseAddr("198.18.1.2")
	checked, matched := 0, 0
	out := make([]*Rule, 0, 64)
	for i := 0; i < 400; i++ {
		kr := x.rules[r.Intn(len(x.rules))]
		a := &kr.dst
		if x.bySrc[slicesIndex(x.rules, kr)] {
			a = &kr.src
		}
		if len(a.v4) == 0 {
			continue // an IPv6-only list: below
		}
		rg := a.v4[r.Intn(len(a.v4))]
		for _, u := range []uint32{rg.lo, rg.hi, rg.lo - 1, rg.hi + 1} {
			ip := v4(u)
			for _, proto := range []uint8{6, 17} {
				for _, in := range []*Input{bufIn(BufPayload, "x", proto, ""), bufIn(BufPayload, "x", proto, "")} {
					in.Src, in.Dst = ip, home
					if checked%2 == 1 {
						in.Src, in.Dst = home, ip
					}
					checked++
					got := map[*Rule]bool{}
					for _, m := range s.Match(in, out) {
						if got[m] {
							t.Fatalf("%v -> %v: sid %d returned twice", in.Src, in.Dst, m.SID)
						}
						got[m] = true
					}
					for _, rule := range s.Rules() {
						if want := rule.quick(in) && rule.full(in); want != got[rule] {
							t.Fatalf("%v -> %v proto %d: sid %d: Match says %v, checking every rule says %v", in.Src, in.Dst, proto, rule.SID, got[rule], want)
						}
					}
					matched += len(got)
				}
			}
		}
	}
	// IPv6 entries of keyed lists.
	home6 := netip.MustParseAddr("fd00::2")
	v6matched := 0
	for _, i := range x.v6 {
		kr := x.rules[i]
		a := &kr.dst
		if x.bySrc[i] {
			a = &kr.src
		}
		for _, p := range a.pos6 {
			in := bufIn(BufPayload, "x", 6, "")
			in.Src, in.Dst = p.Addr(), home6
			if !x.bySrc[i] {
				in.Src, in.Dst = home6, p.Addr()
			}
			got := map[*Rule]bool{}
			for _, m := range s.Match(in, out) {
				got[m] = true
			}
			if !got[kr] && kr.quick(in) && kr.full(in) {
				t.Fatalf("%v -> %v: sid %d matches but Match misses it", in.Src, in.Dst, kr.SID)
			}
			if got[kr] {
				v6matched++
			}
		}
	}
	if matched == 0 || len(x.v6) > 0 && v6matched == 0 {
		t.Fatal("no packet matched a keyed rule: the test checks nothing")
	}
	t.Logf("%d keyed rules (%d with IPv6 entries); %d packets, %d matches; IPv6: %d matches", len(x.rules), len(x.v6), checked, matched, v6matched)
}

func slicesIndex(rs []*Rule, r *Rule) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}

// TestIPOnlyLeavesPortRules: a header rule whose address side is the
// whole office or the whole internet but whose port list is short (ET's
// "inbound to port 1521" scans) is keyed by its port in its group, not by
// address (where it would be checked on every packet to the office); a
// reputation list stays keyed by address, ports or not.
func TestIPOnlyLeavesPortRules(t *testing.T) {
	s, errs := Parse(strings.NewReader(`alert tcp $EXTERNAL_NET any -> $HOME_NET 1521 (msg:"scan"; flags:S; sid:1;)
alert ip $HOME_NET any -> [203.0.113.7,198.51.100.0/24] any (msg:"reputation"; sid:2;)
alert tcp $HOME_NET any -> [203.0.113.9] 443 (msg:"reputation, one port"; sid:3;)
alert tcp $EXTERNAL_NET any <> $HOME_NET 179 (msg:"bgp"; flags:R; sid:4;)
`), "t.rules", DefaultVars())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s.pf.compile()
	var keyed []int
	for _, r := range s.pf.ip.rules {
		keyed = append(keyed, r.SID)
	}
	if !slices.Equal(keyed, []int{2, 3}) {
		t.Fatalf("keyed by address: sids %v; want [2 3]", keyed)
	}
	g := s.pf.groups[0]
	if len(g.byDst[1521]) != 1 || g.rules[g.byDst[1521][0]].SID != 1 {
		t.Fatalf("port 1521 indexes %v; want sid 1", g.byDst[1521])
	}
	if len(g.anyPort) != 0 {
		t.Fatalf("%d rules are checked on every packet; want none (sid 4 is indexed by port 179 both ways)", len(g.anyPort))
	}
	in := bufIn(BufPayload, "", 6, "")
	in.Src, in.Dst, in.SrcPort, in.DstPort, in.TCPFlags = netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("203.0.113.50"), 179, 40000, 0x04
	if got := s.Match(in, nil); len(got) != 1 || got[0].SID != 4 {
		t.Fatalf("a reset from port 179 matched %v; want sid 4", got)
	}
}
