// Package lru is a bounded map with least-recently-used eviction whose
// entries live in one slab allocated up front, so lookups, touches,
// insertions and evictions are O(1) and do not allocate once the slab and the
// Go map have reached their size. An evicted entry's value is handed back to
// the next insertion as is, so callers can keep buffers inside values and
// reuse them (reset what must be reset).
//
// A Cache is not safe for concurrent use; the heuristics packages guard it
// with their own mutex.
package lru

// Cache maps K to V, holding at most Max entries.
type Cache[K comparable, V any] struct {
	m          map[K]int32
	ents       []entry[K, V]
	head, tail int32 // most and least recently used; -1 when empty
	free       int32 // head of the free list (linked by next); -1 when none
	max        int
	evicted    uint64
}

type entry[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
	used       bool
}

// New returns a cache holding at most max entries (at least 1). Slab memory
// grows as entries are added, never beyond max.
func New[K comparable, V any](max int) *Cache[K, V] {
	if max < 1 {
		max = 1
	}
	return &Cache[K, V]{m: make(map[K]int32), head: -1, tail: -1, free: -1, max: max}
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.m) }

// Max is the bound given to New.
func (c *Cache[K, V]) Max() int { return c.max }

// Evicted counts entries pushed out to make room since New.
func (c *Cache[K, V]) Evicted() uint64 { return c.evicted }

// Get returns the value for k and marks it most recently used, or nil.
// The pointer stays valid until the entry is removed or evicted.
func (c *Cache[K, V]) Get(k K) *V {
	i, ok := c.m[k]
	if !ok {
		return nil
	}
	c.moveFront(i)
	return &c.ents[i].val
}

// Put returns the value slot for k, inserting k when absent (evicting the
// least recently used entry when the cache is full). fresh reports an
// insertion: the slot then holds whatever an earlier, removed or evicted
// entry left there (or the zero value) and the caller must reset it.
func (c *Cache[K, V]) Put(k K) (v *V, fresh bool) {
	if i, ok := c.m[k]; ok {
		c.moveFront(i)
		return &c.ents[i].val, false
	}
	var i int32
	switch {
	case c.free >= 0:
		i = c.free
		c.free = c.ents[i].next
	case len(c.ents) < c.max:
		var zero entry[K, V]
		c.ents = append(c.ents, zero)
		i = int32(len(c.ents) - 1)
	default:
		i = c.tail
		c.unlink(i)
		delete(c.m, c.ents[i].key)
		c.evicted++
	}
	e := &c.ents[i]
	e.key, e.used = k, true
	c.m[k] = i
	c.pushFront(i)
	return &e.val, true
}

// Remove deletes k if present; its slot is reused by a later Put.
func (c *Cache[K, V]) Remove(k K) {
	i, ok := c.m[k]
	if !ok {
		return
	}
	c.unlink(i)
	delete(c.m, k)
	var zero K
	c.ents[i].key, c.ents[i].used = zero, false
	c.ents[i].next = c.free
	c.free = i
}

// Oldest returns the least recently used key and value, or ok false when empty.
func (c *Cache[K, V]) Oldest() (k K, v *V, ok bool) {
	if c.tail < 0 {
		return k, nil, false
	}
	e := &c.ents[c.tail]
	return e.key, &e.val, true
}

func (c *Cache[K, V]) unlink(i int32) {
	e := &c.ents[i]
	if e.prev >= 0 {
		c.ents[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.ents[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (c *Cache[K, V]) pushFront(i int32) {
	e := &c.ents[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.ents[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

func (c *Cache[K, V]) moveFront(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.pushFront(i)
}
