package rules

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Flowbits (Suricata semantics).
//
//	flowbits:set,name      flowbits:isset,name      flowbits:toggle,name
//	flowbits:unset,name    flowbits:isnotset,name   flowbits:noalert   noalert
//
// isset and isnotset take OR-ed names ("isset,a|b": a or b is set;
// "isnotset,a|b": a or b is not set, as Suricata); several flowbits options
// in one rule are AND-ed. set, unset and toggle with "a|b" act on every
// name. Conditions are tests on the rule's match; actions run when the rule
// matches (after its conditions and its detection_filter). A noalert rule
// runs its actions but never alerts, and never drops or rejects (its pass
// still passes).
//
// Names are interned into bit numbers per Set when the rule is added, so a
// rule that two Sets share (Merge) is copied for the second. The bits of a
// flow live in a Bits the engine keeps with the flow and passes in
// Input.Flowbits. A Bits remembers the generation of the Set that wrote it:
// when a reloaded Set (which may number names differently) first reads or
// writes it, the flow's bits are cleared — a rule reload forgets the bits
// set before it, which can cost a detection that spans the reload, never a
// wrong one.

type fbCmd uint8

const (
	fbSet fbCmd = iota
	fbUnset
	fbToggle
	fbIsset
	fbIsnotset
)

// flowbitOp is one flowbits option of a rule.
type flowbitOp struct {
	cmd   fbCmd
	names []string
	bits  []uint32 // the names' bit numbers in the owning Set
}

func (o *flowbitOp) isCond() bool { return o.cmd == fbIsset || o.cmd == fbIsnotset }

// Evaluation ranks within one inspection (PostMatch): rules that only set
// bits (and rules without flowbits) first, then rules that both test and
// set, then rules that only test — Suricata's signature ordering, so a bit
// set by one rule is seen by the rules that test it on the same packet.
const (
	rankWrite uint8 = iota
	rankReadWrite
	rankRead
)

var setGen atomic.Uint64 // Set generations, for Bits

// Bits is one flow's flowbits. The zero value is empty and ready; it
// allocates its words once, when a bit is first set (sized from the Set's
// FlowbitCount), and keeps them across Reset so a pooled flow state does
// not allocate again.
type Bits struct {
	gen uint64 // the Set generation the words belong to
	w   []uint64
}

// Reset clears every bit (the flow ended), keeping the storage.
func (b *Bits) Reset() {
	clear(b.w)
	b.gen = 0
}

// Isset reports whether the set's flowbit name is set in b (for tests and
// diagnostics; not for the packet path).
func (b *Bits) Isset(s *Set, name string) bool {
	n, ok := s.fbNames[name]
	return ok && b != nil && b.gen == s.gen && b.get(n)
}

func (b *Bits) get(n uint32) bool {
	w := int(n >> 6)
	return w < len(b.w) && b.w[w]&(1<<(n&63)) != 0
}

// sync makes b belong to generation gen, clearing it when it held bits of
// another Set.
func (b *Bits) sync(gen uint64) {
	if b.gen != gen {
		clear(b.w)
		b.gen = gen
	}
}

func (b *Bits) put(n uint32, v bool, count int) {
	w := int(n >> 6)
	if w >= len(b.w) {
		if !v {
			return
		}
		words := max((count+63)/64, w+1)
		if cap(b.w) >= words {
			b.w = b.w[:words]
		} else {
			nw := make([]uint64, words)
			copy(nw, b.w)
			b.w = nw
		}
	}
	if v {
		b.w[w] |= 1 << (n & 63)
	} else {
		b.w[w] &^= 1 << (n & 63)
	}
}

// FlowbitCount returns the number of distinct flowbit names of the set: the
// bits a flow needs.
func (s *Set) FlowbitCount() int {
	if s == nil {
		return 0
	}
	return len(s.fbNames)
}

// internFlowbits numbers r's flowbit names in s, copying r when another Set
// already numbered them. It returns the rule to keep.
func (s *Set) internFlowbits(r *Rule) *Rule {
	if r.thr != nil || r.df != nil || r.noAlert || len(r.fb) > 0 {
		s.stateful = true
	}
	if len(r.fb) == 0 {
		return r
	}
	if s.gen == 0 {
		s.gen = setGen.Add(1)
	}
	if r.fbGen != 0 && r.fbGen != s.gen {
		c := *r
		c.fb = make([]flowbitOp, len(r.fb))
		for i, o := range r.fb {
			c.fb[i] = flowbitOp{cmd: o.cmd, names: o.names, bits: make([]uint32, len(o.names))}
		}
		r = &c
	}
	r.fbGen = s.gen
	if s.fbNames == nil {
		s.fbNames = make(map[string]uint32)
	}
	for i := range r.fb {
		o := &r.fb[i]
		for j, name := range o.names {
			n, ok := s.fbNames[name]
			if !ok {
				n = uint32(len(s.fbNames))
				s.fbNames[name] = n
			}
			o.bits[j] = n
		}
	}
	return r
}

// flowbitsOpt parses "set,name", "isset,a|b", "noalert", ...
func flowbitsOpt(p *ruleParser, v string) error {
	cmd, names, _ := strings.Cut(v, ",")
	cmd = strings.TrimSpace(cmd)
	names = strings.TrimSpace(names)
	var op flowbitOp
	switch cmd {
	case "noalert":
		if names != "" {
			return fmt.Errorf("noalert takes no name")
		}
		p.r.noAlert = true
		return nil
	case "set":
		op.cmd = fbSet
	case "unset":
		op.cmd = fbUnset
	case "toggle":
		op.cmd = fbToggle
	case "isset":
		op.cmd = fbIsset
	case "isnotset":
		op.cmd = fbIsnotset
	case "":
		return fmt.Errorf("needs a command: set, unset, toggle, isset, isnotset or noalert")
	default:
		return fmt.Errorf("unknown command %q (want set, unset, toggle, isset, isnotset or noalert)", cmd)
	}
	if names == "" {
		return fmt.Errorf("%s needs a name", cmd)
	}
	for _, n := range strings.Split(names, "|") {
		n = strings.TrimSpace(n)
		if n == "" || strings.ContainsAny(n, " \t,") {
			return fmt.Errorf("bad flowbit name %q in %q", n, names)
		}
		op.names = append(op.names, n)
	}
	op.bits = make([]uint32, len(op.names))
	p.r.fb = append(p.r.fb, op)
	read, write := false, false
	for i := range p.r.fb {
		if p.r.fb[i].isCond() {
			read = true
		} else {
			write = true
		}
	}
	switch {
	case read && write:
		p.r.fbRank = rankReadWrite
	case read:
		p.r.fbRank = rankRead
	default:
		p.r.fbRank = rankWrite
	}
	return nil
}

func noalertOpt(p *ruleParser, v string) error {
	if v != "" {
		return fmt.Errorf("takes no value")
	}
	p.r.noAlert = true
	return nil
}

func init() {
	keywords["flowbits"] = flowbitsOpt
	keywords["noalert"] = noalertOpt
}

// flowbitsHold reports whether every flowbit condition of r holds on b.
// Without flow state (b nil) no condition holds, as in Suricata for a
// packet without a flow.
func (r *Rule) flowbitsHold(b *Bits) bool {
	for i := range r.fb {
		o := &r.fb[i]
		if !o.isCond() {
			continue
		}
		if b == nil {
			return false
		}
		ok := false
		for _, n := range o.bits {
			if b.get(n) == (o.cmd == fbIsset) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// flowbitsApply runs r's set, unset and toggle actions on b.
func (r *Rule) flowbitsApply(b *Bits, count int) {
	if b == nil {
		return
	}
	for i := range r.fb {
		o := &r.fb[i]
		for _, n := range o.bits {
			switch o.cmd {
			case fbSet:
				b.put(n, true, count)
			case fbUnset:
				b.put(n, false, count)
			case fbToggle:
				b.put(n, !b.get(n), count)
			}
		}
	}
}

// PostMatch applies the stateful keywords to the rules Match returned for
// in and returns, in matched[:0], the rules that act on the packet (alert,
// drop, reject or pass). For each matched rule, in the flowbits order
// (setters, then setters that test, then testers; load/Match order
// within each):
//
//  1. its flowbits conditions must hold on in.Flowbits;
//  2. its detection_filter must let it through (in.Tracker);
//  3. its flowbits actions run on in.Flowbits;
//  4. a noalert rule stops here (unless it is a pass rule);
//  5. its threshold must let the alert through (in.Tracker).
//
// Time is in.Now (the packet's timestamp). Without a Tracker, threshold and
// detection_filter do not limit. PostMatch does not allocate once the
// flow's Bits hold their words. A Set without stateful keywords returns
// matched unchanged.
func (s *Set) PostMatch(in *Input, matched []*Rule) []*Rule {
	if s == nil || !s.stateful || len(matched) == 0 {
		return matched
	}
	// Stable insertion sort by rank: the list is short and sorted already
	// unless flowbits rules matched.
	for i := 1; i < len(matched); i++ {
		r := matched[i]
		j := i
		for j > 0 && matched[j-1].fbRank > r.fbRank {
			matched[j] = matched[j-1]
			j--
		}
		matched[j] = r
	}
	b := in.Flowbits
	if b != nil && s.gen != 0 {
		b.sync(s.gen)
	}
	out := matched[:0]
	for _, r := range matched {
		if len(r.fb) > 0 && !r.flowbitsHold(b) {
			continue
		}
		if r.df != nil && !in.Tracker.allow(r, r.df, in) {
			continue
		}
		if len(r.fb) > 0 {
			r.flowbitsApply(b, len(s.fbNames))
		}
		if r.noAlert && r.Action != Pass {
			continue
		}
		if r.thr != nil && !in.Tracker.allow(r, r.thr, in) {
			continue
		}
		out = append(out, r)
	}
	return out
}
