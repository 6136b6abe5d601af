package rules

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// TestAnchoredAgainstBruteForce: patterns that can sit at one offset only
// (offset N; depth their length) are kept out of the Hyperscan database
// and found by their table; Match still agrees with checking every rule,
// on inputs that carry the patterns at their offsets, next to them, in
// another case, and cut short before or inside them.
func TestAnchoredAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	word := wordsOf(r, []byte{0, 1, 'a', 'A', 'b', 0xff})
	for round := range 20 {
		var sb strings.Builder
		var pats [][]byte
		fixed := 0
		for i := range 60 {
			pat := word(1 + r.Intn(5))
			nocase := ""
			if r.Intn(3) == 0 {
				nocase = " nocase;"
			}
			where := "" // unbounded: into the database
			if i%4 != 0 {
				off := r.Intn(6)
				where = fmt.Sprintf(" offset:%d; depth:%d;", off, len(pat))
				if i%8 == 1 {
					where = fmt.Sprintf(" offset:%d; depth:%d;", off, len(pat)+1) // two places: stays in the database
				} else {
					fixed++
				}
			}
			pats = append(pats, pat)
			fmt.Fprintf(&sb, "alert tcp any any -> any any (msg:\"a%d\"; content:\"|%x|\";%s%s sid:%d;)\n", i, pat, nocase, where, i+1)
		}
		s := load(t, sb.String())
		s.pf.compile()
		b := s.pf.byBuf[BufPayload][vTCP+vToServer]
		if b == nil || b.lit == nil || b.anch == nil {
			t.Fatalf("round %d: the payload bucket has no database or no anchored table", round)
		}
		if n := len(b.anch.pats); n == 0 || n > fixed {
			t.Fatalf("round %d: %d anchored patterns for %d fixed-position contents", round, n, fixed)
		}
		for i := range 200 {
			var in []byte
			switch i % 3 {
			case 0: // random
				in = word(r.Intn(12))
			default: // a pattern at or near a fixed offset, in random case
				in = word(r.Intn(8))
				p := []byte(string(pats[r.Intn(len(pats))]))
				for j, c := range p {
					if 'a' <= c && c <= 'z' && r.Intn(2) == 0 {
						p[j] = c - 'a' + 'A'
					}
				}
				at := min(r.Intn(6), len(in))
				in = append(in[:at], append(p, word(r.Intn(4))...)...)
				in = in[:r.Intn(len(in)+1)]
			}
			got := map[int]bool{}
			for _, m := range s.Match(bufIn(BufPayload, string(in), 6, ""), nil) {
				got[m.SID] = true
			}
			for _, rl := range s.Rules() {
				x := bufIn(BufPayload, string(in), 6, "")
				if want := rl.quick(x) && rl.full(x); want != got[rl.SID] {
					t.Fatalf("round %d, input %q: sid %d (%s): Match says %v, checking every rule says %v",
						round, in, rl.SID, rl.Raw, got[rl.SID], want)
				}
			}
		}
	}
}
