//go:build linux

package inject

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// ReplyUDP answers pkt, a UDP datagram (IPv4 or IPv6, as the engine saw
// it), with payload as if from its destination: addresses and ports
// swapped. The engine uses it to answer a DNS query for a blocked domain in
// the resolver's place (dnsmsg.AppendBlockReply) after dropping the query.
// Safe for concurrent use; it allocates (the block path is not the packet
// path).
func (in *Injector) ReplyUDP(pkt, payload []byte) error {
	if len(pkt) < 20 {
		return fmt.Errorf("%w: %d bytes", ErrNotIP, len(pkt))
	}
	var src, dst netip.Addr
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+8 || pkt[9] != 17 {
			return fmt.Errorf("%w: not a UDP/IPv4 datagram", ErrNotIP)
		}
		src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		l4 = pkt[ihl:]
	case 6:
		// Only a UDP header right after the fixed header: DNS queries carry
		// no extension headers.
		if len(pkt) < 48 || pkt[6] != 17 {
			return fmt.Errorf("%w: not a UDP/IPv6 datagram without extension headers", ErrNotIP)
		}
		src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		l4 = pkt[40:]
	default:
		return fmt.Errorf("%w: version %d", ErrNotIP, pkt[0]>>4)
	}
	sport, dport := uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
	udp := layers.UDP{SrcPort: layers.UDPPort(dport), DstPort: layers.UDPPort(sport)}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	var fd int
	var sa syscall.Sockaddr
	if src.Is4() {
		ip := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: dst.AsSlice(), DstIP: src.AsSlice()}
		udp.SetNetworkLayerForChecksum(&ip)
		if err := gopacket.SerializeLayers(buf, opts, &ip, &udp, gopacket.Payload(payload)); err != nil {
			return fmt.Errorf("inject: build UDP reply to %v: %w", src, err)
		}
		fd, sa = in.fd4, &syscall.SockaddrInet4{Addr: src.As4()}
	} else {
		ip := layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: dst.AsSlice(), DstIP: src.AsSlice()}
		udp.SetNetworkLayerForChecksum(&ip)
		if err := gopacket.SerializeLayers(buf, opts, &ip, &udp, gopacket.Payload(payload)); err != nil {
			return fmt.Errorf("inject: build UDP reply to %v: %w", src, err)
		}
		fd, sa = in.fd6, &syscall.SockaddrInet6{Addr: src.As16()}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := syscall.Sendto(fd, buf.Bytes(), 0, sa); err != nil {
		in.Failed++
		return fmt.Errorf("inject: send UDP reply to %v:%d: %w (is there a route to it in this namespace?)", src, sport, err)
	}
	in.Replies++
	return nil
}
