// Package stream reassembles one direction of a TCP connection for inline
// inspection.
//
// Push takes each segment as it arrives and delivers, in order and exactly
// once, every byte that has become contiguous: the segment's new bytes, then
// any buffered out-of-order bytes they connect to. Because the engine holds
// the packet while Push runs, bytes are inspected before the packet that
// makes them deliverable to the receiver is released.
//
// Overlap policy, first data wins (one rule, applied everywhere): for every
// sequence number the bytes that arrived first are the ones delivered.
//   - Bytes already delivered are never delivered again; later copies
//     (retransmissions, overlapping segments) are ignored.
//   - Bytes already buffered out of order are kept; a later segment that
//     covers them, in order or not, contributes only the bytes around them.
//   - Where a later copy differs from the first, the conflict is counted
//     (Stats.Conflicts) for buffered bytes. Delivered bytes are not kept,
//     so changed retransmissions of them cannot be detected here. A
//     receiving host may resolve overlaps differently (Linux prefers a new
//     in-order segment over its own out-of-order queue); conflicts are the
//     evasion signal an inline engine can act on by dropping the packet.
//
// Out-of-order bytes are copied into pooled 2 KiB pages and held up to the
// cap given to Init. A segment whose new bytes would exceed the cap is not
// buffered at all (Overflow) and the sender's retransmission fills the gap
// later. Sequence numbers use serial-number arithmetic (RFC 1982), so
// wraparound is handled; a segment more than 2 GiB ahead is "behind".
//
// Cost: in-order data is delivered as a sub-slice of the input without
// copying or allocating; out-of-order data is copied once into pages that
// return to a shared pool when delivered or on Reset/Init.
//
// A Stream is not safe for concurrent use.
package stream

import (
	"bytes"
	"sync"
)

// Result says what Push did with a segment.
type Result uint8

// Results.
const (
	InOrder    Result = iota // new bytes delivered
	OutOfOrder               // ahead of the next expected byte: new bytes buffered
	Retransmit               // nothing new (empty, already delivered or already buffered)
	Overflow                 // out of order, over the cap: not buffered
)

func (r Result) String() string {
	switch r {
	case InOrder:
		return "in-order"
	case OutOfOrder:
		return "out-of-order"
	case Retransmit:
		return "retransmit"
	case Overflow:
		return "overflow"
	}
	return "unknown"
}

// Stats counts segments by Result, and segments that disagreed with bytes
// buffered before them.
type Stats struct {
	InOrder, OutOfOrder, Retransmit, Overflow, Conflicts uint64
}

const pageSize = 2048

type page [pageSize]byte

var pages = sync.Pool{New: func() any { return new(page) }}

// seg is a run of buffered bytes, at most one page long. Buffered
// segments never overlap, are sorted by seq and all lie ahead of next.
type seg struct {
	seq uint32
	n   int
	p   *page
}

func (g *seg) bytes() []byte { return g.p[:g.n] }

// Stream is one direction of a TCP connection. The zero value is ready
// after Init.
type Stream struct {
	next     uint32
	max      int
	buffered int
	ooo      []seg
	stats    Stats
}

// Init starts the stream at sequence number isn (the first data byte: the
// SYN's seq + 1) and caps buffered out-of-order bytes at maxBuffered.
// Anything buffered before is released.
func (s *Stream) Init(isn uint32, maxBuffered int) {
	s.Reset()
	s.next = isn
	s.max = maxBuffered
	s.stats = Stats{}
}

// Reset releases the buffered bytes (call it when the flow ends, so pages
// go back to the pool). The stream keeps its position and counters.
func (s *Stream) Reset() {
	for i := range s.ooo {
		pages.Put(s.ooo[i].p)
		s.ooo[i] = seg{}
	}
	s.ooo = s.ooo[:0]
	s.buffered = 0
}

// Next returns the sequence number of the next byte to deliver.
func (s *Stream) Next() uint32 { return s.next }

// Buffered returns how many out-of-order bytes are held.
func (s *Stream) Buffered() int { return s.buffered }

// Stats returns the stream's counters.
func (s *Stream) Stats() Stats { return s.stats }

// diff returns a-b as a signed serial-number distance.
func diff(a, b uint32) int { return int(int32(a - b)) }

// Push adds a segment starting at seq and delivers, through deliver, what
// became contiguous. deliver's slice is valid only during the call (it
// aliases data or a page about to be reused).
func (s *Stream) Push(seq uint32, data []byte, deliver func(chunk []byte)) Result {
	r := s.push(seq, data, deliver)
	switch r {
	case InOrder:
		s.stats.InOrder++
	case OutOfOrder:
		s.stats.OutOfOrder++
	case Retransmit:
		s.stats.Retransmit++
	case Overflow:
		s.stats.Overflow++
	}
	return r
}

func (s *Stream) push(seq uint32, data []byte, deliver func([]byte)) Result {
	if len(data) == 0 {
		return Retransmit
	}
	off := diff(seq, s.next)
	if off > 0 {
		return s.buffer(seq, data)
	}
	if -off >= len(data) {
		return Retransmit
	}
	data = data[-off:]
	conflict := false
	for len(data) > 0 {
		if len(s.ooo) == 0 || diff(s.ooo[0].seq, s.next) >= len(data) {
			s.next += uint32(len(data))
			deliver(data)
			break
		}
		// Deliver up to the first buffered run, then the run itself: it
		// arrived first.
		g := s.ooo[0]
		if gap := diff(g.seq, s.next); gap > 0 {
			s.next += uint32(gap)
			deliver(data[:gap])
			data = data[gap:]
		}
		n := min(g.n, len(data))
		if !bytes.Equal(data[:n], g.bytes()[:n]) {
			conflict = true
		}
		data = data[n:]
		s.pop(deliver)
	}
	s.drain(deliver)
	if conflict {
		s.stats.Conflicts++
	}
	return InOrder
}

// pop delivers and releases the first buffered run, which starts at next.
func (s *Stream) pop(deliver func([]byte)) {
	g := s.ooo[0]
	s.next += uint32(g.n)
	s.buffered -= g.n
	deliver(g.bytes())
	pages.Put(g.p)
	copy(s.ooo, s.ooo[1:])
	s.ooo[len(s.ooo)-1] = seg{}
	s.ooo = s.ooo[:len(s.ooo)-1]
}

// drain delivers buffered runs that now start at next.
func (s *Stream) drain(deliver func([]byte)) {
	for len(s.ooo) > 0 && s.ooo[0].seq == s.next {
		s.pop(deliver)
	}
}

// buffer keeps the bytes of an out-of-order segment that no buffered run
// already holds; all of them or, over the cap, none.
func (s *Stream) buffer(seq uint32, data []byte) Result {
	// First pass: count the new bytes and look for conflicts.
	fresh, conflict := 0, false
	s.gaps(seq, data, func(at int, b []byte) { fresh += len(b) }, func(at int, old []byte) {
		if !bytes.Equal(data[at:at+len(old)], old) {
			conflict = true
		}
	})
	if conflict {
		s.stats.Conflicts++
	}
	if fresh == 0 {
		return Retransmit
	}
	if s.buffered+fresh > s.max {
		return Overflow
	}
	// Second pass: copy the gaps into pages. Inserting moves the runs, so
	// collect positions from a fresh walk each time.
	for at := 0; at < len(data); {
		end := len(data)
		var first int = -1
		s.gaps(seq+uint32(at), data[at:], func(a int, b []byte) {
			if first < 0 {
				first, end = at+a, at+a+len(b)
			}
		}, nil)
		if first < 0 {
			break
		}
		for p := first; p < end; p += pageSize {
			s.insert(seq+uint32(p), data[p:min(end, p+pageSize)])
		}
		at = end
	}
	return OutOfOrder
}

// gaps walks [seq, seq+len(data)) against the buffered runs, calling
// gap(at, bytes) for each stretch no run holds and held(at, old) for each
// stretch a run holds (old = the run's bytes there); at is the offset in
// data.
func (s *Stream) gaps(seq uint32, data []byte, gap func(int, []byte), held func(int, []byte)) {
	cur := 0
	for i := range s.ooo {
		g := &s.ooo[i]
		start := diff(g.seq, seq) // run start, relative to data
		if start >= len(data) {
			break
		}
		end := start + g.n
		if end <= cur {
			continue
		}
		if start > cur {
			gap(cur, data[cur:start])
			cur = start
		}
		hi := min(end, len(data))
		if held != nil {
			held(cur, g.bytes()[cur-start:hi-start])
		}
		cur = hi
		if cur >= len(data) {
			return
		}
	}
	if cur < len(data) {
		gap(cur, data[cur:])
	}
}

// insert copies b (at most a page, overlapping no run) into a new run at
// seq, keeping the runs sorted.
func (s *Stream) insert(seq uint32, b []byte) {
	p := pages.Get().(*page)
	n := copy(p[:], b)
	i := len(s.ooo)
	for i > 0 && diff(s.ooo[i-1].seq, seq) > 0 {
		i--
	}
	s.ooo = append(s.ooo, seg{})
	copy(s.ooo[i+1:], s.ooo[i:])
	s.ooo[i] = seg{seq: seq, n: n, p: p}
	s.buffered += n
}
