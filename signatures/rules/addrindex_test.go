package rules

import (
	"math/rand"
	"net/netip"
	"testing"
)

// TestAddrIndexAgainstLinear: the indexed lookup of a long address list
// answers as Prefix.Contains over the list, for random mixed lists.
func TestAddrIndexAgainstLinear(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	addr := func() netip.Addr {
		if r.Intn(5) == 0 {
			var b [16]byte
			b[0], b[1], b[15] = 0x20, 0x01, byte(r.Intn(4))
			return netip.AddrFrom16(b)
		}
		// A small space, so lists overlap and nest.
		return netip.AddrFrom4([4]byte{198, 18, byte(r.Intn(4)), byte(r.Intn(256))})
	}
	for round := 0; round < 300; round++ {
		var a addrSet
		n := addrIndexMin + r.Intn(40)
		for i := 0; i < n; i++ {
			ip := addr()
			bits := ip.BitLen() - r.Intn(10)
			if r.Intn(3) == 0 {
				bits = ip.BitLen()
			}
			a.pos = append(a.pos, netip.PrefixFrom(ip, bits))
		}
		if round%7 == 0 {
			a.pos = append(a.pos, netip.MustParsePrefix("0.0.0.0/0"))
		}
		lin := addrSet{pos: a.pos}
		a.index()
		if a.v4 == nil {
			t.Fatal("a long list was not indexed")
		}
		for k := 0; k < 200; k++ {
			ip := addr()
			if round%11 == 0 {
				ip = netip.AddrFrom4([4]byte{byte(r.Intn(256)), byte(r.Intn(256)), byte(r.Intn(256)), byte(r.Intn(256))})
			}
			if got, want := a.match(ip), lin.match(ip); got != want {
				t.Fatalf("round %d: %v in %v: indexed %v, linear %v", round, ip, a.pos, got, want)
			}
		}
	}
}

func TestAddrIndexRule(t *testing.T) {
	s := load(t, `alert ip [1.2.3.4,5.6.7.0/24,9.9.9.9,10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,2001:db8::/32] any -> any any (msg:"rep"; sid:1;)`)
	for ip, want := range map[string]bool{"5.6.7.200": true, "5.6.8.1": false, "10.0.0.5": true, "10.0.0.6": false, "2001:db8::9": true, "2001:db9::9": false} {
		in := bufIn(BufPayload, "x", 6, "")
		in.Src = netip.MustParseAddr(ip)
		if ip[0] == '2' {
			in.Dst = netip.MustParseAddr("2001:db9::1")
		}
		if got := len(s.Match(in, nil)) == 1; got != want {
			t.Errorf("src %s: match %v, want %v", ip, got, want)
		}
	}
}
