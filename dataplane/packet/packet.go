// Package packet decodes the headers the engine needs from an IP packet
// (IPv4 or IPv6, then TCP, UDP, ICMP or ICMPv6) into a reused Parsed.
//
// Decoding uses gopacket's DecodingLayerParser with layers allocated once
// per Parsed, so decoding a well-formed packet does not allocate (a test
// proves it with testing.AllocsPerRun). Parsed.Payload aliases the input:
// it is valid only as long as the caller's buffer is.
//
// The packet path returns a Result, not an error: malformed input is a
// counted outcome, not a failure. Malformed packets may allocate inside
// gopacket's error path; the common impossibilities (bad version, header
// or total length) are caught before it, without allocating.
//
// Decisions:
//   - Protocols other than TCP, UDP, ICMP and ICMPv6 (GRE, ESP, SCTP, ...)
//     decode OK with only the IP fields set: ports 0, no payload.
//   - Fragments (IPv4 MF or offset, IPv6 fragment header other than an
//     atomic one) decode OK with Fragment set and only the IP fields: the
//     transport header of a first fragment is not read, so every fragment
//     of a datagram looks alike until a reassembler exists.
//   - IPv6 extension headers (hop-by-hop, routing, destination options,
//     fragment, AH) are skipped, at most 8 of them; Proto is the protocol
//     after them.
//   - Bytes after the IPv4 total length or IPv6 payload length (link
//     padding) are not part of Payload; fewer bytes than those lengths say
//     is Truncated.
package packet

import (
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TCP flag bits in Parsed.TCPFlags.
const (
	FlagFIN = 1 << 0
	FlagSYN = 1 << 1
	FlagRST = 1 << 2
	FlagPSH = 1 << 3
	FlagACK = 1 << 4
	FlagURG = 1 << 5
)

// IP protocol numbers the engine names.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Result is the outcome of Decode.
type Result uint8

// Results.
const (
	OK          Result = iota // decoded; for protocols other than TCP/UDP/ICMP only the IP header is filled
	Truncated                 // shorter than its headers say
	Malformed                 // a header field is impossible (header or total length, TCP data offset, ...)
	Unsupported               // IP version neither 4 nor 6
)

func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Truncated:
		return "truncated"
	case Malformed:
		return "malformed"
	case Unsupported:
		return "unsupported"
	}
	return "unknown"
}

// Parsed is a decoded packet. Reuse one Parsed for many packets.
type Parsed struct {
	Version  uint8
	Src, Dst netip.Addr
	Proto    uint8 // transport protocol (after IPv6 extension headers)
	TTL      uint8
	Length   int // bytes of the whole packet
	Fragment bool

	SrcPort, DstPort uint16
	TCPFlags         uint8
	Seq, Ack         uint32
	Window           uint16
	ICMPType         uint8
	ICMPCode         uint8
	IPID             uint16 // IPv4 identification
	ICMPID, ICMPSeq  uint16 // echo request/reply identifier and sequence

	Payload []byte // transport payload; aliases the input

	d *decoder
}

type decoder struct {
	v4, v6  *gopacket.DecodingLayerParser
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	payload gopacket.Payload
	decoded []gopacket.LayerType
	trunc   truncFlag
}

// truncFlag is a gopacket.DecodeFeedback for layers decoded by hand.
type truncFlag bool

func (t *truncFlag) SetTruncated() { *t = true }

func newDecoder() *decoder {
	d := &decoder{decoded: make([]gopacket.LayerType, 0, 8)}
	ls := []gopacket.DecodingLayer{&d.ip4, &d.ip6, &d.tcp, &d.udp, &d.icmp4, &d.icmp6, &d.payload}
	d.v4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, ls...)
	d.v6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, ls...)
	for _, p := range []*gopacket.DecodingLayerParser{d.v4, d.v6} {
		p.IgnoreUnsupported = true
	}
	return d
}

// Decode decodes b, which starts at the IP header.
func (p *Parsed) Decode(b []byte) Result {
	if p.d == nil {
		p.d = newDecoder()
	}
	d := p.d
	*p = Parsed{d: d, Length: len(b)}
	if len(b) < 1 {
		return Truncated
	}
	var parser *gopacket.DecodingLayerParser
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return Truncated
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(b[2])<<8 | int(b[3])
		if ihl < 20 || total != 0 && total < ihl {
			return Malformed
		}
		if len(b) < ihl || len(b) < total {
			return Truncated
		}
		parser = d.v4
	case 6:
		if len(b) < 40 {
			return Truncated
		}
		plen := int(b[4])<<8 | int(b[5])
		if len(b) < 40+plen {
			return Truncated
		}
		if isIPv6Ext(b[6]) {
			// gopacket v1.1.19 miscounts the payload after a hop-by-hop
			// header and cannot decode the others: walk them here.
			p.Version, p.Proto, p.TTL = 6, b[6], b[7]
			p.Src = netip.AddrFrom16([16]byte(b[8:24]))
			p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
			return p.decodeIPv6Ext(b[40 : 40+plen])
		}
		parser = d.v6
	default:
		return Unsupported
	}
	d.decoded = d.decoded[:0]
	err := parser.DecodeLayers(b, &d.decoded)
	if len(d.decoded) == 0 {
		if parser.Truncated {
			return Truncated
		}
		return Malformed
	}
	for _, lt := range d.decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			ip := &d.ip4
			p.Version = 4
			p.Src = netip.AddrFrom4([4]byte(ip.SrcIP.To4()))
			p.Dst = netip.AddrFrom4([4]byte(ip.DstIP.To4()))
			p.Proto = uint8(ip.Protocol)
			p.TTL = ip.TTL
			p.IPID = ip.Id
			p.Fragment = ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0
		case layers.LayerTypeIPv6:
			ip := &d.ip6
			p.Version = 6
			p.Src = netip.AddrFrom16([16]byte(ip.SrcIP.To16()))
			p.Dst = netip.AddrFrom16([16]byte(ip.DstIP.To16()))
			p.Proto = uint8(ip.NextHeader)
			p.TTL = ip.HopLimit
		case layers.LayerTypeTCP:
			t := &d.tcp
			p.SrcPort, p.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
			p.Seq, p.Ack, p.Window = t.Seq, t.Ack, t.Window
			p.TCPFlags = tcpFlags(t)
			p.Payload = t.Payload
			p.Proto = ProtoTCP // after any IPv6 hop-by-hop header gopacket skipped
		case layers.LayerTypeUDP:
			u := &d.udp
			p.Proto = ProtoUDP
			p.SrcPort, p.DstPort = uint16(u.SrcPort), uint16(u.DstPort)
			p.Payload = u.Payload
		case layers.LayerTypeICMPv4:
			p.ICMPType, p.ICMPCode = d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
			p.ICMPID, p.ICMPSeq = d.icmp4.Id, d.icmp4.Seq
			p.Payload = d.icmp4.Payload
		case layers.LayerTypeICMPv6:
			p.Proto = ProtoICMPv6
			p.ICMPType, p.ICMPCode = d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
			p.Payload = d.icmp6.Payload
			p.icmp6Echo()
		}
	}
	if p.Fragment {
		// gopacket stops at the IPv4 header of any fragment.
		return OK
	}
	if parser.Truncated {
		return Truncated
	}
	if err != nil {
		return Malformed
	}
	last := d.decoded[len(d.decoded)-1]
	switch p.Proto {
	case ProtoTCP:
		if last != layers.LayerTypeTCP && last != gopacket.LayerTypePayload {
			return Truncated
		}
	case ProtoUDP:
		if last != layers.LayerTypeUDP && last != gopacket.LayerTypePayload {
			return Truncated
		}
	}
	return OK
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	if t.FIN {
		f |= FlagFIN
	}
	if t.SYN {
		f |= FlagSYN
	}
	if t.RST {
		f |= FlagRST
	}
	if t.PSH {
		f |= FlagPSH
	}
	if t.ACK {
		f |= FlagACK
	}
	if t.URG {
		f |= FlagURG
	}
	return f
}

func isIPv6Ext(proto uint8) bool {
	switch proto {
	case 0, 43, 44, 51, 60: // hop-by-hop, routing, fragment, AH, destination options
		return true
	}
	return false
}

// decodeIPv6Ext walks IPv6 extension headers from b (the IPv6 payload,
// p.Proto its first header) and decodes the transport header after them.
func (p *Parsed) decodeIPv6Ext(b []byte) Result {
	d := p.d
	for hops := 0; isIPv6Ext(p.Proto); hops++ {
		if hops >= 8 {
			return Malformed
		}
		if len(b) < 8 {
			return Truncated
		}
		next := b[0]
		n := (int(b[1]) + 1) * 8
		switch p.Proto {
		case 44:
			n = 8
			if b[2] != 0 || b[3]&0xf9 != 0 { // offset or M set: a real fragment
				p.Fragment = true
				p.Proto = next
				return OK
			}
			// An atomic fragment (RFC 6946) is a whole packet.
		case 51:
			n = (int(b[1]) + 2) * 4
		}
		if len(b) < n {
			return Truncated
		}
		p.Proto, b = next, b[n:]
	}
	var err error
	d.trunc = false
	switch p.Proto {
	case ProtoTCP:
		if err = d.tcp.DecodeFromBytes(b, &d.trunc); err == nil {
			t := &d.tcp
			p.SrcPort, p.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
			p.Seq, p.Ack, p.Window = t.Seq, t.Ack, t.Window
			p.TCPFlags = tcpFlags(t)
			p.Payload = t.Payload
		}
	case ProtoUDP:
		if err = d.udp.DecodeFromBytes(b, &d.trunc); err == nil {
			p.SrcPort, p.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
			p.Payload = d.udp.Payload
		}
	case ProtoICMPv6:
		if err = d.icmp6.DecodeFromBytes(b, &d.trunc); err == nil {
			p.ICMPType, p.ICMPCode = d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
			p.Payload = d.icmp6.Payload
			p.icmp6Echo()
		}
	}
	switch {
	case bool(d.trunc):
		return Truncated
	case err != nil:
		return Malformed
	}
	return OK
}

// icmp6Echo takes the identifier and sequence of an ICMPv6 echo request or
// reply from the start of its payload (gopacket leaves them there).
func (p *Parsed) icmp6Echo() {
	if (p.ICMPType == 128 || p.ICMPType == 129) && len(p.Payload) >= 4 {
		p.ICMPID = uint16(p.Payload[0])<<8 | uint16(p.Payload[1])
		p.ICMPSeq = uint16(p.Payload[2])<<8 | uint16(p.Payload[3])
	}
}
