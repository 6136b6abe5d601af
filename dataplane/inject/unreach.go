//go:build linux

package inject

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// ErrNotIP is returned (wrapped) by Unreachable for bytes that do not start
// with an IPv4 or IPv6 header.
var ErrNotIP = errors.New("inject: not an IP packet")

// quoteMax caps how much of the offending packet an ICMP error quotes: the
// IPv4 header and 8 bytes are enough for the sender's stack to find its
// socket (RFC 792); IPv6 quotes as much as fits in the minimum MTU (RFC 4443).
const (
	quoteMax4 = 60 + 8
	quoteMax6 = 1280 - 40 - 8
)

// Unreachable answers pkt, an IP packet the box rejects, with an ICMP
// destination unreachable to its sender, as if from its destination: port
// unreachable for UDP (the sender's connected UDP socket then fails with
// ECONNREFUSED), host unreachable (IPv6: address unreachable) for other
// protocols. The error quotes the start of pkt. It is the non-TCP half of
// Suricata's reject; Safe for concurrent use; it allocates (the reject path
// is not the packet path).
func (in *Injector) Unreachable(pkt []byte) error {
	if len(pkt) < 20 {
		return fmt.Errorf("%w: %d bytes", ErrNotIP, len(pkt))
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	var fd int
	var sa syscall.Sockaddr
	var to netip.Addr
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return fmt.Errorf("%w: bad IPv4 header length %d", ErrNotIP, ihl)
		}
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		code := uint8(layers.ICMPv4CodeHost)
		if pkt[9] == 17 {
			code = layers.ICMPv4CodePort
		}
		ip := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: dst.AsSlice(), DstIP: src.AsSlice()}
		icmp := layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, code)}
		quote := pkt[:min(len(pkt), ihl+8, quoteMax4)]
		if err := gopacket.SerializeLayers(buf, opts, &ip, &icmp, gopacket.Payload(quote)); err != nil {
			return fmt.Errorf("inject: build ICMP unreachable to %v: %w", src, err)
		}
		fd, sa, to = in.fd4, &syscall.SockaddrInet4{Addr: src.As4()}, src
	case 6:
		if len(pkt) < 40 {
			return fmt.Errorf("%w: %d bytes of IPv6", ErrNotIP, len(pkt))
		}
		src, dst := netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		code := uint8(layers.ICMPv6CodeAddressUnreachable)
		if pkt[6] == 17 {
			code = layers.ICMPv6CodePortUnreachable
		}
		ip := layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
			SrcIP: dst.AsSlice(), DstIP: src.AsSlice()}
		icmp := layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, code)}
		if err := icmp.SetNetworkLayerForChecksum(&ip); err != nil {
			return fmt.Errorf("inject: build ICMPv6 unreachable to %v: %w", src, err)
		}
		body := make([]byte, 4, 4+quoteMax6) // 4 unused bytes, then the quote
		body = append(body, pkt[:min(len(pkt), quoteMax6)]...)
		if err := gopacket.SerializeLayers(buf, opts, &ip, &icmp, gopacket.Payload(body)); err != nil {
			return fmt.Errorf("inject: build ICMPv6 unreachable to %v: %w", src, err)
		}
		fd, sa, to = in.fd6, &syscall.SockaddrInet6{Addr: src.As16()}, src
	default:
		return fmt.Errorf("%w: version %d", ErrNotIP, pkt[0]>>4)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := syscall.Sendto(fd, buf.Bytes(), 0, sa); err != nil {
		in.Failed++
		return fmt.Errorf("inject: send ICMP unreachable to %v: %w (is there a route to it in this namespace?)", to, err)
	}
	in.Unreach++
	return nil
}
