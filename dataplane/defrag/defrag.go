package defrag

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Result says what Add did with a packet.
type Result uint8

// Results.
const (
	NotFragment Result = iota // not a fragment (or an atomic IPv6 one): handle it as a whole packet
	Held                      // stored; the datagram needs more fragments
	Complete                  // this fragment completed the datagram, returned with it
	Bad                       // malformed, bogus or inconsistent with its datagram: drop it
	Conflict                  // overlaps stored bytes with different ones: dropped, datagram discarded
	OverCap                   // a memory cap would be passed: drop it
	Discarded                 // belongs to a datagram already discarded: drop it
)

func (r Result) String() string {
	switch r {
	case NotFragment:
		return "not-fragment"
	case Held:
		return "held"
	case Complete:
		return "complete"
	case Bad:
		return "bad"
	case Conflict:
		return "conflict"
	case OverCap:
		return "over-cap"
	case Discarded:
		return "discarded"
	}
	return "unknown"
}

// Config configures a Reassembler. Zero values take the defaults noted.
type Config struct {
	TimeoutV4    time.Duration // from the first fragment; default 30 s (Linux ipfrag_time)
	TimeoutV6    time.Duration // default 60 s (Linux ip6frag_time)
	MaxBytes     int           // buffer bytes held by all datagrams in progress; default 4 MiB
	MaxDatagrams int           // datagrams in progress or remembered as discarded; default 1024
	MaxFragments int           // fragments stored per datagram; default 64
}

// Stats counts fragments. Every fragment is counted in Fragments and,
// unless Add returned Held for it, in exactly one of Reassembled (the
// completing one), Conflicts, DroppedCap or DroppedBad. Overlaps counts the
// fragments that overlapped stored bytes, conflicting or not.
type Stats struct {
	Fragments   uint64 // fragments given to Add
	Reassembled uint64 // datagrams completed
	Timeouts    uint64 // datagrams expired incomplete
	Overlaps    uint64 // fragments overlapping stored bytes
	Conflicts   uint64 // fragments whose overlapping bytes differed (datagram discarded)
	DroppedCap  uint64 // fragments dropped by a cap
	DroppedBad  uint64 // fragments dropped as bogus, inconsistent or of a discarded datagram
}

const (
	maxDatagram = 65535 + 40 // largest reassembled IPv6 packet
	maxUnfrag   = 1024       // largest IPv6 unfragmentable part kept
	minClass    = 2048
	numClasses  = 7 // 2, 4, 8, 16, 32, 64 KiB, then maxTop
	maxTop      = 66560
)

func classSize(c int) int {
	if c == numClasses-1 {
		return maxTop
	}
	return minClass << c
}

func classFor(n int) int {
	for c := 0; c < numClasses; c++ {
		if n <= classSize(c) {
			return c
		}
	}
	return -1
}

// getBuf returns a buffer of class c from the reassembler's free lists.
// They are its own, not a sync.Pool: deterministic (no allocation after
// warm-up, under the race detector too) and bounded by MaxBytes.
func (r *Reassembler) getBuf(c int) *[]byte {
	if n := len(r.spare[c]); n > 0 {
		b := r.spare[c][n-1]
		r.spare[c][n-1] = nil
		r.spare[c] = r.spare[c][:n-1]
		r.spareBytes -= len(*b)
		return b
	}
	b := make([]byte, classSize(c))
	return &b
}

// putBuf keeps b for reuse while the spare buffers stay within MaxBytes.
func (r *Reassembler) putBuf(c int, b *[]byte) {
	if r.spareBytes+len(*b) > r.cfg.MaxBytes {
		return
	}
	r.spare[c] = append(r.spare[c], b)
	r.spareBytes += len(*b)
}

type key struct {
	src, dst [16]byte
	id       uint32
	proto    uint8 // IPv4 protocol; 0 for IPv6
	v6       bool
}

type span struct{ lo, hi int }

type datagram struct {
	key        key
	deadline   time.Time
	prev, next *datagram
	list       *list

	buf     *[]byte // pooled, data at offset 0; nil when discarded
	class   int
	hdr     []byte // header of the offset-0 fragment (v6: unfragmentable part)
	hdrSet  bool
	nhOff   int   // v6: offset in hdr of the next-header byte that named the fragment header
	nextHdr uint8 // v6: the offset-0 fragment's next header
	spans   []span
	frags   int
	total   int // data bytes; -1 until the last fragment
	charged int

	discarded bool
	completed bool
}

// list is a FIFO of datagrams, oldest deadline first (one timeout each).
type list struct {
	head, tail *datagram
	timeout    time.Duration
}

func (l *list) push(d *datagram) {
	d.list, d.prev, d.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = d
	} else {
		l.head = d
	}
	l.tail = d
}

func (l *list) remove(d *datagram) {
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		l.head = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		l.tail = d.prev
	}
	d.prev, d.next, d.list = nil, nil, nil
}

// Reassembler reassembles fragments. See the package documentation.
type Reassembler struct {
	cfg    Config
	m      map[key]*datagram
	v4, v6 list
	free   []*datagram
	bytes  int
	stats  Stats

	spare      [numClasses][]*[]byte // free buffers by size class
	spareBytes int

	pending *datagram // completed by the last Add: its buffer is the returned datagram
}

// New returns a Reassembler with cfg.
func New(cfg Config) *Reassembler {
	if cfg.TimeoutV4 <= 0 {
		cfg.TimeoutV4 = 30 * time.Second
	}
	if cfg.TimeoutV6 <= 0 {
		cfg.TimeoutV6 = 60 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 4 << 20
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = 1024
	}
	if cfg.MaxFragments <= 0 {
		cfg.MaxFragments = 64
	}
	r := &Reassembler{cfg: cfg, m: make(map[key]*datagram, min(cfg.MaxDatagrams, 4096))}
	r.v4.timeout, r.v6.timeout = cfg.TimeoutV4, cfg.TimeoutV6
	return r
}

// Config returns the configuration in use, defaults filled in.
func (r *Reassembler) Config() Config { return r.cfg }

// Stats returns the counters.
func (r *Reassembler) Stats() Stats { return r.stats }

// Len returns how many datagrams are in progress or remembered as
// discarded.
func (r *Reassembler) Len() int {
	if r.pending != nil && !r.pending.discarded {
		return len(r.m) - 1
	}
	return len(r.m)
}

// Bytes returns the buffer bytes held by datagrams in progress and by the
// datagram the last Add returned.
func (r *Reassembler) Bytes() int { return r.bytes }

// Add stores the fragment pkt, seen at now, and returns what became of it;
// for Complete also the reassembled datagram, valid until the next call of
// Add or Expire. pkt is not retained.
func (r *Reassembler) Add(now time.Time, pkt []byte) (Result, []byte) {
	r.settle()
	r.expire(now)
	var fr frag // on the stack: pkt is not retained
	f := &fr
	res := parse(pkt, f)
	if res == NotFragment {
		return NotFragment, nil
	}
	r.stats.Fragments++
	if res == Bad {
		r.stats.DroppedBad++
		return Bad, nil
	}
	d := r.m[f.key]
	if d == nil {
		if len(r.m) >= r.cfg.MaxDatagrams {
			r.stats.DroppedCap++
			return OverCap, nil
		}
		d = r.newDatagram(f.key, now)
	} else if d.discarded {
		r.stats.DroppedBad++
		return Discarded, nil
	}
	res, out := r.insert(d, f)
	switch res {
	case Complete:
		r.stats.Reassembled++
	case Bad:
		r.stats.DroppedBad++
	case Conflict:
		r.stats.Conflicts++
	case OverCap:
		r.stats.DroppedCap++
	}
	if d.frags == 0 && !d.discarded {
		r.delete(d) // its first fragment was refused: remember nothing
	}
	return res, out
}

// Poison marks the datagram the last Add returned as Complete as
// discarded: its fragments are dropped (Discarded) until its timeout. Call
// it when the datagram's verdict is to drop, before the next Add; otherwise
// it does nothing.
func (r *Reassembler) Poison() {
	if r.pending != nil {
		r.pending.discarded = true
	}
}

// Expire ends the datagrams whose timeout has passed at now and returns
// how many were incomplete (counted in Timeouts). It invalidates the
// datagram the last Add returned.
func (r *Reassembler) Expire(now time.Time) int {
	r.settle()
	return r.expire(now)
}

// settle finishes the datagram completed by the last Add: forgotten, or
// kept as discarded if it was poisoned.
func (r *Reassembler) settle() {
	d := r.pending
	if d == nil {
		return
	}
	r.pending = nil
	if d.discarded {
		r.releaseBuf(d)
		return
	}
	r.delete(d)
}

func (r *Reassembler) expire(now time.Time) int {
	n := 0
	for _, l := range [2]*list{&r.v4, &r.v6} {
		for d := l.head; d != nil && !now.Before(d.deadline); d = l.head {
			if !d.discarded && !d.completed {
				n++
			}
			r.delete(d)
		}
	}
	r.stats.Timeouts += uint64(n)
	return n
}

func (r *Reassembler) newDatagram(k key, now time.Time) *datagram {
	var d *datagram
	if n := len(r.free); n > 0 {
		d = r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
	} else {
		d = &datagram{spans: make([]span, 0, r.cfg.MaxFragments), hdr: make([]byte, 0, 64)}
	}
	d.key, d.total = k, -1
	l := &r.v4
	if k.v6 {
		l = &r.v6
	}
	d.deadline = now.Add(l.timeout)
	l.push(d)
	r.m[k] = d
	return d
}

func (r *Reassembler) releaseBuf(d *datagram) {
	if d.buf != nil {
		r.putBuf(d.class, d.buf)
		d.buf = nil
	}
	r.bytes -= d.charged
	d.charged = 0
}

// delete forgets d and keeps its record for reuse.
func (r *Reassembler) delete(d *datagram) {
	r.releaseBuf(d)
	d.list.remove(d)
	delete(r.m, d.key)
	hdr, spans := d.hdr[:0], d.spans[:0]
	*d = datagram{hdr: hdr, spans: spans}
	r.free = append(r.free, d)
}

// discard drops d's bytes and keeps it so its later fragments are dropped.
func (r *Reassembler) discard(d *datagram) {
	r.releaseBuf(d)
	d.discarded = true
}

// reserve makes d's buffer hold at least n bytes, within MaxBytes.
func (r *Reassembler) reserve(d *datagram, n, keep int) bool {
	if d.buf != nil && len(*d.buf) >= n {
		return true
	}
	c := classFor(n)
	if c < 0 {
		return false
	}
	size := classSize(c)
	old := 0
	if d.buf != nil {
		old = len(*d.buf)
	}
	if r.bytes-old+size > r.cfg.MaxBytes {
		return false
	}
	nb := r.getBuf(c)
	if d.buf != nil {
		copy(*nb, (*d.buf)[:keep])
		r.putBuf(d.class, d.buf)
	}
	d.buf, d.class = nb, c
	r.bytes += size - old
	d.charged += size - old
	return true
}

func (d *datagram) end() int {
	if len(d.spans) == 0 {
		return 0
	}
	return d.spans[len(d.spans)-1].hi
}

// addSpan records [lo, hi) as received, merging touching spans.
func (d *datagram) addSpan(lo, hi int) {
	s := d.spans
	i := 0
	for i < len(s) && s[i].hi < lo {
		i++
	}
	j := i
	for j < len(s) && s[j].lo <= hi {
		lo, hi = min(lo, s[j].lo), max(hi, s[j].hi)
		j++
	}
	if i == j { // insert
		s = append(s, span{})
		copy(s[i+1:], s[i:])
		s[i] = span{lo, hi}
	} else {
		s[i] = span{lo, hi}
		s = append(s[:i+1], s[j:]...)
	}
	d.spans = s
}

func (r *Reassembler) insert(d *datagram, f *frag) (Result, []byte) {
	// The datagram's length: one last fragment, no data past it.
	if !f.more {
		if d.total >= 0 && d.total != f.end || d.end() > f.end {
			r.discard(d)
			return Bad, nil
		}
	} else if d.total >= 0 && f.end > d.total {
		r.discard(d)
		return Bad, nil
	}
	if d.frags >= r.cfg.MaxFragments {
		r.discard(d)
		return OverCap, nil
	}
	overlap := false
	if d.buf != nil {
		buf := *d.buf
		for _, s := range d.spans {
			if s.lo >= f.end {
				break
			}
			if s.hi <= f.off {
				continue
			}
			overlap = true
			lo, hi := max(s.lo, f.off), min(s.hi, f.end)
			if !bytes.Equal(buf[lo:hi], f.data[lo-f.off:hi-f.off]) {
				r.stats.Overlaps++
				r.discard(d)
				return Conflict, nil
			}
		}
	}
	if overlap {
		r.stats.Overlaps++
	}
	// Room for the data and the header it will get in front.
	room := 60
	if d.key.v6 {
		room = len(f.hdr)
	}
	if d.hdrSet {
		room = len(d.hdr)
	}
	if !r.reserve(d, max(f.end, d.end())+room, d.end()) {
		return OverCap, nil
	}
	copy((*d.buf)[f.off:f.end], f.data)
	d.addSpan(f.off, f.end)
	d.frags++
	if f.off == 0 && !d.hdrSet {
		d.hdr = append(d.hdr[:0], f.hdr...)
		d.hdrSet = true
		d.nhOff, d.nextHdr = f.nhOff, f.nextHdr
		d.charged += len(d.hdr)
		r.bytes += len(d.hdr)
	}
	if !f.more {
		d.total = f.end
	}
	if d.total < 0 || len(d.spans) != 1 || d.spans[0].lo != 0 || d.spans[0].hi != d.total {
		return Held, nil
	}
	return r.complete(d)
}

// complete puts the header in front of the data and fixes it.
func (r *Reassembler) complete(d *datagram) (Result, []byte) {
	h := len(d.hdr)
	n := h + d.total
	if n > maxDatagram || !d.key.v6 && n > 65535 {
		r.discard(d)
		return Bad, nil
	}
	if !r.reserve(d, n, d.total) {
		r.discard(d)
		return OverCap, nil
	}
	buf := (*d.buf)[:n]
	copy(buf[h:], buf[:d.total])
	copy(buf, d.hdr)
	if d.key.v6 {
		binary.BigEndian.PutUint16(buf[4:], uint16(n-40))
		buf[d.nhOff] = d.nextHdr
	} else {
		binary.BigEndian.PutUint16(buf[2:], uint16(n))
		buf[6] &= 0xc0 // keep DF and the reserved bit, clear MF and the offset
		buf[7] = 0
		buf[10], buf[11] = 0, 0
		binary.BigEndian.PutUint16(buf[10:], checksum(buf[:h]))
	}
	d.completed = true
	r.pending = d
	return Complete, buf
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
