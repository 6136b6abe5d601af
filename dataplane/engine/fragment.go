package engine

import (
	"sync/atomic"
	"time"

	"github.com/openutm/utm/dataplane/defrag"
)

// FragStats counts fragment reassembly (dataplane/defrag); Stats.Fragments
// counts the fragments themselves.
type FragStats struct {
	Reassembled atomic.Uint64 // datagrams completed and inspected
	Timeouts    atomic.Uint64 // datagrams expired incomplete
	Overlaps    atomic.Uint64 // fragments overlapping stored bytes
	Conflicts   atomic.Uint64 // fragments overlapping with different bytes: datagram dropped
	DroppedCap  atomic.Uint64 // fragments dropped by a memory cap
	DroppedBad  atomic.Uint64 // fragments dropped as bogus or of a discarded datagram
}

// fragment handles an IP fragment, decoded in e.p without its transport
// header.
//
// Inline, a fragment cannot wait for its datagram: NFQUEUE wants one
// verdict per packet and Process is synchronous. So every fragment is
// accepted as it comes, stored by the reassembler, except the one that
// completes the datagram: that one is held while the whole datagram runs
// through Process, and gets its verdict. If the datagram is dropped, its
// completing fragment is dropped and the datagram poisoned (later copies
// of its fragments dropped too), so the receiver, which holds only
// fragments stored here, can never reassemble it. Conflicting overlaps,
// bogus fragments and fragments over the caps are dropped (see
// dataplane/defrag for the policy). With conntrack the kernel reassembles
// before the FORWARD hook, so on the box this path serves replay and
// conntrack-less setups.
//
// Counters count the fragment once: the reassembled datagram's own packet
// and byte counts are taken back, its verdict is the fragment's.
func (e *Engine) fragment(ts time.Time, pkt []byte) Verdict {
	e.stats.Fragments.Add(1)
	if e.inDatagram {
		// A reassembled datagram is never a fragment itself (defrag
		// refuses nested fragment headers), but the decoder reads the
		// inner header of IP-in-IP, which may be a fragment's: dropped,
		// as below.
		e.stats.Malformed.Add(1)
		return e.count(Drop)
	}
	if e.defrag == nil {
		e.defrag = defrag.New(e.cfg.Defrag)
	}
	res, dg := e.defrag.Add(ts, pkt)
	e.syncFragStats()
	switch res {
	case defrag.Held:
		return e.count(Accept)
	case defrag.Complete:
	case defrag.NotFragment:
		// The decoder saw a fragment the reassembler does not: the
		// inner IPv4 header of IP-in-IP (IPv4 or IPv6 next header 4) is
		// a fragment's. Its data cannot be inspected whole: fail closed.
		e.stats.Malformed.Add(1)
		return e.count(Drop)
	default:
		return e.count(Drop)
	}
	// The fragment is consumed: e.p may be reused for the datagram, which
	// stays valid until the next Add.
	e.inDatagram = true
	v := e.Process(ts, dg)
	e.inDatagram = false
	e.stats.Packets.Add(^uint64(0))
	e.stats.Bytes.Add(^uint64(len(dg) - 1))
	if v == Drop || v == Reject {
		e.defrag.Poison()
	}
	return v
}

func (e *Engine) syncFragStats() {
	s, f := e.defrag.Stats(), &e.stats.Frag
	f.Reassembled.Store(s.Reassembled)
	f.Timeouts.Store(s.Timeouts)
	f.Overlaps.Store(s.Overlaps)
	f.Conflicts.Store(s.Conflicts)
	f.DroppedCap.Store(s.DroppedCap)
	f.DroppedBad.Store(s.DroppedBad)
}
