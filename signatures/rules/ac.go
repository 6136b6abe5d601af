package rules

import "encoding/binary"

// automaton is an Aho-Corasick machine compiled to a dense DFA over
// case-folded byte classes: one table load per input byte, no failure links
// to follow at match time.
//
// Every pattern enters the machine by its first acDepth bytes at most (the
// depth is chosen per automaton so the table fits acBudget); a hit on that
// prefix is confirmed by comparing the whole pattern at the hit's position,
// exactly or folding ASCII case. Patterns are folded in the machine, so a
// case-sensitive pattern hits on any case and the confirmation rejects the
// wrong one.
//
// States are numbered so that every state with output comes last (state
// offset >= outFrom): the scan loop costs a table load and one compare per
// byte. States are stored premultiplied by the row width.
type automaton struct {
	class   [256]uint8 // folded byte -> class; 0 for bytes no prefix uses
	width   int32      // classes per row
	trans   []int32    // row offset of the next state, indexed by row offset + class
	outFrom int32      // first row offset of a state with output
	outs    []int32    // pattern ids; state k's (k = (row - outFrom)/width) are outs[outAt[k]:outAt[k+1]]
	outAt   []int32
	pats    []acPattern
	depth   int
}

// acPattern is one distinct pattern of an automaton.
type acPattern struct {
	pat    []byte // lowercase when nocase
	nocase bool
	pre    int // bytes of pat in the machine: min(len(pat), depth)
	// next holds the (up to) 8 bytes after the prefix, folded, and
	// nextMask the bytes of it in use: most prefix hits fail on them, and
	// checking them here costs no load of pat.
	next, nextMask uint64
}

const (
	acMaxDepth = 32      // longest prefix a machine holds
	acMinDepth = 4       // shortest, whatever the budget says
	acBudget   = 4 << 20 // bytes of transition table per automaton: more was slower on the ET mix (cache misses), less too (more confirmations)
)

// buildAutomaton compiles pats. It keeps the pattern ids (indexes in pats).
func buildAutomaton(pats []acPattern) *automaton {
	return buildAutomatonDepth(pats, chooseDepth(pats))
}

// buildAutomatonDepth compiles pats holding at most depth bytes of each.
func buildAutomatonDepth(pats []acPattern, depth int) *automaton {
	a := &automaton{pats: pats, depth: depth}
	for i := range a.pats {
		p := &a.pats[i]
		p.pre = min(len(p.pat), a.depth)
		p.next, p.nextMask = 0, 0
		for k, c := range p.pat[p.pre:min(len(p.pat), p.pre+8)] {
			p.next |= uint64(fold(c)) << (8 * k)
			p.nextMask |= 0xff << (8 * k)
		}
	}
	// Byte classes: each folded byte that occurs in a prefix gets its own
	// class; all others share class 0. Upper-case letters take their
	// lower-case letter's class.
	var seen [256]bool
	for _, p := range a.pats {
		for _, c := range p.pat[:p.pre] {
			seen[fold(c)] = true
		}
	}
	n := 1
	for c := 0; c < 256; c++ {
		if seen[c] {
			a.class[c] = uint8(n)
			n++
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		a.class[c] = a.class[c+'a'-'A']
	}
	w := int32(n)
	a.width = w

	// Trie over the folded prefixes; -1 marks a missing edge. State 0 is
	// the root.
	trans := make([]int32, w)
	for i := range trans {
		trans[i] = -1
	}
	own := [][]int32{nil} // patterns ending at each state
	for id, p := range a.pats {
		s := int32(0)
		for _, c := range p.pat[:p.pre] {
			k := s*w + int32(a.class[fold(c)])
			if trans[k] < 0 {
				trans[k] = int32(len(own))
				own = append(own, nil)
				for j := int32(0); j < w; j++ {
					trans = append(trans, -1)
				}
			}
			s = trans[k]
		}
		own[s] = append(own[s], int32(id))
	}
	nstates := int32(len(own))

	// Breadth-first: failure links turn the trie into a DFA, and each
	// state's output gains its failure state's output.
	fail := make([]int32, nstates)
	queue := make([]int32, 0, nstates)
	for c := int32(0); c < w; c++ {
		if t := trans[c]; t < 0 {
			trans[c] = 0
		} else {
			queue = append(queue, t)
		}
	}
	for qi := 0; qi < len(queue); qi++ {
		s := queue[qi]
		if f := fail[s]; len(own[f]) > 0 {
			own[s] = append(own[s], own[f]...)
		}
		for c := int32(0); c < w; c++ {
			k := s*w + c
			if t := trans[k]; t >= 0 {
				fail[t] = trans[fail[s]*w+c]
				queue = append(queue, t)
			} else {
				trans[k] = trans[fail[s]*w+c]
			}
		}
	}

	// Renumber: states without output first (root stays 0), then the
	// others; store row offsets.
	newID := make([]int32, nstates)
	next := int32(0)
	for s := int32(0); s < nstates; s++ {
		if len(own[s]) == 0 {
			newID[s] = next
			next++
		}
	}
	a.outFrom = next * w
	a.outAt = make([]int32, 0, nstates-next+1)
	for s := int32(0); s < nstates; s++ {
		if len(own[s]) > 0 {
			newID[s] = next
			next++
		}
	}
	a.trans = make([]int32, len(trans))
	for s := int32(0); s < nstates; s++ {
		row := newID[s] * w
		for c := int32(0); c < w; c++ {
			a.trans[row+c] = newID[trans[s*w+c]] * w
		}
	}
	for s := int32(0); s < nstates; s++ {
		if len(own[s]) > 0 {
			a.outAt = append(a.outAt, int32(len(a.outs)))
			a.outs = append(a.outs, own[s]...)
		}
	}
	// outAt is in old-id order among output states, which is also their
	// new-id order (renumbering keeps relative order).
	a.outAt = append(a.outAt, int32(len(a.outs)))
	return a
}

// chooseDepth returns the longest prefix length (acMinDepth..acMaxDepth)
// whose machine fits acBudget, counting trie states and byte classes.
func chooseDepth(pats []acPattern) int {
	longest := 1
	for _, p := range pats {
		longest = max(longest, len(p.pat))
	}
	// Trie once, at the deepest depth, remembering each state's depth.
	type edge struct {
		s int32
		c byte
	}
	trie := make(map[edge]int32)
	depthCount := make([]int, acMaxDepth+1) // states first reached at each depth
	var firstAt [256]int                    // shallowest depth a folded byte is used at
	for i := range firstAt {
		firstAt[i] = acMaxDepth + 1
	}
	n := int32(1)
	for _, p := range pats {
		s := int32(0)
		for i, c := range p.pat[:min(len(p.pat), acMaxDepth)] {
			c = fold(c)
			firstAt[c] = min(firstAt[c], i+1)
			t, ok := trie[edge{s, c}]
			if !ok {
				t = n
				n++
				trie[edge{s, c}] = t
				depthCount[i+1]++
			}
			s = t
		}
	}
	best := acMinDepth
	states, classes := 1, 1
	for d := 1; d <= min(acMaxDepth, longest); d++ {
		states += depthCount[d]
		for c := range firstAt {
			if firstAt[c] == d {
				classes++
			}
		}
		if states*classes*4 > acBudget {
			break
		}
		best = max(best, d)
	}
	if longest < best {
		best = longest
	}
	return max(best, 1)
}

// quickReject reports whether the bytes after p's prefix, which ends at
// data[end-1], cannot be p's (ASCII case folded): no load of p.pat.
func (p *acPattern) quickReject(data []byte, end int) bool {
	if p.nextMask == 0 || end+8 > len(data) {
		return false
	}
	return foldWord(binary.LittleEndian.Uint64(data[end:]))&p.nextMask != p.next
}

// foldWord lowercases the ASCII letters among the 8 bytes of x.
func foldWord(x uint64) uint64 {
	t := x & 0x7f7f7f7f7f7f7f7f
	ge := t + 0x3f3f3f3f3f3f3f3f // high bit: 7-bit value >= 'A'
	gt := t + 0x2525252525252525 // high bit: 7-bit value > 'Z'
	return x | (ge&^gt&^x&0x8080808080808080)>>2
}

// confirm reports whether pattern p occurs in data at start.
func (p *acPattern) confirm(data []byte, start int) bool {
	if start < 0 || start+len(p.pat) > len(data) {
		return false
	}
	w := data[start : start+len(p.pat)]
	if p.nocase {
		return equalFoldLower(w, p.pat)
	}
	return string(w) == string(p.pat)
}

// scan runs data through a and calls hit for every confirmed pattern
// occurrence (id, end offset exclusive). It is the reference loop the
// tests use; bucket.match inlines the same loop.
func (a *automaton) scan(data []byte, hit func(id int32, end int)) {
	s := int32(0)
	for i, c := range data {
		s = a.trans[s+int32(a.class[c])]
		if s >= a.outFrom {
			k := (s - a.outFrom) / a.width
			for _, id := range a.outs[a.outAt[k]:a.outAt[k+1]] {
				p := &a.pats[id]
				if !p.quickReject(data, i+1) && p.confirm(data, i+1-p.pre) {
					hit(id, i+1-p.pre+len(p.pat))
				}
			}
		}
	}
}

// size returns the bytes the automaton's tables take.
func (a *automaton) size() int {
	n := len(a.trans)*4 + len(a.outs)*4 + len(a.outAt)*4 + len(a.class)
	for _, p := range a.pats {
		n += len(p.pat) + 32
	}
	return n
}

// fold lowercases an ASCII letter.
func fold(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
