// Package stream reassembles one direction of a TCP connection for inline
// inspection.
//
// Push takes each segment as it arrives and delivers, in order and exactly
// once, every byte that has become contiguous: the segment's new bytes, then
// any buffered out-of-order bytes they connect to. Because the engine holds
// the packet while Push runs, bytes are inspected before the packet that
// makes them deliverable to the receiver is released.
//
// Policy (one, applied everywhere): a byte is delivered the first time it
// becomes in-order and never again; later copies of it (retransmissions,
// overlaps, conflicting data) are not delivered. Out-of-order bytes are
// copied and kept up to the cap given to Init; beyond it the segment is not
// buffered (Overflow) and the sender's retransmission fills the gap later.
// Sequence numbers use serial-number arithmetic, so wraparound is handled.
//
// Cost: in-order data is delivered as a sub-slice of the input without
// copying or allocating; out-of-order data is copied once.
package stream

// Result says what Push did with a segment.
type Result uint8

// Results.
const (
	InOrder    Result = iota // new bytes delivered
	OutOfOrder               // ahead of the next expected byte: buffered
	Retransmit               // nothing new
	Overflow                 // out of order, over the cap: not buffered
)

type seg struct {
	seq  uint32
	data []byte
}

// Stream is one direction of a TCP connection.
type Stream struct {
	next     uint32
	max      int
	buffered int
	ooo      []seg // sorted by seq
}

// Init starts the stream at sequence number isn (the first data byte) and
// caps buffered out-of-order bytes at maxBuffered.
func (s *Stream) Init(isn uint32, maxBuffered int) {
	s.next = isn
	s.max = maxBuffered
	s.buffered = 0
	s.ooo = s.ooo[:0]
}

// Next returns the sequence number of the next byte to deliver.
func (s *Stream) Next() uint32 { return s.next }

// Buffered returns how many out-of-order bytes are held.
func (s *Stream) Buffered() int { return s.buffered }

// diff returns a-b as a signed serial-number distance.
func diff(a, b uint32) int32 { return int32(a - b) }

// Push adds a segment and delivers what became contiguous.
func (s *Stream) Push(seq uint32, data []byte, deliver func([]byte)) Result {
	if len(data) == 0 {
		return Retransmit
	}
	off := diff(seq, s.next)
	if off > 0 {
		return s.buffer(seq, data)
	}
	skip := int(-off)
	if skip >= len(data) {
		return Retransmit
	}
	data = data[skip:]
	s.next += uint32(len(data))
	deliver(data)
	s.drain(deliver)
	return InOrder
}

func (s *Stream) buffer(seq uint32, data []byte) Result {
	if s.buffered+len(data) > s.max {
		return Overflow
	}
	i := 0
	for i < len(s.ooo) && diff(s.ooo[i].seq, seq) <= 0 {
		if s.ooo[i].seq == seq && len(s.ooo[i].data) >= len(data) {
			return Retransmit // the same bytes are already buffered: first wins
		}
		i++
	}
	cp := make([]byte, len(data))
	copy(cp, data)
	s.ooo = append(s.ooo, seg{})
	copy(s.ooo[i+1:], s.ooo[i:])
	s.ooo[i] = seg{seq: seq, data: cp}
	s.buffered += len(cp)
	return OutOfOrder
}

// drain delivers buffered segments that now connect to next.
func (s *Stream) drain(deliver func([]byte)) {
	n := 0
	for _, sg := range s.ooo {
		off := diff(sg.seq, s.next)
		if off > 0 {
			break
		}
		n++
		s.buffered -= len(sg.data)
		if skip := int(-off); skip < len(sg.data) {
			rest := sg.data[skip:]
			s.next += uint32(len(rest))
			deliver(rest)
		}
	}
	if n > 0 {
		copy(s.ooo, s.ooo[n:])
		for i := len(s.ooo) - n; i < len(s.ooo); i++ {
			s.ooo[i] = seg{}
		}
		s.ooo = s.ooo[:len(s.ooo)-n]
	}
}
