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
	if len(r.pkt) > 0 && !r.packetOK(in) { // packet.go
		return false
	}
	// Each buffer's elements form one list (payload.go); every list must
	// match. byte_extract variables live in m, on the stack.
	m := inspector{noVars: r.nvars == 0}
	if r.hasPcre {
		m.rx = in.matcher()
	}
	for i := range r.lists {
		l := &r.lists[i]
		data := in.Buf[l.buf]
		if data == nil {
			return false
		}
		m.data, m.budget, m.failed, m.failedRel = data, backtrackBudget, false, false
		if !m.run(l.elems, 0) {
			return false
		}
	}
	return true
}

func (r *Rule) header(src netip.Addr, sp uint16, dst netip.Addr, dp uint16) bool {
	return r.src.match(src) && r.sp.match(sp) && r.dst.match(dst) && r.dp.match(dp)
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
