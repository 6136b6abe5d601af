package rules

import (
	"bytes"
	"net/netip"
)

// Match appends to out[:0] the rules that match in and returns it: first
// the rules without a positive content (grouped by protocol and
// application, load order within a group), then per present buffer (in
// Buffer order) the rules whose fast pattern inspects it, each in load
// order. A rule appears at most once. Match does not allocate when out has
// room, except on an Input's first Match (its scratch). Concurrent calls
// are safe with one Input per goroutine.
func (s *Set) Match(in *Input, out []*Rule) []*Rule {
	out = out[:0]
	if s == nil {
		return out
	}
	return s.prefilterMatch(in, out) // prefilter.go
}

// quick checks what costs a comparison or two: protocol, application and
// flow state. It runs before the prefilter search.
func (r *Rule) quick(in *Input) bool {
	if r.ipProto != 0 && r.ipProto != in.Proto && !(r.ipProto == 1 && in.Proto == 58) {
		return false
	}
	if r.app != "" && r.app != in.App {
		return false
	}
	if r.flowToServer && !in.ToServer || r.flowToClient && in.ToServer {
		return false
	}
	if r.flowEstablished && !in.Established {
		return false
	}
	return true
}

// full checks addresses, ports and every content chain.
func (r *Rule) full(in *Input) bool {
	if !r.header(in.Src, in.SrcPort, in.Dst, in.DstPort) &&
		!(r.bidir && r.header(in.Dst, in.DstPort, in.Src, in.SrcPort)) {
		return false
	}
	// The contents of one buffer form a chain (grouped at load); every
	// chain must match.
	for i := 0; i < len(r.contents); {
		j := i + 1
		for j < len(r.contents) && r.contents[j].buf == r.contents[i].buf {
			j++
		}
		data := in.Buf[r.contents[i].buf]
		if data == nil || !chain(r.contents[i:j], data, 0) {
			return false
		}
		i = j
	}
	return true
}

func (r *Rule) header(src netip.Addr, sp uint16, dst netip.Addr, dp uint16) bool {
	return r.src.match(src) && r.sp.match(sp) && r.dst.match(dst) && r.dp.match(dp)
}

// chain matches cs in data, the first content's relative modifiers counting
// from prevEnd. It backtracks over later occurrences of a content when the
// rest of the chain fails after the first one, up to a fixed budget.
func chain(cs []content, data []byte, prevEnd int) bool {
	budget := 64
	return chainAt(cs, data, prevEnd, &budget)
}

func chainAt(cs []content, data []byte, prevEnd int, budget *int) bool {
	if len(cs) == 0 {
		return true
	}
	c := &cs[0]
	start, end := 0, len(data)
	if c.relative {
		start = prevEnd + c.distance
		if c.within > 0 {
			end = min(end, prevEnd+c.distance+c.within)
		}
	} else {
		start = c.offset
		if c.depth > 0 {
			end = min(end, c.offset+c.depth)
		}
	}
	if start < 0 {
		start = 0
	}
	if c.negate {
		if start <= end && find(data, c.pat, c.nocase, start, end) >= 0 {
			return false
		}
		return chainAt(cs[1:], data, prevEnd, budget)
	}
	for start+len(c.pat) <= end {
		i := find(data, c.pat, c.nocase, start, end)
		if i < 0 {
			return false
		}
		if chainAt(cs[1:], data, i+len(c.pat), budget) {
			return true
		}
		*budget--
		if *budget <= 0 || len(cs) == 1 {
			return false
		}
		start = i + 1
	}
	return false
}

// find returns the index of pat within data[start:end], or -1. With nocase,
// pat is lowercase and data is compared case-insensitively.
func find(data, pat []byte, nocase bool, start, end int) int {
	if start < 0 || end > len(data) || start >= end || len(pat) > end-start {
		return -1
	}
	win := data[start:end]
	var i int
	if nocase {
		i = indexFold(win, pat)
	} else {
		i = bytes.Index(win, pat)
	}
	if i < 0 {
		return -1
	}
	return start + i
}

// indexFold is bytes.Index for a lowercase pat, ignoring ASCII case in
// win. It jumps between candidate first bytes with bytes.IndexByte (both
// cases tracked separately), so it runs at memchr speed on text where the
// first byte is rare.
func indexFold(win, pat []byte) int {
	lo := pat[0]
	up := lo
	if 'a' <= lo && lo <= 'z' {
		up = lo - 'a' + 'A'
	}
	last := len(win) - len(pat) // last possible start
	nextLo, nextUp := -2, -2    // next occurrence at or after off; -1: none, -2: not searched
	if up == lo {
		nextUp = -1
	}
	for off := 0; off <= last; {
		if nextLo != -1 && nextLo < off {
			if i := bytes.IndexByte(win[off:last+1], lo); i >= 0 {
				nextLo = off + i
			} else {
				nextLo = -1
			}
		}
		if nextUp != -1 && nextUp < off {
			if i := bytes.IndexByte(win[off:last+1], up); i >= 0 {
				nextUp = off + i
			} else {
				nextUp = -1
			}
		}
		j := nextLo
		if j < 0 || nextUp >= 0 && nextUp < j {
			j = nextUp
		}
		if j < 0 {
			return -1
		}
		if equalFoldLower(win[j+1:j+len(pat)], pat[1:]) {
			return j
		}
		off = j + 1
	}
	return -1
}

func equalFoldLower(b, lower []byte) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
