// Package stream reassembles one direction of a TCP connection for inline
// inspection, and normalises it: every byte the receiver can get is a byte
// the engine inspected, or one the receiver acknowledged without the engine
// seeing it (a declared gap).
//
// # Inline design
//
// Push takes each segment while the engine holds its packet and delivers,
// in order and exactly once, every byte that became contiguous: the
// segment's new bytes, then any buffered out-of-order bytes they connect
// to. Push's Result tells the engine what to do with the packet:
//
//   - InOrder, OutOfOrder, Retransmit: release it. Out-of-order bytes are
//     released before they are inspected, but the receiver cannot hand
//     them to its application until the hole before them is filled, and
//     the packet that fills the hole is held until everything it makes
//     contiguous (its own bytes and the buffered ones) has been inspected.
//   - Conflict, Overflow: drop it. The stream took nothing from it, so the
//     engine and the receiver stay in step; the sender retransmits.
//
// # Overlap policy: first data wins, everywhere
//
// For every sequence number the bytes that passed first are the ones
// delivered, whether the later copy overlaps bytes already delivered,
// bytes buffered out of order, or arrives as a whole retransmission. A
// later copy that carries the same bytes is a Retransmit (its new bytes, if
// any, are taken). A later copy that differs from bytes the stream still
// holds is a Conflict: nothing of the segment is taken and the engine drops
// the packet, so the receiver, which already got the first copy, never sees
// another version of those bytes (this also defeats insertion tricks in
// which the first copy never reaches the receiver: the "real" copy is
// dropped, not let through uninspected). The stream holds:
//   - buffered out-of-order bytes (up to the cap), and
//   - the last History bytes delivered (4 KiB), in a pooled ring, so a
//     retransmission of recent bytes with other content is caught.
//
// Bytes delivered longer ago than the history cannot be compared: a
// retransmission of them is a Retransmit (the receiver already has them and
// discards the copy; the engine's packet rules still see its payload).
//
// # Gaps
//
// A hole is never waited for forever, and bytes after it are never let
// through uninspected:
//   - Buffer full: an out-of-order segment whose new bytes would pass the
//     cap is not taken (Overflow) and its packet is dropped; the sender
//     sends it again after the hole is filled.
//   - Hole acknowledged: when the receiver acknowledges bytes the stream
//     never saw (the engine failed open, or capture lost them), they will
//     never come: Acked declares a gap up to the acknowledgement (never
//     past the highest byte seen) and delivers the buffered bytes after it.
//   - Flow ends with a hole: Flush declares the gaps and delivers
//     everything buffered.
//
// A gap is reported to the Receiver (Gap) before the bytes after it, so an
// application parser knows it lost sync. Sequence numbers use serial-number
// arithmetic (RFC 1982), so wraparound is handled; a segment more than
// 2 GiB ahead is "behind".
//
// # Cost
//
// In-order data is delivered as a sub-slice of the input, copied once into
// the history ring; out-of-order data is copied once into 2 KiB pages. Pages
// and rings come from shared pools and return on Reset. A Budget caps the
// pooled memory of all the streams that share it. Push does not allocate
// once the pools are warm.
//
// A Stream is not safe for concurrent use.
package stream

import (
	"bytes"
	"sync"
)

// Result says what Push did with a segment, and so what to do with its
// packet.
type Result uint8

// Results.
const (
	InOrder    Result = iota // new bytes delivered: release
	OutOfOrder               // ahead of the next expected byte, new bytes buffered: release
	Retransmit               // nothing new (empty, already delivered or buffered, same bytes where known): release
	Overflow                 // out of order, over the cap: nothing taken, drop
	Conflict                 // differs from bytes that came first: nothing taken, drop
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
	case Conflict:
		return "conflict"
	}
	return "unknown"
}

// Receiver takes what a stream delivers.
type Receiver interface {
	// Data receives the next in-order bytes. The slice is valid only during
	// the call.
	Data(chunk []byte)
	// Gap says the next n bytes will never be delivered: the bytes after
	// them follow.
	Gap(n int)
}

// Stats counts segments by Result, and the gaps declared.
type Stats struct {
	InOrder, OutOfOrder, Retransmit, Overflow, Conflicts uint64
	Gaps, GapBytes                                       uint64
	NoHistory                                            uint64 // history ring refused by the Budget
}

// History is how many of the last delivered bytes a stream keeps to check
// retransmissions against.
const History = 4096

const pageSize = 2048

type page [pageSize]byte

type ring [History]byte

var (
	pages = sync.Pool{New: func() any { return new(page) }}
	rings = sync.Pool{New: func() any { return new(ring) }}
)

// Budget caps the pooled memory (out-of-order pages and history rings) of
// the streams sharing it. The zero value, or a nil *Budget, is unlimited.
// Not safe for concurrent use: share one per engine.
type Budget struct {
	Max  int // bytes; 0 = unlimited
	used int
}

// Used returns the bytes held by the streams sharing b.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return b.used
}

func (b *Budget) take(n int) bool {
	if b == nil {
		return true
	}
	if b.Max > 0 && b.used+n > b.Max {
		return false
	}
	b.used += n
	return true
}

func (b *Budget) give(n int) {
	if b != nil {
		b.used -= n
	}
}

// seg is a run of buffered bytes, at most one page long. Buffered
// segments never overlap, are sorted by seq and all lie ahead of next.
type seg struct {
	seq uint32
	n   int
	p   *page
}

func (g *seg) bytes() []byte { return g.p[:g.n] }

// Config sets a stream's limits.
type Config struct {
	MaxBuffered int     // out-of-order bytes held; 0 holds none
	NoHistory   bool    // keep no delivered bytes (retransmissions are not compared)
	Budget      *Budget // shared memory cap; nil: none
}

// Stream is one direction of a TCP connection. The zero value is ready
// after Init.
type Stream struct {
	next     uint32
	high     uint32 // one past the highest byte seen
	cfg      Config
	buffered int
	ooo      []seg
	hist     *ring
	histN    int // valid bytes in hist: [next-histN, next)
	stats    Stats
}

// Init starts the stream at sequence number isn (the first data byte: the
// SYN's seq + 1). Anything held before is released.
func (s *Stream) Init(isn uint32, cfg Config) {
	s.Reset()
	s.next, s.high = isn, isn
	s.cfg = cfg
	s.stats = Stats{}
}

// Reset releases the buffered bytes and the history (call it when the flow
// ends or needs no more inspection, so memory goes back to the pool). The
// stream keeps its position and counters; later retransmissions are not
// compared.
func (s *Stream) Reset() {
	for i := range s.ooo {
		pages.Put(s.ooo[i].p)
		s.cfg.Budget.give(pageSize)
		s.ooo[i] = seg{}
	}
	s.ooo = s.ooo[:0]
	s.buffered = 0
	if s.hist != nil {
		rings.Put(s.hist)
		s.cfg.Budget.give(History)
		s.hist = nil
	}
	s.histN = 0
	s.cfg.NoHistory = true
}

// Next returns the sequence number of the next byte to deliver.
func (s *Stream) Next() uint32 { return s.next }

// Buffered returns how many out-of-order bytes are held.
func (s *Stream) Buffered() int { return s.buffered }

// Stats returns the stream's counters.
func (s *Stream) Stats() Stats { return s.stats }

// diff returns a-b as a signed serial-number distance.
func diff(a, b uint32) int { return int(int32(a - b)) }

// Push adds a segment starting at seq and delivers to r what became
// contiguous. See Result for what to do with the packet.
func (s *Stream) Push(seq uint32, data []byte, r Receiver) Result {
	res := s.push(seq, data, r)
	switch res {
	case InOrder:
		s.stats.InOrder++
	case OutOfOrder:
		s.stats.OutOfOrder++
	case Retransmit:
		s.stats.Retransmit++
	case Overflow:
		s.stats.Overflow++
	case Conflict:
		s.stats.Conflicts++
	}
	if res == InOrder || res == OutOfOrder {
		if end := seq + uint32(len(data)); diff(end, s.high) > 0 {
			s.high = end
		}
	}
	return res
}

func (s *Stream) push(seq uint32, data []byte, r Receiver) Result {
	if len(data) == 0 {
		return Retransmit
	}
	off := diff(seq, s.next)
	if off > 0 {
		return s.buffer(seq, data)
	}
	old := min(-off, len(data)) // bytes already delivered
	if s.conflictsHistory(seq, data[:old]) {
		return Conflict
	}
	if old == len(data) {
		return Retransmit
	}
	data = data[old:]
	conflict := false
	s.gaps(s.next, data, func(int, []byte) {}, func(at int, held []byte) {
		if !bytes.Equal(data[at:at+len(held)], held) {
			conflict = true
		}
	})
	if conflict {
		return Conflict
	}
	for len(data) > 0 {
		if len(s.ooo) == 0 || diff(s.ooo[0].seq, s.next) >= len(data) {
			s.out(data, r)
			break
		}
		// Deliver up to the first buffered run, then the run itself (the
		// same bytes, checked above).
		g := s.ooo[0]
		if gap := diff(g.seq, s.next); gap > 0 {
			s.out(data[:gap], r)
			data = data[gap:]
		}
		data = data[min(g.n, len(data)):]
		s.pop(r)
	}
	s.drain(r)
	return InOrder
}

// conflictsHistory reports whether b, a copy of bytes from seq that were
// already delivered, differs from what the history still holds of them.
func (s *Stream) conflictsHistory(seq uint32, b []byte) bool {
	if s.histN == 0 || len(b) == 0 {
		return false
	}
	// Keep the part within [next-histN, next).
	if skip := diff(s.next-uint32(s.histN), seq); skip > 0 {
		if skip >= len(b) {
			return false
		}
		b, seq = b[skip:], seq+uint32(skip)
	}
	for len(b) > 0 {
		i := int(seq % History)
		n := min(len(b), History-i)
		if !bytes.Equal(b[:n], s.hist[i:i+n]) {
			return true
		}
		b, seq = b[n:], seq+uint32(n)
	}
	return false
}

// out delivers b, which starts at next, and records it in the history.
func (s *Stream) out(b []byte, r Receiver) {
	if s.hist == nil && !s.cfg.NoHistory {
		if s.cfg.Budget.take(History) {
			s.hist = rings.Get().(*ring)
		} else {
			s.cfg.NoHistory = true
			s.stats.NoHistory++
		}
	}
	if s.hist != nil {
		h := b
		if len(h) > History {
			h = h[len(h)-History:]
		}
		seq := s.next + uint32(len(b)-len(h))
		for len(h) > 0 {
			i := int(seq % History)
			n := copy(s.hist[i:], h)
			h, seq = h[n:], seq+uint32(n)
		}
		s.histN = min(s.histN+len(b), History)
	}
	s.next += uint32(len(b))
	r.Data(b)
}

// pop delivers and releases the first buffered run, which starts at next.
func (s *Stream) pop(r Receiver) {
	g := s.ooo[0]
	s.buffered -= g.n
	s.out(g.bytes(), r)
	pages.Put(g.p)
	s.cfg.Budget.give(pageSize)
	copy(s.ooo, s.ooo[1:])
	s.ooo[len(s.ooo)-1] = seg{}
	s.ooo = s.ooo[:len(s.ooo)-1]
}

// drain delivers buffered runs that now start at next.
func (s *Stream) drain(r Receiver) {
	for len(s.ooo) > 0 && s.ooo[0].seq == s.next {
		s.pop(r)
	}
}

// buffer keeps the bytes of an out-of-order segment that no buffered run
// already holds; all of them or, on a conflict or over the cap, none.
func (s *Stream) buffer(seq uint32, data []byte) Result {
	// First pass: count the new bytes and look for conflicts.
	fresh, conflict := 0, false
	s.gaps(seq, data, func(at int, b []byte) { fresh += len(b) }, func(at int, old []byte) {
		if !bytes.Equal(data[at:at+len(old)], old) {
			conflict = true
		}
	})
	if conflict {
		return Conflict
	}
	if fresh == 0 {
		return Retransmit
	}
	pagesNeeded := 0
	s.gaps(seq, data, func(at int, b []byte) { pagesNeeded += (len(b) + pageSize - 1) / pageSize }, nil)
	if s.buffered+fresh > s.cfg.MaxBuffered || !s.cfg.Budget.take(pagesNeeded*pageSize) {
		return Overflow
	}
	// Second pass: copy the gaps into pages. Inserting moves the runs, so
	// collect positions from a fresh walk each time.
	for at := 0; at < len(data); {
		end := len(data)
		first := -1
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
// seq, keeping the runs sorted. The budget was taken by the caller.
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

// Acked tells the stream that the receiver acknowledged every byte before
// ack. If that passes bytes the stream never saw, they will not come again:
// Acked declares the gap (up to ack, but never past the highest byte seen,
// so a forged acknowledgement cannot skip data not yet sent) and delivers
// the buffered bytes up to there. It returns the bytes skipped.
func (s *Stream) Acked(ack uint32, r Receiver) int {
	if diff(ack, s.high) > 0 {
		ack = s.high
	}
	if diff(ack, s.next) <= 0 {
		return 0
	}
	return s.skipTo(ack, r)
}

// Flush declares the holes before the buffered bytes and delivers them all:
// call it when the flow ends. It returns the bytes skipped.
func (s *Stream) Flush(r Receiver) int {
	if len(s.ooo) == 0 {
		return 0
	}
	last := s.ooo[len(s.ooo)-1]
	return s.skipTo(last.seq+uint32(last.n), r)
}

// skipTo moves next to at least to: buffered runs are delivered, holes are
// reported as gaps.
func (s *Stream) skipTo(to uint32, r Receiver) int {
	skipped := 0
	for diff(to, s.next) > 0 {
		if len(s.ooo) > 0 && s.ooo[0].seq == s.next {
			s.pop(r)
			continue
		}
		end := to
		if len(s.ooo) > 0 && diff(s.ooo[0].seq, to) < 0 {
			end = s.ooo[0].seq
		}
		n := diff(end, s.next)
		s.next = end
		s.histN = 0 // the history must end at next
		s.stats.Gaps++
		s.stats.GapBytes += uint64(n)
		skipped += n
		r.Gap(n)
	}
	s.drain(r)
	return skipped
}
