package packet

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz/FuzzDecode")

func ser(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var (
	cli4, srv4 = net.IPv4(198, 18, 1, 2).To4(), net.IPv4(198, 18, 2, 2).To4()
	cli6, srv6 = net.ParseIP("2001:2::1"), net.ParseIP("2001:2::53")
)

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: cli4, DstIP: srv4}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: next, SrcIP: cli6, DstIP: srv6}
}

func tcpL(nl gopacket.NetworkLayer) *layers.TCP {
	tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 500}
	tc.SetNetworkLayerForChecksum(nl)
	return tc
}

func tcp4(t testing.TB, payload string) []byte {
	ip := ip4(layers.IPProtocolTCP)
	return ser(t, ip, tcpL(ip), gopacket.Payload(payload))
}

func tcp6(t testing.TB, payload string) []byte {
	ip := ip6(layers.IPProtocolTCP)
	return ser(t, ip, tcpL(ip), gopacket.Payload(payload))
}

func udp6(t testing.TB, payload string) []byte {
	ip := ip6(layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: 5353, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, u, gopacket.Payload(payload))
}

func synOpts4(t testing.TB) []byte {
	ip := ip4(layers.IPProtocolTCP)
	tc := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, SYN: true, Window: 64240, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}
	tc.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, tc)
}

// withExt inserts IPv6 extension headers (raw, each a multiple of 8 bytes,
// next-header fields chained here) between the IPv6 header and the rest.
func withExt(pkt []byte, exts ...[]byte) []byte {
	out := append([]byte(nil), pkt[:40]...)
	next := pkt[6]
	types := []byte{}
	for _, e := range exts {
		types = append(types, e[0])
	}
	// e[0] holds the extension's own type until chained.
	out[6] = types[0]
	for i, e := range exts {
		e = append([]byte(nil), e...)
		if i+1 < len(exts) {
			e[0] = types[i+1]
		} else {
			e[0] = next
		}
		out = append(out, e...)
	}
	out = append(out, pkt[40:]...)
	plen := len(out) - 40
	out[4], out[5] = byte(plen>>8), byte(plen)
	return out
}

var (
	extHBH  = []byte{0, 0, 1, 4, 0, 0, 0, 0}  // hop-by-hop, PadN
	extDst  = []byte{60, 0, 1, 4, 0, 0, 0, 0} // destination options, PadN
	extAH   = []byte{51, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	fragHdr = func(off uint16, more bool) []byte {
		v := off << 3
		if more {
			v |= 1
		}
		return []byte{44, 0, byte(v >> 8), byte(v), 0, 0, 0, 9}
	}
)

type decodeCase struct {
	name string
	b    []byte
	want Result
	// checked when want == OK
	proto            uint8
	sport, dport     uint16
	payload          string
	frag             bool
	icmpType, icmpCd uint8
}

func cases(t testing.TB) []decodeCase {
	good := tcp4(t, "hello")
	mod := func(b []byte, f func([]byte)) []byte { b = append([]byte(nil), b...); f(b); return b }
	icmp4 := func() []byte {
		ip := ip4(layers.IPProtocolICMPv4)
		return ser(t, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, gopacket.Payload("ping"))
	}()
	icmp6 := func() []byte {
		ip := ip6(layers.IPProtocolICMPv6)
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		return ser(t, ip, ic, gopacket.Payload("echo"))
	}()
	gre := ser(t, ip4(layers.IPProtocolGRE), gopacket.Payload("opaque-gre"))
	opts := func() []byte {
		ip := ip4(layers.IPProtocolTCP)
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOP NOP NOP EOL
		return ser(t, ip, tcpL(ip), gopacket.Payload("opts"))
	}()
	frag := func(flags layers.IPv4Flag, off uint16) []byte {
		ip := ip4(layers.IPProtocolTCP)
		ip.Flags, ip.FragOffset = flags, off
		return ser(t, ip, tcpL(ip), gopacket.Payload("fragment"))
	}
	t6 := tcp6(t, "six")
	return []decodeCase{
		{name: "tcp4", b: good, want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "hello"},
		{name: "tcp4 syn with options", b: synOpts4(t), want: OK, proto: ProtoTCP, sport: 40000, dport: 443},
		{name: "tcp4 ip options", b: opts, want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "opts"},
		{name: "tcp4 link padding", b: append(append([]byte(nil), good...), 0, 0, 0, 0, 0, 0), want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "hello"},
		{name: "udp6", b: udp6(t, "q"), want: OK, proto: ProtoUDP, sport: 5353, dport: 53, payload: "q"},
		{name: "tcp6", b: t6, want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "six"},
		{name: "icmp4 echo", b: icmp4, want: OK, proto: ProtoICMP, payload: "ping", icmpType: 8},
		{name: "icmp6 echo", b: icmp6, want: OK, proto: ProtoICMPv6, payload: "echo", icmpType: 128},
		{name: "gre: other protocol, ports 0", b: gre, want: OK, proto: 47},
		{name: "ipv4 first fragment", b: frag(layers.IPv4MoreFragments, 0), want: OK, proto: ProtoTCP, frag: true},
		{name: "ipv4 last fragment", b: frag(0, 100), want: OK, proto: ProtoTCP, frag: true},
		{name: "ipv6 hop-by-hop udp", b: withExt(udp6(t, "x"), extHBH), want: OK, proto: ProtoUDP, sport: 5353, dport: 53, payload: "x"},
		{name: "ipv6 hbh+dst+ah tcp", b: withExt(t6, extHBH, extDst, extAH), want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "six"},
		{name: "ipv6 first fragment", b: withExt(t6, fragHdr(0, true)), want: OK, proto: ProtoTCP, frag: true},
		{name: "ipv6 later fragment", b: withExt(t6, extHBH, fragHdr(64, false)), want: OK, proto: ProtoTCP, frag: true},
		{name: "ipv6 atomic fragment", b: withExt(t6, fragHdr(0, false)), want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "six"},
		{name: "ipv6 link padding", b: append(append([]byte(nil), t6...), 0, 0), want: OK, proto: ProtoTCP, sport: 40000, dport: 80, payload: "six"},

		{name: "empty", b: nil, want: Truncated},
		{name: "short v4", b: good[:10], want: Truncated},
		{name: "v4 cut", b: good[:len(good)-3], want: Truncated},
		{name: "v4 header only, length claims tcp", b: good[:20], want: Truncated},
		{name: "short v6", b: t6[:30], want: Truncated},
		{name: "v6 cut", b: t6[:len(t6)-1], want: Truncated},
		{name: "v6 ext cut", b: withExt(t6, extDst)[:44], want: Truncated},
		{name: "v6 ext tcp cut", b: mod(withExt(t6, extDst)[:58], func(b []byte) { b[5] = 18 }), want: Truncated},
		{name: "tcp header beyond ip length", b: mod(good, func(b []byte) { b[3] = 30 }), want: Truncated},

		{name: "ihl 4", b: mod(good, func(b []byte) { b[0] = 0x44 }), want: Malformed},
		{name: "total length < ihl", b: mod(good, func(b []byte) { b[2], b[3] = 0, 12 }), want: Malformed},
		{name: "tcp data offset 2", b: mod(good, func(b []byte) { b[20+12] = 0x20 }), want: Malformed},
		{name: "v6 nine extension headers", b: withExt(t6, extDst, extDst, extDst, extDst, extDst, extDst, extDst, extDst, extDst), want: Malformed},

		{name: "version 7", b: mod(good, func(b []byte) { b[0] = 0x75 }), want: Unsupported},
		{name: "version 0", b: []byte{0}, want: Unsupported},
	}
}

func TestDecode(t *testing.T) {
	var p Parsed
	for _, c := range cases(t) {
		r := p.Decode(c.b)
		if r != c.want {
			t.Errorf("%s: %v, want %v (%+v)", c.name, r, c.want, p)
			continue
		}
		if r != OK {
			continue
		}
		if p.Proto != c.proto || p.SrcPort != c.sport || p.DstPort != c.dport || string(p.Payload) != c.payload ||
			p.Fragment != c.frag || p.ICMPType != c.icmpType || p.ICMPCode != c.icmpCd {
			t.Errorf("%s: decoded as %+v", c.name, p)
		}
		if p.Version == 4 && (p.Src != netip.MustParseAddr("198.18.1.2") || p.Dst != netip.MustParseAddr("198.18.2.2") || p.TTL != 64) {
			t.Errorf("%s: v4 addresses %v -> %v ttl %d", c.name, p.Src, p.Dst, p.TTL)
		}
		if p.Version == 6 && (p.Src != netip.MustParseAddr("2001:2::1") || p.Dst != netip.MustParseAddr("2001:2::53") || p.TTL != 60) {
			t.Errorf("%s: v6 addresses %v -> %v hop limit %d", c.name, p.Src, p.Dst, p.TTL)
		}
		if p.Length != len(c.b) {
			t.Errorf("%s: Length %d, want %d", c.name, p.Length, len(c.b))
		}
	}
	// TCP fields.
	p.Decode(tcp4(t, "x"))
	if p.Seq != 7 || p.Ack != 9 || p.Window != 500 || p.TCPFlags != FlagACK|FlagPSH {
		t.Fatalf("tcp fields: %+v", p)
	}
	p.Decode(synOpts4(t))
	if p.TCPFlags != FlagSYN || p.Seq != 1 || p.Window != 64240 {
		t.Fatalf("syn fields: %+v", p)
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{OK: "ok", Truncated: "truncated", Malformed: "malformed", Unsupported: "unsupported", 99: "unknown"} {
		if r.String() != want {
			t.Errorf("%d: %q", r, r.String())
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	var p Parsed
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"tcp4", tcp4(t, "hello")},
		{"tcp4 syn options", synOpts4(t)},
		{"udp6", udp6(t, "query")},
		{"tcp6", tcp6(t, "hello")},
		{"tcp6 after extension headers", withExt(tcp6(t, "hello"), extHBH, extDst)},
	} {
		p.Decode(c.b)
		if n := testing.AllocsPerRun(200, func() { p.Decode(c.b) }); n != 0 {
			t.Errorf("%s: Decode allocates %v times per packet; want 0", c.name, n)
		}
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzDecode in step with the table
// (go test -run FuzzSeeds -update rewrites it).
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for i, c := range cases(t) {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", c.b)
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(name); err != nil || string(got) != body {
			t.Errorf("%s is missing or stale (%v): run go test ./dataplane/packet -run FuzzSeeds -update", name, err)
		}
	}
}

func within(sub, b []byte) bool {
	if len(sub) == 0 {
		return true
	}
	s, e := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[0]))+uintptr(len(b))
	p := uintptr(unsafe.Pointer(&sub[0]))
	return p >= s && p+uintptr(len(sub)) <= e
}

// FuzzDecode checks that any input decodes without panicking, that the
// payload lies inside the input, and that a reused Parsed gives the same
// answer as a fresh one (no state leaks between packets).
func FuzzDecode(f *testing.F) {
	f.Add(tcp4(f, "GET / HTTP/1.1\r\n\r\n"))
	other := tcp6(f, "previous packet")
	f.Fuzz(func(t *testing.T, b []byte) {
		var fresh, reused Parsed
		r1 := fresh.Decode(b)
		reused.Decode(other)
		r2 := reused.Decode(b)
		if r1 != r2 {
			t.Fatalf("fresh %v, reused %v", r1, r2)
		}
		fresh.d, reused.d = nil, nil
		if fresh.Version != reused.Version || fresh.Src != reused.Src || fresh.Proto != reused.Proto ||
			fresh.SrcPort != reused.SrcPort || fresh.DstPort != reused.DstPort || fresh.Fragment != reused.Fragment ||
			string(fresh.Payload) != string(reused.Payload) || fresh.TCPFlags != reused.TCPFlags {
			t.Fatalf("fresh %+v\nreused %+v", fresh, reused)
		}
		if !within(fresh.Payload, b) {
			t.Fatal("payload is not inside the packet")
		}
		if r1 == OK && fresh.Version != 4 && fresh.Version != 6 {
			t.Fatalf("OK with version %d", fresh.Version)
		}
	})
}

func BenchmarkDecodeTCP(b *testing.B) {
	pkt := tcp4(b, string(make([]byte, 1400)))
	var p Parsed
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; i < b.N; i++ {
		p.Decode(pkt)
	}
}
