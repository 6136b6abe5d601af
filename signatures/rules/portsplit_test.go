package rules

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// TestPortSplitNoFalseNegative: with buckets split by port, Match finds
// exactly the rules a brute-force check of every rule finds, on rules
// with every kind of port field (any, one port, lists, ranges, negations,
// variables, "<>") and packets in both directions, from named and unnamed
// client ports.
func TestPortSplitNoFalseNegative(t *testing.T) {
	bothScanners(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(3))
		named := []string{"53", "80", "443", "445", "139", "5060", "123"}
		portField := func() string {
			switch r.Intn(9) {
			case 0, 1, 2:
				return "any"
			case 3, 4:
				return named[r.Intn(len(named))]
			case 5:
				return fmt.Sprintf("[%s,%s]", named[r.Intn(len(named))], named[r.Intn(len(named))])
			case 6:
				return "$HTTP_PORTS"
			case 7:
				return "!" + named[r.Intn(len(named))]
			}
			lo := 1 + r.Intn(2000)
			return fmt.Sprintf("%d:%d", lo, lo+r.Intn(40))
		}
		word := func(n int) string { return randWord(r, "abcd", n) }
		var text strings.Builder
		for i := 0; i < 900; i++ {
			proto := []string{"udp", "tcp"}[i%2]
			arrow := "->"
			if r.Intn(10) == 0 {
				arrow = "<>"
			}
			flow := ""
			switch r.Intn(4) {
			case 0:
				flow = " flow:to_server;"
			case 1:
				flow = " flow:to_client;"
			}
			fmt.Fprintf(&text, "alert %s any %s %s any %s (msg:\"r%d\";%s content:\"%s\"; sid:%d;)\n",
				proto, portField(), arrow, portField(), i, flow, word(2+r.Intn(3)), i+1)
		}
		s, errs := Parse(strings.NewReader(text.String()), "test.rules", DefaultVars())
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		s.pf.compile()
		splits := 0
		for _, b := range s.pf.byBuf[BufPayload] {
			if b != nil && (b.split[0] != nil || b.split[1] != nil) {
				splits++
			}
		}
		if splits == 0 {
			t.Fatal("no bucket was split: the test does not exercise port groups")
		}
		hits, picked := 0, 0
		for n := 0; n < 4000; n++ {
			proto := []uint8{6, 17}[r.Intn(2)]
			in := bufIn(BufPayload, word(8+r.Intn(40)), proto, "")
			in.ToServer = r.Intn(2) == 0
			port := func() uint16 {
				switch r.Intn(4) {
				case 0:
					var p uint16
					fmt.Sscan(named[r.Intn(len(named))], &p)
					return p
				case 1:
					return uint16(1 + r.Intn(2100))
				}
				return uint16(1024 + r.Intn(64000))
			}
			in.SrcPort, in.DstPort = port(), port()
			if b := s.pf.byBuf[BufPayload][variant(in)]; b != nil && b.pick(in, s.pf.named) != b {
				picked++
			}
			hits += agreesWithBruteForce(t, s, in, fmt.Sprintf("%d -> %d to_server=%v", in.SrcPort, in.DstPort, in.ToServer))
		}
		if hits < 1000 || picked < 1000 {
			t.Fatalf("%d hits, %d packets through a sub-bucket: the test does not exercise the split", hits, picked)
		}
	})
}

// TestPortSplitSheds: on rules like ET's, a DNS answer (53 -> an
// ephemeral port) scans only the rules that can match it, not the "-> any
// 53" query rules; a query from a named client port (53 -> 53) scans
// them all.
func TestPortSplitSheds(t *testing.T) {
	var text strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&text, "alert udp any any -> any 53 (msg:\"q%d\"; content:\"query%d\"; sid:%d;)\n", i, i, i+1)
	}
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&text, "alert udp any 53 -> any any (msg:\"a%d\"; content:\"answer%d\"; sid:%d;)\n", i, i, 1000+i)
	}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&text, "alert udp any any -> any any (msg:\"x%d\"; content:\"any%d\"; sid:%d;)\n", i, i, 2000+i)
	}
	s := load(t, text.String())
	s.pf.compile()
	in := bufIn(BufPayload, "answer3 query3", 17, "")
	in.SrcPort, in.DstPort, in.ToServer = 53, 40123, false
	b := s.pf.byBuf[BufPayload][variant(in)]
	if sub := b.pick(in, s.pf.named); len(sub.rules) != 30 {
		t.Errorf("a DNS answer scans %d of %d rules, want the 30 that can match", len(sub.rules), len(b.rules))
	}
	if got := s.Match(in, nil); len(got) != 1 || got[0].SID != 1003 {
		t.Errorf("DNS answer matched %v, want sid 1003 only", sids(got))
	}
	in.DstPort = 53 // a server's query from port 53: the whole bucket
	if sub := b.pick(in, s.pf.named); sub != b {
		t.Errorf("a packet from named port 53 to 53 scans a sub-bucket of %d rules, want the whole bucket", len(sub.rules))
	}
	if got := s.Match(in, nil); len(got) != 2 {
		t.Errorf("53 -> 53 matched %v, want sids 4 and 1003", sids(got))
	}
}
