// Package flow tracks bidirectional flows (5-tuples) for the engine.
//
// A Table maps a direction-independent Key to a Flow. Flows are pooled and
// kept on an LRU list ordered by last activity, so finding a flow, touching
// it and evicting the least recently used one are O(1). Lookup of an
// existing flow does not allocate. The table holds at most Config.Max
// flows: when full, the least recently used flow is evicted (counted) to
// make room, so traffic can never grow the table without bound.
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

	prev, next *Flow // LRU list, most recent at the head
}

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
	Created, Expired, Evicted uint64
}

// Table is the flow table.
type Table struct {
	cfg    Config
	m      map[Key]*Flow
	head   *Flow // most recently active
	tail   *Flow // least recently active
	free   []*Flow
	nextID uint64
	stats  Stats
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
	return &Table{cfg: cfg, m: make(map[Key]*Flow, min(cfg.Max, 4096))}
}

// Len returns the number of flows.
func (t *Table) Len() int { return len(t.m) }

// Stats returns the table's counters.
func (t *Table) Stats() Stats { return t.stats }

// Lookup finds or creates p's flow, accounts p to it and updates its TCP
// state. created reports a new flow. When the table is full the least
// recently used flow is evicted first, and evict (if not nil) is called
// with it before it is reused.
func (t *Table) Lookup(p *packet.Parsed, now time.Time, evict func(*Flow)) (f *Flow, created bool) {
	k := KeyOf(p)
	f = t.m[k]
	if f == nil {
		if len(t.m) >= t.cfg.Max && t.tail != nil {
			old := t.tail
			t.stats.Evicted++
			t.remove(old, evict)
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
	t.pushFront(f)
	d := f.Dir(p)
	f.Last = now
	f.Packets[d]++
	f.Bytes[d] += uint64(p.Length)
	if p.Proto == packet.ProtoTCP {
		f.track(d, p.TCPFlags)
	}
	return f, created
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

func (t *Table) timeout(f *Flow) time.Duration {
	switch f.Proto {
	case packet.ProtoTCP:
		if f.State == StateEstablished {
			return t.cfg.Timeouts.TCPEstablished
		}
		return t.cfg.Timeouts.TCPOther
	case packet.ProtoUDP:
		return t.cfg.Timeouts.UDP
	}
	return t.cfg.Timeouts.Other
}

// Expire ends flows idle for longer than their timeout at now, calling fn
// for each before it is reused. It walks from the least recently active
// flow and stops at the first that is still live, so its cost is the
// number of flows it ends plus a bounded look past flows with a longer
// timeout.
func (t *Table) Expire(now time.Time, fn func(*Flow)) {
	f := t.tail
	for looked := 0; f != nil && looked < 1024; {
		prev := f.prev
		idle := now.Sub(f.Last)
		if idle >= t.timeout(f) {
			t.stats.Expired++
			t.remove(f, fn)
		} else {
			if idle < t.cfg.Timeouts.TCPOther && idle < t.cfg.Timeouts.UDP {
				return // everything more recent is younger still
			}
			looked++
		}
		f = prev
	}
}

// Flush ends every flow, calling fn for each.
func (t *Table) Flush(fn func(*Flow)) {
	for t.tail != nil {
		t.remove(t.tail, fn)
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
	f.prev, f.next = nil, t.head
	if t.head != nil {
		t.head.prev = f
	}
	t.head = f
	if t.tail == nil {
		t.tail = f
	}
}

func (t *Table) unlink(f *Flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else if t.head == f {
		t.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else if t.tail == f {
		t.tail = f.prev
	}
	f.prev, f.next = nil, nil
}
