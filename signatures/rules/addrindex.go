package rules

import (
	"net/netip"
	"slices"
)

// Long address lists (ET Open's reputation rules list hundreds of IPv4
// addresses in one header, and carry no content, so they are checked on
// every Match) are matched by binary search over sorted, merged IPv4
// ranges instead of one Prefix.Contains per entry: a few comparisons
// whatever the list's length. IPv6 entries of such a list stay linear.

// addrIndexMin is the shortest positive list that gets an index.
const addrIndexMin = 1

type v4Range struct{ lo, hi uint32 }

// index builds a.v4 and a.pos6 from a.pos when the list is long.
func (a *addrSet) index() {
	if len(a.pos) < addrIndexMin {
		return
	}
	var rs []v4Range
	var v6 []netip.Prefix
	for _, p := range a.pos {
		if !p.Addr().Is4() {
			v6 = append(v6, p)
			continue
		}
		p = p.Masked()
		b := p.Addr().As4()
		lo := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		hi := lo | uint32(uint64(1)<<(32-p.Bits())-1)
		rs = append(rs, v4Range{lo, hi})
	}
	slices.SortFunc(rs, func(x, y v4Range) int {
		switch {
		case x.lo < y.lo:
			return -1
		case x.lo > y.lo:
			return 1
		}
		return 0
	})
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && uint64(r.lo) <= uint64(merged[n-1].hi)+1 {
			merged[n-1].hi = max(merged[n-1].hi, r.hi)
			continue
		}
		merged = append(merged, r)
	}
	a.v4 = slices.Clip(merged)
	if a.v4 == nil {
		a.v4 = []v4Range{} // indexed, no IPv4 entry
	}
	a.pos6 = v6
}

// matchIndexed reports whether ip is in the indexed positive list.
func (a *addrSet) matchIndexed(ip netip.Addr) bool {
	if ip.Is4() {
		b := ip.As4()
		x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		lo, hi := 0, len(a.v4) // first range with lo > x
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if a.v4[m].lo <= x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo > 0 && x <= a.v4[lo-1].hi
	}
	for _, p := range a.pos6 {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
