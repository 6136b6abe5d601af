package defrag

import "encoding/binary"

// frag is one parsed fragment; its slices alias the packet.
type frag struct {
	key      key
	off, end int // data range in the datagram
	more     bool
	data     []byte
	hdr      []byte // v4: IP header; v6: the unfragmentable part
	nhOff    int    // v6: offset in hdr of the next-header byte naming the fragment header
	nextHdr  uint8  // v6: next header after the fragment header
	protocol uint8  // the transport protocol of the first fragment's data
}

const (
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoFrag   = 44
)

// parse reads pkt into f: NotFragment, Bad, or Held for a usable fragment.
func parse(pkt []byte, f *frag) Result {
	if len(pkt) < 1 {
		return NotFragment
	}
	switch pkt[0] >> 4 {
	case 4:
		return parse4(pkt, f)
	case 6:
		return parse6(pkt, f)
	}
	return NotFragment
}

func parse4(b []byte, f *frag) Result {
	if len(b) < 20 {
		return NotFragment
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl || len(b) < total {
		return NotFragment // the decoder calls this malformed, not a fragment
	}
	b = b[:total]
	fo := binary.BigEndian.Uint16(b[6:])
	more, off := fo&0x2000 != 0, int(fo&0x1fff)*8
	if !more && off == 0 {
		return NotFragment
	}
	*f = frag{off: off, more: more, data: b[ihl:], hdr: b[:ihl], protocol: b[9]}
	f.key = key{id: uint32(binary.BigEndian.Uint16(b[4:])), proto: b[9]}
	copy(f.key.src[:], b[12:16])
	copy(f.key.dst[:], b[16:20])
	f.end = off + len(f.data)
	if !f.checkLen(ihl + f.end) {
		return Bad
	}
	if f.protocol == protoTCP && off == 8 {
		return Bad // RFC 3128: rewrites the TCP flags of the first fragment
	}
	return f.checkFirst(f.protocol, f.data)
}

func parse6(b []byte, f *frag) Result {
	if len(b) < 40 {
		return NotFragment
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < 40+plen {
		return NotFragment
	}
	b = b[:40+plen]
	next, at, nhOff := b[6], 40, 6
	for hops := 0; next != protoFrag; hops++ {
		n, ok := extLen(next, b[at:])
		if !ok || n < 0 || hops >= 8 {
			return NotFragment // not a fragment, or headers the decoder rejects
		}
		if at+n > maxUnfrag {
			return Bad
		}
		nhOff, next = at, b[at]
		at += n
	}
	if len(b) < at+8 {
		return NotFragment
	}
	fh := b[at : at+8]
	fo := binary.BigEndian.Uint16(fh[2:])
	more, off := fo&1 != 0, int(fo>>3)*8
	if !more && off == 0 {
		return NotFragment // atomic fragment (RFC 6946): a whole packet
	}
	*f = frag{off: off, more: more, data: b[at+8:], hdr: b[:at], nhOff: nhOff, nextHdr: fh[0]}
	f.key = key{id: binary.BigEndian.Uint32(fh[4:]), v6: true}
	copy(f.key.src[:], b[8:24])
	copy(f.key.dst[:], b[24:40])
	f.end = off + len(f.data)
	if !f.checkLen(at - 40 + f.end) {
		return Bad
	}
	if off != 0 {
		return Held
	}
	// RFC 7112: the first fragment holds the whole header chain.
	next, d := fh[0], f.data
	for hops := 0; ; hops++ {
		if next == protoFrag || hops >= 8 {
			return Bad // nested fragmentation
		}
		n, ok := extLen(next, d)
		if !ok {
			break
		}
		if n < 0 {
			return Bad
		}
		next, d = d[0], d[n:]
	}
	f.protocol = next
	return f.checkFirst(next, d)
}

// extLen returns the length of the IPv6 extension header at b of type
// next; ok is false for a header that is not one of those walked, and n is
// -1 for one that does not fit.
func extLen(next uint8, b []byte) (n int, ok bool) {
	switch next {
	case 0, 43, 60: // hop-by-hop, routing, destination options
		if len(b) < 2 {
			return -1, true
		}
		n = (int(b[1]) + 1) * 8
	case 51: // AH
		if len(b) < 2 {
			return -1, true
		}
		n = (int(b[1]) + 2) * 4
	default:
		return 0, false
	}
	if n > len(b) {
		return -1, true
	}
	return n, true
}

// checkLen checks the data length and that the datagram fits in ip bytes
// of IPv4 total length or IPv6 payload length.
func (f *frag) checkLen(ip int) bool {
	n := len(f.data)
	return n > 0 && (!f.more || n%8 == 0) && ip <= 65535
}

// checkFirst checks that a first fragment holds its whole transport header
// (t, starting with the transport protocol proto's header).
func (f *frag) checkFirst(proto uint8, t []byte) Result {
	if f.off != 0 || !f.more {
		return Held
	}
	need := 0
	switch proto {
	case protoTCP:
		need = 20
		if len(t) >= 13 {
			need = max(20, int(t[12]>>4)*4)
		}
	case protoUDP:
		need = 8
	case protoICMPv6, 1:
		need = 8
	}
	if len(t) < need {
		return Bad
	}
	return Held
}
