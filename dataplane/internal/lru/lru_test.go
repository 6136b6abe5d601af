package lru

import "testing"

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := New[int, int](3)
	for k := 1; k <= 3; k++ {
		v, fresh := c.Put(k)
		if !fresh {
			t.Fatalf("Put(%d) on an empty slot: fresh = false", k)
		}
		*v = k * 10
	}
	if v := c.Get(1); v == nil || *v != 10 { // 1 becomes most recent; 2 is now the oldest
		t.Fatalf("Get(1) = %v, want 10", v)
	}
	if _, fresh := c.Put(4); !fresh {
		t.Fatal("Put(4) not fresh")
	}
	if c.Get(2) != nil {
		t.Fatal("2 should have been evicted (least recently used)")
	}
	for _, k := range []int{1, 3, 4} {
		if c.Get(k) == nil {
			t.Fatalf("%d missing", k)
		}
	}
	if c.Len() != 3 || c.Evicted() != 1 {
		t.Fatalf("Len %d Evicted %d, want 3 and 1", c.Len(), c.Evicted())
	}
	k, _, ok := c.Oldest()
	if !ok || k != 1 {
		t.Fatalf("Oldest = %d %v, want 1", k, ok)
	}
	c.Remove(1)
	if c.Get(1) != nil || c.Len() != 2 {
		t.Fatal("Remove(1) left it in")
	}
	v, fresh := c.Put(5) // reuses the removed slot, no eviction
	if !fresh || c.Evicted() != 1 || *v != 10 {
		t.Fatalf("Put(5) after Remove: fresh %v evicted %d old value %d (want the removed slot's 10 handed back)", fresh, c.Evicted(), *v)
	}
}

func TestNoAllocSteadyState(t *testing.T) {
	c := New[int, [4]int](64)
	for k := 0; k < 256; k++ {
		c.Put(k)
	}
	k := 0
	if n := testing.AllocsPerRun(1000, func() { c.Put(k); c.Get(k - 1); k++ }); n != 0 {
		t.Fatalf("Put/Get with eviction: %v allocs, want 0", n)
	}
}
