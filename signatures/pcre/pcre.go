package pcre

/*
#cgo pkg-config: libpcre2-8
#define PCRE2_CODE_UNIT_WIDTH 8
#include <stdlib.h>
#include <pcre2.h>

// Suricata's defaults (SC_MATCH_LIMIT_DEFAULT, SC_MATCH_LIMIT_RECURSION_DEFAULT).
#define UTM_MATCH_LIMIT 3500
#define UTM_DEPTH_LIMIT 1500
// Interpreter backtracking memory per call, KiB.
#define UTM_HEAP_LIMIT_KIB 1024
#define UTM_JIT_STACK_MIN (32 * 1024)
#define UTM_JIT_STACK_MAX (512 * 1024)

typedef struct {
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
	size_t ms, me; // bounds of the last match, read by Go (pointers to Go locals would escape to the heap)
} utm_matcher;

static const unsigned char utm_empty[1] = {0};

static pcre2_code *utm_compile(const char *pat, size_t len, uint32_t opts, int *err, size_t *off, int *jit) {
	if (len == 0) pat = (const char *)utm_empty;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, err, off, NULL);
	if (re == NULL) return NULL;
	*jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
	return re;
}

static int utm_error_message(int err, char *buf, size_t n) {
	return pcre2_get_error_message(err, (PCRE2_UCHAR *)buf, n);
}

static utm_matcher *utm_matcher_new(void) {
	utm_matcher *m = calloc(1, sizeof *m);
	if (m == NULL) return NULL;
	m->md = pcre2_match_data_create(1, NULL);
	m->mc = pcre2_match_context_create(NULL);
	m->js = pcre2_jit_stack_create(UTM_JIT_STACK_MIN, UTM_JIT_STACK_MAX, NULL);
	if (m->md == NULL || m->mc == NULL) {
		pcre2_match_data_free(m->md);
		pcre2_match_context_free(m->mc);
		pcre2_jit_stack_free(m->js);
		free(m);
		return NULL;
	}
	pcre2_set_match_limit(m->mc, UTM_MATCH_LIMIT);
	pcre2_set_depth_limit(m->mc, UTM_DEPTH_LIMIT);
	pcre2_set_heap_limit(m->mc, UTM_HEAP_LIMIT_KIB);
	if (m->js != NULL) pcre2_jit_stack_assign(m->mc, NULL, m->js);
	return m;
}

static void utm_matcher_free(utm_matcher *m) {
	pcre2_match_data_free(m->md);
	pcre2_match_context_free(m->mc);
	pcre2_jit_stack_free(m->js);
	free(m);
}

// utm_match returns the pcre2_match result; on a match ms/me are the bounds of the whole match.
static int utm_match(const pcre2_code *re, const unsigned char *data, size_t len, size_t start, utm_matcher *m) {
	if (len == 0) data = utm_empty;
	int rc = pcre2_match(re, data, len, start, 0, m->md, m->mc);
	if (rc >= 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
		m->ms = ov[0];
		m->me = ov[1];
	}
	return rc;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Match limits applied to every Find; they are Suricata's defaults so a rule matches here exactly when it
// matches in Suricata with an unchanged suricata.yaml.
const (
	MatchLimit = C.UTM_MATCH_LIMIT // pcre2_set_match_limit: backtracking steps per Find
	DepthLimit = C.UTM_DEPTH_LIMIT // pcre2_set_depth_limit: backtracking depth (interpreter only)
)

// ErrCompile is wrapped by every Compile error; the message names the offset in the pattern and PCRE2's reason.
var ErrCompile = errors.New("pcre: pattern does not compile")

// Options are the PCRE compile flags Suricata rules use (the /i s m x A E G letters; R, U, I, P, ... buffer flags are
// NOT handled here — the rules package handles those).
type Options struct {
	Caseless, DotAll, Multiline, Extended, Anchored, DollarEndOnly, Ungreedy bool
}

func (o Options) bits() C.uint32_t {
	var b C.uint32_t
	if o.Caseless {
		b |= C.PCRE2_CASELESS
	}
	if o.DotAll {
		b |= C.PCRE2_DOTALL
	}
	if o.Multiline {
		b |= C.PCRE2_MULTILINE
	}
	if o.Extended {
		b |= C.PCRE2_EXTENDED
	}
	if o.Anchored {
		b |= C.PCRE2_ANCHORED
	}
	if o.DollarEndOnly {
		b |= C.PCRE2_DOLLAR_ENDONLY
	}
	if o.Ungreedy {
		b |= C.PCRE2_UNGREEDY
	}
	return b
}

// flags renders o as Suricata's pcre flag letters.
func (o Options) flags() string {
	var b []byte
	for _, f := range []struct {
		on bool
		c  byte
	}{{o.Caseless, 'i'}, {o.DotAll, 's'}, {o.Multiline, 'm'}, {o.Extended, 'x'}, {o.Anchored, 'A'},
		{o.DollarEndOnly, 'E'}, {o.Ungreedy, 'G'}} {
		if f.on {
			b = append(b, f.c)
		}
	}
	return string(b)
}

// Regexp is a compiled pattern, immutable and safe for concurrent use. Its C memory is released by a
// runtime cleanup once the Regexp is garbage; there is no Close.
type Regexp struct {
	code    *C.pcre2_code
	pattern string
	opts    Options
	jit     bool
}

// Compile compiles pattern (PCRE2 syntax, bytes not UTF-8) with opts, JIT-compiling it when the platform
// supports JIT and falling back to the interpreter otherwise.
func Compile(pattern string, opts Options) (*Regexp, error) {
	var (
		errcode C.int
		off     C.size_t
		jit     C.int
	)
	// The pattern is only read during the call; pcre2_compile keeps no reference to it.
	p := (*C.char)(unsafe.Pointer(unsafe.StringData(pattern)))
	code := C.utm_compile(p, C.size_t(len(pattern)), opts.bits(), &errcode, &off, &jit)
	if code == nil {
		var buf [256]C.char
		C.utm_error_message(errcode, &buf[0], C.size_t(len(buf)))
		return nil, fmt.Errorf("%w: /%s/%s at offset %d: %s", ErrCompile, pattern, opts.flags(), int(off),
			C.GoString(&buf[0]))
	}
	re := &Regexp{code: code, pattern: pattern, opts: opts, jit: jit != 0}
	runtime.AddCleanup(re, func(c *C.pcre2_code) { C.pcre2_code_free(c) }, code)
	return re, nil
}

// String returns the pattern in Suricata's /pattern/flags form.
func (re *Regexp) String() string { return "/" + re.pattern + "/" + re.opts.flags() }

// JIT reports whether the pattern runs as JIT-compiled machine code (false: PCRE2's interpreter).
func (re *Regexp) JIT() bool { return re.jit }

var (
	limitHits atomic.Uint64
	matchErrs atomic.Uint64
)

// LimitHits returns how many Find calls hit the match limit (exported for metrics).
func LimitHits() uint64 { return limitHits.Load() }

// MatchErrors returns how many Find calls failed for another reason (out of memory creating match state,
// an internal PCRE2 error); each of them reported no match.
func MatchErrors() uint64 { return matchErrs.Load() }

// Matcher is the C working state of one Find at a time: match data for one ovector pair, a match context
// carrying the limits and a JIT stack. A packet worker keeps one and passes it to FindWith, so matching takes
// no lock and no pool; a Matcher is not safe for concurrent use. Dropped Matchers are freed by their cleanup.
type Matcher struct{ c *C.utm_matcher }

// NewMatcher makes a Matcher. It fails only when C memory runs out.
func NewMatcher() (*Matcher, error) {
	c := C.utm_matcher_new()
	if c == nil {
		return nil, errors.New("pcre: out of memory creating match state (match data, context, JIT stack)")
	}
	m := &Matcher{c: c}
	runtime.AddCleanup(m, func(c *C.utm_matcher) { C.utm_matcher_free(c) }, c)
	return m, nil
}

// matchers serves Find, for callers without a Matcher of their own.
var matchers = sync.Pool{New: func() any {
	m, err := NewMatcher()
	if err != nil {
		return nil
	}
	return m
}}

// Find returns the first match of re in data starting at or after data[start:] (start is an offset into data,
// lookbehind may see data before start like PCRE's start_offset), as byte offsets [ms, me) into data;
// ms = -1 when there is no match. A start outside [0, len(data)] finds nothing. Safe for concurrent use by
// many goroutines (the match state comes from a pool; FindWith takes the caller's own instead); no Go heap
// allocation per call once warm; bounded work (MatchLimit/DepthLimit, counted by LimitHits: a pathological
// pattern returns no match rather than spinning).
func (re *Regexp) Find(data []byte, start int) (ms, me int) {
	m, _ := matchers.Get().(*Matcher)
	if m == nil {
		matchErrs.Add(1)
		return -1, -1
	}
	ms, me = re.FindWith(m, data, start)
	matchers.Put(m)
	return ms, me
}

// FindWith is Find on the caller's Matcher m: never allocates, whatever the runtime does with pools.
func (re *Regexp) FindWith(m *Matcher, data []byte, start int) (ms, me int) {
	if start < 0 || start > len(data) {
		return -1, -1
	}
	var p *C.uchar
	if len(data) > 0 {
		p = (*C.uchar)(unsafe.Pointer(unsafe.SliceData(data)))
	}
	rc := C.utm_match(re.code, p, C.size_t(len(data)), C.size_t(start), m.c)
	s, e := m.c.ms, m.c.me
	runtime.KeepAlive(m)
	runtime.KeepAlive(re)
	switch {
	case rc >= 0:
		return int(s), int(e)
	case rc == C.PCRE2_ERROR_NOMATCH:
	case rc == C.PCRE2_ERROR_MATCHLIMIT || rc == C.PCRE2_ERROR_DEPTHLIMIT || rc == C.PCRE2_ERROR_HEAPLIMIT ||
		rc == C.PCRE2_ERROR_JIT_STACKLIMIT:
		limitHits.Add(1)
	default:
		matchErrs.Add(1)
	}
	return -1, -1
}
