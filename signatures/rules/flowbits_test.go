package rules

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// flowIn is one packet of a flow: payload data, with the flow's Bits.
func flowIn(bits *Bits, toServer bool, data string) *Input {
	in := bufIn(BufPayload, data, 6, "")
	if !toServer {
		in.Src, in.Dst, in.SrcPort, in.DstPort, in.ToServer = in.Dst, in.Src, in.DstPort, in.SrcPort, false
	}
	in.Flowbits = bits
	return in
}

// inspect runs Match and PostMatch and returns the acting sids in
// PostMatch's order.
func inspect(s *Set, in *Input) []int {
	var out []int
	for _, r := range s.PostMatch(in, s.Match(in, nil)) {
		out = append(out, r.SID)
	}
	return out
}

func TestFlowbits(t *testing.T) {
	type pkt struct {
		flow int // which flow's bits (0 or 1)
		data string
		want string // acting sids, e.g. "1 2"
	}
	cases := []struct {
		name  string
		rules string
		pkts  []pkt
	}{
		{"set then isset across packets", `
alert tcp any any -> any any (msg:"login"; content:"LOGIN"; flowbits:set,logged_in; flowbits:noalert; sid:1;)
alert tcp any any -> any any (msg:"cmd after login"; content:"CMD"; flowbits:isset,logged_in; sid:2;)`,
			[]pkt{{0, "CMD", ""}, {0, "LOGIN", ""}, {0, "CMD", "2"}}},
		{"a different flow does not see the bit", `
alert tcp any any -> any any (msg:"login"; content:"LOGIN"; flowbits:set,logged_in; noalert; sid:1;)
alert tcp any any -> any any (msg:"cmd after login"; content:"CMD"; flowbits:isset,logged_in; sid:2;)`,
			[]pkt{{0, "LOGIN", ""}, {1, "CMD", ""}, {0, "CMD", "2"}}},
		{"same packet: setter before tester whatever the load order", `
alert tcp any any -> any any (msg:"tester"; content:"B"; flowbits:isset,x; sid:2;)
alert tcp any any -> any any (msg:"setter"; content:"A"; flowbits:set,x; sid:1;)`,
			[]pkt{{0, "BA", "1 2"}}},
		{"isnotset", `
alert tcp any any -> any any (msg:"first hello"; content:"HELLO"; flowbits:isnotset,seen; flowbits:set,seen; sid:1;)`,
			[]pkt{{0, "HELLO", "1"}, {0, "HELLO", ""}, {1, "HELLO", "1"}}},
		{"unset", `
alert tcp any any -> any any (content:"ON"; flowbits:set,x; noalert; sid:1;)
alert tcp any any -> any any (content:"OFF"; flowbits:unset,x; noalert; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,x; sid:3;)`,
			[]pkt{{0, "ON", ""}, {0, "Q", "3"}, {0, "OFF", ""}, {0, "Q", ""}}},
		{"toggle", `
alert tcp any any -> any any (content:"T"; flowbits:toggle,x; noalert; sid:1;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,x; sid:3;)`,
			[]pkt{{0, "T", ""}, {0, "Q", "3"}, {0, "T", ""}, {0, "Q", ""}, {0, "T", ""}, {0, "Q", "3"}}},
		{"OR-ed names", `
alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (content:"B"; flowbits:set,b; noalert; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,a|b; sid:3;)`,
			[]pkt{{0, "Q", ""}, {0, "B", ""}, {0, "Q", "3"}, {1, "A", ""}, {1, "Q", "3"}}},
		{"AND of two options", `
alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (content:"B"; flowbits:set,b; noalert; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,a; flowbits:isset,b; sid:3;)`,
			[]pkt{{0, "A", ""}, {0, "Q", ""}, {0, "B", ""}, {0, "Q", "3"}}},
		{"isnotset OR: any name not set", `
alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (content:"B"; flowbits:set,b; noalert; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isnotset,a|b; sid:3;)`,
			[]pkt{{0, "A", ""}, {0, "Q", "3"}, {0, "B", ""}, {0, "Q", ""}}},
		{"noalert drop rule neither alerts nor drops", `
drop tcp any any -> any any (content:"EVIL"; flowbits:set,evil; flowbits:noalert; sid:1;)`,
			[]pkt{{0, "EVIL", ""}}},
		{"flowbits-only tester without content", `
alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (flowbits:isset,a; flowbits:unset,a; sid:2;)`,
			[]pkt{{0, "X", ""}, {0, "A", "2"}, {0, "X", ""}}},
		{"plain rules are untouched", `
alert tcp any any -> any any (content:"A"; sid:5;)
alert tcp any any -> any any (content:"A"; flowbits:set,a; sid:1;)`,
			[]pkt{{0, "A", "5 1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := load(t, c.rules)
			var flows [2]Bits
			for i, p := range c.pkts {
				got := inspect(s, flowIn(&flows[p.flow], true, p.data))
				if g := fmtInts(got); g != p.want {
					t.Fatalf("packet %d (flow %d, %q): acting sids %q, want %q", i, p.flow, p.data, g, p.want)
				}
			}
		})
	}
}

func fmtInts(v []int) string {
	var b strings.Builder
	for i, n := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func TestFlowbitsWithoutFlow(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (content:"A"; flowbits:set,a; sid:1;)
alert tcp any any -> any any (content:"A"; flowbits:isnotset,a; sid:2;)`)
	// No flow state: actions are skipped, conditions fail (Suricata).
	if got := inspect(s, flowIn(nil, true, "A")); len(got) != 1 || got[0] != 1 {
		t.Fatalf("acting sids %v, want [1]", got)
	}
}

func TestFlowbitsLoad(t *testing.T) {
	bad := map[string]string{
		`flowbits:set;`:          "needs a name",
		`flowbits:frob,x;`:       "unknown command",
		`flowbits:noalert,x;`:    "takes no name",
		`flowbits:isset,a||b;`:   "bad flowbit name",
		`flowbits:;`:             "needs a command",
		`noalert:1;`:             "takes no value",
		`flowbits:isset,a b;`:    "bad flowbit name",
		`flowbits: isset , a |;`: "bad flowbit name",
	}
	for opt, want := range bad {
		_, errs := Parse(strings.NewReader(`alert tcp any any -> any any (msg:"x"; `+opt+` sid:1;)`), "t.rules", nil)
		if len(errs) != 1 || !strings.Contains(errs[0].Reason, want) {
			t.Errorf("%s: errors %v, want one with %q", opt, errs, want)
		}
	}
	s := load(t, `alert tcp any any -> any any (flowbits: isset , a | b ; flowbits:set,c; sid:1;)
alert tcp any any -> any any (flowbits:set,a; sid:2;)`)
	if n := s.FlowbitCount(); n != 3 {
		t.Fatalf("FlowbitCount %d, want 3 (a, b, c)", n)
	}
}

// TestFlowbitsReload: a new Set numbers names its own way; a flow's bits
// from the old Set are forgotten, not misread.
func TestFlowbitsReload(t *testing.T) {
	oldSet := load(t, `alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,a; sid:2;)`)
	// In the new set, bit 0 is "b": reading old bits as-is would fire sid 3.
	newSet := load(t, `alert tcp any any -> any any (content:"B"; flowbits:set,b; noalert; sid:4;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,b; sid:3;)
alert tcp any any -> any any (content:"A"; flowbits:set,a; noalert; sid:1;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,a; sid:2;)`)
	var bits Bits
	inspect(oldSet, flowIn(&bits, true, "A"))
	if !bits.Isset(oldSet, "a") {
		t.Fatal("old set did not set a")
	}
	if got := inspect(newSet, flowIn(&bits, true, "Q")); len(got) != 0 {
		t.Fatalf("after reload acting sids %v, want none (bits reset)", got)
	}
	inspect(newSet, flowIn(&bits, true, "A"))
	if got := inspect(newSet, flowIn(&bits, true, "Q")); len(got) != 1 || got[0] != 2 {
		t.Fatalf("acting sids %v, want [2]", got)
	}
}

// TestFlowbitsMerge: a rule shared by two Sets keeps the numbering of each.
func TestFlowbitsMerge(t *testing.T) {
	a := load(t, `alert tcp any any -> any any (content:"X"; flowbits:set,x; noalert; sid:1;)`)
	b := load(t, `alert tcp any any -> any any (content:"Y"; flowbits:set,y; noalert; sid:2;)
alert tcp any any -> any any (content:"Q"; flowbits:isset,x; sid:3;)`)
	m := Merge(b, a)
	var bits Bits
	inspect(m, flowIn(&bits, true, "X"))
	if got := inspect(m, flowIn(&bits, true, "Q")); len(got) != 1 || got[0] != 3 {
		t.Fatalf("merged set: acting sids %v, want [3]", got)
	}
	var ab Bits
	inspect(a, flowIn(&ab, true, "X"))
	if !ab.Isset(a, "x") || ab.Isset(a, "y") {
		t.Fatal("the source set's numbering changed after Merge")
	}
	if m.FlowbitCount() != 2 {
		t.Fatalf("merged FlowbitCount %d, want 2", m.FlowbitCount())
	}
}

func TestPostMatchAllocs(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (content:"A"; flowbits:toggle,a; noalert; sid:1;)
alert tcp any any -> any any (content:"A"; flowbits:isset,a; threshold:type limit, track by_src, count 2, seconds 60; sid:2;)
alert tcp any any -> any any (content:"A"; detection_filter:track by_dst, count 1, seconds 10; sid:3;)`)
	var bits Bits
	in := flowIn(&bits, true, "A")
	in.Tracker = NewTracker(64)
	out := make([]*Rule, 0, 8)
	s.PostMatch(in, s.Match(in, out)) // Bits words, scratch
	n := testing.AllocsPerRun(1000, func() {
		in.Now = in.Now.Add(time.Millisecond)
		out = s.PostMatch(in, s.Match(in, out))
	})
	if n != 0 {
		t.Fatalf("Match+PostMatch allocate %v times per call; want 0", n)
	}
}

func TestETOpenStatefulLoad(t *testing.T) {
	s := etOpen(t)
	var fb, thr, df, noalert int
	for _, r := range s.Rules() {
		if len(r.fb) > 0 {
			fb++
		}
		if r.thr != nil {
			thr++
		}
		if r.df != nil {
			df++
		}
		if r.noAlert {
			noalert++
		}
	}
	t.Logf("ET Open: %d rules loaded; flowbits %d (names %d), noalert %d, threshold %d, detection_filter %d",
		s.Len(), fb, s.FlowbitCount(), noalert, thr, df)
	if fb == 0 || thr == 0 {
		t.Fatal("no ET Open rule with flowbits or threshold loaded")
	}
}
