package packet

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func ser(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func tcp4(t testing.TB, payload string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(198, 18, 1, 2), DstIP: net.IPv4(198, 18, 2, 2)}
	tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 500}
	tc.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, tc, gopacket.Payload(payload))
}

func udp6(t testing.TB, payload string) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("2001:2::1"), DstIP: net.ParseIP("2001:2::53")}
	u := &layers.UDP{SrcPort: 5353, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, u, gopacket.Payload(payload))
}

func TestDecode(t *testing.T) {
	var p Parsed
	if r := p.Decode(tcp4(t, "hello")); r != OK {
		t.Fatalf("tcp4: %v", r)
	}
	if p.Version != 4 || p.Src.String() != "198.18.1.2" || p.Dst.String() != "198.18.2.2" || p.Proto != ProtoTCP ||
		p.SrcPort != 40000 || p.DstPort != 80 || p.Seq != 7 || p.Ack != 9 || p.TCPFlags != FlagACK|FlagPSH || string(p.Payload) != "hello" {
		t.Fatalf("tcp4 decoded as %+v", p)
	}
	if r := p.Decode(udp6(t, "q")); r != OK {
		t.Fatalf("udp6: %v", r)
	}
	if p.Version != 6 || p.Src.String() != "2001:2::1" || p.Proto != ProtoUDP || p.DstPort != 53 || string(p.Payload) != "q" || p.TTL != 60 {
		t.Fatalf("udp6 decoded as %+v", p)
	}
	// IPv6 with a hop-by-hop header in front of UDP.
	raw := udp6(t, "x")
	hbh := []byte{17, 0, 1, 4, 0, 0, 0, 0}
	v6 := append(append(append([]byte(nil), raw[:40]...), hbh...), raw[40:]...)
	v6[6] = 0
	v6[5] += 8
	if r := p.Decode(v6); r != OK || p.Proto != ProtoUDP || p.DstPort != 53 || string(p.Payload) != "x" {
		t.Fatalf("udp6 after hop-by-hop: %v %+v", r, p)
	}
}

func TestDecodeBad(t *testing.T) {
	good := tcp4(t, "hello")
	badOff := append([]byte(nil), good...)
	badOff[20+12] = 0x20 // TCP data offset 2
	frag := append([]byte(nil), good...)
	frag[6] = 0x20 // more fragments
	for _, c := range []struct {
		name string
		b    []byte
		want Result
	}{
		{"empty", nil, Truncated},
		{"short v4", good[:10], Truncated},
		{"cut", good[:len(good)-3], Truncated},
		{"ihl 4", append([]byte{0x44}, good[1:]...), Malformed},
		{"version 7", append([]byte{0x75}, good[1:]...), Unsupported},
		{"tcp offset", badOff, Malformed},
		{"fragment", frag, OK},
	} {
		var p Parsed
		if r := p.Decode(c.b); r != c.want {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		}
		if c.name == "fragment" && !p.Fragment {
			t.Errorf("fragment not flagged")
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	var p Parsed
	for _, b := range [][]byte{tcp4(t, "hello"), udp6(t, "query")} {
		p.Decode(b)
		if n := testing.AllocsPerRun(200, func() { p.Decode(b) }); n != 0 {
			t.Fatalf("Decode allocates %v times per packet; want 0", n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(tcp4(f, "GET / HTTP/1.1\r\n\r\n"))
	f.Add(udp6(f, "dns"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parsed
		if p.Decode(b) == OK && len(p.Payload) > len(b) {
			t.Fatal("payload longer than the packet")
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
