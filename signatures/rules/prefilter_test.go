package rules

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openutm/utm/signatures/literal"
)

type acHit struct {
	id  int32
	end int
}

// naiveHits finds every occurrence of every pattern by brute force.
func naiveHits(pats []acPattern, text []byte) []acHit {
	var out []acHit
	for id := range pats {
		p := &pats[id]
		for i := 0; i+len(p.pat) <= len(text); i++ {
			w := text[i : i+len(p.pat)]
			if p.nocase && bytes.Equal(asciiLower(w), p.pat) || !p.nocase && bytes.Equal(w, p.pat) {
				out = append(out, acHit{int32(id), i + len(p.pat)})
			}
		}
	}
	return sortHits(out)
}

// asciiLower folds ASCII letters only, as nocase does (Suricata's too):
// bytes.ToLower would also fold "Ȥ" to "ȥ".
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = fold(c)
	}
	return out
}

func sortHits(h []acHit) []acHit {
	slices.SortFunc(h, func(a, b acHit) int {
		if a.end != b.end {
			return a.end - b.end
		}
		return int(a.id - b.id)
	})
	return h
}

func scanHits(a *automaton, text []byte) []acHit {
	var out []acHit
	a.scan(text, func(id int32, end int) { out = append(out, acHit{id, end}) })
	return sortHits(out)
}

// checkAutomaton compares the automaton with brute force at several
// prefix depths (a depth below a pattern's length exercises the in-place
// confirmation).
func checkAutomaton(t *testing.T, pats []acPattern, text []byte) {
	t.Helper()
	want := naiveHits(pats, text)
	for _, depth := range []int{1, 2, 3, acMaxDepth, chooseDepth(pats)} {
		a := buildAutomatonDepth(slices.Clone(pats), depth)
		if got := scanHits(a, text); !slices.Equal(got, want) {
			t.Fatalf("depth %d, patterns %q, text %q:\n got %v\nwant %v", depth, patStrings(pats), text, got, want)
		}
	}
}

func patStrings(pats []acPattern) []string {
	var s []string
	for _, p := range pats {
		s = append(s, fmt.Sprintf("%q/%v", p.pat, p.nocase))
	}
	return s
}

// bothScanners runs fn with the buckets scanning through Hyperscan (the
// default) and through the automaton alone; fn loads its rules.
func bothScanners(t *testing.T, fn func(t *testing.T)) {
	for _, lit := range []bool{true, false} {
		name := "hyperscan"
		if !lit {
			name = "automaton"
		}
		t.Run(name, func(t *testing.T) {
			useLiteral = lit
			defer func() { useLiteral = true }()
			fn(t)
		})
	}
}

// scansAsConfigured reports whether b scans the way useLiteral asks: a
// Hyperscan database, or an automaton only.
func scansAsConfigured(b *bucket) bool {
	if b == nil {
		return false
	}
	if useLiteral {
		return b.lit != nil
	}
	return b.ac != nil && b.lit == nil
}

// TestLiteralCompileFailureFallsBack: when Hyperscan cannot compile a
// bucket (out of memory), the bucket gets its automaton, matches exactly
// as before, and the failure is counted.
func TestLiteralCompileFailureFallsBack(t *testing.T) {
	defer func() { literalCompile = (*literal.Group).Compile }()
	literalCompile = func(*literal.Group, []literal.Pattern) (*literal.DB, error) {
		return nil, errors.New("no memory")
	}
	before := PrefilterErrors()
	s := load(t, `alert http any any -> any any (msg:"a"; http.uri; content:"/admin"; sid:1;)
alert http any any -> any any (msg:"b"; http.uri; content:"/login"; nocase; sid:2;)
alert http any any -> any any (msg:"c"; http.uri; content:"/cgi-bin/"; sid:3;)
alert http any any -> any any (msg:"d"; http.uri; content:"/wp-"; sid:4;)
`)
	s.pf.compile()
	if b := s.pf.byBuf[BufHTTPURI][vApp+vTCP+vToServer]; b == nil || b.lit != nil || b.ac == nil {
		t.Fatal("the URI bucket did not fall back to its automaton")
	}
	if PrefilterErrors() == before {
		t.Fatal("the failed compile was not counted")
	}
	got := s.Match(bufIn(BufHTTPURI, "/LOGIN/cgi-bin/x", 6, "http"), nil)
	if len(got) != 2 || got[0].SID != 2 || got[1].SID != 3 {
		t.Fatalf("matched %v; want sids 2 and 3", got)
	}
}

// TestLiteralScanFailureVerifiesAll: when a Hyperscan scan fails (no
// scratch memory), every rule of the bucket is verified: the matches are
// exactly the ones a working scan gives, and the failure is counted.
func TestLiteralScanFailureVerifiesAll(t *testing.T) {
	s := load(t, `alert http any any -> any any (msg:"a"; http.uri; content:"/admin"; sid:1;)
alert http any any -> any any (msg:"b"; http.uri; content:"/login"; nocase; sid:2;)
alert http any any -> any any (msg:"c"; http.uri; content:"/cgi-bin/"; sid:3;)
alert http any any -> any any (msg:"d"; http.uri; content:"/wp-"; sid:4;)
`)
	uri := "/LOGIN/cgi-bin/x?next=/padding-to-pass-litMin"
	want := s.Match(bufIn(BufHTTPURI, uri, 6, "http"), nil)
	if len(want) != 2 {
		t.Fatalf("working scan matched %d rules; want 2", len(want))
	}
	defer func() { literalScan = (*literal.Scanner).Scan }()
	literalScan = func(*literal.Scanner, *literal.DB, []byte) ([]uint32, error) {
		return nil, errors.New("no scratch memory")
	}
	before := PrefilterErrors()
	got := s.Match(bufIn(BufHTTPURI, uri, 6, "http"), nil)
	if !slices.Equal(got, want) {
		t.Fatalf("with the scan failing matched %v; want %v", got, want)
	}
	if PrefilterErrors() == before {
		t.Fatal("the failed scan was not counted")
	}
}

// wordsOf returns a generator of random words of n bytes from alpha.
func wordsOf(r *rand.Rand, alpha []byte) func(n int) []byte {
	return func(n int) []byte {
		w := make([]byte, n)
		for i := range w {
			w[i] = alpha[r.Intn(len(alpha))]
		}
		return w
	}
}

// TestAutomatonAgainstNaive: random patterns (overlapping, prefixes of
// each other, duplicates with different case rules) over a small mixed-case
// alphabet, against brute force.
func TestAutomatonAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	word := wordsOf(r, []byte("aAbBc\x00\xff"))
	for n := 0; n < 3000; n++ {
		pats := make([]acPattern, 1+r.Intn(12))
		for i := range pats {
			pats[i].pat = word(1 + r.Intn(6))
			if r.Intn(2) == 0 {
				pats[i].nocase = true
				pats[i].pat = bytes.ToLower(pats[i].pat)
			}
		}
		checkAutomaton(t, pats, word(r.Intn(80)))
	}
}

// FuzzAutomaton: patterns are the '|'-separated parts of pats (a leading
// '~' makes one caseless).
func FuzzAutomaton(f *testing.F) {
	f.Add("he|she|his|hers|~HERS", []byte("ushers SHE said"))
	f.Add("a|aa|aaa|~A", []byte("aaAAaaa"))
	f.Add("\x00\x01|\xff", []byte{0, 1, 0xff, 0})
	f.Fuzz(func(t *testing.T, pats string, text []byte) {
		var ps []acPattern
		for _, s := range strings.Split(pats, "|") {
			p := acPattern{pat: []byte(s)}
			if strings.HasPrefix(s, "~") {
				p = acPattern{pat: asciiLower([]byte(s[1:])), nocase: true}
			}
			if len(p.pat) > 0 {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 || len(ps) > 64 || len(text) > 4096 {
			return
		}
		checkAutomaton(t, ps, text)
	})
}

func TestChooseDepthFitsBudget(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	var pats []acPattern
	for i := 0; i < 40000; i++ {
		p := make([]byte, 40)
		r.Read(p)
		pats = append(pats, acPattern{pat: p})
	}
	a := buildAutomaton(pats)
	if a.depth < acMinDepth || a.depth >= acMaxDepth {
		t.Fatalf("depth %d for 40,000 random 40-byte patterns; want the budget to cut it below %d", a.depth, acMaxDepth)
	}
	if len(a.trans)*4 > acBudget && a.depth > acMinDepth {
		t.Fatalf("table %d bytes over the %d budget at depth %d", len(a.trans)*4, acBudget, a.depth)
	}
	if d := chooseDepth([]acPattern{{pat: []byte("ab")}}); d != 2 {
		t.Fatalf("depth %d for one 2-byte pattern; want 2", d)
	}
}

// manyRules returns n HTTP URI rules sharing a bucket (so it gets an
// automaton) plus the extra rules given.
func manyRules(n int, extra string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "alert http any any -> any any (msg:\"filler %d\"; http.uri; content:\"/filler-%d/\"; sid:%d;)\n", i, i, 900000+i)
	}
	return b.String() + extra
}

func sids(rs []*Rule) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.SID)
	}
	slices.Sort(out)
	return out
}

// TestFastPattern checks which content becomes the fast pattern and that
// rules match through the automaton with nocase, chop, only, overlapping
// patterns and many rules sharing a pattern.
func TestFastPattern(t *testing.T) {
	bothScanners(t, func(t *testing.T) {
		sel := []struct {
			rule string
			want string
		}{
			{`content:"abc"; content:"longest"; content:"x";`, "longest"},
			{`content:"abc"; content:"def";`, "abc"}, // tie: the first
			{`content:"abc"; fast_pattern; content:"longest";`, "abc"},
			{`content:"longest"; content:"ab"; fast_pattern:only;`, "ab"},
			{`content:"0123456789"; fast_pattern:2,4;`, "2345"},
			{`content:!"longest-negated"; content:"ab";`, "ab"},
			{`content:!"negated"; fast_pattern; content:"ab";`, "ab"}, // a negated content is never one
			{`content:"ABC"; fast_pattern; nocase; content:"longer";`, "abc"},
			{`content:"aaaa"; content:"ab|00|c";`, "ab\x00c"},                                // same length: the more varied
			{`content:"a-longer-payload"; content:"ab"; http_uri;`, "ab"},                    // an application buffer first
			{`content:"POST"; http_method; content:".jpg"; http_uri;`, ".jpg"},               // not the method (the URI's is also more varied)
			{`content:"POST"; http_method; content:"x"; http_uri; content:"abcdefgh";`, "x"}, // even when shorter
			{`content:"200"; http_stat_code; content:"OK"; http_stat_msg;`, "200"},           // both low: the longest
			{`content:"xyz"; content:"GET"; http_method;`, "GET"},                            // a full tie: not the payload
		}
		for _, c := range sel {
			s := load(t, `alert tcp any any -> any any (`+c.rule+` sid:1;)`)
			pat, _ := s.Rules()[0].fastPattern()
			if string(pat) != c.want {
				t.Errorf("%s: fast pattern %q, want %q", c.rule, pat, c.want)
			}
		}
		for _, bad := range []string{`content:"abc"; fast_pattern:2,4;`, `content:"abc"; fast_pattern:x;`, `fast_pattern; content:"a";`} {
			if _, errs := Parse(strings.NewReader(`alert tcp any any -> any any (`+bad+` sid:1;)`), "t", nil); len(errs) != 1 {
				t.Errorf("%s: loaded; want a load error", bad)
			}
		}

		s := load(t, manyRules(20, `alert http any any -> any any (msg:"nocase"; http.uri; content:"/ADMIN"; nocase; sid:1;)
	alert http any any -> any any (msg:"case"; http.uri; content:"/Login"; sid:2;)
	alert http any any -> any any (msg:"chop"; http.uri; content:"/wp-content/plugins/"; fast_pattern:4,7; content:"evil"; sid:3;)
	alert http any any -> any any (msg:"only"; http.uri; content:"setup.php"; fast_pattern:only; sid:4;)
	alert http any any -> any any (msg:"overlap-a"; http.uri; content:"/adm"; sid:5;)
	alert http any any -> any any (msg:"overlap-b"; http.uri; content:"dmin/x"; sid:6;)
	alert http any any -> any any (msg:"shared-1"; http.uri; content:"/cgi-bin/"; content:"one"; sid:7;)
	alert http any any -> any any (msg:"shared-2"; http.uri; content:"/cgi-bin/"; content:"two"; sid:8;)
	alert http any any -> any any (msg:"shared-3"; http.uri; content:"/cgi-bin/"; sid:9;)
	alert http any any -> any any (msg:"shared-nocase"; http.uri; content:"/CGI-BIN/"; nocase; sid:10;)
	alert http any any -> any any (msg:"negated"; http.uri; content:"/cgi-bin/"; content:!"two"; sid:11;)
	`))
		if s.pf.compile(); !scansAsConfigured(s.pf.byBuf[BufHTTPURI][vApp+vTCP+vToServer]) {
			t.Fatal("the URI bucket has no automaton or no Hyperscan database")
		}
		cases := []struct {
			uri  string
			want []int
		}{
			{"/admin/x", []int{1, 5, 6}},
			{"/AdMiN", []int{1}},
			{"/login", nil},
			{"/Login", []int{2}},
			{"/wp-content/plugins/evil.php", []int{3}},
			{"/x/content/plugins/evil", nil},      // the chop hits, the content does not
			{"/wp-content/plugins/good.php", nil}, // the chop hits, the second content does not
			{"/setup.php", []int{4}},
			{"/cgi-bin/one", []int{7, 9, 10, 11}},
			{"/cgi-bin/two", []int{8, 9, 10}},
			{"/CGI-BIN/one", []int{10}},
			{"/cgi-bin//cgi-bin/one", []int{7, 9, 10, 11}},
			{"/filler-7/", []int{900007}},
			{"/nothing", nil},
		}
		out := make([]*Rule, 0, 16)
		for _, c := range cases {
			out = s.Match(bufIn(BufHTTPURI, c.uri, 6, "http"), out)
			if got := sids(out); !slices.Equal(got, c.want) {
				t.Errorf("%s: matched %v, want %v", c.uri, got, c.want)
			}
		}
	})
}

// TestMatchOrder: rules come out in load order within a bucket, whatever
// order their patterns occur in the buffer.
func TestMatchOrder(t *testing.T) {
	s := load(t, manyRules(10, `alert http any any -> any any (msg:"a"; http.uri; content:"zzz"; sid:1;)
alert http any any -> any any (msg:"b"; http.uri; content:"yyy"; sid:2;)
alert http any any -> any any (msg:"c"; http.uri; content:"xxx"; sid:3;)
`))
	var got []int
	for _, r := range s.Match(bufIn(BufHTTPURI, "xxx-yyy-zzz", 6, "http"), nil) {
		got = append(got, r.SID)
	}
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("order %v, want load order [1 2 3]", got)
	}
}

// TestGroupsWithoutContent: header-only rules are grouped by protocol and
// application; each still matches what it matched before.
func TestGroupsWithoutContent(t *testing.T) {
	s := load(t, `alert ip any any -> 203.0.113.7 any (msg:"ip"; sid:1;)
alert dns any any -> any any (msg:"dns"; content:!"x"; sid:2;)
alert tls any any -> any any (msg:"tls"; sid:3;)
alert icmp any any -> any any (msg:"icmp"; sid:4;)
alert udp any any -> any 53 (msg:"udp53"; sid:5;)
alert http any any -> any any (msg:"http"; flow:to_server; sid:6;)
`)
	// sid 1 has an address list: it is keyed by that (iponly.go).
	if len(s.pf.groups) != 5 || len(s.pf.ip.rules) != 1 {
		t.Fatalf("%d groups and %d rules keyed by address, want 5 (one per protocol/application) and 1", len(s.pf.groups), len(s.pf.ip.rules))
	}
	dns := bufIn(BufDNSQuery, "bank.org", 17, "dns")
	dns.DstPort = 53
	dns.Buf[BufPayload] = []byte("\x04bank\x03org\x00")
	icmp6 := bufIn(BufPayload, "", 58, "")
	icmp6.Dst = netip.MustParseAddr("203.0.113.7")
	for _, c := range []struct {
		in   *Input
		want []int
	}{
		{dns, []int{2, 5}},
		{bufIn(BufTLSSNI, "a.example", 6, "tls"), []int{3}},
		{icmp6, []int{1, 4}}, // icmp rules match ICMPv6 too
		{httpReq("/", ""), []int{6}},
	} {
		if got := sids(s.Match(c.in, nil)); !slices.Equal(got, c.want) {
			t.Errorf("proto %d app %q: matched %v, want %v", c.in.Proto, c.in.App, got, c.want)
		}
	}
}

// TestConcurrentMatch: goroutines with their own Input share one Set and
// get the sequential answer (run with -race).
func TestConcurrentMatch(t *testing.T) {
	s := load(t, manyRules(50, `alert http any any -> any any (msg:"a"; http.uri; content:"/admin"; nocase; sid:1;)
alert http any any -> any any (msg:"b"; http.uri; content:"/filler-3/"; content:"x"; sid:2;)
`))
	uris := []string{"/ADMIN", "/filler-3/x", "/filler-3/", "/none", "/filler-49/admin"}
	want := make([][]int, len(uris))
	for i, u := range uris {
		want[i] = sids(s.Match(bufIn(BufHTTPURI, u, 6, "http"), nil))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ins := make([]*Input, len(uris))
			for i, u := range uris {
				ins[i] = bufIn(BufHTTPURI, u, 6, "http")
			}
			out := make([]*Rule, 0, 8)
			for n := 0; n < 500; n++ {
				i := (n + g) % len(uris)
				out = s.Match(ins[i], out)
				if got := sids(out); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("goroutine %d, %s: %v, want %v", g, uris[i], got, want[i])
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestPrefilterAllocs: no allocation once an Input has its scratch, for
// buckets with and without an automaton, with profiling on too.
func TestPrefilterAllocs(t *testing.T) {
	s := load(t, manyRules(30, `alert tcp any any -> any any (msg:"p"; content:"abc"; sid:1;)
alert ip any any -> any any (msg:"h"; sid:2;)
`))
	in := bufIn(BufHTTPURI, "/filler-1/abc", 6, "http")
	in.Buf[BufPayload] = []byte("xxabcxx")
	out := make([]*Rule, 0, 8)
	for _, prof := range []bool{false, true} {
		if prof {
			s.EnableProfiling()
		}
		if n := testing.AllocsPerRun(100, func() { out = s.Match(in, out) }); n != 0 {
			t.Fatalf("profiling %v: Match allocates %v times; want 0", prof, n)
		}
		if got := sids(out); !slices.Equal(got, []int{1, 2, 900001}) {
			t.Fatalf("profiling %v: matched %v", prof, got)
		}
	}
}

// TestProfile: the counts say which rule was checked, how often, and how
// often it matched; the rule that burns time comes first.
func TestProfile(t *testing.T) {
	s := load(t, manyRules(10, `alert http any any -> any any (msg:"cheap"; http.uri; content:"/a"; sid:1;)
alert http any any -> any any (msg:"slow"; http.uri; content:"/b"; pcre:"/q+!/"; sid:2;)
`))
	if s.Profile() != nil {
		t.Fatal("Profile before EnableProfiling is not nil")
	}
	s.EnableProfiling()
	// The pcre tries every "q" as a start: 20 checks cost ~30x the cheap
	// rule's 20 (50-65 us against 1.5-3 us), so one preemption of the
	// test does not swap them (the content chain this rule used before
	// stopped retrying early and cost only ~2x).
	slow := "/b!" + strings.Repeat("q", 1000)
	for i := 0; i < 20; i++ {
		s.Match(bufIn(BufHTTPURI, "/a", 6, "http"), nil)
		s.Match(bufIn(BufHTTPURI, slow, 6, "http"), nil)
	}
	s.Match(bufIn(BufHTTPURI, "/filler-2/", 6, "http"), nil)
	p := s.Profile()
	by := map[int]RuleProfile{}
	for _, rp := range p {
		by[rp.Rule.SID] = rp
	}
	if c := by[1]; c.Checks != 20 || c.Matches != 20 {
		t.Errorf("sid 1: checks %d matches %d, want 20 20", c.Checks, c.Matches)
	}
	if c := by[2]; c.Checks != 20 || c.Matches != 0 || c.Ticks <= 0 {
		t.Errorf("sid 2: checks %d matches %d ticks %v, want 20 0 >0", c.Checks, c.Matches, c.Ticks)
	}
	if c := by[900002]; c.Checks != 1 || c.Matches != 1 {
		t.Errorf("sid 900002: checks %d matches %d, want 1 1", c.Checks, c.Matches)
	}
	if len(p) != 3 {
		t.Errorf("%d rules profiled, want 3 (only the ones checked)", len(p))
	}
	if p[0].Rule.SID != 2 {
		t.Errorf("most expensive rule is sid %d (%v), want the backtracking sid 2 (%v)", p[0].Rule.SID, p[0].Ticks, by[2].Ticks)
	}
}

// TestLanesAgainstOneLane: the four-lane scan finds the same rules as the
// one-lane scan for patterns planted at every offset around the lane
// boundaries, in buffers of every length from laneMin to laneMin+70.
func TestLanesAgainstOneLane(t *testing.T) {
	var text strings.Builder
	pats := []string{"q", "xy", "abcdefghij", "0123456789abcdefghijklmnopqrstuvwxyz", "zz9"}
	for i, p := range pats {
		fmt.Fprintf(&text, "alert tcp any any -> any any (msg:\"p%d\"; content:\"%s\"; nocase; sid:%d;)\n", i, p, i+1)
	}
	useLiteral = false // the lanes are the automaton's
	s := load(t, text.String())
	defer func() { useLanes, useLiteral = true, true }()
	out := make([]*Rule, 0, 8)
	sids := func(in *Input, lanes bool) string {
		useLanes = lanes
		out = s.Match(in, out)
		var b strings.Builder
		for _, r := range out {
			fmt.Fprintf(&b, "%d,", r.SID)
		}
		return b.String()
	}
	checked := 0
	for n := laneMin; n < laneMin+70; n++ {
		for _, p := range pats {
			if len(p) > n {
				continue
			}
			q := n / 4
			for _, center := range []int{q, 2 * q, 3 * q, n - len(p)} {
				for at := max(0, center-len(p)-2); at <= min(n-len(p), center+2); at++ {
					data := bytes.Repeat([]byte{'.'}, n)
					copy(data[at:], strings.ToUpper(p))
					in := pay(string(data))
					if one, four := sids(in, false), sids(in, true); one != four || one == "" {
						t.Fatalf("n=%d %q at %d: one lane %q, four lanes %q", n, p, at, one, four)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d placements agree", checked)
}

// TestGroupPortIndex: header rules indexed by their ports (single ports,
// ranges, lists with exceptions, source-port rules, bidirectional and
// any-port rules mixed) match exactly what brute force matches, in load
// order, on packets to and from every port the rules name and others.
func TestGroupPortIndex(t *testing.T) {
	portSpecs := []string{"any", "22", "80", "[80,443]", "5900:5920", "[1000:1010,!1005]", "!80", "[$HTTP_PORTS]", "0:100", "443"}
	var text strings.Builder
	sid := 1
	for _, sp := range portSpecs {
		for _, dp := range portSpecs {
			for _, arrow := range []string{"->", "<>"} {
				fmt.Fprintf(&text, "alert tcp any %s %s any %s (msg:\"r%d\"; flags:S; sid:%d;)\n", sp, arrow, dp, sid, sid)
				sid++
			}
		}
	}
	s := load(t, text.String())
	ports := []uint16{0, 22, 23, 79, 80, 81, 100, 101, 443, 999, 1000, 1005, 1006, 1010, 5899, 5900, 5910, 5920, 8080, 40000}
	out := make([]*Rule, 0, 256)
	hits := 0
	for _, a := range ports {
		for _, b := range ports {
			in := &Input{Proto: 6, Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"),
				SrcPort: a, DstPort: b, ToServer: true, TCPFlags: 0x02, PayloadLen: 0}
			out = s.Match(in, out)
			var want []int
			for _, r := range s.Rules() {
				if r.quick(in) && r.full(in) {
					want = append(want, r.SID)
				}
			}
			if got := sids(out); !slices.Equal(got, want) {
				t.Fatalf("ports %d -> %d: Match %v, brute force %v", a, b, got, want)
			}
			hits += len(want)
		}
	}
	if g := s.pf.groups; len(g) != 1 || g[0].byDst == nil || g[0].bySrc == nil || len(g[0].anyPort) == 0 {
		t.Fatalf("the group is not indexed by both ports: %+v", g)
	}
	if hits < 1000 {
		t.Fatalf("only %d matches: the test does not exercise the index", hits)
	}
}

// TestRunPatternsAgainstBruteForce: fast patterns made of runs of one byte
// ("|00 00 00|", "x|00 00|", a lone "a" with nocase), which the Hyperscan
// database holds cut or not at all (trimRun), over inputs from the same
// small alphabet, some of them at an offset or depth: Match agrees with
// checking every rule, both ways.
func TestRunPatternsAgainstBruteForce(t *testing.T) {
	bothScanners(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(7))
		word := wordsOf(r, []byte{0, 0, 0, 1, 'a', 'A', 0xff})
		for round := 0; round < 20; round++ {
			var sb strings.Builder
			for i := 0; i < 40; i++ {
				nocase := ""
				if r.Intn(3) == 0 {
					nocase = " nocase;"
				}
				pat := word(1 + r.Intn(6))
				where := ""
				if r.Intn(3) == 0 {
					where += fmt.Sprintf(" offset:%d;", r.Intn(5))
				}
				if r.Intn(2) == 0 {
					where += fmt.Sprintf(" depth:%d;", len(pat)+r.Intn(4))
				}
				fmt.Fprintf(&sb, "alert tcp any any -> any any (msg:\"r%d\"; content:\"|%x|\";%s%s sid:%d;)\n", i, pat, nocase, where, i+1)
			}
			s := load(t, sb.String())
			s.pf.compile()
			b := s.pf.byBuf[BufPayload][vTCP+vToServer]
			if !scansAsConfigured(b) {
				t.Fatal("the payload bucket does not scan as configured")
			}
			if useLiteral {
				for _, rs := range b.runs {
					if p := rs.pat.pat; bytes.Count(p, p[:1]) != len(p) {
						t.Fatalf("pattern %q is kept out of the database but is no run", rs.pat.pat)
					}
				}
			}
			for i := 0; i < 50; i++ {
				in := bufIn(BufPayload, string(word(r.Intn(80))), 6, "")
				got := map[int]bool{}
				for _, m := range s.Match(in, nil) {
					got[m.SID] = true
				}
				for _, rl := range s.Rules() {
					if want := rl.quick(in) && rl.full(in); want != got[rl.SID] {
						t.Fatalf("round %d, input %q: sid %d (content %q): Match says %v, checking every rule says %v",
							round, in.Buf[BufPayload], rl.SID, rl.pre.pat, got[rl.SID], want)
					}
				}
			}
		}
	})
}

// TestHasRun: the search for a run of one byte (memchr jumps, or a byte
// walk for a caseless letter) agrees with searching the window for the
// whole run, case folded or not, on data made of runs of every length
// around the pattern's, cut anywhere.
func TestHasRun(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := range 20000 {
		var data []byte
		for len(data) < r.Intn(60) {
			c := []byte{'b', 'B', 'x', 0}[r.Intn(4)]
			data = append(data, bytes.Repeat([]byte{c}, 1+r.Intn(7))...)
		}
		n := 1 + r.Intn(6)
		nocase := i%2 == 0
		c := byte('b')
		if i%5 == 0 {
			c = 0
		}
		run := bytes.Repeat([]byte{c}, n)
		lo := r.Intn(len(data) + 2)
		hi := lo + r.Intn(len(data)+2)
		want := false
		if w := data[min(lo, len(data)):min(hi, len(data))]; nocase {
			want = bytes.Contains(bytes.ToLower(w), run)
		} else {
			want = bytes.Contains(w, run)
		}
		if got := hasRun(data, run, nocase, lo, min(hi, len(data))); got != want {
			t.Fatalf("hasRun(%q, %q, nocase %v, %d, %d) = %v, want %v", data, run, nocase, lo, hi, got, want)
		}
	}
}
