// Package defrag reassembles IPv4 and IPv6 fragments for inline
// inspection.
//
// Contract: Add takes one IP packet that is a fragment (IPv4 MF or offset;
// IPv6 fragment header other than an atomic one) and says what became of
// it: Held (stored, the datagram needs more), Complete (this fragment
// completed the datagram, returned as the bytes of a whole unfragmented IP
// packet that packet.Decode reads), or a reason to drop the fragment (Bad,
// Conflict, OverCap, Discarded). A packet that is not a fragment comes back
// as NotFragment, untouched and uncounted. Fragments are keyed by (src,
// dst, protocol, id) for IPv4 and (src, dst, id) for IPv6.
//
// The rebuilt datagram carries the header of the fragment at offset 0:
// for IPv4 its header with options, total length set, MF and offset
// cleared (DF kept) and the checksum recomputed; for IPv6 the
// unfragmentable part (header and extension headers before the fragment
// header) with the fragment header removed, the next-header field that
// pointed at it set to the first fragment's next header, and the payload
// length set. The datagram is valid until the next call of Add or Expire.
//
// Policy, one for the whole engine (the same as dataplane/stream): first
// data wins. The bytes stored first for an offset are the ones
// reassembled; an overlap that repeats them is counted (Overlaps) and
// harmless. An overlap that brings different bytes is an evasion attempt
// (receivers resolve overlaps differently: Linux and RFC 5722 discard the
// datagram, older stacks keep the first or the last copy) and is counted
// (Conflicts): the fragment is dropped and the whole datagram discarded,
// its later fragments dropped until its timeout. An inline engine can
// afford that, and it is what keeps the invariant below.
//
// Invariant for inline use: every fragment the caller lets through is
// stored here, and every fragment dropped here never reaches the receiver,
// so the fragments a receiver holds are a subset of the ones stored, with
// identical bytes wherever they overlap. The receiver can complete a
// datagram only with the fragment that completes it here, and the caller
// holds that one until the datagram is inspected. When the verdict is to
// drop, the caller calls Poison so that a resent copy of the completing
// fragment is dropped too (the receiver still holds the others). What can
// break the invariant is a receiver that keeps fragments longer than the
// timeout here: the defaults are Linux's (30 s IPv4, 60 s IPv6); keep them
// at least as long as the protected hosts'.
//
// Dropped as bogus (Bad, counted DroppedBad): an empty fragment, a
// non-last fragment whose length is not a multiple of 8, a datagram that
// would exceed 65535 bytes, a first fragment that does not hold the whole
// transport header (RFC 7112; for TCP also RFC 3128's offset of 8 bytes),
// a nested fragment header, an unfragmentable part over 1 KiB, and a
// fragment that disagrees with its datagram's length (a second, different
// last fragment or data past the end), which also discards the datagram.
//
// Caps: Config.MaxBytes of buffers held by all datagrams in progress,
// Config.MaxDatagrams in progress (discarded ones remembered until their
// timeout count too) and Config.MaxFragments per datagram. A fragment that
// would pass a cap is dropped (OverCap, counted DroppedCap); one over the
// per-datagram cap discards its datagram, which could never complete. No
// datagram is evicted to make room: forgetting stored fragments the
// receiver holds would break the invariant.
//
// Timeouts run from a datagram's first fragment (Config.TimeoutV4, V6).
// Add expires what is due before it stores (O(1) when nothing is), and
// Expire does it on demand.
//
// Cost: data is copied once into a buffer sized by powers of two from
// 2 KiB (to 65 KiB), moved to the next size as a datagram grows (at most
// one extra copy of the bytes so far), and the header is put in front on
// completion (one move). Buffers are pooled by size in the Reassembler's
// own free lists, and datagram records are allocated up to MaxDatagrams
// and reused: once warm, steady-state reassembly does not allocate
// (AllocsPerRun in the tests; about 270 ns for a 4 KB datagram in three
// fragments). Memory held is at most MaxBytes of buffers in use, MaxBytes
// of spare buffers, and about MaxFragments*16 + 250 bytes per record.
//
// In the box the Linux kernel with conntrack reassembles fragments before
// the FORWARD hook, so NFQUEUE sees whole datagrams; this package matters
// for replayed captures and conntrack-less setups.
//
// A Reassembler is not safe for concurrent use.
package defrag
