package defrag

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/packet"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz/FuzzDefrag")

var (
	t0         = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	cli4, srv4 = netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.2.2")
	cli6, srv6 = netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::53")
)

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// udp4 is a whole IPv4 UDP datagram with identification id, as the
// reassembly of its fragments must give it back.
func udp4(id uint16, n int, seed byte) []byte {
	p := testpcap.IP(cli4, srv4, layers.IPProtocolUDP, &layers.UDP{SrcPort: 5353, DstPort: 53}, payload(n, seed))
	return testpcap.Frag4(p, id, 0, len(p), false)
}

func tcp4(n int) []byte {
	return testpcap.IP(cli4, srv4, layers.IPProtocolTCP, &layers.TCP{SrcPort: 40000, DstPort: 80, DataOffset: 5, ACK: true}, payload(n, 1))
}

func udp6(n int, seed byte) []byte {
	return testpcap.IP(cli6, srv6, layers.IPProtocolUDP, &layers.UDP{SrcPort: 5353, DstPort: 53}, payload(n, seed))
}

// withExt6 inserts a hop-by-hop and a destination options header (8 bytes
// each, PadN) between the IPv6 header and its upper layer.
func withExt6(p []byte) []byte {
	b := append([]byte(nil), p[:40]...)
	upper := b[6]
	b[6] = 0
	b = append(b, 60, 0, 1, 4, 0, 0, 0, 0, upper, 0, 1, 4, 0, 0, 0, 0)
	b = append(b, p[40:]...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// piece is one fragment of a case: bytes [off, off+n) of the payload,
// taken from the altered copy when alt.
type piece struct {
	off, n int
	more   bool
	alt    bool
	dt     time.Duration
	want   Result
}

type datagramCase struct {
	name   string
	cfg    Config
	pkt    []byte
	v6     bool
	unfrag int // v6: ext header bytes kept in every fragment
	nh     int // v6: offset of the next-header byte naming the fragment header
	pieces []piece
	stats  Stats
	len    int // datagrams remembered at the end
}

func (c *datagramCase) frag(p piece) []byte {
	pkt := c.pkt
	if p.alt {
		pkt = append([]byte(nil), pkt...)
		for i := len(pkt) - 1; i >= len(pkt)-2000 && i > 100; i-- {
			pkt[i] ^= 0x55
		}
		for i := 200; i < len(pkt) && i < 2200; i++ {
			pkt[i] ^= 0x55
		}
	}
	if c.v6 {
		return testpcap.Frag6(pkt, c.unfrag, c.nh, 0xdeadbeef, p.off, p.n, p.more)
	}
	return testpcap.Frag4(pkt, 0x4242, p.off, p.n, p.more)
}

func datagramCases() []datagramCase {
	v4 := udp4(0x4242, 4000, 3) // 4008 bytes of IP payload
	v6 := udp6(4000, 5)
	v6ext := withExt6(udp6(3000, 9))
	return []datagramCase{
		{name: "v4 in order", pkt: v4, pieces: []piece{
			{off: 0, n: 1480, more: true, want: Held},
			{off: 1480, n: 1480, more: true, want: Held},
			{off: 2960, n: 1480, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1}},
		{name: "v4 reverse order", pkt: v4, pieces: []piece{
			{off: 2960, n: 1480, want: Held},
			{off: 1480, n: 1480, more: true, want: Held},
			{off: 0, n: 1480, more: true, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1}},
		{name: "v4 identical overlaps", pkt: v4, pieces: []piece{
			{off: 0, n: 1480, more: true, want: Held},
			{off: 1000, n: 1480, more: true, want: Held},
			{off: 2000, n: 3000, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1, Overlaps: 2}},
		{name: "v4 duplicate fragment", pkt: v4, pieces: []piece{
			{off: 0, n: 2000, more: true, want: Held},
			{off: 0, n: 2000, more: true, want: Held},
			{off: 2000, n: 3000, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1, Overlaps: 1}},
		{name: "v4 conflicting overlap discards the datagram", pkt: v4, pieces: []piece{
			{off: 0, n: 1480, more: true, want: Held},
			{off: 1000, n: 1480, more: true, alt: true, want: Conflict},
			{off: 1480, n: 3000, want: Discarded},
			{off: 0, n: 1480, more: true, want: Discarded},
		}, stats: Stats{Fragments: 4, Overlaps: 1, Conflicts: 1, DroppedBad: 2}, len: 1},
		{name: "v4 conflict in an out-of-order run", pkt: v4, pieces: []piece{
			{off: 2960, n: 1480, want: Held},
			{off: 0, n: 1480, more: true, want: Held},
			{off: 1480, n: 2000, more: true, alt: true, want: Conflict},
		}, stats: Stats{Fragments: 3, Overlaps: 1, Conflicts: 1}, len: 1},
		{name: "v4 hole never filled times out", pkt: v4, pieces: []piece{
			{off: 0, n: 1480, more: true, want: Held},
			{off: 2960, n: 1480, want: Held, dt: 10 * time.Second},
			{off: 1480, n: 1480, more: true, dt: 30 * time.Second, want: Held}, // a new datagram
		}, stats: Stats{Fragments: 3, Timeouts: 1}, len: 1},
		{name: "v4 second last fragment with another length", pkt: v4, pieces: []piece{
			{off: 2960, n: 1480, want: Held},
			{off: 1480, n: 1480, want: Bad},
			{off: 0, n: 1480, more: true, want: Discarded},
		}, stats: Stats{Fragments: 3, DroppedBad: 2}, len: 1},
		{name: "v4 data past the end", pkt: v4, pieces: []piece{
			{off: 1480, n: 1480, want: Held},
			{off: 2960, n: 1480, want: Bad},
		}, stats: Stats{Fragments: 2, DroppedBad: 1}, len: 1},
		{name: "v4 non-last fragment not a multiple of 8", pkt: v4, pieces: []piece{
			{off: 0, n: 1001, more: true, want: Bad},
			{off: 0, n: 1480, more: true, want: Held},
		}, stats: Stats{Fragments: 2, DroppedBad: 1}, len: 1},
		{name: "v4 fragment cap", cfg: Config{MaxFragments: 2}, pkt: v4, pieces: []piece{
			{off: 0, n: 1000, more: true, want: Held},
			{off: 1000, n: 1000, more: true, want: Held},
			{off: 2000, n: 1000, more: true, want: OverCap},
			{off: 3000, n: 1500, want: Discarded},
		}, stats: Stats{Fragments: 4, DroppedCap: 1, DroppedBad: 1}, len: 1},
		{name: "v4 byte cap", cfg: Config{MaxBytes: 3000}, pkt: v4, pieces: []piece{
			{off: 0, n: 1480, more: true, want: Held},       // 2 KiB buffer + 20 header bytes
			{off: 1480, n: 1480, more: true, want: OverCap}, // would need 4 KiB
		}, stats: Stats{Fragments: 2, DroppedCap: 1}, len: 1},
		{name: "v6 in order", v6: true, nh: 6, pkt: v6, pieces: []piece{
			{off: 0, n: 1448, more: true, want: Held},
			{off: 1448, n: 1448, more: true, want: Held},
			{off: 2896, n: 1448, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1}},
		{name: "v6 reverse order", v6: true, nh: 6, pkt: v6, pieces: []piece{
			{off: 2896, n: 1448, want: Held},
			{off: 1448, n: 1448, more: true, want: Held},
			{off: 0, n: 1448, more: true, want: Complete},
		}, stats: Stats{Fragments: 3, Reassembled: 1}},
		{name: "v6 extension headers before the fragment header", v6: true, unfrag: 16, nh: 48, pkt: v6ext, pieces: []piece{
			{off: 1448, n: 2000, want: Held},
			{off: 0, n: 1448, more: true, want: Complete},
		}, stats: Stats{Fragments: 2, Reassembled: 1}},
		{name: "v6 destination options after the fragment header", v6: true, unfrag: 8, nh: 40, pkt: v6ext, pieces: []piece{
			{off: 0, n: 1448, more: true, want: Held},
			{off: 1448, n: 2000, want: Complete},
		}, stats: Stats{Fragments: 2, Reassembled: 1}},
		{name: "v6 first fragment without the whole header chain", v6: true, unfrag: 8, nh: 40, pkt: v6ext, pieces: []piece{
			{off: 0, n: 8, more: true, want: Bad}, // the destination options only (RFC 7112)
		}, stats: Stats{Fragments: 1, DroppedBad: 1}},
		{name: "v6 conflicting overlap", v6: true, nh: 6, pkt: v6, pieces: []piece{
			{off: 2896, n: 1448, want: Held},
			{off: 0, n: 3000, more: true, alt: true, want: Conflict},
		}, stats: Stats{Fragments: 2, Overlaps: 1, Conflicts: 1}, len: 1},
		{name: "v6 datagram cap", cfg: Config{MaxDatagrams: 1}, v6: true, nh: 6, pkt: v6, pieces: []piece{
			{off: 0, n: 1448, more: true, want: Held},
		}, stats: Stats{Fragments: 1}, len: 1},
	}
}

func checkInvariant(t testing.TB, r *Reassembler, held uint64) {
	t.Helper()
	s := r.Stats()
	if s.Fragments != held+s.Reassembled+s.Conflicts+s.DroppedCap+s.DroppedBad {
		t.Fatalf("counters do not add up: %+v with %d held", s, held)
	}
	if r.Bytes() > r.Config().MaxBytes || r.Bytes() < 0 {
		t.Fatalf("holds %d bytes, cap %d", r.Bytes(), r.Config().MaxBytes)
	}
}

func TestDatagrams(t *testing.T) {
	for _, c := range datagramCases() {
		t.Run(c.name, func(t *testing.T) {
			r := New(c.cfg)
			now := t0
			held := uint64(0)
			for i, p := range c.pieces {
				now = now.Add(p.dt)
				res, out := r.Add(now, c.frag(p))
				if res != p.want {
					t.Fatalf("fragment %d [%d,+%d): %v, want %v", i, p.off, p.n, res, p.want)
				}
				if res == Held {
					held++
				}
				if res != Complete {
					if out != nil {
						t.Fatalf("fragment %d: %v with a datagram", i, res)
					}
					continue
				}
				if !bytes.Equal(out, c.pkt) {
					t.Fatalf("reassembled datagram differs from the original:\n got %x\nwant %x", out[:min(80, len(out))], c.pkt[:80])
				}
				var pp packet.Parsed
				if d := pp.Decode(out); d != packet.OK || pp.Fragment || pp.Proto != packet.ProtoUDP || len(pp.Payload) == 0 {
					t.Fatalf("reassembled datagram decodes %v, fragment %v, proto %d", d, pp.Fragment, pp.Proto)
				}
			}
			checkInvariant(t, r, held)
			if got := r.Stats(); got != c.stats {
				t.Errorf("stats %+v, want %+v", got, c.stats)
			}
			if r.Len() != c.len {
				t.Errorf("%d datagrams remembered, want %d", r.Len(), c.len)
			}
			if n := r.Expire(now.Add(61 * time.Second)); r.Len() != 0 || r.Bytes() != 0 {
				t.Errorf("after every timeout: %d datagrams, %d bytes held (expired %d)", r.Len(), r.Bytes(), n)
			}
		})
	}
}

func TestTimeoutsPerVersion(t *testing.T) {
	r := New(Config{})
	v4, v6 := udp4(7, 3000, 1), udp6(3000, 2)
	r.Add(t0, testpcap.Frag4(v4, 7, 0, 1480, true))
	r.Add(t0, testpcap.Frag6(v6, 0, 6, 7, 0, 1448, true))
	if n := r.Expire(t0.Add(30*time.Second - 1)); n != 0 || r.Len() != 2 {
		t.Fatalf("before 30 s: expired %d, %d left", n, r.Len())
	}
	if n := r.Expire(t0.Add(30 * time.Second)); n != 1 || r.Len() != 1 {
		t.Fatalf("at 30 s: expired %d (want the IPv4 one), %d left", n, r.Len())
	}
	if n := r.Expire(t0.Add(60 * time.Second)); n != 1 || r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("at 60 s: expired %d (want the IPv6 one), %d left, %d bytes", n, r.Len(), r.Bytes())
	}
	if s := r.Stats(); s.Timeouts != 2 {
		t.Fatalf("timeouts %d, want 2", s.Timeouts)
	}
	r = New(Config{TimeoutV4: time.Second})
	r.Add(t0, testpcap.Frag4(v4, 7, 0, 1480, true))
	if n := r.Expire(t0.Add(time.Second)); n != 1 {
		t.Fatalf("configured 1 s timeout: expired %d", n)
	}
}

// TestPoison: a datagram whose verdict was drop cannot be completed by a
// resent copy of its completing fragment.
func TestPoison(t *testing.T) {
	pkt := udp4(9, 3000, 4)
	first, last := testpcap.Frag4(pkt, 9, 0, 1480, true), testpcap.Frag4(pkt, 9, 1480, 3000, false)
	for _, poison := range []bool{false, true} {
		r := New(Config{})
		r.Add(t0, first)
		if res, _ := r.Add(t0, last); res != Complete {
			t.Fatalf("completing fragment: %v", res)
		}
		if poison {
			r.Poison()
		}
		res, _ := r.Add(t0.Add(time.Second), last)
		want := Held // accepted: a new datagram the receiver cannot complete alone
		if poison {
			want = Discarded
		}
		if res != want {
			t.Fatalf("poison %v: resent completing fragment %v, want %v", poison, res, want)
		}
		if poison && r.Bytes() != 0 {
			t.Fatalf("a poisoned datagram holds %d bytes", r.Bytes())
		}
	}
}

func TestBadFragments(t *testing.T) {
	tcp := tcp4(3000)
	big := udp4(1, 1600, 1)
	huge := testpcap.Frag4(big, 1, 1480, 200, false)
	binary.BigEndian.PutUint16(huge[6:], 65528/8) // data would end past 65535
	cases := []struct {
		name string
		pkt  []byte
		want Result
	}{
		{"whole IPv4 packet", udp4(1, 100, 1), NotFragment},
		{"whole IPv6 packet", udp6(100, 1), NotFragment},
		{"atomic IPv6 fragment", testpcap.Frag6(udp6(100, 1), 0, 6, 1, 0, 200, false), NotFragment},
		{"not IP", []byte{0x10, 1, 2}, NotFragment},
		{"empty", nil, NotFragment},
		{"IPv4 past 65535", huge, Bad},
		{"IPv4 empty fragment", testpcap.Frag4(big, 1, 1608, 8, false), Bad},
		{"TCP tiny first fragment", testpcap.Frag4(tcp, 2, 0, 8, true), Bad},
		{"TCP offset 8 (RFC 3128)", testpcap.Frag4(tcp, 2, 8, 8, true), Bad},
		{"TCP first fragment with the header", testpcap.Frag4(tcp, 2, 0, 24, true), Held},
		{"IPv6 non-last not a multiple of 8", testpcap.Frag6(udp6(3000, 1), 0, 6, 1, 0, 1001, true), Bad},
	}
	for _, c := range cases {
		r := New(Config{})
		if got, _ := r.Add(t0, c.pkt); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReassembledDatagramLifetime: the returned bytes stay intact until the
// next call and the buffer is then reused, not leaked.
func TestManyDatagrams(t *testing.T) {
	r := New(Config{MaxDatagrams: 16})
	for i := range 1000 {
		id := uint16(i)
		pkt := udp4(id, 3000, byte(i))
		// Interleave two datagrams so more than one is in progress.
		other := udp4(id+30000, 2000, byte(i+1))
		r.Add(t0, testpcap.Frag4(pkt, id, 1480, 3000, false))
		r.Add(t0, testpcap.Frag4(other, id+30000, 0, 1480, true))
		res, out := r.Add(t0, testpcap.Frag4(pkt, id, 0, 1480, true))
		if res != Complete || !bytes.Equal(out, pkt) {
			t.Fatalf("datagram %d: %v", i, res)
		}
		res, out = r.Add(t0, testpcap.Frag4(other, id+30000, 1480, 2000, false))
		if res != Complete || !bytes.Equal(out, other) {
			t.Fatalf("datagram %d': %v", i, res)
		}
	}
	r.Expire(t0)
	if r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("%d datagrams, %d bytes left", r.Len(), r.Bytes())
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	pkt := udp4(3, 4000, 3)
	frags := [][]byte{
		testpcap.Frag4(pkt, 3, 2960, 1480, false),
		testpcap.Frag4(pkt, 3, 0, 1480, true),
		testpcap.Frag4(pkt, 3, 1480, 1480, true),
	}
	p6 := withExt6(udp6(4000, 1))
	frags6 := [][]byte{
		testpcap.Frag6(p6, 16, 48, 3, 0, 1448, true),
		testpcap.Frag6(p6, 16, 48, 3, 1448, 1448, true),
		testpcap.Frag6(p6, 16, 48, 3, 2896, 1448, false),
	}
	r := New(Config{})
	run := func() {
		for _, fs := range [][][]byte{frags, frags6} {
			for i, f := range fs {
				res, _ := r.Add(t0, f)
				if (i == 2) != (res == Complete) {
					t.Fatalf("fragment %d: %v", i, res)
				}
			}
		}
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("steady-state reassembly allocates %.1f times per two datagrams", n)
	}
}

func BenchmarkReassemble3x1480(b *testing.B) {
	pkt := udp4(3, 4000, 3)
	frags := [][]byte{
		testpcap.Frag4(pkt, 3, 0, 1480, true),
		testpcap.Frag4(pkt, 3, 1480, 1480, true),
		testpcap.Frag4(pkt, 3, 2960, 1480, false),
	}
	r := New(Config{})
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frags {
			r.Add(t0, f)
		}
	}
}

// fuzzInput frames packets for FuzzDefrag: each is a 2-byte big-endian
// length, a 1-byte clock step in seconds, then the packet.
func fuzzInput(pkts ...[]byte) []byte {
	var b []byte
	for i, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, byte(i%3))
		b = append(b, p...)
	}
	return b
}

// fuzzSeeds are small (the fuzzer minimises every new input, and its time
// grows with the square of the size): datagrams of a few dozen bytes in
// 16-byte fragments, in order, reversed, overlapping, conflicting, and
// IPv6 with extension headers on both sides of the fragment header.
func fuzzSeeds() [][]byte {
	v4, v6, v6ext := udp4(1, 40, 1), udp6(40, 2), withExt6(udp6(40, 3))
	alt := append([]byte(nil), v4...)
	alt[40] ^= 0xff
	f4 := func(p []byte, off, n int, more bool) []byte { return testpcap.Frag4(p, 1, off, n, more) }
	f6 := func(p []byte, unfrag, nh, off, n int, more bool) []byte {
		return testpcap.Frag6(p, unfrag, nh, 1, off, n, more)
	}
	return [][]byte{
		fuzzInput(f4(v4, 0, 16, true), f4(v4, 16, 16, true), f4(v4, 32, 64, false)),
		fuzzInput(f4(v4, 32, 64, false), f4(v4, 16, 16, true), f4(v4, 0, 16, true)),
		fuzzInput(f4(v4, 0, 24, true), f4(v4, 16, 64, false)),
		fuzzInput(f4(v4, 0, 24, true), f4(alt, 16, 64, false), f4(v4, 24, 64, false)),
		fuzzInput(f4(v4, 0, 16, true), f4(v4, 16, 16, false), f4(v4, 40, 8, false)),
		fuzzInput(f6(v6, 0, 6, 0, 16, true), f6(v6, 0, 6, 16, 64, false)),
		fuzzInput(f6(v6ext, 16, 48, 16, 64, false), f6(v6ext, 16, 48, 0, 16, true)),
		fuzzInput(f6(v6ext, 8, 40, 0, 24, true), f6(v6ext, 8, 40, 24, 64, false)),
		fuzzInput(f4(tcp4(16), 0, 8, true), f6(v6, 0, 6, 0, 64, false), udp4(2, 10, 1)),
	}
}

func FuzzDefrag(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, in []byte) {
	{
		r := New(Config{MaxBytes: 64 << 10, MaxDatagrams: 8, MaxFragments: 8})
		now := t0
		held := map[Result]uint64{}
		var p packet.Parsed
		for len(in) >= 3 {
			n := int(binary.BigEndian.Uint16(in))
			now = now.Add(time.Duration(in[2]) * time.Second)
			in = in[3:]
			n = min(n, len(in))
			pkt := in[:n]
			in = in[n:]
			res, out := r.Add(now, pkt)
			held[res]++
			if res == Complete {
				// Never a fragment again at the IP layer reassembled here
				// (the decoder may still call it one when it carries a
				// fragmented IPv4 header in IP-in-IP: the engine drops those).
				var f frag
				if res := parse(out, &f); res != NotFragment {
					t.Fatalf("reassembled datagram is a fragment again (%v): %x", res, out)
				}
				p.Decode(out)
				if out[0]>>4 == 4 && int(binary.BigEndian.Uint16(out[2:])) != len(out) ||
					out[0]>>4 == 6 && int(binary.BigEndian.Uint16(out[4:]))+40 != len(out) {
					t.Fatalf("reassembled length field disagrees with %d bytes", len(out))
				}
			}
			if r.Len() > 8 {
				t.Fatalf("%d datagrams over the cap of 8", r.Len())
			}
		}
		_ = held
		r.Expire(now.Add(time.Hour))
		if r.Len() != 0 || r.Bytes() != 0 {
			t.Fatalf("after every timeout: %d datagrams, %d bytes", r.Len(), r.Bytes())
		}
		s := r.Stats()
		if s.Fragments != held[Held]+held[Complete]+held[Bad]+held[Conflict]+held[OverCap]+held[Discarded] ||
			s.Reassembled != held[Complete] || s.Conflicts != held[Conflict] || s.DroppedCap != held[OverCap] ||
			s.DroppedBad != held[Bad]+held[Discarded] {
			t.Fatalf("counters %+v disagree with results %v", s, held)
		}
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzDefrag in step with the table
// (go test -run FuzzSeeds -update rewrites it).
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDefrag")
	for i, s := range fuzzSeeds() {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(name); err != nil || string(got) != body {
			t.Errorf("%s is missing or stale (%v): run go test ./dataplane/defrag -run FuzzSeeds -update", name, err)
		}
	}
}
