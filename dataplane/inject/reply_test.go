//go:build linux

package inject

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/dnsmsg"
	"github.com/openutm/utm/dataplane/internal/nslab"
	"golang.org/x/net/dns/dnsmessage"
)

// TestReplyUDPAnswersResolver: a client in the client namespace asks a DNS
// server address in the server namespace where nothing answers; the router
// injects the box's NXDOMAIN and sinkhole replies built from the query the
// server side received, and the client's socket gets them from the server's
// address and port.
func TestReplyUDPAnswersResolver(t *testing.T) {
	l := nslab.New(t)
	server := netip.AddrPortFrom(nslab.ServerAddr, 53)
	var sc *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) {
		sc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(server))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var inj *Injector
	if err := nslab.Do(l.Router, func() (err error) { inj, err = Open(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inj.Close()

	// The fake DNS server: it never answers itself; it hands every query
	// (as an IP packet the router would have seen) to the injector.
	var sinkhole atomic.Value // netip.Addr
	sinkhole.Store(netip.Addr{})
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := sc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			reply, err := dnsmsg.AppendBlockReply(nil, buf[:n], sinkhole.Load().(netip.Addr), 60)
			if err != nil {
				continue
			}
			if err := inj.ReplyUDP(udpPacket(t, from, server, string(buf[:n])), reply); err != nil {
				t.Error(err)
			}
		}
	}()
	// The client: a real UDP socket in the client namespace (made there; it
	// stays in it), a query built and the reply parsed by an independent
	// DNS implementation.
	var cc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { cc, err = net.Dial("udp4", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	lookup := func(id uint16) (dnsmessage.Header, []dnsmessage.Resource) {
		t.Helper()
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("c2.bad.example."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		if _, err := cc.Write(q); err != nil {
			t.Fatal(err)
		}
		cc.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, err := cc.Read(buf)
		if err != nil {
			t.Fatalf("no reply reached the client: %v", err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		p.SkipAllQuestions()
		as, err := p.AllAnswers()
		if err != nil {
			t.Fatal(err)
		}
		return h, as
	}
	if h, as := lookup(1); h.ID != 1 || h.RCode != dnsmessage.RCodeNameError || len(as) != 0 {
		t.Fatalf("NXDOMAIN policy: the client got %+v with %d answers", h, len(as))
	}
	sink := netip.MustParseAddr("198.18.99.1")
	sinkhole.Store(sink)
	h, as := lookup(2)
	if h.ID != 2 || h.RCode != dnsmessage.RCodeSuccess || len(as) != 1 {
		t.Fatalf("sinkhole policy: the client got %+v with %d answers", h, len(as))
	}
	if a, ok := as[0].Body.(*dnsmessage.AResource); !ok || netip.AddrFrom4(a.A) != sink {
		t.Fatalf("sinkhole policy: answer %+v, want %v", as[0].Body, sink)
	}
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.Replies < 2 || inj.Failed != 0 {
		t.Fatalf("counters: replies %d failed %d", inj.Replies, inj.Failed)
	}
}
