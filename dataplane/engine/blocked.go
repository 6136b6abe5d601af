package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// Blocked remembers the files the antivirus neutralised, by the URL they
// were fetched from and by their SHA-256, so that a later request for the
// same URL (a Range resume, a download manager's retry, another client) is
// refused before the server sends a byte (sid 2210003), and a file with the
// same content is blocked without a second scan.
//
// One Blocked is shared by every engine worker of a box (the retry is a new
// flow, perhaps on another queue). The packet path looks it up once per
// HTTP request and once per finished file, and only while it holds entries
// (an atomic count first); writes happen only when a file is blocked.
// Entries live for BlockedTTL; the table holds at most blockedMax entries,
// the oldest going first.
type Blocked struct {
	n  atomic.Int64
	mu sync.RWMutex
	m  map[string]blockedEntry
}

// BlockedTTL is how long a neutralised file's URL and hash stay blocked.
const BlockedTTL = 24 * time.Hour

const blockedMax = 4096

type blockedEntry struct {
	threat  string
	sha256  string
	expires time.Time
}

// NewBlocked returns an empty table.
func NewBlocked() *Blocked { return &Blocked{m: make(map[string]blockedEntry)} }

// Len returns the number of entries (URLs and hashes).
func (t *Blocked) Len() int { return int(t.n.Load()) }

// lookup returns the live entry for key (a urlKey or "sha256:" + hex).
func (t *Blocked) lookup(key []byte, now time.Time) (blockedEntry, bool) {
	if t.n.Load() == 0 {
		return blockedEntry{}, false
	}
	t.mu.RLock()
	b, ok := t.m[string(key)] // no allocation: the compiler converts in place
	t.mu.RUnlock()
	if !ok || now.After(b.expires) {
		return blockedEntry{}, false
	}
	return b, true
}

// add stores b under each key, evicting the entry nearest its expiry when
// the table is full.
func (t *Blocked) add(b blockedEntry, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := t.m[k]; !ok && len(t.m) >= blockedMax {
			var oldest string
			var at time.Time
			for ok, ob := range t.m {
				if oldest == "" || ob.expires.Before(at) {
					oldest, at = ok, ob.expires
				}
			}
			delete(t.m, oldest)
		}
		t.m[k] = b
	}
	t.n.Store(int64(len(t.m)))
}

// expire drops entries past their time.
func (t *Blocked) expire(now time.Time) {
	if t.n.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, b := range t.m {
		if now.After(b.expires) {
			delete(t.m, k)
		}
	}
	t.n.Store(int64(len(t.m)))
}

// urlKey appends the key of a request's URL to dst: the host without its
// port, lowercased, then the normalised request target (path and query).
func urlKey(dst, host, normURI []byte) []byte {
	dst = append(dst, "url:"...)
	for _, c := range hostOnly(host) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return append(dst, normURI...)
}
