//go:build linux

package inject

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/dataplane/packet"
)

// sniffer follows the next sequence numbers of both ends of TCP
// connections to server, from an AF_PACKET socket in the router, the way
// the engine follows them from NFQUEUE.
type sniffer struct {
	fd     int
	server netip.AddrPort
	mu     sync.Mutex
	next   map[netip.AddrPort]uint32 // sender -> its next sequence number
	data   map[netip.AddrPort]int    // sender -> data segments seen
	done   chan struct{}
}

func newSniffer(t *testing.T, l *nslab.Lab, server netip.AddrPort) *sniffer {
	s := &sniffer{server: server, next: map[netip.AddrPort]uint32{}, data: map[netip.AddrPort]int{}, done: make(chan struct{})}
	err := nslab.Do(l.Router, func() (err error) {
		const ethPIP = 0x0800
		s.fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(ethPIP>>8|ethPIP&0xff<<8))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := syscall.Timeval{Usec: 100000}
	syscall.SetsockoptTimeval(s.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	stopped := make(chan struct{})
	go s.run(stopped)
	t.Cleanup(func() { close(s.done); <-stopped; syscall.Close(s.fd) })
	return s
}

func (s *sniffer) run(stopped chan struct{}) {
	defer close(stopped)
	buf := make([]byte, 65536)
	var p packet.Parsed
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, _, err := syscall.Recvfrom(s.fd, buf, 0)
		if err != nil || p.Decode(buf[:n]) != packet.OK || p.Proto != packet.ProtoTCP {
			continue
		}
		src, dst := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
		if src != s.server && dst != s.server {
			continue
		}
		next := p.Seq + uint32(len(p.Payload))
		if p.TCPFlags&(packet.FlagSYN|packet.FlagFIN) != 0 {
			next++
		}
		s.mu.Lock()
		if old, ok := s.next[src]; !ok || int32(next-old) > 0 {
			s.next[src] = next
			if len(p.Payload) > 0 {
				s.data[src]++
			}
		}
		s.mu.Unlock()
	}
}

// wait polls until the sniffer has seen n data segments from a and
// returns a's next sequence number.
func (s *sniffer) wait(t *testing.T, a netip.AddrPort, n int) uint32 {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		v, seen := s.next[a], s.data[a]
		s.mu.Unlock()
		if seen >= n {
			return v
		}
	}
	t.Fatalf("the sniffer in the router did not see %d data segments from %v", n, a)
	return 0
}

func TestResetBoth(t *testing.T) {
	l := nslab.New(t)
	server := netip.AddrPortFrom(nslab.ServerAddr, 8081)
	sn := newSniffer(t, l, server)

	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) { ln, err = net.Listen("tcp4", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	var cc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { cc, err = net.DialTimeout("tcp4", server.String(), 3*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(3 * time.Second):
		t.Fatal("server did not accept")
	}
	defer sc.Close()
	client := netip.MustParseAddrPort(cc.LocalAddr().String())

	// One exchange each way, so both sides have data in flight history.
	cc.Write([]byte("hello"))
	buf := make([]byte, 16)
	sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := sc.Read(buf); err != nil {
		t.Fatal(err)
	}
	sc.Write([]byte("world"))
	cc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := cc.Read(buf); err != nil {
		t.Fatal(err)
	}
	clientNext, serverNext := sn.wait(t, client, 1), sn.wait(t, server, 1)

	var inj *Injector
	if err := nslab.Do(l.Router, func() (err error) { inj, err = Open(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inj.Close()

	// Control: resets with sequence numbers the ends do not expect must not
	// kill the connection (so the real check below can fail).
	if err := inj.ResetBoth(client, server, clientNext+1<<30, serverNext+1<<30); err != nil {
		t.Fatal(err)
	}
	cc.Write([]byte("still"))
	sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := sc.Read(buf); err != nil || string(buf[:n]) != "still" {
		t.Fatalf("a reset with a wrong sequence number broke the connection (%q, %v): the test cannot tell", buf[:n], err)
	}
	if clientNext = sn.wait(t, client, 2); clientNext == 0 {
		t.Fatal("no sequence number")
	}

	if err := inj.ResetBoth(client, server, clientNext, serverNext); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"client": cc, "server": sc} {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(buf)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: read returned %v after ResetBoth; want ECONNRESET", name, err)
		}
	}
	if sent, failed := inj.Stats(); sent != 4 || failed != 0 {
		t.Errorf("stats: sent %d failed %d; want 4 and 0", sent, failed)
	}
}

func TestResetBothMixedFamilies(t *testing.T) {
	in := &Injector{}
	err := in.ResetBoth(netip.MustParseAddrPort("198.18.1.2:1"), netip.MustParseAddrPort("[2001:2::1]:80"), 1, 2)
	if !errors.Is(err, ErrFamily) {
		t.Fatalf("mixed families: %v, want ErrFamily", err)
	}
}
