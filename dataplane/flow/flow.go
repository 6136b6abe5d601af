// Package flow tracks bidirectional flows (5-tuples) for the engine.
//
// A Table maps a direction-independent Key to a Flow. Flows are pooled and
// kept on one LRU list per timeout class (TCP established, other TCP
// states, UDP, other protocols), so finding a flow, touching it, expiring
// idle ones and evicting are all O(1) per flow. Lookup of an existing flow
// does not allocate.
//
// Policies:
//   - The client is the sender of the first packet seen, except that a
//     SYN-ACK seen first names its receiver the client.
//   - Idle timeouts (defaults): TCP established 10 min; TCP half-open,
//     closing or closed 30 s; UDP 60 s; ICMP and others 30 s.
//   - The table holds at most Config.Max flows. When it is full the flow
//     closest to its idle timeout is evicted (counted in Stats.Evicted).
//     Within a class that is the least recently active flow; across
//     classes it spares established TCP connections that were idle a few
//     seconds in favour of half-open or UDP flows, so a SYN or UDP flood
//     cannot push the office's live connections out.
//   - A pure SYN on a closed TCP flow (port reuse) ends the old flow and
//     starts a new one (Stats.Reopened).
//   - Flow.ID comes from a counter: nonzero and unique for the table's
//     life (EVE's flow_id).
//
// Every flow that ends (expired, evicted, reopened, flushed) is passed to
// the caller's function before its Flow is reused, so the engine can
// release Flow.Ext.
//
// A Table is not safe for concurrent use: the engine owns one per worker.
package flow

import (
	"net/netip"
	"time"

	"github.com/openutm/utm/dataplane/packet"
)

// Key identifies a flow in both directions: the two endpoints sorted, plus
// the protocol.
type Key struct {
	A, B  netip.AddrPort
	Proto uint8
}

// KeyOf returns p's flow key.
func KeyOf(p *packet.Parsed) Key {
	a := netip.AddrPortFrom(p.Src, p.SrcPort)
	b := netip.AddrPortFrom(p.Dst, p.DstPort)
	if b.Compare(a) < 0 {
		a, b = b, a
	}
	return Key{A: a, B: b, Proto: p.Proto}
}

// TCP states as the table tracks them.
const (
	StateNew         uint8 = iota // first packet seen
	StateSynSent                  // client SYN
	StateSynReceived              // server SYN-ACK
	StateEstablished              // data or the handshake's ACK
	StateClosing                  // a FIN seen
	StateClosed                   // RST, or FIN both ways
)

// Flow is one tracked flow. The engine keeps its own state in Ext.
type Flow struct {
	ID             uint64 // nonzero, unique in this table's life: EVE's flow_id
	Key            Key
	Client, Server netip.AddrPort // Client sent the first packet (the SYN for TCP)
	Proto          uint8
	Start, Last    time.Time
	Packets, Bytes [2]uint64 // by direction: 0 to server, 1 to client
	State          uint8
	fin            [2]bool
	Ext            any

	class      uint8 // timeout class, the LRU list the flow is on
	prev, next *Flow // LRU list, most recent at the head
}

// Timeout classes, one LRU list each.
const (
	classTCPEstablished = iota
	classTCPOther
	classUDP
	classOther
	numClasses
)

type lru struct{ head, tail *Flow }

// Dir returns 0 when p goes from client to server, 1 otherwise.
func (f *Flow) Dir(p *packet.Parsed) int {
	if p.Src == f.Client.Addr() && p.SrcPort == f.Client.Port() {
		return 0
	}
	return 1
}

// Timeouts are idle times after which a flow ends.
type Timeouts struct {
	TCPEstablished, TCPOther, UDP, Other time.Duration
}

// DefaultTimeouts are used for zero fields of Config.Timeouts.
var DefaultTimeouts = Timeouts{
	TCPEstablished: 10 * time.Minute,
	TCPOther:       30 * time.Second,
	UDP:            60 * time.Second,
	Other:          30 * time.Second,
}

// Config sizes a Table.
type Config struct {
	Max      int // flows; default 65536
	Timeouts Timeouts
}

// Stats counts table events.
type Stats struct {
	Created, Expired, Evicted, Reopened uint64
}

// Table is the flow table.
type Table struct {
	cfg     Config
	m       map[Key]*Flow
	lists   [numClasses]lru
	timeout [numClasses]time.Duration
	free    []*Flow
	nextID  uint64
	stats   Stats
}

// NewTable returns an empty table.
func NewTable(cfg Config) *Table {
	if cfg.Max <= 0 {
		cfg.Max = 65536
	}
	d := DefaultTimeouts
	t := &cfg.Timeouts
	if t.TCPEstablished <= 0 {
		t.TCPEstablished = d.TCPEstablished
	}
	if t.TCPOther <= 0 {
		t.TCPOther = d.TCPOther
	}
	if t.UDP <= 0 {
		t.UDP = d.UDP
	}
	if t.Other <= 0 {
		t.Other = d.Other
	}
	tb := &Table{cfg: cfg, m: make(map[Key]*Flow, min(cfg.Max, 4096))}
	tb.timeout = [numClasses]time.Duration{t.TCPEstablished, t.TCPOther, t.UDP, t.Other}
	return tb
}

// Len returns the number of flows.
func (t *Table) Len() int { return len(t.m) }

// Stats returns the table's counters.
func (t *Table) Stats() Stats { return t.stats }

// Lookup finds or creates p's flow, accounts p to it and updates its TCP
// state. created reports a new flow. When the table is full the flow
// closest to its idle timeout is evicted first; a pure SYN on a closed TCP
// flow ends it and starts a new one. In both cases end (if not nil) is
// called with the old flow before it is reused. f is never nil.
func (t *Table) Lookup(p *packet.Parsed, now time.Time, end func(*Flow)) (f *Flow, created bool) {
	k := KeyOf(p)
	f = t.m[k]
	if f != nil && f.Proto == packet.ProtoTCP && f.State == StateClosed &&
		p.TCPFlags&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN {
		t.stats.Reopened++
		t.remove(f, end)
		f = nil
	}
	if f == nil {
		if len(t.m) >= t.cfg.Max {
			if old := t.victim(); old != nil {
				t.stats.Evicted++
				t.remove(old, end)
			}
		}
		f = t.alloc()
		t.nextID++
		*f = Flow{
			ID:     t.nextID,
			Key:    k,
			Client: netip.AddrPortFrom(p.Src, p.SrcPort),
			Server: netip.AddrPortFrom(p.Dst, p.DstPort),
			Proto:  p.Proto,
			Start:  now,
		}
		if p.Proto == packet.ProtoTCP && p.TCPFlags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK {
			// We saw the SYN-ACK first: its sender is the server.
			f.Client, f.Server = f.Server, f.Client
		}
		t.m[k] = f
		t.stats.Created++
		created = true
	} else {
		t.unlink(f)
	}
	d := f.Dir(p)
	f.Last = now
	f.Packets[d]++
	f.Bytes[d] += uint64(p.Length)
	if p.Proto == packet.ProtoTCP {
		f.track(d, p.TCPFlags)
	}
	f.class = classOf(f)
	t.pushFront(f)
	return f, created
}

// victim returns the flow closest to its idle timeout: the oldest of
// each class's least recently active flows, by deadline.
func (t *Table) victim() *Flow {
	var v *Flow
	var vd time.Time
	for c := range t.lists {
		f := t.lists[c].tail
		if f == nil {
			continue
		}
		if d := f.Last.Add(t.timeout[c]); v == nil || d.Before(vd) {
			v, vd = f, d
		}
	}
	return v
}

func classOf(f *Flow) uint8 {
	switch f.Proto {
	case packet.ProtoTCP:
		if f.State == StateEstablished {
			return classTCPEstablished
		}
		return classTCPOther
	case packet.ProtoUDP:
		return classUDP
	}
	return classOther
}

func (f *Flow) track(d int, flags uint8) {
	switch {
	case flags&packet.FlagRST != 0:
		f.State = StateClosed
	case flags&packet.FlagFIN != 0:
		f.fin[d] = true
		f.State = StateClosing
		if f.fin[0] && f.fin[1] {
			f.State = StateClosed
		}
	case f.State >= StateClosing:
	case flags&packet.FlagSYN != 0 && flags&packet.FlagACK != 0:
		f.State = StateSynReceived
	case flags&packet.FlagSYN != 0:
		f.State = StateSynSent
	case flags&packet.FlagACK != 0:
		f.State = StateEstablished
	}
}

// Timeout returns f's current idle timeout.
func (t *Table) Timeout(f *Flow) time.Duration { return t.timeout[f.class] }

// Expire ends the flows idle for at least their timeout at now, calling fn
// for each before it is reused. Its cost is the number of flows it ends
// plus one look per class.
func (t *Table) Expire(now time.Time, fn func(*Flow)) {
	for c := range t.lists {
		for f := t.lists[c].tail; f != nil && now.Sub(f.Last) >= t.timeout[c]; f = t.lists[c].tail {
			t.stats.Expired++
			t.remove(f, fn)
		}
	}
}

// Flush ends every flow, calling fn for each.
func (t *Table) Flush(fn func(*Flow)) {
	for c := range t.lists {
		for t.lists[c].tail != nil {
			t.remove(t.lists[c].tail, fn)
		}
	}
}

func (t *Table) remove(f *Flow, fn func(*Flow)) {
	if fn != nil {
		fn(f)
	}
	t.unlink(f)
	delete(t.m, f.Key)
	*f = Flow{}
	t.free = append(t.free, f)
}

func (t *Table) alloc() *Flow {
	if n := len(t.free); n > 0 {
		f := t.free[n-1]
		t.free = t.free[:n-1]
		return f
	}
	return new(Flow)
}

func (t *Table) pushFront(f *Flow) {
	l := &t.lists[f.class]
	f.prev, f.next = nil, l.head
	if l.head != nil {
		l.head.prev = f
	}
	l.head = f
	if l.tail == nil {
		l.tail = f
	}
}

func (t *Table) unlink(f *Flow) {
	l := &t.lists[f.class]
	if f.prev != nil {
		f.prev.next = f.next
	} else if l.head == f {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else if l.tail == f {
		l.tail = f.prev
	}
	f.prev, f.next = nil, nil
}
