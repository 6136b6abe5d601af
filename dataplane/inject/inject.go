//go:build linux

// Package inject sends TCP resets that the box forges on behalf of both
// ends of a blocked connection, through raw sockets in the box's network
// namespace (the packets leave through OUTPUT, not FORWARD, so they are not
// queued back to the engine).
//
// Linux accepts a reset only when its sequence number is exactly the next
// one it expects (RFC 5961), so the engine passes the numbers it tracked.
// Packets are serialised into a buffer reused under a mutex; a reset costs
// two sendto calls and no allocation beyond gopacket's serialisation.
package inject

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Injector sends forged TCP resets.
type Injector struct {
	mu     sync.Mutex
	fd4    int
	fd6    int
	buf    gopacket.SerializeBuffer
	ip4    layers.IPv4
	ip6    layers.IPv6
	tcp    layers.TCP
	Sent   uint64
	Failed uint64
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

// ResetBoth resets the connection at both ends: toward the client as if
// from the server (seq serverNext, ack clientNext) and toward the server as
// if from the client (seq clientNext, ack serverNext).
func (in *Injector) ResetBoth(client, server netip.AddrPort, clientNext, serverNext uint32) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	err1 := in.send(server, client, serverNext, clientNext)
	err2 := in.send(client, server, clientNext, serverNext)
	if err1 != nil {
		return err1
	}
	return err2
}

func (in *Injector) send(src, dst netip.AddrPort, seq, ack uint32) error {
	in.tcp = layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, RST: true, ACK: true, Window: 0}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var fd int
	var sa syscall.Sockaddr
	var err error
	if src.Addr().Is4() {
		in.ip4 = layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		in.tcp.SetNetworkLayerForChecksum(&in.ip4)
		err = gopacket.SerializeLayers(in.buf, opts, &in.ip4, &in.tcp)
		fd, sa = in.fd4, &syscall.SockaddrInet4{Addr: dst.Addr().As4()}
	} else {
		in.ip6 = layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		in.tcp.SetNetworkLayerForChecksum(&in.ip6)
		err = gopacket.SerializeLayers(in.buf, opts, &in.ip6, &in.tcp)
		fd, sa = in.fd6, &syscall.SockaddrInet6{Addr: dst.Addr().As16()}
	}
	if err != nil {
		in.Failed++
		return fmt.Errorf("inject: build reset %v -> %v: %w", src, dst, err)
	}
	if err := syscall.Sendto(fd, in.buf.Bytes(), 0, sa); err != nil {
		in.Failed++
		return fmt.Errorf("inject: send reset %v -> %v: %w", src, dst, err)
	}
	in.Sent++
	return nil
}

// Close closes the sockets.
func (in *Injector) Close() error {
	syscall.Close(in.fd6)
	return syscall.Close(in.fd4)
}
