package pcre

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func mustCompile(t testing.TB, pat string, o Options) *Regexp {
	t.Helper()
	re, err := Compile(pat, o)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pat    string
		opts   Options
		data   string
		start  int
		ms, me int
	}{
		{"plain", `b+`, Options{}, "abbbc", 0, 1, 4},
		{"case sensitive", `GET`, Options{}, "get /", 0, -1, -1},
		{"caseless", `GET`, Options{Caseless: true}, "get /", 0, 0, 3},
		{"dot stops at newline", `a.b`, Options{}, "a\nb", 0, -1, -1},
		{"dotall", `a.b`, Options{DotAll: true}, "a\nb", 0, 0, 3},
		{"caret only at start", `^Host:`, Options{}, "GET /\r\nHost: x", 0, -1, -1},
		{"multiline caret", `^Host:`, Options{Multiline: true}, "GET /\nHost: x", 0, 6, 11},
		{"extended ignores space", `a b # comment`, Options{Extended: true}, "xab", 0, 1, 3},
		{"not extended", `a b`, Options{}, "xab", 0, -1, -1},
		{"unanchored", `b`, Options{}, "ab", 0, 1, 2},
		{"anchored", `b`, Options{Anchored: true}, "ab", 0, -1, -1},
		{"anchored at start offset", `b`, Options{Anchored: true}, "ab", 1, 1, 2},
		{"dollar before final newline", `a$`, Options{}, "a\n", 0, 0, 1},
		{"dollar end only", `a$`, Options{DollarEndOnly: true}, "a\n", 0, -1, -1},
		{"greedy", `a.*b`, Options{}, "a1b2b", 0, 0, 5},
		{"ungreedy", `a.*b`, Options{Ungreedy: true}, "a1b2b", 0, 0, 3},
		{"ungreedy flips ?", `a.*?b`, Options{Ungreedy: true}, "a1b2b", 0, 0, 5},
		{"lookbehind", `(?<=user=)\w+`, Options{}, "x user=bob&", 0, 7, 10},
		{"negative lookbehind", `(?<!x)y`, Options{}, "xyzy", 0, 3, 4},
		{"lookahead", `\d+(?=px)`, Options{}, "10em 20px", 0, 5, 7},
		{"backreference", `(['"])[^'"]*\1`, Options{}, `a="x y" b`, 0, 2, 7},
		{"named backreference", `(?P<q>ab)\s(?P=q)`, Options{}, "ab ab", 0, 0, 5},
		{"hex escape and binary", `\x00\xff`, Options{}, "a\x00\xffb", 0, 1, 3},
		{"bytes not utf-8", `^.$`, Options{}, "\xe9", 0, 0, 1},
		{"possessive", `a++b`, Options{}, "aaab", 0, 0, 4},
		{"atomic group", `(?>a+)ab`, Options{}, "aaab", 0, -1, -1},
		{"inline caseless", `(?i)host`, Options{}, "HOST", 0, 0, 4},
		{"empty pattern", ``, Options{}, "abc", 1, 1, 1},
		{"empty data", `x*`, Options{}, "", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := mustCompile(t, tc.pat, tc.opts)
			ms, me := re.Find([]byte(tc.data), tc.start)
			if ms != tc.ms || (ms >= 0 && me != tc.me) {
				t.Errorf("%s.Find(%q, %d) = [%d,%d), want [%d,%d)", re, tc.data, tc.start, ms, me, tc.ms, tc.me)
			}
		})
	}
}

func TestStartOffset(t *testing.T) {
	data := []byte("abcabc")
	re := mustCompile(t, `abc`, Options{})
	for start, want := range []int{0, 3, 3, 3, -1, -1, -1} {
		if ms, me := re.Find(data, start); ms != want || (ms >= 0 && me != ms+3) {
			t.Errorf("Find(%q, %d) = [%d,%d), want start %d", data, start, ms, me, want)
		}
	}
	// ^ does not match at a start offset (no Multiline): the offset is not the start of the subject.
	if ms, _ := mustCompile(t, `^abc`, Options{}).Find(data, 3); ms != -1 {
		t.Errorf("^abc matched at start offset 3 (ms=%d); PCRE's ^ is the subject start", ms)
	}
	// \G is the start offset.
	if ms, _ := mustCompile(t, `\Gabc`, Options{}).Find(data, 3); ms != 3 {
		t.Errorf(`\Gabc at start 3: ms=%d, want 3`, ms)
	}
	// Lookbehind sees the bytes before start.
	if ms, _ := mustCompile(t, `(?<=c)a`, Options{}).Find(data, 3); ms != 3 {
		t.Errorf("(?<=c)a at start 3: ms=%d, want 3 (lookbehind sees data[2])", ms)
	}
	if ms, _ := mustCompile(t, `\babc`, Options{}).Find(data, 3); ms != -1 {
		t.Errorf(`\babc at start 3 matched at %d; \b must see the 'c' before start`, ms)
	}
	for _, bad := range []int{-1, 7, 100} {
		if ms, me := re.Find(data, bad); ms != -1 {
			t.Errorf("Find(start=%d) = [%d,%d), want no match", bad, ms, me)
		}
	}
}

func TestCompileError(t *testing.T) {
	for _, tc := range []struct{ pat, reason string }{
		{`ab(c`, "missing closing parenthesis"},
		{`a{2,1}`, "out of order"},
		{`(?<=a+)b`, "lookbehind"},
		{`\1(a)x\2`, "non-existent subpattern"},
	} {
		_, err := Compile(tc.pat, Options{})
		if !errors.Is(err, ErrCompile) {
			t.Errorf("Compile(%q) err = %v, want ErrCompile", tc.pat, err)
			continue
		}
		if !strings.Contains(err.Error(), "at offset") || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("Compile(%q) err = %q, want the offset and %q", tc.pat, err, tc.reason)
		}
	}
}

func TestString(t *testing.T) {
	re := mustCompile(t, `a/b`, Options{Caseless: true, DotAll: true, Ungreedy: true})
	if got := re.String(); got != "/a/b/isG" {
		t.Errorf("String() = %q, want /a/b/isG", got)
	}
}

func TestLimit(t *testing.T) {
	// Catastrophic backtracking: 2^n paths before failing.
	re := mustCompile(t, `^(a+)+$`, Options{})
	data := []byte(strings.Repeat("a", 40) + "!")
	before := LimitHits()
	if ms, _ := re.Find(data, 0); ms != -1 {
		t.Fatalf("pathological pattern matched at %d", ms)
	}
	if got := LimitHits() - before; got != 1 {
		t.Fatalf("LimitHits grew by %d, want 1", got)
	}
	// The same pattern on a short input is within the limit and matches.
	if ms, me := re.Find([]byte("aaaa"), 0); ms != 0 || me != 4 {
		t.Errorf("short input: [%d,%d), want [0,4)", ms, me)
	}
}

func TestConcurrent(t *testing.T) {
	res := []*Regexp{
		mustCompile(t, `(?<=Host: )[a-z.]+`, Options{Caseless: true}),
		mustCompile(t, `(['"])evil\1`, Options{}),
		mustCompile(t, `^(a+)+$`, Options{}),
	}
	data := []byte("GET / HTTP/1.1\r\nHost: Example.ORG\r\nX: 'evil'\r\n")
	path := []byte(strings.Repeat("a", 30) + "!")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if ms, me := res[0].Find(data, 0); ms != 22 || me != 33 {
					t.Errorf("host: [%d,%d)", ms, me)
					return
				}
				if ms, me := res[1].Find(data, 0); ms != 38 || me != 44 {
					t.Errorf("evil: [%d,%d)", ms, me)
					return
				}
				if ms, _ := res[2].Find(path, 0); ms != -1 {
					t.Errorf("pathological matched")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestFindAllocs(t *testing.T) {
	re := mustCompile(t, `(?<=Host: )[a-z.]+`, Options{Caseless: true})
	data := []byte("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
	re.Find(data, 0)
	if n := testing.AllocsPerRun(1000, func() { re.Find(data, 0) }); n != 0 {
		t.Errorf("Find allocates %.1f times per call, want 0", n)
	}
}

// FindWith on the caller's Matcher finds what Find finds and never allocates, even under the race detector
// (which makes sync.Pool drop items at random, so Find's pool may allocate there).
func TestFindWith(t *testing.T) {
	re := mustCompile(t, `(?<=Host: )[a-z.]+`, Options{Caseless: true})
	data := []byte("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
	m, err := NewMatcher()
	if err != nil {
		t.Fatal(err)
	}
	ms, me := re.FindWith(m, data, 0)
	if ws, we := re.Find(data, 0); ms != ws || me != we || string(data[ms:me]) != "example.org" {
		t.Fatalf("FindWith = [%d,%d) %q, Find = [%d,%d)", ms, me, data[max(ms, 0):max(me, 0)], ws, we)
	}
	if ms, _ := re.FindWith(m, []byte("Host: 123"), 0); ms != -1 {
		t.Errorf("FindWith matched a digit host at %d", ms)
	}
	if n := testing.AllocsPerRun(1000, func() { re.FindWith(m, data, 0) }); n != 0 {
		t.Errorf("FindWith allocates %.1f times per call, want 0", n)
	}
}

func TestJIT(t *testing.T) {
	if !mustCompile(t, `abc`, Options{}).JIT() {
		t.Log("PCRE2 JIT unavailable on this platform: running on the interpreter")
	}
}
