package flow

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/packet"
)

func pkt(src, dst string, flags uint8) *packet.Parsed {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return &packet.Parsed{Version: 4, Src: s.Addr(), Dst: d.Addr(), SrcPort: s.Port(), DstPort: d.Port(), Proto: packet.ProtoTCP, TCPFlags: flags, Length: 60}
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func TestBidirectionalAndState(t *testing.T) {
	tb := NewTable(Config{})
	syn := pkt("198.18.1.2:40000", "198.18.2.2:80", packet.FlagSYN)
	f, created := tb.Lookup(syn, t0, nil)
	if !created || f.ID == 0 || f.Client.String() != "198.18.1.2:40000" || f.State != StateSynSent {
		t.Fatalf("first packet: created=%v %+v", created, f)
	}
	sa := pkt("198.18.2.2:80", "198.18.1.2:40000", packet.FlagSYN|packet.FlagACK)
	g, created := tb.Lookup(sa, t0, nil)
	if created || g != f || f.Dir(sa) != 1 || f.State != StateSynReceived {
		t.Fatalf("reply not matched to the flow: created=%v dir=%d state=%d", created, f.Dir(sa), f.State)
	}
	tb.Lookup(pkt("198.18.1.2:40000", "198.18.2.2:80", packet.FlagACK), t0, nil)
	if f.State != StateEstablished || f.Packets != [2]uint64{2, 1} {
		t.Fatalf("state %d packets %v", f.State, f.Packets)
	}
	// A flow first seen at its SYN-ACK still names the right client.
	h, _ := tb.Lookup(pkt("198.18.2.3:80", "198.18.1.2:40001", packet.FlagSYN|packet.FlagACK), t0, nil)
	if h.Client.String() != "198.18.1.2:40001" {
		t.Fatalf("client of a SYN-ACK-first flow = %v", h.Client)
	}
}

func TestExpireAndEvict(t *testing.T) {
	tb := NewTable(Config{Max: 3})
	var ended []uint64
	fn := func(f *Flow) { ended = append(ended, f.ID) }
	for i, dst := range []string{"198.18.2.1:1", "198.18.2.2:1", "198.18.2.3:1"} {
		tb.Lookup(pkt("198.18.1.2:5", dst, packet.FlagSYN), t0.Add(time.Duration(i)*time.Second), fn)
	}
	tb.Lookup(pkt("198.18.1.2:5", "198.18.2.4:1", packet.FlagSYN), t0.Add(4*time.Second), fn)
	if tb.Len() != 3 || len(ended) != 1 || ended[0] != 1 || tb.Stats().Evicted != 1 {
		t.Fatalf("eviction: len=%d ended=%v stats=%+v", tb.Len(), ended, tb.Stats())
	}
	tb.Expire(t0.Add(33*time.Second), fn) // half-open timeout 30 s: flows 2 and 3 end, 4 stays
	if tb.Len() != 1 || len(ended) != 3 {
		t.Fatalf("expire: len=%d ended=%v", tb.Len(), ended)
	}
	tb.Flush(fn)
	if tb.Len() != 0 || len(ended) != 4 {
		t.Fatalf("flush: len=%d ended=%v", tb.Len(), ended)
	}
}

func TestLookupAllocs(t *testing.T) {
	tb := NewTable(Config{})
	p := pkt("198.18.1.2:40000", "198.18.2.2:80", packet.FlagACK)
	tb.Lookup(p, t0, nil)
	if n := testing.AllocsPerRun(200, func() { tb.Lookup(p, t0, nil) }); n != 0 {
		t.Fatalf("Lookup of an existing flow allocates %v times; want 0", n)
	}
}

func udp(src, dst string) *packet.Parsed {
	p := pkt(src, dst, 0)
	p.Proto = packet.ProtoUDP
	return p
}

func TestKeyDirectionIndependent(t *testing.T) {
	a := pkt("198.18.1.2:40000", "198.18.2.2:80", 0)
	b := pkt("198.18.2.2:80", "198.18.1.2:40000", 0)
	if KeyOf(a) != KeyOf(b) {
		t.Fatalf("%+v != %+v", KeyOf(a), KeyOf(b))
	}
	if u := udp("198.18.1.2:40000", "198.18.2.2:80"); KeyOf(u) == KeyOf(a) {
		t.Fatal("UDP and TCP flows with the same endpoints share a key")
	}
}

func TestTimeoutsPerClass(t *testing.T) {
	tb := NewTable(Config{})
	var ended []string
	fn := func(f *Flow) { ended = append(ended, f.Server.String()) }
	// established TCP
	tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagSYN), t0, fn)
	tb.Lookup(pkt("198.18.2.2:80", "198.18.1.2:1000", packet.FlagSYN|packet.FlagACK), t0, fn)
	est, _ := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagACK), t0, fn)
	// half-open TCP, UDP, ICMP
	tb.Lookup(pkt("198.18.1.2:1001", "198.18.2.2:81", packet.FlagSYN), t0, fn)
	tb.Lookup(udp("198.18.1.2:1002", "198.18.2.2:53"), t0, fn)
	icmp := pkt("198.18.1.2:0", "198.18.2.3:0", 0)
	icmp.Proto = packet.ProtoICMP
	tb.Lookup(icmp, t0, fn)
	if tb.Timeout(est) != 10*time.Minute {
		t.Fatalf("established timeout %v", tb.Timeout(est))
	}
	for _, step := range []struct {
		at   time.Duration
		want []string
	}{
		{29 * time.Second, nil},
		{30 * time.Second, []string{"198.18.2.2:81", "198.18.2.3:0"}},
		{59 * time.Second, []string{"198.18.2.2:81", "198.18.2.3:0"}},
		{60 * time.Second, []string{"198.18.2.2:81", "198.18.2.3:0", "198.18.2.2:53"}},
		{10*time.Minute - time.Second, []string{"198.18.2.2:81", "198.18.2.3:0", "198.18.2.2:53"}},
		{10 * time.Minute, []string{"198.18.2.2:81", "198.18.2.3:0", "198.18.2.2:53", "198.18.2.2:80"}},
	} {
		tb.Expire(t0.Add(step.at), fn)
		if fmt.Sprint(ended) != fmt.Sprint(step.want) {
			t.Fatalf("at +%v ended %v, want %v", step.at, ended, step.want)
		}
	}
	if tb.Len() != 0 || tb.Stats().Expired != 4 {
		t.Fatalf("len %d stats %+v", tb.Len(), tb.Stats())
	}
}

// A SYN flood fills the table; the established connection, idle for a
// while, must survive, and the oldest flood flows go.
func TestEvictionSparesEstablished(t *testing.T) {
	tb := NewTable(Config{Max: 10})
	tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:22", packet.FlagSYN), t0, nil)
	tb.Lookup(pkt("198.18.2.2:22", "198.18.1.2:1000", packet.FlagSYN|packet.FlagACK), t0, nil)
	ssh, _ := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:22", packet.FlagACK), t0, nil)
	id := ssh.ID
	var evicted []uint64
	for i := 0; i < 100; i++ {
		now := t0.Add(5*time.Second + time.Duration(i)*time.Millisecond)
		tb.Lookup(pkt(fmt.Sprintf("198.18.3.%d:%d", i%250+1, 2000+i), "198.18.2.2:80", packet.FlagSYN), now, func(f *Flow) {
			evicted = append(evicted, f.ID)
		})
	}
	if f, created := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:22", packet.FlagACK), t0.Add(6*time.Second), nil); created || f.ID != id {
		t.Fatalf("the established flow was evicted by a SYN flood (created=%v)", created)
	}
	if tb.Len() != 10 || tb.Stats().Evicted != 91 || len(evicted) != 91 || evicted[0] != id+1 {
		t.Fatalf("len %d stats %+v evicted[0]=%v", tb.Len(), tb.Stats(), evicted[:1])
	}
}

func TestReopenAfterClose(t *testing.T) {
	tb := NewTable(Config{})
	var ended []uint64
	fn := func(f *Flow) { ended = append(ended, f.ID) }
	a, _ := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagSYN), t0, fn)
	first := a.ID
	tb.Lookup(pkt("198.18.2.2:80", "198.18.1.2:1000", packet.FlagRST|packet.FlagACK), t0, fn)
	if a.State != StateClosed {
		t.Fatalf("state after RST %d", a.State)
	}
	// A retransmitted ACK does not reopen; a new SYN does.
	if _, created := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagACK), t0, fn); created {
		t.Fatal("ACK on a closed flow started a new one")
	}
	b, created := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagSYN), t0.Add(time.Second), fn)
	if !created || b.ID == first || b.State != StateSynSent || len(ended) != 1 || ended[0] != first || tb.Stats().Reopened != 1 {
		t.Fatalf("reopen: created=%v id=%d (old %d) ended=%v stats=%+v", created, b.ID, first, ended, tb.Stats())
	}
}

func TestFinBothWaysCloses(t *testing.T) {
	tb := NewTable(Config{})
	f, _ := tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagACK), t0, nil)
	if f.State != StateEstablished {
		t.Fatalf("midstream ACK: state %d", f.State)
	}
	tb.Lookup(pkt("198.18.1.2:1000", "198.18.2.2:80", packet.FlagFIN|packet.FlagACK), t0, nil)
	if f.State != StateClosing || tb.Timeout(f) != 30*time.Second {
		t.Fatalf("after one FIN: state %d timeout %v", f.State, tb.Timeout(f))
	}
	tb.Lookup(pkt("198.18.2.2:80", "198.18.1.2:1000", packet.FlagFIN|packet.FlagACK), t0, nil)
	if f.State != StateClosed {
		t.Fatalf("after both FINs: state %d", f.State)
	}
}

func TestFlowsArePooled(t *testing.T) {
	tb := NewTable(Config{})
	a, _ := tb.Lookup(udp("198.18.1.2:1", "198.18.2.2:53"), t0, nil)
	tb.Expire(t0.Add(time.Hour), nil)
	b, _ := tb.Lookup(udp("198.18.1.2:2", "198.18.2.2:53"), t0.Add(time.Hour), nil)
	if a != b || b.ID != 2 || b.Client.Port() != 2 || b.Packets != [2]uint64{1, 0} || b.Ext != nil {
		t.Fatalf("reused flow not reset: same=%v %+v", a == b, b)
	}
}
