package rules

// bucket holds the rules whose prefilter content inspects one buffer.
//
// This is the seam for the multi-pattern prefilter (IPS issue): today
// candidates are found by one substring search per rule (bytes.Index, or a
// case-folding scan for nocase patterns), so a bucket costs
// O(rules × buffer length) when its buffer is present and nothing when it is
// absent. An Aho-Corasick automaton over every rule's prefilter pattern
// replaces the loop in match with one pass over the buffer; add builds it,
// and the contract (append matching rules to out, never allocate) stays.
type bucket struct {
	rules []*Rule
}

func (b *bucket) add(r *Rule) { b.rules = append(b.rules, r) }

// match appends to out the rules of b that match in, data being the
// bucket's buffer in in.
func (b *bucket) match(in *Input, data []byte, out []*Rule) []*Rule {
	for _, r := range b.rules {
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
