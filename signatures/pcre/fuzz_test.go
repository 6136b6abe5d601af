package pcre

import (
	"testing"
)

// FuzzCompileFind compiles arbitrary patterns with arbitrary flags and runs them on arbitrary data from
// arbitrary offsets: it must never crash, a match must lie inside data at or after start, and Find must agree
// with itself (the pooled match state carries nothing from one call to the next).
func FuzzCompileFind(f *testing.F) {
	f.Add(`(?<=a)b+`, uint8(0), []byte("aabbb"), 1)
	f.Add(`^(a+)+$`, uint8(0), []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"), 0)
	f.Add(`(['"])x\1`, uint8(1), []byte(`'x'"x"`), 2)
	f.Add(`host:\s*(?P<h>[^\r\n]+)`, uint8(0x7f), []byte("GET /\r\nHost: a\r\n"), 0)
	f.Add(`a b # c`, uint8(8), []byte("ab"), 0)
	f.Fuzz(func(t *testing.T, pat string, flags uint8, data []byte, start int) {
		o := Options{
			Caseless: flags&1 != 0, DotAll: flags&2 != 0, Multiline: flags&4 != 0, Extended: flags&8 != 0,
			Anchored: flags&16 != 0, DollarEndOnly: flags&32 != 0, Ungreedy: flags&64 != 0,
		}
		re, err := Compile(pat, o)
		if err != nil {
			return
		}
		ms, me := re.Find(data, start)
		if ms >= 0 && (start < 0 || ms < start || me < ms || me > len(data)) {
			t.Fatalf("%s.Find(%q, %d) = [%d,%d) outside the subject", re, data, start, ms, me)
		}
		if ms2, me2 := re.Find(data, start); ms2 != ms || me2 != me {
			t.Fatalf("%s.Find not repeatable: [%d,%d) then [%d,%d)", re, ms, me, ms2, me2)
		}
	})
}
