package rules

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"slices"
)

// anchored holds the fast patterns of a bucket that can sit at one offset
// only: every rule that has the pattern puts it at offset N with a depth
// of its length (startswith, a magic number, a field of a protocol
// header; a fifth of ET's payload patterns). They stay out of the
// Hyperscan database: there a short literal such as "|00 01|" is looked
// for, and found, all over the data, and its hits are confirmed and
// verified for nothing. Here each is one comparison at its offset, found
// through a hash table per offset keyed by the first four bytes (ASCII
// case folded). In ET Open 2019 a tenth to a fifth of a payload bucket's
// patterns are such, most at offset 0 (within the first 16 bytes alone:
// 161 of the 865 in HTTP requests, 215 of the 1,039 in TLS to the server).
// BenchmarkEngineMixPaired, all rules over one: 2.21-2.29x with them in
// the databases, 2.14-2.15x here (same runs).
type anchored struct {
	pats []acPattern
	offs []anchorAt // ascending offsets
}

// anchorAt holds the patterns at one offset. A scan reads the folded byte
// at the offset and, when some pattern starts with it (first), looks the
// folded four bytes from there up in an open-addressing table: one probe
// where a list of the patterns sharing a first byte (in URIs, nearly all
// start with "/") took a walk of hundreds. Patterns of one to three bytes
// are few and sit in a list of their own.
type anchorAt struct {
	off   int
	first [4]uint64    // folded first bytes of the patterns here
	short []anchorEnt  // patterns of one to three bytes
	slots []anchorSlot // by the folded first four bytes of the longer patterns; a power of two long
	shift uint8        // 32 - log2(len(slots))
	ents  []anchorEnt  // the longer patterns, by key: a slot's are ents[lo:hi]
}

// anchorSlot is a key of the table and its patterns; hi == 0: empty.
type anchorSlot struct {
	key    uint32
	lo, hi int32
}

type anchorEnt struct {
	b0  byte  // folded first byte (short patterns)
	pat int32 // index in anchored.pats
	id  int32 // the pattern's id in the bucket
}

// anchoredPat is a pattern of the bucket (id) that sits at offset off.
type anchoredPat struct {
	pat acPattern
	id  int32
	off int
}

// anchorKey returns the four bytes at p folded, as the table's key.
func anchorKey(p []byte) uint32 {
	return uint32(foldWord(uint64(binary.LittleEndian.Uint32(p))))
}

// slot returns where key's probe starts.
func (at *anchorAt) slot(key uint32) uint32 { return (key * 0x9e3779b1) >> at.shift }

// buildAnchored indexes ps; nil when there are none.
func buildAnchored(ps []anchoredPat) *anchored {
	if len(ps) == 0 {
		return nil
	}
	a := &anchored{}
	byOff := map[int][]anchorEnt{}
	for _, p := range ps {
		byOff[p.off] = append(byOff[p.off], anchorEnt{b0: fold(p.pat.pat[0]), pat: int32(len(a.pats)), id: p.id})
		a.pats = append(a.pats, p.pat)
	}
	for off, ents := range byOff {
		at := anchorAt{off: off}
		for _, e := range ents {
			at.first[e.b0>>6] |= 1 << (e.b0 & 63)
			if len(a.pats[e.pat].pat) < 4 {
				at.short = append(at.short, e)
			} else {
				at.ents = append(at.ents, e)
			}
		}
		if len(at.ents) > 0 {
			keyOf := func(e anchorEnt) uint32 { return anchorKey(a.pats[e.pat].pat) }
			slices.SortStableFunc(at.ents, func(x, y anchorEnt) int { return cmp.Compare(keyOf(x), keyOf(y)) })
			keys := 0
			for i, e := range at.ents {
				if i == 0 || keyOf(e) != keyOf(at.ents[i-1]) {
					keys++
				}
			}
			bitsN := max(1, bits.Len(uint(2*keys-1)))
			at.slots, at.shift = make([]anchorSlot, 1<<bitsN), uint8(32-bitsN)
			mask := uint32(len(at.slots) - 1)
			for lo := 0; lo < len(at.ents); {
				key, hi := keyOf(at.ents[lo]), lo+1
				for hi < len(at.ents) && keyOf(at.ents[hi]) == key {
					hi++
				}
				h := at.slot(key)
				for at.slots[h].hi != 0 {
					h = (h + 1) & mask
				}
				at.slots[h] = anchorSlot{key: key, lo: int32(lo), hi: int32(hi)}
				lo = hi
			}
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
		if at.first[c>>6]&(1<<(c&63)) == 0 {
			continue
		}
		for _, e := range at.short {
			if e.b0 == c && a.pats[e.pat].confirm(data, at.off) {
				b.mark(e.id, sc)
				any = true
			}
		}
		if len(at.slots) == 0 || at.off+4 > len(data) {
			continue
		}
		key, mask := anchorKey(data[at.off:]), uint32(len(at.slots)-1)
		for h := at.slot(key); at.slots[h].hi != 0; h = (h + 1) & mask {
			if s := &at.slots[h]; s.key == key {
				for _, e := range at.ents[s.lo:s.hi] {
					if a.pats[e.pat].confirm(data, at.off) {
						b.mark(e.id, sc)
						any = true
					}
				}
				break
			}
		}
	}
	return any
}
