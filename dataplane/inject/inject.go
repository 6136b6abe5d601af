//go:build linux

// Package inject sends TCP resets that the box forges on behalf of both
// ends of a blocked connection, and ICMP destination unreachables to the
// sender of a rejected UDP (or other non-TCP) packet (Unreachable), through raw sockets in the box's network
// namespace (the packets leave through OUTPUT, not FORWARD, so they are not
// queued back to the engine).
//
// Linux accepts a reset only when its sequence number is exactly the next
// one it expects (RFC 5961), so the engine passes the numbers it tracked.
// Packets are serialised (with checksums) into a buffer and layers reused
// under a mutex; a reset costs two sendto calls and no allocation beyond
// the syscall package's sockaddr conversion.
package inject

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Injector sends forged TCP resets.
type Injector struct {
	mu      sync.Mutex
	fd4     int
	fd6     int
	buf     gopacket.SerializeBuffer
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	sa4     syscall.SockaddrInet4
	sa6     syscall.SockaddrInet6
	src     [16]byte // address bytes the layers' IPs point into
	dst     [16]byte
	Sent    uint64 // resets sent (read with Stats while in use)
	Unreach uint64 // ICMP unreachables sent (unreach.go)
	Replies uint64 // UDP replies sent in a server's place (reply.go)
	Failed  uint64 // resets or unreachables that could not be built or sent
}

// Open opens the raw sockets. It needs CAP_NET_RAW.
func Open() (*Injector, error) {
	fd4, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("inject: raw IPv4 socket: %w (run as root or with CAP_NET_RAW)", err)
	}
	fd6, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		syscall.Close(fd4)
		return nil, fmt.Errorf("inject: raw IPv6 socket: %w", err)
	}
	// IPPROTO_RAW implies we write the IPv6 header too (IPV6_HDRINCL).
	const ipv6HdrIncl = 36
	_ = syscall.SetsockoptInt(fd6, syscall.IPPROTO_IPV6, ipv6HdrIncl, 1)
	return &Injector{fd4: fd4, fd6: fd6, buf: gopacket.NewSerializeBuffer()}, nil
}

// ResetBoth resets the connection between client and server at both ends:
//
//   - toward the client, as if from the server: RST+ACK with seq serverNext,
//     ack clientNext;
//   - toward the server, as if from the client: RST+ACK with seq clientNext,
//     ack serverNext.
//
// clientNext is the next sequence number the client will send (the last
// client segment's seq + payload length, + 1 for SYN or FIN): exactly what
// the server expects next, as the engine's client-to-server stream Next()
// gives it. serverNext is the same for the server. Linux accepts a reset
// only when its seq equals the receiver's next expected number; any other
// value in the window earns a challenge ACK and the connection lives on.
//
// client and server must both be IPv4 or both IPv6. Both resets are tried;
// the first error is returned (wrapped; ErrFamily for mixed families).
// Safe for concurrent use.
func (in *Injector) ResetBoth(client, server netip.AddrPort, clientNext, serverNext uint32) error {
	if client.Addr().Is4() != server.Addr().Is4() || !client.Addr().IsValid() || !server.Addr().IsValid() {
		return fmt.Errorf("%w: %v and %v", ErrFamily, client, server)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	err1 := in.send(server, client, serverNext, clientNext)
	err2 := in.send(client, server, clientNext, serverNext)
	if err1 != nil {
		return err1
	}
	return err2
}

// ErrFamily is returned (wrapped) by ResetBoth when the two ends are not
// both IPv4 or both IPv6.
var ErrFamily = errors.New("inject: client and server are not of one address family")

func (in *Injector) send(src, dst netip.AddrPort, seq, ack uint32) error {
	in.tcp = layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, RST: true, ACK: true, Window: 0}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var fd int
	var sa syscall.Sockaddr
	var err error
	if src.Addr().Is4() {
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(in.src[:], s4[:])
		copy(in.dst[:], d4[:])
		in.ip4 = layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: in.src[:4], DstIP: in.dst[:4]}
		in.tcp.SetNetworkLayerForChecksum(&in.ip4)
		err = gopacket.SerializeLayers(in.buf, opts, &in.ip4, &in.tcp)
		fd, sa = in.fd4, &in.sa4
		in.sa4.Addr = d4
	} else {
		in.src, in.dst = src.Addr().As16(), dst.Addr().As16()
		in.ip6 = layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: in.src[:], DstIP: in.dst[:]}
		in.tcp.SetNetworkLayerForChecksum(&in.ip6)
		err = gopacket.SerializeLayers(in.buf, opts, &in.ip6, &in.tcp)
		fd, sa = in.fd6, &in.sa6
		in.sa6.Addr = in.dst
	}
	if err != nil {
		in.Failed++
		return fmt.Errorf("inject: build reset %v -> %v: %w", src, dst, err)
	}
	if err := syscall.Sendto(fd, in.buf.Bytes(), 0, sa); err != nil {
		in.Failed++
		return fmt.Errorf("inject: send reset %v -> %v: %w (is there a route to %v in this namespace?)", src, dst, err, dst.Addr())
	}
	in.Sent++
	return nil
}

// Close closes the sockets.
func (in *Injector) Close() error {
	syscall.Close(in.fd6)
	return syscall.Close(in.fd4)
}

// Stats returns how many resets were sent and how many failed.
func (in *Injector) Stats() (sent, failed uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.Sent, in.Failed
}
