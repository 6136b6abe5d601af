package dga

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	hostA = netip.MustParseAddr("198.18.0.21")
	hostB = netip.MustParseAddr("198.18.0.22")
)

func TestScoreScoresTheRegisteredLabel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dga    bool
		reason string // "" = don't check
	}{
		{"d111111abcdef8.cloudfront.net", false, ""}, // scores "cloudfront"
		{"e6858.dscx.akamaiedge.net", false, ""},
		{"www.bbc.co.uk", false, ""},
		{"co.uk", false, ""},
		{"com", false, ""},
		{"localhost", false, ""},
		{"", false, ""},
		{"xn--80ak6aa92e.com", false, ""}, // IDN: punycode looks random
		{"xkqwzlvbnmfghjd.com", true, "entropy+consonant run+few vowels+rare letter pairs"},
		{"XKQWZLVBNMFGHJD.COM.", true, "entropy+consonant run+few vowels+rare letter pairs"},
		{"www.xkqwzlvbnmfghjd.co.uk", true, ""},
		{"a1b2c3d4e5f6a7b8.net", true, "entropy+digits mixed with letters"},
		{"sub.xkqwzlvbnmfghjd.ru", true, ""},
		{"xkqwzlvbnmfghjd.example.com", false, ""}, // random below a fixed domain: a documented miss
		{"googlesyndication.com", false, ""},
		{"bad name!.com", false, ""},
	} {
		s, reason := Score([]byte(tc.name))
		if (s >= DefaultScoreThreshold) != tc.dga {
			t.Errorf("Score(%q) = %.2f %q, want DGA-like %v", tc.name, s, reason, tc.dga)
		}
		if tc.reason != "" && reason != tc.reason {
			t.Errorf("Score(%q) reason %q, want %q", tc.name, reason, tc.reason)
		}
		if (s == 0) != (reason == "") {
			t.Errorf("Score(%q) = %v with reason %q: a reason exactly when the score is nonzero", tc.name, s, reason)
		}
	}
}

func readBenign(t *testing.T) []string {
	f, err := os.Open("testdata/benign-domains.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	if len(out) < 500 {
		t.Fatalf("testdata/benign-domains.txt has %d names, want >= 500", len(out))
	}
	return out
}

// TestBenignFalsePositiveRate: popular domains, their subdomains and CDN
// host names with hashed labels must not look generated.
func TestBenignFalsePositiveRate(t *testing.T) {
	names := readBenign(t)
	fp, anyRule := 0, 0
	for _, n := range names {
		s, reason := Score([]byte(n))
		if s > 0 {
			anyRule++
		}
		if s >= DefaultScoreThreshold {
			fp++
			t.Logf("false positive: %q scores %.2f (%s)", n, s, reason)
		}
	}
	if fp*100 > len(names) {
		t.Errorf("%d of %d benign names DGA-like, over 1 %%", fp, len(names))
	}
	t.Logf("%d benign names: %d DGA-like (false positive rate %.2f%%), %d fired some rule", len(names), fp, 100*float64(fp)/float64(len(names)), anyRule)
}

// lcg is a tiny linear congruential generator as the Cryptolocker and
// Conficker style DGAs use (seeded by date in the malware).
type lcg uint32

func (g *lcg) next() uint32 { *g = *g*1103515245 + 12345; return uint32(*g>>16) & 0x7fff }

var tlds = []string{"com", "net", "org", "biz", "info", "ru", "co.uk", "cc"}

func genRandom(g *lcg, minLen, maxLen int, alphabet string) string {
	n := minLen + int(g.next())%(maxLen-minLen+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[int(g.next())%len(alphabet)]
	}
	return string(b) + "." + tlds[int(g.next())%len(tlds)]
}

// Suppobox/Matsnu style: two dictionary words.
var words = strings.Fields(`table window river garden sunday yellow mother letter winter paper
	morning teacher school market simple friend heavy bright silver station picture number
	middle summer strong happy family travel forest dinner wonder breakfast dollar planet
	orange mountain thunder pocket basket circle castle flower silent golden ticket`)

func genDict(g *lcg) string {
	return words[int(g.next())%len(words)] + words[int(g.next())%len(words)] + "." + tlds[int(g.next())%3]
}

func detectionRate(gen func() string, n int) (float64, string) {
	hit, sample := 0, ""
	for i := 0; i < n; i++ {
		name := gen()
		if i == 0 {
			sample = name
		}
		if s, _ := Score([]byte(name)); s >= DefaultScoreThreshold {
			hit++
		}
	}
	return float64(hit) / float64(n), sample
}

func TestDGAFamilies(t *testing.T) {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	g := lcg(20261102)
	for _, tc := range []struct {
		name string
		gen  func() string
		min  float64 // detection rate at least
		max  float64 // and at most (documents what evades)
	}{
		{"cryptolocker-like 12-20 random letters", func() string { return genRandom(&g, 12, 20, letters) }, 0.80, 1},
		{"hash-like 16-32 [a-z0-9]", func() string { return genRandom(&g, 16, 32, letters+"0123456789") }, 0.95, 1},
		{"conficker-like 8-11 random letters", func() string { return genRandom(&g, 8, 11, letters) }, 0.5, 1},
		{"dictionary (suppobox-like): evades", func() string { return genDict(&g) }, 0, 0.05},
	} {
		r, sample := detectionRate(tc.gen, 2000)
		t.Logf("%-40s e.g. %-28s detected %.1f%%", tc.name, sample, 100*r)
		if r < tc.min || r > tc.max {
			t.Errorf("%s: detection %.1f%%, want %.0f..%.0f%%", tc.name, 100*r, 100*tc.min, 100*tc.max)
		}
	}
}

func TestScoreDoesNotAllocate(t *testing.T) {
	name := []byte("www.xkqwzlvbnmfghjd.co.uk.")
	if n := testing.AllocsPerRun(1000, func() { Score(name) }); n != 0 {
		t.Fatalf("Score: %v allocs, want 0", n)
	}
}

func FuzzScore(f *testing.F) {
	for _, s := range []string{"", ".", "..", "co.uk", "a.co.uk", "xkqwzlvbnmfghjd.com", "xn--p1ai", "a1b2c3d4e5f6a7b8.net.", strings.Repeat("ab.", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, reason := Score(b)
		if s < 0 || s > 1 || (s == 0) != (reason == "") {
			t.Fatalf("Score(%q) = %v %q", b, s, reason)
		}
	})
}

func TestNXDomainBurstFromOneHost(t *testing.T) {
	d := New(Config{})
	g := lcg(7)
	var bursts []Burst
	now := t0
	for i := 0; i < 60; i++ { // 60 DGA names in 30 s, each answered NXDOMAIN
		now = now.Add(500 * time.Millisecond)
		name := genRandom(&g, 12, 20, "abcdefghijklmnopqrstuvwxyz")
		if b, ok := d.Answer(now, hostA, []byte(name), true); ok {
			bursts = append(bursts, b)
		}
		// an ordinary host browsing, answers found
		d.Answer(now, hostB, []byte("www.example.com"), false)
	}
	if len(bursts) != 1 {
		t.Fatalf("%d bursts, want exactly 1 per host per window", len(bursts))
	}
	b := bursts[0]
	if b.Host != hostA || b.Count != DefaultNXThreshold || b.DGALike < b.Count/2 || b.MeanScore < DefaultScoreThreshold {
		t.Errorf("burst %+v: want host A at %d distinct names, most DGA-like", b, DefaultNXThreshold)
	}
	for i, ex := range b.Examples {
		if s, _ := Score([]byte(ex)); s < DefaultScoreThreshold {
			t.Errorf("example %d %q is not DGA-like", i, ex)
		}
	}
	if !b.First.Equal(t0.Add(500*time.Millisecond)) || b.Last.Sub(b.First) > time.Minute {
		t.Errorf("First %v Last %v", b.First, b.Last)
	}
	// the next window may report again
	later := now.Add(2 * time.Minute)
	n := 0
	for i := 0; i < 25; i++ {
		if _, ok := d.Answer(later.Add(time.Duration(i)*time.Second), hostA, []byte(genRandom(&g, 12, 20, "abcdefghijklmnopqrstuvwxyz")), true); ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d bursts in the next window, want 1", n)
	}
	s := d.Stats()
	if s.Bursts != 2 || s.Hosts != 1 || s.NXDomain != 85 {
		t.Errorf("stats %+v: want 2 bursts, 1 host (host B had no NXDOMAIN), 85 NXDOMAIN", s)
	}
}

func TestNoBurstFromTyposRepeatsOrBenignNX(t *testing.T) {
	d := New(Config{})
	typos := strings.Fields(`gogle.com googel.com faceboook.com facebok.com amazom.com amazn.com
		youtub.com yotube.com wikipeda.org twiter.com linkedn.com micosoft.com microsft.com
		outlok.com gmial.com gmal.com netflx.com instagarm.com reddt.com githb.com
		stackoverflw.com dropbx.com paypa1.com appple.com yahooo.com bbc.co.ukk`)
	now := t0
	for _, n := range typos { // 26 distinct NXDOMAIN typos within a minute
		now = now.Add(time.Second)
		if b, ok := d.Answer(now, hostA, []byte(n), true); ok {
			t.Fatalf("typos raised %+v", b)
		}
	}
	g := lcg(9)
	dga := genRandom(&g, 15, 15, "abcdefghijklmnopqrstuvwxyz")
	for i := 0; i < 50; i++ { // one DGA-like name retried 50 times: one distinct name
		if b, ok := d.Answer(now, hostB, []byte(dga), true); ok {
			t.Fatalf("a repeated name raised %+v", b)
		}
	}
	// dead subdomains of popular services (stale links, blocked trackers)
	benign := readBenign(t)
	for i, n := range benign[:100] {
		if b, ok := d.Answer(now.Add(time.Duration(i)*100*time.Millisecond), netip.MustParseAddr("198.18.0.23"), []byte("old."+n), true); ok {
			t.Fatalf("benign NXDOMAIN names raised %+v", b)
		}
	}
	// DGA names spread thinner than the window: 19 per minute never add up
	for i := 0; i < 190; i++ {
		at := t0.Add(time.Duration(i) * 60 * time.Second / 19)
		if b, ok := d.Answer(at, netip.MustParseAddr("198.18.0.24"), []byte(genRandom(&g, 14, 18, "abcdefghijklmnopqrstuvwxyz")), true); ok {
			t.Fatalf("19 names per minute (threshold 20) raised %+v", b)
		}
	}
}

func TestAnswerMemoryBound(t *testing.T) {
	d := New(Config{MaxHosts: 100})
	for i := 0; i < 10000; i++ {
		h := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		d.Answer(t0, h, []byte(fmt.Sprintf("n%d.example", i)), true)
	}
	if s := d.Stats(); s.Hosts != 100 || s.Evicted != 9900 {
		t.Fatalf("stats %+v: want 100 hosts and 9900 evicted", s)
	}
}

func TestAnswerDoesNotAllocate(t *testing.T) {
	d := New(Config{MaxHosts: 16})
	names := make([][]byte, 64)
	for i := range names {
		names[i] = []byte(fmt.Sprintf("www.site%d.example.com", i))
	}
	now := t0
	i := 0
	step := func() {
		now = now.Add(10 * time.Second)
		h := netip.AddrFrom4([4]byte{198, 18, 1, byte(i % 40)}) // 40 hosts through 16 slots
		d.Answer(now, h, names[i%len(names)], true)
		d.Answer(now, h, names[i%len(names)], false)
		i++
	}
	for k := 0; k < 500; k++ {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("Answer: %v allocs, want 0", n)
	}
}

func BenchmarkScore(b *testing.B) {
	name := []byte("www.xkqwzlvbnmfghjd.co.uk")
	b.ReportAllocs()
	for b.Loop() {
		Score(name)
	}
}

func BenchmarkAnswerNX(b *testing.B) {
	d := New(Config{})
	name := []byte("www.xkqwzlvbnmfghjd.co.uk")
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		d.Answer(now, hostA, name, true)
	}
}
