package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Learned remembers, per client, the addresses that listed (C&C) domains
// resolved to, so the client's connection to such an address is blocked at
// its first packet even when nothing else names the domain (sid 2220003).
//
// One Learned is shared by every engine worker of a box: the DNS answer and
// the connection it leads to are different flows, and the queue hash may
// give them to different workers. The packet path touches it once per new
// flow, and only while it holds entries (an atomic count first), so its
// lock is not on the per-packet path; writes happen only for DNS answers
// naming listed domains.
type Learned struct {
	n  atomic.Int64
	mu sync.RWMutex
	m  map[learnKey]learned
}

// NewLearned returns an empty table.
func NewLearned() *Learned { return &Learned{m: make(map[learnKey]learned)} }

// lookup returns the live entry for k.
func (t *Learned) lookup(k learnKey, now time.Time) (learned, bool) {
	if t.n.Load() == 0 {
		return learned{}, false
	}
	t.mu.RLock()
	l, ok := t.m[k]
	t.mu.RUnlock()
	if !ok || now.After(l.expires) {
		return learned{}, false
	}
	return l, true
}

// add stores l under k; it reports false when the table is full.
func (t *Learned) add(k learnKey, l learned) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[k]; !ok && len(t.m) >= learnedMaxCount {
		return false
	}
	t.m[k] = l
	t.n.Store(int64(len(t.m)))
	return true
}

// expire drops the entries past their time.
func (t *Learned) expire(now time.Time) {
	if t.n.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, l := range t.m {
		if now.After(l.expires) {
			delete(t.m, k)
		}
	}
	t.n.Store(int64(len(t.m)))
}

// Len returns the number of entries.
func (t *Learned) Len() int { return int(t.n.Load()) }

type learnKey struct{ client, addr netip.Addr }

type learned struct {
	domain  string
	ind     alertIntel
	expires time.Time
}
