package flow

import (
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
