//go:build linux

package inject

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/nslab"
)

// udpPacket builds the IPv4 datagram from -> to the router sees.
func udpPacket(t *testing.T, from, to netip.AddrPort, payload string) []byte {
	t.Helper()
	ip := layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP, SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	udp := layers.UDP{SrcPort: layers.UDPPort(from.Port()), DstPort: layers.UDPPort(to.Port())}
	udp.SetNetworkLayerForChecksum(&ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, &ip, &udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestUnreachableUDP: the ICMP port unreachable the router forges for a
// client's datagram makes the client's connected UDP socket fail with
// ECONNREFUSED, while the server (listening: the kernel would not refuse)
// got the datagram.
func TestUnreachableUDP(t *testing.T) {
	l := nslab.New(t)
	server := netip.AddrPortFrom(nslab.ServerAddr, 9053)
	var sc *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) {
		sc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(server))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var cc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { cc, err = net.Dial("udp4", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := netip.MustParseAddrPort(cc.LocalAddr().String())
	var inj *Injector
	if err := nslab.Do(l.Router, func() (err error) { inj, err = Open(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inj.Close()

	buf := make([]byte, 64)
	// Control: without the injected error the client's socket just waits.
	if _, err := cc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	cc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := cc.Read(buf); !errors.Is(err, syscall.EAGAIN) && !isTimeout(err) {
		t.Fatalf("before any ICMP error the client read %v; want a timeout (the test cannot tell)", err)
	}
	sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := sc.Read(buf); err != nil {
		t.Fatalf("the server did not get the datagram: %v", err)
	}

	if err := inj.Unreachable(udpPacket(t, client, server, "ping")); err != nil {
		t.Fatal(err)
	}
	cc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := cc.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after Unreachable the client read %v; want ECONNREFUSED", err)
	}
	if inj.Unreach != 1 || inj.Failed != 0 {
		t.Fatalf("counters: unreach %d failed %d; want 1 and 0", inj.Unreach, inj.Failed)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUnreachableNotIP(t *testing.T) {
	in := &Injector{}
	for _, pkt := range [][]byte{nil, make([]byte, 19), append([]byte{0x20}, make([]byte, 40)...), append([]byte{0x41}, make([]byte, 40)...)} {
		if err := in.Unreachable(pkt); !errors.Is(err, ErrNotIP) {
			t.Errorf("Unreachable(%x): %v, want ErrNotIP", pkt, err)
		}
	}
}
