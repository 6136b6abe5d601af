// Package literal finds which of many byte strings occur in a buffer, with
// Hyperscan (Debian's libvectorscan, the portable fork that also runs on
// ARM64) through cgo: the multi-pattern matcher Suricata itself uses.
//
// A Group holds the databases compiled for one rule set; a Scanner holds
// the per-goroutine scratch space (one per worker, never shared) and the
// list of hits. Every pattern reports at most once per scan (Hyperscan's
// single-match mode): Scan tells which patterns occur, not where, which is
// all a prefilter needs. Matches are collected on the C side and returned
// as one slice, so a scan is one cgo call whatever the number of hits.
package literal

/*
#cgo pkg-config: libhs
#include <stdlib.h>
#include <string.h>
#include <hs.h>

typedef struct {
	unsigned int *ids;
	unsigned int n;
} utm_hits;

static int utm_on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx) {
	utm_hits *h = ctx;
	h->ids[h->n++] = id; // single-match mode: each id once, and ids has room for every pattern
	return 0;
}

static const char utm_empty[1] = {0};

static int utm_scan(const hs_database_t *db, const char *data, unsigned int len, hs_scratch_t *s, utm_hits *h) {
	h->n = 0;
	if (len == 0) data = utm_empty;
	return hs_scan(db, data, len, 0, s, utm_on_match, h);
}

// utm_compile compiles n expressions laid end to end in buf, each ended
// by a NUL. The literal API (hs_compile_lit_multi) would take the bytes as
// they are, but refuses a literal that starts with a NUL byte ("empty
// string"), so every literal is written as an escaped expression instead;
// Hyperscan recognises pure literals and builds the same literal matcher.
static hs_error_t utm_compile(const char *buf, const unsigned *flags, unsigned n, hs_database_t **db, char **msg) {
	const char **exprs = malloc(n * sizeof *exprs);
	unsigned *ids = malloc(n * sizeof *ids);
	if (exprs == NULL || ids == NULL) {
		free(exprs);
		free(ids);
		*msg = strdup("out of memory");
		return HS_NOMEM;
	}
	const char *p = buf;
	for (unsigned i = 0; i < n; i++) {
		exprs[i] = p;
		ids[i] = i;
		p += strlen(p) + 1;
	}
	hs_compile_error_t *err = NULL;
	hs_error_t rc = hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, db, &err);
	free(exprs);
	free(ids);
	*msg = NULL;
	if (rc != HS_SUCCESS) {
		*msg = strdup(err != NULL && err->message != NULL ? err->message : "unknown error");
		hs_free_compile_error(err);
	}
	return rc;
}

static size_t utm_db_size(const hs_database_t *db) {
	size_t n = 0;
	hs_database_size(db, &n);
	return n;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

const hexDigit = "0123456789abcdef"

// Pattern is one literal; Nocase folds ASCII letters.
type Pattern struct {
	Bytes  []byte
	Nocase bool
}

// Group owns the databases of one rule set and a prototype scratch space
// that fits every one of them: a Scanner clones it once per Group.
type Group struct {
	mu      sync.Mutex
	proto   *protoScratch
	maxPats int
	done    bool // a Scanner has cloned proto: no more databases
}

// DB is one compiled set of patterns, ids 0..n-1 in the order given.
type DB struct {
	db    *C.hs_database_t
	group *Group
	n     int
	size  int
}

type protoScratch struct{ s *C.hs_scratch_t }

// NewGroup returns an empty group.
func NewGroup() *Group {
	g := &Group{proto: &protoScratch{}}
	runtime.AddCleanup(g, func(p *protoScratch) {
		if p.s != nil {
			C.hs_free_scratch(p.s)
		}
	}, g.proto)
	return g
}

// Compile compiles pats into a database of g. Databases are compiled
// before the group is first scanned.
func (g *Group) Compile(pats []Pattern) (*DB, error) {
	if len(pats) == 0 {
		return nil, errors.New("literal: no pattern to compile")
	}
	var expr []byte
	for _, p := range pats {
		if len(p.Bytes) == 0 {
			return nil, errors.New("literal: empty pattern")
		}
		for _, c := range p.Bytes {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				expr = append(expr, c)
			} else {
				expr = append(expr, '\\', 'x', hexDigit[c>>4], hexDigit[c&15])
			}
		}
		expr = append(expr, 0)
	}
	buf := C.CBytes(expr)
	defer C.free(buf)
	flags := make([]C.uint, len(pats))
	for i, p := range pats {
		flags[i] = C.HS_FLAG_SINGLEMATCH
		if p.Nocase {
			flags[i] |= C.HS_FLAG_CASELESS
		}
	}
	var db *C.hs_database_t
	var msg *C.char
	rc := C.utm_compile((*C.char)(buf), &flags[0], C.uint(len(pats)), &db, &msg)
	if rc != C.HS_SUCCESS {
		err := fmt.Errorf("literal: compiling %d patterns: %s (hyperscan error %d)", len(pats), C.GoString(msg), int(rc))
		C.free(unsafe.Pointer(msg))
		return nil, err
	}
	d := &DB{db: db, group: g, n: len(pats), size: int(C.utm_db_size(db))}
	runtime.AddCleanup(d, func(p *C.hs_database_t) { C.hs_free_database(p) }, db)

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return nil, errors.New("literal: database compiled after the group was first scanned")
	}
	if rc := C.hs_alloc_scratch(db, &g.proto.s); rc != C.HS_SUCCESS {
		return nil, fmt.Errorf("literal: scratch space for %d patterns: hyperscan error %d", len(pats), int(rc))
	}
	g.maxPats = max(g.maxPats, len(pats))
	return d, nil
}

// Len returns the number of patterns.
func (d *DB) Len() int { return d.n }

// Size returns the bytes the compiled database takes.
func (d *DB) Size() int { return d.size }

// Scanner scans for one goroutine at a time.
type Scanner struct {
	c *scanState
}

type scanState struct {
	scratch *C.hs_scratch_t
	hits    *C.utm_hits
	cap     int
	group   *Group
}

// NewScanner returns a scanner; it allocates its scratch space on its
// first scan of a group.
func NewScanner() *Scanner {
	st := &scanState{hits: (*C.utm_hits)(C.calloc(1, C.size_t(unsafe.Sizeof(C.utm_hits{}))))}
	s := &Scanner{c: st}
	runtime.AddCleanup(s, func(st *scanState) {
		if st.scratch != nil {
			C.hs_free_scratch(st.scratch)
		}
		C.free(unsafe.Pointer(st.hits.ids))
		C.free(unsafe.Pointer(st.hits))
	}, st)
	return s
}

// Scan returns the ids of the patterns of d that occur in data, each once,
// in no particular order. The slice is valid until the next Scan.
func (s *Scanner) Scan(d *DB, data []byte) ([]uint32, error) {
	st := s.c
	if st.group != d.group {
		if err := st.fit(d.group); err != nil {
			return nil, err
		}
	}
	var p *C.char
	if len(data) > 0 {
		p = (*C.char)(unsafe.Pointer(unsafe.SliceData(data)))
	}
	rc := C.utm_scan(d.db, p, C.uint(len(data)), st.scratch, st.hits)
	runtime.KeepAlive(d)
	if rc != C.HS_SUCCESS {
		return nil, fmt.Errorf("literal: scan of %d bytes: hyperscan error %d", len(data), int(rc))
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(st.hits.ids)), int(st.hits.n)), nil
}

// fit clones g's scratch space and sizes the hit list for its largest
// database.
func (st *scanState) fit(g *Group) error {
	g.mu.Lock()
	g.done = true
	proto, maxPats := g.proto.s, g.maxPats
	g.mu.Unlock()
	if proto == nil {
		return errors.New("literal: the group has no database")
	}
	if st.scratch != nil {
		C.hs_free_scratch(st.scratch)
		st.scratch = nil
	}
	if rc := C.hs_clone_scratch(proto, &st.scratch); rc != C.HS_SUCCESS {
		return fmt.Errorf("literal: cloning scratch space: hyperscan error %d", int(rc))
	}
	if maxPats > st.cap {
		ids := C.realloc(unsafe.Pointer(st.hits.ids), C.size_t(maxPats)*C.size_t(unsafe.Sizeof(C.uint(0))))
		if ids == nil {
			return errors.New("literal: out of memory for the hit list")
		}
		st.hits.ids, st.cap = (*C.uint)(ids), maxPats
	}
	st.group = g
	return nil
}
