package testpcap

import (
	"encoding/binary"
	"time"
)

// Frag4 returns the IPv4 fragment of the unfragmented packet pkt that
// carries bytes [off, off+n) of its payload (clipped to the payload), with
// identification id and MF set when more. The header checksum is valid.
func Frag4(pkt []byte, id uint16, off, n int, more bool) []byte {
	ihl := int(pkt[0]&0x0f) * 4
	data := pkt[ihl:]
	end := min(off+n, len(data))
	b := make([]byte, 0, ihl+end-off)
	b = append(b, pkt[:ihl]...)
	b = append(b, data[off:end]...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], fo)
	b[10], b[11] = 0, 0
	var s uint32
	for i := 0; i < ihl; i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(s))
	return b
}

// Frag6 returns the IPv6 fragment of the unfragmented packet pkt whose
// first 40+unfrag bytes are the unfragmentable part (the header and the
// extension headers that stay in every fragment): a fragment header with
// identification id is inserted after them, carrying bytes [off, off+n) of
// the rest (clipped), M set when more. nh is the offset of the next-header
// byte that names what follows the unfragmentable part (6 when unfrag is 0).
func Frag6(pkt []byte, unfrag, nh int, id uint32, off, n int, more bool) []byte {
	u := 40 + unfrag
	data := pkt[u:]
	end := min(off+n, len(data))
	b := make([]byte, 0, u+8+end-off)
	b = append(b, pkt[:u]...)
	fo := uint16(off/8) << 3
	if more {
		fo |= 1
	}
	b = append(b, pkt[nh], 0, byte(fo>>8), byte(fo), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	b = append(b, data[off:end]...)
	b[nh] = 44
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// Fragments splits the unfragmented packet pkt into fragments of at most
// size payload bytes (a multiple of 8) with identification id, in order.
// IPv6 fragments carry the fragment header right after the IPv6 header.
func Fragments(pkt []byte, id uint32, size int) [][]byte {
	var out [][]byte
	v6 := pkt[0]>>4 == 6
	n := len(pkt) - 40
	if !v6 {
		n = len(pkt) - int(pkt[0]&0x0f)*4
	}
	for off := 0; off < n; off += size {
		more := off+size < n
		if v6 {
			out = append(out, Frag6(pkt, 0, 6, id, off, size, more))
		} else {
			out = append(out, Frag4(pkt, uint16(id), off, size, more))
		}
	}
	return out
}

// FragmentAt replaces the packet at index i of the trace by its
// fragments of size bytes (see Fragments), in the given order (indexes
// into the fragments; nil: in order), 100 µs apart.
func (t *Trace) FragmentAt(i int, id uint32, size int, order []int) {
	p := t.Packets[i]
	fs := Fragments(p.Data, id, size)
	if order == nil {
		for j := range fs {
			order = append(order, j)
		}
	}
	var repl []Packet
	for k, j := range order {
		repl = append(repl, Packet{TS: p.TS.Add(time.Duration(k) * 100 * time.Microsecond), Data: fs[j]})
	}
	t.Packets = append(t.Packets[:i], append(repl, t.Packets[i+1:]...)...)
}
