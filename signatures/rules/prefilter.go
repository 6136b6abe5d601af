package rules

// bucket holds the rules whose prefilter content inspects one buffer.
//
// This is the seam for the multi-pattern prefilter (IPS issue). Today a
// bucket finds candidates in two steps:
//
//  1. For a big bucket and a buffer of at most pairMaxData bytes, Match
//     builds (on the stack) a 4096-bit set of the case-folded byte pairs
//     present in the buffer; a rule whose prefilter pattern's first or last
//     pair is absent is skipped with two bit tests.
//  2. The survivors' prefilter pattern is searched with bytes.Index (or a
//     case-folding scan for nocase patterns).
//
// So a bucket costs nothing when its buffer is absent, and about
// O(buffer length + rules) plus one search per likely candidate when it is
// present. An Aho-Corasick automaton over every rule's prefilter pattern
// replaces both steps with one pass over the buffer; add builds it, and the
// contract (append matching rules to out, never allocate) stays.
type bucket struct {
	rules []*Rule
}

const (
	pairBits    = 4096
	pairMaxData = 16 << 10 // beyond this the set saturates and stops filtering
	pairMinRule = 16       // smaller buckets go straight to the search
)

// pairSet is a Bloom-like set of case-folded adjacent byte pairs.
type pairSet [pairBits / 64]uint64

func fold(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func pairHash(a, b byte) uint16 {
	return uint16((uint32(fold(a))<<8 | uint32(fold(b))) * 0x9E3779B1 >> 20)
}

func (p *pairSet) fill(data []byte) {
	for i := 0; i+1 < len(data); i++ {
		h := pairHash(data[i], data[i+1])
		p[h>>6] |= 1 << (h & 63)
	}
}

func (p *pairSet) has(h uint16) bool { return p[h>>6]&(1<<(h&63)) != 0 }

// prefilterPairs records the hashes of the first and last byte pair of the
// rule's prefilter pattern.
func (r *Rule) prefilterPairs() {
	if pat := r.pre.pat; len(pat) >= 2 {
		r.prePairs = [2]uint16{pairHash(pat[0], pat[1]), pairHash(pat[len(pat)-2], pat[len(pat)-1])}
		r.hasPairs = true
	}
}

func (b *bucket) add(r *Rule) {
	r.prefilterPairs()
	b.rules = append(b.rules, r)
}

// match appends to out the rules of b that match in, data being the
// bucket's buffer in in.
func (b *bucket) match(in *Input, data []byte, out []*Rule) []*Rule {
	var pairs pairSet
	usePairs := len(b.rules) >= pairMinRule && len(data) <= pairMaxData
	if usePairs {
		pairs.fill(data)
	}
	for _, r := range b.rules {
		if usePairs && r.hasPairs && !(pairs.has(r.prePairs[0]) && pairs.has(r.prePairs[1])) {
			continue
		}
		if !r.quick(in) {
			continue
		}
		if find(data, r.pre.pat, r.pre.nocase, 0, len(data)) < 0 {
			continue
		}
		if r.full(in) {
			out = append(out, r)
		}
	}
	return out
}
