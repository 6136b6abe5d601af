package rules

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The prefilter finds, for one Input, the few rules worth verifying.
//
// Every rule with a positive content has one fast pattern (chosen as
// Suricata does: the content marked fast_pattern, else the longest positive
// content, ties to the first; a chopped fast_pattern:offset,length uses
// that slice) and is indexed under the buffer that content inspects. Each
// buffer's bucket compiles its fast patterns into one Aho-Corasick DFA
// (ac.go): Match runs each present buffer through its bucket's automaton
// once, confirms each pattern hit at its position, marks the rules of the
// confirmed patterns in a bitset, then verifies the marked rules in load
// order (protocol, flow and header first, then every content list). The
// cost is one table load per buffer byte plus the candidates' verification,
// whatever the number of rules. Buckets of fewer than acMinRules rules skip
// the automaton and search each pattern directly.
//
// Rules without a positive content (header-only, or only negated
// contents) are grouped by protocol and application: an Input walks only
// the groups its protocol and application can match.
//
// Per-call state (the candidate bitset and per-pattern generation stamps)
// lives in a scratch the Input carries, so one read-only Set serves many
// goroutines, each with its own Input, without locks or allocation.

// acMinRules is the smallest bucket that gets an automaton.
const acMinRules = 4

// bucket holds the rules whose fast pattern inspects one buffer.
type bucket struct {
	rules []*Rule
	ids   []int32 // each rule's index in the Set, for profiling

	ac      *automaton // nil: fewer than acMinRules rules
	patAt   []int32    // pattern id p's rules (bucket indexes) are patRule[patAt[p]:patAt[p+1]]
	patRule []int32
}

// ruleGroup holds the rules without a fast pattern that share a protocol
// and application.
type ruleGroup struct {
	ipProto uint8
	app     string
	rules   []*Rule
	ids     []int32
}

// prefilter is the Set's index for matching.
type prefilter struct {
	byBuf  [NumBuffers]bucket
	groups []ruleGroup
	ip     ipOnly // iponly.go: header-only rules keyed by a long address list

	once     sync.Once
	maxRules int // largest bucket: candidate bitset size
	maxPats  int // most patterns in one automaton: generation stamps
	tables   int // bytes in automata

	prof atomic.Pointer[profile]
}

// scratch is one Match call's working memory; the Input keeps it between
// calls.
type scratch struct {
	cand   []uint64 // candidate rules of the bucket being matched
	patGen []uint32 // per pattern: gen when last confirmed
	gen    uint32
}

func (p *prefilter) add(id int32, r *Rule) {
	if r.pre == nil {
		if p.ip.take(id, r) {
			return
		}
		for i := range p.groups {
			g := &p.groups[i]
			if g.ipProto == r.ipProto && g.app == r.app {
				g.rules, g.ids = append(g.rules, r), append(g.ids, id)
				return
			}
		}
		p.groups = append(p.groups, ruleGroup{ipProto: r.ipProto, app: r.app, rules: []*Rule{r}, ids: []int32{id}})
		return
	}
	b := &p.byBuf[r.pre.buf]
	b.rules, b.ids = append(b.rules, r), append(b.ids, id)
}

// compile builds the automata once every rule is added.
func (p *prefilter) compile() {
	p.once.Do(func() {
		p.ip.compile()
		for i := range p.byBuf {
			b := &p.byBuf[i]
			p.maxRules = max(p.maxRules, len(b.rules))
			if len(b.rules) < acMinRules {
				continue
			}
			b.compile()
			p.maxPats = max(p.maxPats, len(b.ac.pats))
			p.tables += b.ac.size() + 4*len(b.patRule) + 4*len(b.patAt)
		}
	})
}

func (b *bucket) compile() {
	type key struct {
		pat    string
		nocase bool
	}
	ids := make(map[key]int32)
	var pats []acPattern
	var lists [][]int32
	for i, r := range b.rules {
		pat, nocase := r.fastPattern()
		k := key{string(pat), nocase}
		id, ok := ids[k]
		if !ok {
			id = int32(len(pats))
			ids[k] = id
			pats = append(pats, acPattern{pat: pat, nocase: nocase})
			lists = append(lists, nil)
		}
		lists[id] = append(lists[id], int32(i))
	}
	b.ac = buildAutomaton(pats)
	b.patAt = make([]int32, 0, len(lists)+1)
	for _, l := range lists {
		b.patAt = append(b.patAt, int32(len(b.patRule)))
		b.patRule = append(b.patRule, l...)
	}
	b.patAt = append(b.patAt, int32(len(b.patRule)))
}

// scratchFor returns in's scratch, grown to fit p. It allocates only on
// an Input's first Match and when a bigger Set is matched.
func (in *Input) scratchFor(p *prefilter) *scratch {
	sc := in.scratch
	words := (p.maxRules + 63) / 64
	if sc == nil || len(sc.cand) < words || len(sc.patGen) < p.maxPats {
		if sc != nil {
			words = max(words, len(sc.cand))
		}
		sc = &scratch{cand: make([]uint64, words), patGen: make([]uint32, p.maxPats)}
		in.scratch = sc
	}
	return sc
}

// match appends the matching rules of s to out: first the groups of rules
// without a fast pattern that in's protocol and application can match, then
// per present buffer (in Buffer order) the bucket's matches, each in load
// order.
func (s *Set) prefilterMatch(in *Input, out []*Rule) []*Rule {
	p := &s.pf
	p.compile()
	prof := p.prof.Load()
	for gi := range p.groups {
		g := &p.groups[gi]
		if g.ipProto != 0 && g.ipProto != in.Proto && !(g.ipProto == 1 && in.Proto == 58) {
			continue
		}
		if g.app != "" && g.app != in.App {
			continue
		}
		for i, r := range g.rules {
			if prof != nil {
				if prof.verify(g.ids[i], r, in) {
					out = append(out, r)
				}
			} else if r.quick(in) && r.full(in) {
				out = append(out, r)
			}
		}
	}
	out = p.ip.match(in, prof, out)
	var sc *scratch
	for bi := range p.byBuf {
		b := &p.byBuf[bi]
		data := in.Buf[bi]
		if data == nil || len(b.rules) == 0 {
			continue
		}
		if b.ac == nil {
			for i, r := range b.rules {
				if !r.quick(in) {
					continue
				}
				pat, nocase := r.fastPattern()
				if find(data, pat, nocase, 0, len(data)) < 0 {
					continue
				}
				if prof != nil {
					if prof.verify(b.ids[i], r, in) {
						out = append(out, r)
					}
				} else if r.full(in) {
					out = append(out, r)
				}
			}
			continue
		}
		if sc == nil {
			sc = in.scratchFor(p)
		}
		out = b.match(in, data, sc, prof, out)
	}
	return out
}

// match runs data through b's automaton and verifies the candidates.
func (b *bucket) match(in *Input, data []byte, sc *scratch, prof *profile, out []*Rule) []*Rule {
	sc.gen++
	if sc.gen == 0 { // wrapped: old stamps could collide
		clear(sc.patGen)
		sc.gen = 1
	}
	gen := sc.gen
	a := b.ac
	trans, class, outFrom := a.trans, &a.class, a.outFrom
	any := false
	s := int32(0)
	for i, c := range data {
		s = trans[s+int32(class[c])]
		if s < outFrom {
			continue
		}
		k := (s - outFrom) / a.width
		for _, id := range a.outs[a.outAt[k]:a.outAt[k+1]] {
			if sc.patGen[id] == gen {
				continue
			}
			pt := &a.pats[id]
			if !pt.confirm(data, i+1-pt.pre) {
				continue
			}
			sc.patGen[id] = gen
			for _, ri := range b.patRule[b.patAt[id]:b.patAt[id+1]] {
				sc.cand[ri>>6] |= 1 << (ri & 63)
			}
			any = true
		}
	}
	if !any {
		return out
	}
	words := sc.cand[:(len(b.rules)+63)/64]
	for w := range words {
		for set := words[w]; set != 0; set &= set - 1 {
			i := w<<6 + bits.TrailingZeros64(set)
			r := b.rules[i]
			if prof != nil {
				if prof.verify(b.ids[i], r, in) {
					out = append(out, r)
				}
			} else if r.quick(in) && r.full(in) {
				out = append(out, r)
			}
		}
		words[w] = 0
	}
	return out
}

// fastPattern returns the bytes the prefilter looks for and whether they
// are caseless.
func (r *Rule) fastPattern() ([]byte, bool) {
	c := r.pre
	if c.fastLen > 0 {
		return c.pat[c.fastOff : c.fastOff+c.fastLen], c.nocase
	}
	return c.pat, c.nocase
}

// selectFastPattern sets r.pre: the positive content marked fast_pattern,
// else the longest positive content (ties to the first); nil when the rule
// has no positive content. It runs once the contents are final.
func (r *Rule) selectFastPattern() {
	r.pre = nil
	for i := range r.contents {
		if c := &r.contents[i]; c.fast && !c.negate {
			r.pre = c
			return
		}
	}
	for i := range r.contents {
		c := &r.contents[i]
		if !c.negate && (r.pre == nil || len(c.pat) > len(r.pre.pat)) {
			r.pre = c
		}
	}
}

// fastPatternOpt handles "fast_pattern", "fast_pattern:only" (legacy: the
// same as plain; the content is still verified, which is only redundant) and "fast_pattern:offset,length" (the prefilter uses
// that slice of the content).
func fastPatternOpt(p *ruleParser, v string) error {
	if err := needContent(p, "fast_pattern"); err != nil {
		return err
	}
	// Suricata refuses a second fast_pattern; the last one wins here, so
	// such a rule still loads.
	for i := range p.r.contents {
		p.r.contents[i].fast, p.r.contents[i].fastOff, p.r.contents[i].fastLen = false, 0, 0
	}
	c := &p.r.contents[len(p.r.contents)-1]
	v = strings.TrimSpace(v)
	switch {
	case v == "" || v == "only":
	default:
		o, l, ok := strings.Cut(v, ",")
		off, err1 := strconv.Atoi(strings.TrimSpace(o))
		n, err2 := strconv.Atoi(strings.TrimSpace(l))
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("%q is neither only nor offset,length", v)
		}
		if off < 0 || n <= 0 || off+n > len(c.pat) {
			return fmt.Errorf("chop %d,%d does not fit the %d-byte content", off, n, len(c.pat))
		}
		c.fastOff, c.fastLen = off, n
	}
	c.fast = true
	return nil
}
