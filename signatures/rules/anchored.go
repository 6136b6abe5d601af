package rules

import "slices"

// anchored holds the fast patterns of a bucket that can sit at one offset
// only: every rule that has the pattern puts it at offset N with a depth
// of its length (startswith, a magic number, a field of a protocol
// header; a fifth of ET's payload patterns). They stay out of the
// Hyperscan database: there a short literal such as "|00 01|" is looked
// for, and found, all over the data, and its hits are confirmed and
// verified for nothing. Here each is one comparison at its offset, found
// through a table of the first two bytes (ASCII case folded) per offset.
// In ET Open 2019 a tenth to a fifth of a payload bucket's patterns are
// such, most at offset 0 (within the first 16 bytes alone: 161 of the 865
// in HTTP requests, 215 of the 1,039 in TLS to the server). BenchmarkEngineMixPaired, all rules over one: 2.21-2.29x with
// them in the databases, 2.14-2.15x here (same runs).
type anchored struct {
	pats []acPattern
	offs []anchorAt // ascending offsets
}

// anchorAt holds the patterns at one offset, sorted by their folded first
// byte, then second: those starting with byte c are ents[first[c]:first[c+1]].
type anchorAt struct {
	off   int
	first [257]uint16
	ents  []anchorEnt
}

type anchorEnt struct {
	second int16 // folded second byte; -1: a pattern of one byte
	pat    int32 // index in anchored.pats
	id     int32 // the pattern's id in the bucket
}

// anchoredPat is a pattern of the bucket (id) that sits at offset off.
type anchoredPat struct {
	pat acPattern
	id  int32
	off int
}

// buildAnchored indexes ps; nil when there are none.
func buildAnchored(ps []anchoredPat) *anchored {
	if len(ps) == 0 {
		return nil
	}
	a := &anchored{}
	byOff := map[int][]anchorEnt{}
	for _, p := range ps {
		second := int16(-1)
		if len(p.pat.pat) > 1 {
			second = int16(fold(p.pat.pat[1]))
		}
		byOff[p.off] = append(byOff[p.off], anchorEnt{second: second, pat: int32(len(a.pats)), id: p.id})
		a.pats = append(a.pats, p.pat)
	}
	for off, ents := range byOff {
		at := anchorAt{off: off, ents: ents}
		firstOf := func(e anchorEnt) byte { return fold(a.pats[e.pat].pat[0]) }
		slices.SortStableFunc(at.ents, func(x, y anchorEnt) int {
			if fx, fy := firstOf(x), firstOf(y); fx != fy {
				return int(fx) - int(fy)
			}
			return int(x.second) - int(y.second)
		})
		for _, e := range at.ents {
			at.first[int(firstOf(e))+1]++
		}
		for c := 1; c <= 256; c++ {
			at.first[c] += at.first[c-1]
		}
		a.offs = append(a.offs, at)
	}
	slices.SortFunc(a.offs, func(x, y anchorAt) int { return x.off - y.off })
	return a
}

// hits marks the rules of the patterns found at their offsets in data.
func (a *anchored) hits(b *bucket, data []byte, sc *scratch) bool {
	any := false
	for i := range a.offs {
		at := &a.offs[i]
		if at.off >= len(data) {
			break
		}
		c := fold(data[at.off])
		second := int16(-2) // no second byte: only one-byte patterns can be there
		if at.off+1 < len(data) {
			second = int16(fold(data[at.off+1]))
		}
		for _, e := range at.ents[at.first[c]:at.first[int(c)+1]] {
			if e.second >= 0 && e.second != second || !a.pats[e.pat].confirm(data, at.off) {
				continue
			}
			b.mark(e.id, sc)
			any = true
		}
	}
	return any
}
