package intel

import (
	"bytes"
	"hash/maphash"
)

// seed keys every table's hash; one per process, so tables can be merged
// by copying their slots.
var seed = maphash.MakeSeed()

// entry is one indicator in a table: its key in the arena, flags and the
// index of its shared metadata (source, family, confidence, expiry).
type entry struct {
	off   uint32 // key offset in the arena
	n     uint16 // key length
	flags uint16
	meta  uint32
}

const (
	flagSubsOnly  = 1 << iota // domain given as *.x: x itself is not listed
	flagPortsOnly             // address key present only because address:port keys are listed
)

// maxKey is the longest key a table stores (a URL longer than this is a bad line).
const maxKey = 4096

// table is an open-addressing hash set of byte-string keys kept in one
// arena. A slot holds the key's hash tag (high 32 bits) and its entry
// index + 1; a probe compares tags first and the arena bytes on a tag
// match, so a hash collision never produces a false hit. Memory per key:
// the key bytes, a 12-byte entry and 8-16 bytes of slots (load 3/8..3/4).
type table struct {
	arena []byte
	ents  []entry
	slots []uint64
}

func (t *table) len() int { return len(t.ents) }

func (t *table) key(i int) []byte {
	e := &t.ents[i]
	return t.arena[e.off : e.off+uint32(e.n)]
}

// find returns the entry index of key, or -1.
func (t *table) find(key []byte) int {
	if len(t.slots) == 0 {
		return -1
	}
	h := maphash.Bytes(seed, key)
	return t.findHash(key, h)
}

func (t *table) findHash(key []byte, h uint64) int {
	mask := uint64(len(t.slots) - 1)
	tag := h >> 32
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if s>>32 == tag {
			idx := int(uint32(s)) - 1
			e := &t.ents[idx]
			if int(e.n) == len(key) && bytes.Equal(t.arena[e.off:e.off+uint32(e.n)], key) {
				return idx
			}
		}
	}
}

// insert adds key unless present; it returns the entry index and whether
// the key is new. extra bytes are stored after the key in the arena (see
// flagPortsOnly) and are not part of it.
func (t *table) insert(key []byte, meta uint32, flags uint16, extra ...byte) (int, bool) {
	h := maphash.Bytes(seed, key)
	if len(t.slots) > 0 {
		if i := t.findHash(key, h); i >= 0 {
			return i, false
		}
	}
	if (len(t.ents)+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	idx := len(t.ents)
	t.ents = append(t.ents, entry{off: uint32(len(t.arena)), n: uint16(len(key)), flags: flags, meta: meta})
	t.arena = append(t.arena, key...)
	t.arena = append(t.arena, extra...)
	t.place(h, idx)
	return idx, true
}

func (t *table) place(h uint64, idx int) {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if t.slots[i] == 0 {
			t.slots[i] = h>>32<<32 | uint64(idx+1)
			return
		}
	}
}

func (t *table) grow() {
	n := 2 * len(t.slots)
	if n < 16 {
		n = 16
	}
	old := t.slots
	t.slots = make([]uint64, n)
	for _, s := range old {
		if s == 0 {
			continue
		}
		idx := int(uint32(s)) - 1
		t.place(maphash.Bytes(seed, t.key(idx)), idx)
	}
}

// trim drops the spare capacity append left behind (up to half of a big
// table's arena and entries).
func (t *table) trim() {
	if cap(t.arena) > len(t.arena)+len(t.arena)/16 {
		t.arena = append([]byte(nil), t.arena...)
	}
	if cap(t.ents) > len(t.ents)+len(t.ents)/16 {
		t.ents = append([]entry(nil), t.ents...)
	}
}

// clone returns a deep copy.
func (t *table) clone() table {
	return table{
		arena: append([]byte(nil), t.arena...),
		ents:  append([]entry(nil), t.ents...),
		slots: append([]uint64(nil), t.slots...),
	}
}

func (t *table) bytes() int { return cap(t.arena) + 12*cap(t.ents) + 8*cap(t.slots) }
