package etpcre

import (
	"math/rand/v2"
	"regexp/syntax"
	"strings"
)

// Inputs returns the test inputs for p: subjects built to reach the pattern — strings generated from the
// pattern itself (when Go's regexp/syntax can parse it), the rule's content strings alone and embedded in
// HTTP-like text — plus the shared background texts. The result is deterministic for a given seed.
func Inputs(p PCRE, seed uint64, background ...[]byte) [][]byte {
	r := rand.New(rand.NewPCG(seed, uint64(p.Sid)))
	var out [][]byte
	for i := 0; i < 4; i++ {
		if g, ok := Generate(p.Pattern, p.Flags, r); ok {
			out = append(out, g)
			// the same sample inside text, and with its case flipped (caseless flag)
			out = append(out, []byte("GET /index.php?q="+string(g)+" HTTP/1.1\r\nHost: a.example\r\n\r\n"))
			if i == 0 {
				out = append(out, []byte(flipCase(string(g))))
			}
		}
	}
	if len(p.Contents) > 0 {
		joined := strings.Join(p.Contents, "")
		out = append(out, []byte(joined))
		var b strings.Builder
		b.WriteString("POST /gate.php HTTP/1.1\r\n")
		for _, c := range p.Contents {
			b.WriteString(c)
			b.WriteString(filler(r))
		}
		out = append(out, []byte(b.String()))
	}
	for _, bg := range background {
		out = append(out, bg)
	}
	return out
}

func flipCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 32
		case c >= 'A' && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}

func filler(r *rand.Rand) string {
	parts := []string{"", " ", "\r\n", "=", "&id=", "/", "; ", "\"", "'", "x", "1234", "\x00", "\r\nUser-Agent: Mozilla/4.0\r\n"}
	return parts[r.IntN(len(parts))]
}

// Generate returns a string the pattern should match, produced by walking Go's parse of it, or false when Go
// cannot parse the pattern (backreferences, lookaround, possessive quantifiers...). Characters are emitted as
// single bytes (Latin-1), which is how PCRE without UTF sees \xNN.
func Generate(pattern, flags string, r *rand.Rand) ([]byte, bool) {
	f := syntax.Perl
	if strings.Contains(flags, "i") {
		f |= syntax.FoldCase
	}
	if strings.Contains(flags, "s") {
		f |= syntax.DotNL
	}
	if strings.Contains(flags, "x") {
		return nil, false
	}
	re, err := syntax.Parse(pattern, f)
	if err != nil {
		return nil, false
	}
	var b []byte
	if !gen(re, r, &b, 0) || len(b) > 4096 {
		return nil, false
	}
	return b, true
}

func gen(re *syntax.Regexp, r *rand.Rand, b *[]byte, depth int) bool {
	if depth > 50 {
		return false
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if c > 0xff {
				return false
			}
			*b = append(*b, byte(c))
		}
	case syntax.OpCharClass:
		var cands []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if lo > 0xff {
				break
			}
			if hi > 0xff {
				hi = 0xff
			}
			cands = append(cands, lo, hi, lo+rune(r.IntN(int(hi-lo)+1)))
		}
		if len(cands) == 0 {
			return false
		}
		*b = append(*b, byte(cands[r.IntN(len(cands))]))
	case syntax.OpAnyCharNotNL:
		*b = append(*b, "aZ9 /.%"[r.IntN(7)])
	case syntax.OpAnyChar:
		*b = append(*b, "aZ9 \n/."[r.IntN(7)])
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary,
		syntax.OpNoWordBoundary, syntax.OpEmptyMatch:
	case syntax.OpCapture:
		return gen(re.Sub[0], r, b, depth+1)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
		}
		n := lo + r.IntN(hi-lo+1)
		for i := 0; i < n; i++ {
			if !gen(re.Sub[0], r, b, depth+1) {
				return false
			}
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !gen(s, r, b, depth+1) {
				return false
			}
		}
	case syntax.OpAlternate:
		return gen(re.Sub[r.IntN(len(re.Sub))], r, b, depth+1)
	default:
		return false
	}
	return true
}
