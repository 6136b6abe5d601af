package enginecmp

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/openutm/utm/signatures/pcre"
	"github.com/openutm/utm/signatures/pcre/internal/etpcre"
)

func pcreOptions(flags string) pcre.Options {
	var o pcre.Options
	o.Caseless = strings.Contains(flags, "i")
	o.DotAll = strings.Contains(flags, "s")
	o.Multiline = strings.Contains(flags, "m")
	o.Extended = strings.Contains(flags, "x")
	o.Anchored = strings.Contains(flags, "A")
	o.DollarEndOnly = strings.Contains(flags, "E")
	o.Ungreedy = strings.Contains(flags, "G")
	return o
}

// compile2 compiles p for regexp2 in the given base mode; /A becomes \G(?:...), /E and /G have no equivalent.
func compile2(p etpcre.PCRE, base regexp2.RegexOptions) (*regexp2.Regexp, error) {
	o := base
	pat := p.Pattern
	for _, c := range p.Flags {
		switch c {
		case 'i':
			o |= regexp2.IgnoreCase
		case 's':
			o |= regexp2.Singleline
		case 'm':
			o |= regexp2.Multiline
		case 'x':
			o |= regexp2.IgnorePatternWhitespace
		case 'A':
			pat = `\G(?:` + pat + `)`
		case 'E', 'G':
			return nil, fmt.Errorf("flag %c has no regexp2 equivalent", c)
		}
	}
	re, err := regexp2.Compile(pat, o)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = 200 * time.Millisecond
	return re, nil
}

type entry struct {
	p  etpcre.PCRE
	re *pcre.Regexp
}

func load(t testing.TB) (es []entry, req, body []byte) {
	all, _, err := etpcre.Load(etpcre.DefaultDir)
	if err != nil {
		t.Skip(err)
	}
	seen := map[string]bool{}
	for _, p := range all {
		o := pcreOptions(p.Flags)
		key := fmt.Sprintf("%s\x00%+v", p.Pattern, o)
		if seen[key] {
			continue
		}
		seen[key] = true
		re, _ := pcre.Compile(p.Pattern, o)
		es = append(es, entry{p, re})
	}
	if req, err = os.ReadFile("../../testdata/http_request_1k.txt"); err != nil {
		t.Fatal(err)
	}
	if body, err = os.ReadFile("../../testdata/body_16k.html"); err != nil {
		t.Fatal(err)
	}
	return es, req, body
}

func latin1(b []byte) []rune {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return r
}

func TestCompare(t *testing.T) {
	es, req, body := load(t)
	pcreOK := 0
	for _, e := range es {
		if e.re != nil {
			pcreOK++
		}
	}
	t.Logf("distinct ET pcres: %d; PCRE2 compiles %d", len(es), pcreOK)
	for _, mode := range []struct {
		name string
		o    regexp2.RegexOptions
	}{{".NET (default)", regexp2.None}, {"RE2 compat", regexp2.RE2}, {"ECMAScript", regexp2.ECMAScript}} {
		var ok, both, finds, agree, disagree, limit, timeout int
		reasons := map[string]int{}
		var examples []string
		for _, e := range es {
			re2, err := compile2(e.p, mode.o)
			if err != nil {
				msg := err.Error()
				if i := strings.Index(msg, " in `"); i > 0 {
					msg = msg[:i]
				}
				reasons[msg]++
				continue
			}
			ok++
			if e.re == nil {
				continue
			}
			both++
			for _, in := range etpcre.Inputs(e.p, 1, req, body) {
				finds++
				h := pcre.LimitHits()
				ms, me := e.re.Find(in, 0)
				if pcre.LimitHits() != h {
					limit++
					continue
				}
				m, err := re2.FindRunesMatch(latin1(in))
				if err != nil {
					timeout++
					continue
				}
				ms2, me2 := -1, -1
				if m != nil {
					ms2, me2 = m.Index, m.Index+m.Length
				}
				if ms == ms2 && (ms < 0 || me == me2) {
					agree++
					continue
				}
				disagree++
				if len(examples) < 8 {
					examples = append(examples, fmt.Sprintf("sid %d /%s/%s on %.40q: pcre2 [%d,%d) regexp2 [%d,%d)",
						e.p.Sid, e.p.Pattern, e.p.Flags, in, ms, me, ms2, me2))
				}
			}
		}
		t.Logf("regexp2 %s: compiles %d of %d (fails %d); both compile %d; %d inputs: agree %d, disagree %d, "+
			"skipped (PCRE2 limit) %d, regexp2 timeout %d", mode.name, ok, len(es), len(es)-ok, both, finds, agree,
			disagree, limit, timeout)
		var rs []string
		for r, n := range reasons {
			rs = append(rs, fmt.Sprintf("%5d %s", n, r))
		}
		sort.Sort(sort.Reverse(sort.StringSlice(rs)))
		for i, r := range rs {
			if i == 6 {
				break
			}
			t.Log("   fail:", r)
		}
		for _, x := range examples {
			t.Log("   differ:", x)
		}
	}
}

func bench(b *testing.B, body bool, engine string) {
	es, req, bd := load(b)
	data := req
	if body {
		data = bd
	}
	var pres []*pcre.Regexp
	var r2 []*regexp2.Regexp
	for _, e := range es {
		re2, err := compile2(e.p, regexp2.None)
		if e.re == nil || err != nil {
			continue
		}
		pres = append(pres, e.re)
		r2 = append(r2, re2)
	}
	runes := latin1(data)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if engine == "pcre2" {
			for _, re := range pres {
				re.Find(data, 0)
			}
		} else {
			for _, re := range r2 {
				re.FindRunesMatch(runes)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(pres)), "ns/pcre")
	b.ReportMetric(float64(len(pres)), "pcres")
}

// Both engines over the patterns both compile (regexp2 .NET mode); regexp2 gets the subject pre-converted to runes.
func BenchmarkPCRE2Request1K(b *testing.B)   { bench(b, false, "pcre2") }
func BenchmarkRegexp2Request1K(b *testing.B) { bench(b, false, "regexp2") }
func BenchmarkPCRE2Body16K(b *testing.B)     { bench(b, true, "pcre2") }
func BenchmarkRegexp2Body16K(b *testing.B)   { bench(b, true, "regexp2") }
