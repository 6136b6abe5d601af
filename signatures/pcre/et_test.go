package pcre

import (
	"os"
	"sort"

	"sync"
	"testing"

	"github.com/openutm/utm/signatures/pcre/internal/etpcre"
)

// etOptions maps Suricata's pcre flag letters to Options; buffer/position letters (R U I P H D M C K S Y B V W
// Q O ...) belong to the rules package and are ignored here.
func etOptions(flags string) Options {
	var o Options
	for _, c := range flags {
		switch c {
		case 'i':
			o.Caseless = true
		case 's':
			o.DotAll = true
		case 'm':
			o.Multiline = true
		case 'x':
			o.Extended = true
		case 'A':
			o.Anchored = true
		case 'E':
			o.DollarEndOnly = true
		case 'G':
			o.Ungreedy = true
		}
	}
	return o
}

type etSet struct {
	uniq    []etpcre.PCRE // one per distinct pattern+options
	res     []*Regexp     // compiled, same index as uniq; nil when it failed
	failed  []string
	total   int
	bad     int
	req, bd []byte
}

var (
	etOnce sync.Once
	et     *etSet
	etErr  error
)

func loadET(tb testing.TB) *etSet {
	tb.Helper()
	etOnce.Do(func() {
		all, bad, err := etpcre.Load(etpcre.DefaultDir)
		if err != nil {
			etErr = err
			return
		}
		s := &etSet{total: len(all), bad: bad}
		seen := map[string]bool{}
		for _, p := range all {
			k := p.Pattern + "\x00" + etOptions(p.Flags).flags()
			if seen[k] {
				continue
			}
			seen[k] = true
			s.uniq = append(s.uniq, p)
			re, err := Compile(p.Pattern, etOptions(p.Flags))
			if err != nil {
				s.failed = append(s.failed, p.File+" sid "+itoa(p.Sid)+": "+err.Error())
			}
			s.res = append(s.res, re)
		}
		if s.req, err = os.ReadFile("testdata/http_request_1k.txt"); err != nil {
			etErr = err
			return
		}
		if s.bd, err = os.ReadFile("testdata/body_16k.html"); err != nil {
			etErr = err
			return
		}
		et = s
	})
	if etErr != nil {
		tb.Skipf("ET Open rules not available (%v): they live in %s on the development machine", etErr, etpcre.DefaultDir)
	}
	return et
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestETOpenCompile compiles every distinct pcre of ET Open 2019. The failures are rules Suricata with PCRE2
// rejects too (PCRE2 is Suricata's own engine); the test fails if more than 0.5% fail, i.e. if our option
// mapping, not the rules, is wrong.
func TestETOpenCompile(t *testing.T) {
	s := loadET(t)
	jit := 0
	for _, re := range s.res {
		if re != nil && re.JIT() {
			jit++
		}
	}
	t.Logf("ET Open: %d pcre options (%d unparseable), %d distinct, %d compile (%d JIT), %d fail",
		s.total, s.bad, len(s.uniq), len(s.uniq)-len(s.failed), jit, len(s.failed))
	for _, f := range s.failed {
		t.Log("  ", f)
	}
	if len(s.failed)*200 > len(s.uniq) {
		t.Errorf("%d of %d ET pcres fail to compile, want < 0.5%%", len(s.failed), len(s.uniq))
	}
}

// TestETOpenCorpus runs every compiled ET pcre over inputs built from its own pattern and content strings and
// over the HTTP request and body in testdata: generated samples must mostly match (a check that our flags
// reach PCRE2 right), no Find may fail, and the limit hits are reported.
func TestETOpenCorpus(t *testing.T) {
	s := loadET(t)
	var gen, genMatch, finds, matches int
	hits0, errs0 := LimitHits(), MatchErrors()
	limited := map[string]bool{}
	for i, p := range s.uniq {
		re := s.res[i]
		if re == nil {
			continue
		}
		r := newRand(uint64(i))
		for k := 0; k < 3; k++ {
			g, ok := etpcre.Generate(p.Pattern, p.Flags, r)
			if !ok {
				break
			}
			gen++
			if ms, _ := re.Find(g, 0); ms >= 0 {
				genMatch++
			}
		}
		for _, in := range etpcre.Inputs(p, 1, s.req, s.bd) {
			h := LimitHits()
			finds++
			if ms, me := re.Find(in, 0); ms >= 0 {
				matches++
				if ms > me || me > len(in) {
					t.Errorf("%s: bad bounds [%d,%d) on %d bytes", re, ms, me, len(in))
				}
			}
			if LimitHits() != h {
				limited[re.String()] = true
			}
		}
	}
	t.Logf("generated samples: %d, matched %d (%.1f%%)", gen, genMatch, 100*float64(genMatch)/float64(gen))
	t.Logf("corpus: %d Finds, %d matches, %d limit hits in %d patterns, %d errors",
		finds, matches, LimitHits()-hits0, len(limited), MatchErrors()-errs0)
	var l []string
	for k := range limited {
		l = append(l, k)
	}
	sort.Strings(l)
	for _, k := range l {
		t.Log("  limit:", k)
	}
	if MatchErrors() != errs0 {
		t.Errorf("%d Finds failed with a PCRE2 error", MatchErrors()-errs0)
	}
	// Anchors, lookarounds and /A make some samples legitimately miss; the flags mapping going wrong
	// (e.g. caseless lost) would drop this far lower.
	if genMatch*100 < gen*95 {
		t.Errorf("only %d of %d samples generated from the patterns match, want >= 95%%", genMatch, gen)
	}
}

func benchET(b *testing.B, data []byte) {
	s := loadET(b)
	var res []*Regexp
	for _, re := range s.res {
		if re != nil {
			res = append(res, re)
		}
	}
	b.SetBytes(int64(len(data)) * int64(len(res)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, re := range res {
			re.Find(data, 0)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(res)), "ns/pcre")
}

// BenchmarkFindETOpen runs every compiled ET pcre over a 1 KB HTTP request (one op = all of them).
func BenchmarkFindETOpen(b *testing.B) { benchET(b, loadET(b).req) }

// BenchmarkFindETOpen16K runs every compiled ET pcre over a 16 KB HTML body.
func BenchmarkFindETOpen16K(b *testing.B) { benchET(b, loadET(b).bd) }

// BenchmarkFindLiteral is the baseline: one literal pcre that does not occur, over the same 1 KB request.
func BenchmarkFindLiteral(b *testing.B) {
	req, err := os.ReadFile("testdata/http_request_1k.txt")
	if err != nil {
		b.Fatal(err)
	}
	re := mustCompile(b, `cmd\.exe`, Options{Caseless: true})
	if ms, _ := re.Find(req, 0); ms != -1 {
		b.Fatal("literal unexpectedly matches")
	}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		re.Find(req, 0)
	}
}
