package rules

import (
	"math"
	"net/netip"
	"slices"
)

// ipOnly indexes the rules without a fast pattern whose source or
// destination is a long IPv4-only list (addrindex.go): ET Open's
// reputation and C&C address rules, about 1,200 header-only rules that
// would otherwise each be checked on every Match (Suricata's "IP-only"
// engine plays this part). Each such rule is keyed by one side (the
// source when it is indexed, else the destination); the IPv4 ranges of all
// keyed rules are cut into elementary segments, each listing the rules that
// cover it. Match finds the packet's segment by binary search, per side,
// and verifies only those rules (header, flow, everything): the cost is two
// searches instead of one check per rule. A keyed rule whose list also has
// IPv6 entries is checked on every IPv6 packet (Tor lists mix both).
// Bidirectional rules stay in the linear groups.
type ipOnly struct {
	rules    []*Rule
	ids      []int32 // index in the Set, for profiling
	bySrc    []bool
	src, dst ipSegs
	v6       []int32 // keyed rules with IPv6 entries on their side
}

// ipSegs maps IPv4 segments to rules: segment i starts at start[i] and
// covers rules rule[at[i]:at[i+1]] (indexes into ipOnly.rules, ascending).
// blocks has a bit per /16 that some rule covers: most packets' addresses
// are in none (ET's lists hold 24,000 source segments, in a tenth of the
// /16s), and one load of that bitmap answers them where the binary search
// read a dozen lines of start.
type ipSegs struct {
	start  []uint32
	at     []int32
	rule   []int32
	blocks *[1024]uint64
}

// take keys r when it qualifies and reports whether it did.
func (x *ipOnly) take(id int32, r *Rule) bool {
	if r.pre != nil || r.bidir {
		return false
	}
	var src bool
	switch {
	case r.src.v4 != nil && r.dst.v4 != nil:
		// The narrower side: "$HOME_NET -> [C&C list]" is keyed by
		// the list, not by the office's whole range.
		src = r.src.span() <= r.dst.span()
	case r.src.v4 != nil:
		src = true
	case r.dst.v4 != nil:
	default:
		return false
	}
	if src && r.src.span() > ipOnlyWide || !src && r.dst.span() > ipOnlyWide {
		// A network-wide side ($HOME_NET, $EXTERNAL_NET) would put the
		// rule on most packets; its short port list (ET's "inbound to
		// port 1521" scans) keys it better in its group, and so does a
		// rare IP protocol (ET's 6in4 rule, ip_proto:41): its group is
		// skipped by every TCP and UDP packet.
		if fewPorts(&r.dp) != nil || fewPorts(&r.sp) != nil || r.ipProto != 0 && r.ipProto != 6 && r.ipProto != 17 {
			return false
		}
	}
	if src && len(r.src.pos6) > 0 || !src && len(r.dst.pos6) > 0 {
		x.v6 = append(x.v6, int32(len(x.rules)))
	}
	x.rules, x.ids, x.bySrc = append(x.rules, r), append(x.ids, id), append(x.bySrc, src)
	return true
}

// ipOnlyWide is the most addresses a keyed side may span when the rule
// also has a short port list: a reputation list spans hundreds, $HOME_NET
// (the private ranges) millions.
const ipOnlyWide = 1 << 16

// span is about how many addresses an indexed list covers (an IPv6
// prefix counts as 2^min(host bits, 48), so fc00::/7 outweighs any IPv4
// list and a /128 counts one).
func (a *addrSet) span() uint64 {
	var n uint64
	for _, rg := range a.v4 {
		n += uint64(rg.hi-rg.lo) + 1
	}
	for _, p := range a.pos6 {
		n += 1 << min(128-p.Bits(), 48)
	}
	return n
}

// compile builds the segment tables once every rule is taken.
func (x *ipOnly) compile() {
	x.src = x.build(true)
	x.dst = x.build(false)
}

func (x *ipOnly) build(src bool) ipSegs {
	type event struct {
		pos  uint64 // up to 1<<32
		rule int32
		add  bool
	}
	var ev []event
	for i, r := range x.rules {
		if x.bySrc[i] != src {
			continue
		}
		a := &r.dst
		if src {
			a = &r.src
		}
		for _, rg := range a.v4 {
			ev = append(ev, event{uint64(rg.lo), int32(i), true}, event{uint64(rg.hi) + 1, int32(i), false})
		}
	}
	var s ipSegs
	if len(ev) == 0 {
		return s
	}
	slices.SortFunc(ev, func(a, b event) int {
		switch {
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return 0
	})
	var active []int32
	for i := 0; i < len(ev); {
		pos := ev[i].pos
		for ; i < len(ev) && ev[i].pos == pos; i++ {
			if ev[i].add {
				active = append(active, ev[i].rule)
			} else if k := slices.Index(active, ev[i].rule); k >= 0 {
				active = slices.Delete(active, k, k+1)
			}
		}
		if pos > math.MaxUint32 {
			break
		}
		s.start = append(s.start, uint32(pos))
		s.at = append(s.at, int32(len(s.rule)))
		n := len(s.rule)
		s.rule = append(s.rule, active...)
		slices.Sort(s.rule[n:]) // load order
	}
	s.at = append(s.at, int32(len(s.rule)))
	s.blocks = new([1024]uint64)
	for i := range s.start {
		if s.at[i+1] == s.at[i] {
			continue
		}
		last := uint32(math.MaxUint32)
		if i+1 < len(s.start) {
			last = s.start[i+1] - 1
		}
		for b := s.start[i] >> 16; b <= last>>16; b++ {
			s.blocks[b>>6] |= 1 << (b & 63)
		}
	}
	return s
}

// lookup returns the rules of the segment holding ip.
func (s *ipSegs) lookup(ip netip.Addr) []int32 {
	if len(s.start) == 0 || !ip.Is4() {
		return nil
	}
	b := ip.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if k := v >> 16; s.blocks[k>>6]&(1<<(k&63)) == 0 {
		return nil
	}
	lo, hi := 0, len(s.start) // first segment starting after v
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.start[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil
	}
	return s.rule[s.at[lo-1]:s.at[lo]]
}

// match appends the keyed rules that match in.
func (x *ipOnly) match(in *Input, prof *profile, out []*Rule) []*Rule {
	if len(x.rules) == 0 {
		return out
	}
	for side := 0; side < 3; side++ {
		var cand []int32
		switch side {
		case 0:
			cand = x.src.lookup(in.Src)
		case 1:
			cand = x.dst.lookup(in.Dst)
		default:
			if in.Src.Is4() && in.Dst.Is4() {
				continue
			}
			cand = x.v6 // a rule keyed on one side whose other side is v6 never holds; full() decides
		}
		for _, i := range cand {
			r := x.rules[i]
			if prof != nil {
				if prof.verify(x.ids[i], r, in) {
					out = append(out, r)
				}
			} else if r.quick(in) && r.full(in) {
				out = append(out, r)
			}
		}
	}
	return out
}
