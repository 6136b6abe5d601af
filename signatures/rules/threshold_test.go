package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var thrT0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func TestThreshold(t *testing.T) {
	type hit struct {
		at   time.Duration // after thrT0
		src  string        // source address
		dst  string
		want bool // the rule acts (alerts)
	}
	a, b, x, y := "198.18.1.1", "198.18.1.2", "198.18.2.1", "198.18.2.2"
	cases := []struct {
		name string
		opt  string
		hits []hit
	}{
		{"limit by_src: first 2 per window and source", "threshold: type limit, track by_src, count 2, seconds 60;", []hit{
			{0, a, x, true}, {1 * time.Second, a, x, true}, {2 * time.Second, a, y, false}, {3 * time.Second, b, x, true},
			{59 * time.Second, a, x, false}, {60 * time.Second, a, x, true}, {61 * time.Second, a, x, true}, {62 * time.Second, a, x, false},
		}},
		{"limit by_dst", "threshold:type limit,track by_dst,count 1,seconds 10;", []hit{
			{0, a, x, true}, {time.Second, b, x, false}, {2 * time.Second, a, y, true}, {10 * time.Second, b, x, true},
		}},
		{"threshold: every Nth", "threshold: type threshold, track by_src, count 3, seconds 60;", []hit{
			{0, a, x, false}, {1 * time.Second, a, x, false}, {2 * time.Second, a, x, true},
			{3 * time.Second, a, x, false}, {4 * time.Second, b, x, false}, {5 * time.Second, a, x, false}, {6 * time.Second, a, x, true},
		}},
		{"threshold: window expiry restarts the count", "threshold: type threshold, track by_src, count 2, seconds 10;", []hit{
			{0, a, x, false}, {11 * time.Second, a, x, false}, {12 * time.Second, a, x, true},
		}},
		{"both: the Nth once per window", "threshold: type both, count 2, seconds 30, track by_dst;", []hit{
			{0, a, x, false}, {1 * time.Second, b, x, true}, {2 * time.Second, a, x, false}, {3 * time.Second, a, x, false},
			{30 * time.Second, a, x, false}, {31 * time.Second, a, x, true},
		}},
		{"by_rule counts every address", "threshold: type limit, track by_rule, count 1, seconds 60;", []hit{
			{0, a, x, true}, {time.Second, b, y, false},
		}},
		{"by_both: the pair, either direction", "threshold: type limit, track by_both, count 1, seconds 60;", []hit{
			{0, a, x, true}, {time.Second, x, a, false}, {2 * time.Second, a, y, true},
		}},
		{"detection_filter: from the (N+1)th match", "detection_filter: track by_src, count 2, seconds 60;", []hit{
			{0, a, x, false}, {1 * time.Second, a, x, false}, {2 * time.Second, b, x, false}, {3 * time.Second, a, x, true},
			{4 * time.Second, a, x, true}, {60 * time.Second, a, x, false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := load(t, `drop tcp any any -> any any (msg:"x"; content:"HIT"; `+c.opt+` sid:7;)`)
			tr := NewTracker(64)
			for i, h := range c.hits {
				in := bufIn(BufPayload, "HIT", 6, "")
				in.Src, in.Dst = netip.MustParseAddr(h.src), netip.MustParseAddr(h.dst)
				in.Tracker, in.Now = tr, thrT0.Add(h.at)
				got := len(s.PostMatch(in, s.Match(in, nil))) == 1
				if got != h.want {
					t.Fatalf("hit %d (%v %s->%s): acts %v, want %v", i, h.at, h.src, h.dst, got, h.want)
				}
			}
		})
	}
}

// TestDetectionFilterGatesFlowbits: a match held back by detection_filter
// does not run its flowbits actions; threshold gates only the alert.
func TestDetectionFilterGatesFlowbits(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (content:"A"; flowbits:set,a; detection_filter:track by_src, count 1, seconds 60; sid:1;)
alert tcp any any -> any any (content:"B"; flowbits:set,b; threshold:type limit, track by_src, count 1, seconds 60; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,a; sid:3;)
alert tcp any any -> any any (content:"R"; flowbits:isset,b; sid:4;)`)
	var bits Bits
	tr := NewTracker(64)
	step := func(data string, want string) {
		t.Helper()
		in := flowIn(&bits, true, data)
		in.Tracker, in.Now = tr, thrT0
		if got := fmtInts(inspect(s, in)); got != want {
			t.Fatalf("%q: acting sids %q, want %q", data, got, want)
		}
	}
	step("A", "")  // first A: filtered, bit a not set
	step("Q", "")  // so Q does not fire
	step("A", "1") // second A matches
	step("Q", "3")
	step("B", "2") // alerts and sets b
	step("B", "")  // thresholded: no alert, but b is set regardless
	bits.Reset()
	step("B", "")
	step("R", "4")
}

func TestThresholdLoad(t *testing.T) {
	bad := map[string]string{
		`threshold: track by_src, count 1, seconds 60;`:                                                                 "needs a type",
		`threshold: type limit, count 1, seconds 60;`:                                                                   "needs a track",
		`threshold: type limit, track by_src, seconds 60;`:                                                              "needs a count",
		`threshold: type limit, track by_src, count 1;`:                                                                 "needs seconds",
		`threshold: type often, track by_src, count 1, seconds 60;`:                                                     "not limit, threshold or both",
		`threshold: type limit, track by_flow, count 1, seconds 60;`:                                                    "not by_src",
		`threshold: type limit, track by_src, count 0, seconds 60;`:                                                     "not a positive number",
		`threshold: type limit, track by_src, count 1, seconds x;`:                                                      "not a positive number",
		`threshold: type limit, track by_src, count 1, seconds 60, x 1;`:                                                "unknown field",
		`detection_filter: type limit, track by_src, count 1, seconds 6;`:                                               "takes no type",
		`threshold: type limit, track by_src, count 1, seconds 60; detection_filter: track by_src, count 1, seconds 6;`: "one threshold",
	}
	for opt, want := range bad {
		_, errs := Parse(strings.NewReader(`alert tcp any any -> any any (msg:"x"; `+opt+` sid:1;)`), "t.rules", nil)
		if len(errs) != 1 || !strings.Contains(errs[0].Reason, want) {
			t.Errorf("%s: errors %v, want one with %q", opt, errs, want)
		}
	}
	// ET Open's spellings: any field order, spaces or none.
	for _, opt := range []string{
		"threshold: type limit, track by_src, seconds 60, count 1;",
		"threshold:type both,track by_dst,count 5,seconds 360;",
		"threshold: type both , track by_src, count 1 , seconds 60;",
		"detection_filter:track by_dst, count 4, seconds 60;",
	} {
		load(t, `alert tcp any any -> any any (msg:"x"; `+opt+` sid:1;)`)
	}
}

// TestTrackerBounded: a full tracker evicts (and counts) instead of
// growing, and reuses ended windows without counting them.
func TestTrackerBounded(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (content:"HIT"; threshold: type limit, track by_src, count 1, seconds 60; sid:7;)`)
	tr := NewTracker(16)
	if st := tr.Stats(); st.Capacity != 16 {
		t.Fatalf("capacity %d, want 16", st.Capacity)
	}
	in := bufIn(BufPayload, "HIT", 6, "")
	in.Tracker = tr
	for i := 0; i < 100; i++ {
		in.Src = netip.AddrFrom4([4]byte{198, 18, 3, byte(i)})
		in.Now = thrT0.Add(time.Duration(i) * time.Millisecond)
		if len(s.PostMatch(in, s.Match(in, nil))) != 1 {
			t.Fatalf("source %d: first match of a new source did not alert", i)
		}
	}
	st := tr.Stats()
	if st.Entries != 16 || st.Evicted != 100-16 {
		t.Fatalf("stats %+v, want 16 entries and 84 evicted", st)
	}
	// An hour later every window has ended: no eviction is counted.
	for i := 0; i < 100; i++ {
		in.Src = netip.AddrFrom4([4]byte{198, 18, 4, byte(i)})
		in.Now = thrT0.Add(time.Hour + time.Duration(i)*time.Millisecond)
		s.PostMatch(in, s.Match(in, nil))
	}
	if st2 := tr.Stats(); st2.Evicted != st.Evicted+100-16 {
		// The first 16 reuse ended windows; the other 84 evict live ones.
		t.Fatalf("evicted %d after the windows ended, want %d", st2.Evicted, st.Evicted+84)
	}
}

func BenchmarkPostMatchThreshold(b *testing.B) {
	var rules strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&rules, "alert tcp any any -> any any (content:\"HIT\"; threshold: type limit, track by_src, count 5, seconds 60; sid:%d;)\n", i+1)
	}
	s := load(b, rules.String())
	in := bufIn(BufPayload, "HIT", 6, "")
	in.Tracker = NewTracker(4096)
	out := make([]*Rule, 0, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		in.Src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		in.Now = thrT0.Add(time.Duration(i) * time.Microsecond)
		out = s.PostMatch(in, s.Match(in, out))
	}
}
