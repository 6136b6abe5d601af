package rules

import (
	"bytes"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/openutm/utm/signatures/literal"
)

// The prefilter finds, for one Input, the few rules worth verifying.
//
// Every rule with a positive content has one fast pattern (chosen as
// Suricata does, selectFastPattern: the content marked fast_pattern, else
// the longest positive content of the highest-priority buffers; a chopped
// fast_pattern:offset,length uses that slice) and is indexed under the
// buffer that content inspects. Each buffer's bucket compiles its fast
// patterns into one Hyperscan database (package literal; a pattern that can
// sit at one offset only goes to a table instead, anchored.go) and, for
// short buffers, one Aho-Corasick DFA (ac.go): Match runs each present
// buffer through one of them once (Hyperscan for buffers of litMin bytes
// or more), marks the rules of the patterns found in a bitset, then
// verifies the marked rules in load order (protocol, flow and header
// first, then every content list). The cost is one scan per buffer plus
// the candidates' verification, whatever the number of rules. Buckets of
// fewer than acMinRules rules skip both and search each pattern directly.
// A Hyperscan failure (no memory) falls back to verifying every rule of
// the bucket: slower, never a missed match.
//
// Each buffer's rules are split further, as Suricata's signature group
// heads, by what the Input tells before any byte is read: the application
// (none, http, tls, dns, smtp, pop3, imap, other), the transport (TCP,
// UDP, other) and the direction (to server, to client). A rule goes into
// every variant it can match (ip rules into all three transports, a rule
// without flow direction into both directions, a rule without application
// into every application); variants that end up with the same rules share
// one automaton. An Input runs only its variant's automaton: a UDP rule's
// one-byte pattern is not looked for in HTTP, a to_client pattern not in
// requests, a TLS rule's raw pattern not in an HTTP download (on the ET
// mix the application split cut the per-packet cost with all rules by
// about a tenth).
//
// A big bucket is split once more by the packet's server port, so a DNS
// answer does not scan the literals of every "-> any 53" query rule
// (portsplit.go).
//
// Rules without a positive content (header-only, or only negated
// contents) are grouped by protocol and application: an Input walks only
// the groups its protocol and application can match.
//
// Per-call state (the candidate bitset and per-pattern generation stamps)
// lives in a scratch the Input carries, so one read-only Set serves many
// goroutines, each with its own Input, without locks or allocation.

// acMinRules is the smallest bucket that gets an automaton.
const acMinRules = 4

// bucket holds the rules whose fast pattern inspects one buffer.
type bucket struct {
	rules []*Rule
	ids   []int32 // each rule's index in the Set, for profiling

	ac      *automaton  // nil: fewer than acMinRules rules, or lit
	lit     *literal.DB // Hyperscan database of the fast patterns, if useLiteral
	patAt   []int32     // pattern id p's rules (bucket indexes) are patRule[patAt[p]:patAt[p+1]]
	patRule []int32
	npats   int

	litPat []int32   // Hyperscan id -> pattern id
	runs   []runScan // patterns of one repeated byte, kept out of lit
	anch   *anchored // patterns with one possible offset, kept out of lit; nil: none

	split [2]*portSplit // per direction (vToServer, vToClient): sub-buckets by port (portsplit.go); nil: none
}

// runScan is a pattern of one repeated byte and where its rules can find
// it: data[lo:hi] (hi < 0: to the end).
type runScan struct {
	pat    acPattern
	id     int32
	lo, hi int
}

// ruleGroup holds the rules without a fast pattern that share a protocol
// and application.
//
// Most of them are header rules for one service (ET's SYN scans of port
// 22, 1433, 3389, 5900-5920, ...): a rule whose destination (else source)
// port list is short is indexed under each of its ports (a bidirectional
// "any <> ports" rule on both sides), so a packet walks only the rules of
// its own two ports plus the ones that take any port, still in load order.
type ruleGroup struct {
	ipProto uint8
	app     string
	rules   []*Rule
	ids     []int32

	anyPort      []int32 // indexes in rules of the rules not indexed by a port
	dstBits      *[1024]uint64
	srcBits      *[1024]uint64 // ports with indexed rules; nil: none
	byDst, bySrc map[uint16][]int32
}

// groupPortMax is the most ports a rule is indexed under.
const groupPortMax = 256

// fewPorts returns the ports of ps when they are a short positive list.
func fewPorts(ps *portSet) []uint16 {
	if ps.any || len(ps.pos) == 0 {
		return nil
	}
	n := 0
	for _, r := range ps.pos {
		n += int(r.hi) - int(r.lo) + 1
	}
	if n > groupPortMax {
		return nil
	}
	var out []uint16
	for _, r := range ps.pos {
		for p := int(r.lo); p <= int(r.hi); p++ {
			if ps.match(uint16(p)) {
				out = append(out, uint16(p))
			}
		}
	}
	return out
}

// index builds the group's port index.
func (g *ruleGroup) index() {
	put := func(bits **[1024]uint64, by *map[uint16][]int32, ports []uint16, i int32) {
		if *bits == nil {
			*bits, *by = new([1024]uint64), map[uint16][]int32{}
		}
		for _, p := range ports {
			if l := (*by)[p]; len(l) == 0 || l[len(l)-1] != i {
				(*by)[p] = append(l, i)
			}
			(*bits)[p>>6] |= 1 << (p & 63)
		}
	}
	for i, r := range g.rules {
		if !r.bidir {
			if ports := fewPorts(&r.dp); ports != nil {
				put(&g.dstBits, &g.byDst, ports, int32(i))
				continue
			}
			if ports := fewPorts(&r.sp); ports != nil {
				put(&g.srcBits, &g.bySrc, ports, int32(i))
				continue
			}
		} else if r.sp.any {
			// "any <> 179": port 179 on either side.
			if ports := fewPorts(&r.dp); ports != nil {
				put(&g.dstBits, &g.byDst, ports, int32(i))
				put(&g.srcBits, &g.bySrc, ports, int32(i))
				continue
			}
		}
		g.anyPort = append(g.anyPort, int32(i))
	}
}

// walk calls fn for the index of every rule of g the ports of in allow,
// in load order.
func (g *ruleGroup) walk(in *Input, fn func(i int32)) {
	a := g.anyPort
	var d, s []int32
	if g.dstBits != nil && g.dstBits[in.DstPort>>6]&(1<<(in.DstPort&63)) != 0 {
		d = g.byDst[in.DstPort]
	}
	if g.srcBits != nil && g.srcBits[in.SrcPort>>6]&(1<<(in.SrcPort&63)) != 0 {
		s = g.bySrc[in.SrcPort]
	}
	for len(a)+len(d)+len(s) > 0 {
		// The smallest head of the three sorted lists.
		i, from := int32(1<<30), 0
		if len(a) > 0 {
			i, from = a[0], 1
		}
		if len(d) > 0 && d[0] < i {
			i, from = d[0], 2
		}
		if len(s) > 0 && s[0] < i {
			i, from = s[0], 3
		}
		switch from {
		case 1:
			a = a[1:]
		case 2:
			d = d[1:]
		case 3:
			s = s[1:]
		}
		if len(s) > 0 && s[0] == i { // a bidirectional rule indexed on both sides
			s = s[1:]
		}
		fn(i)
	}
}

// Variants of a buffer's bucket: (application class * 3 + transport
// class) * 2 + direction.
const (
	vTCP      = 0 // + vToServer or vToClient
	vUDP      = 2
	vOther    = 4
	vToServer = 0
	vToClient = 1
	vApp      = 6 // stride of the application class
	nApps     = 8 // appClass
	nVariants = nApps * vApp
)

// appClass numbers the applications an Input can name: 0 none, then the
// ones the engine parses; every other name shares the last class.
func appClass(app string) int {
	switch app {
	case "":
		return 0
	case "http":
		return 1
	case "tls":
		return 2
	case "dns":
		return 3
	case "smtp":
		return 4
	case "pop3":
		return 5
	case "imap":
		return 6
	}
	return 7
}

// variant is the bucket variant in's packet selects.
func variant(in *Input) int {
	v := vOther
	switch in.Proto {
	case 6:
		v = vTCP
	case 17:
		v = vUDP
	}
	if !in.ToServer {
		v += vToClient
	}
	return v + appClass(in.App)*vApp
}

// inVariant reports whether r can match an Input of variant v.
func (r *Rule) inVariant(v int) bool {
	if r.app != "" && appClass(r.app) != v/vApp {
		return false
	}
	v %= vApp
	switch tr := v &^ 1; r.ipProto {
	case 0:
	case 6:
		if tr != vTCP {
			return false
		}
	case 17:
		if tr != vUDP {
			return false
		}
	default:
		if tr != vOther {
			return false
		}
	}
	if v&1 == vToServer {
		return !r.flowToClient
	}
	return !r.flowToServer
}

// prefilter is the Set's index for matching.
//
// Match reads the fields from once to ip on every call, then walks its
// variant's list in scan (the buffers that have a bucket there, a few
// lines): with all ET rules loaded, the Hyperscan scans push most of the
// index out of the caches between packets, and walking byBuf's column
// read a pointer from each of the 40 buffers' rows, a line apart.
type prefilter struct {
	once   sync.Once
	prof   atomic.Pointer[profile]
	groups []ruleGroup
	named  *portBits              // ports the bucket rules name in short lists (portsplit.go)
	scan   [nVariants][]bufBucket // per variant, its buckets in Buffer order
	ip     ipOnly                 // iponly.go: header-only rules keyed by a long address list

	byBuf [NumBuffers][nVariants]*bucket // nil: no rule; variants with the same rules share a bucket
	lit   *literal.Group

	maxRules int // largest bucket: candidate bitset size
	maxPats  int // most patterns in one automaton: generation stamps
	tables   int // bytes in automata
}

// bufBucket is a buffer and its bucket in a variant.
type bufBucket struct {
	buf Buffer
	b   *bucket
}

// scratch is one Match call's working memory; the Input keeps it between
// calls.
type scratch struct {
	cand   []uint64 // candidate rules of the bucket being matched
	lit    *literal.Scanner
	patGen []uint32 // per pattern: gen when last confirmed
	gen    uint32
}

func (p *prefilter) add(id int32, r *Rule) {
	if r.pre == nil {
		if p.ip.take(id, r) {
			return
		}
		for i := range p.groups {
			g := &p.groups[i]
			if g.ipProto == r.ipProto && g.app == r.app {
				g.rules, g.ids = append(g.rules, r), append(g.ids, id)
				return
			}
		}
		p.groups = append(p.groups, ruleGroup{ipProto: r.ipProto, app: r.app, rules: []*Rule{r}, ids: []int32{id}})
		return
	}
	for v := range nVariants {
		if !r.inVariant(v) {
			continue
		}
		b := p.byBuf[r.pre.buf][v]
		if b == nil {
			b = &bucket{}
			p.byBuf[r.pre.buf][v] = b
		}
		b.rules, b.ids = append(b.rules, r), append(b.ids, id)
	}
}

// compile builds the automata once every rule is added.
func (p *prefilter) compile() {
	p.once.Do(func() {
		p.ip.compile()
		for i := range p.groups {
			p.groups[i].index()
		}
		var all []*Rule
		seen := map[*bucket]bool{}
		for i := range p.byBuf {
			for _, b := range p.byBuf[i] {
				if b != nil && !seen[b] {
					seen[b] = true
					all = append(all, b.rules...)
				}
			}
		}
		p.named = namedPorts(all)
		type job struct {
			b   *bucket
			buf Buffer
		}
		var jobs []job
		for i := range p.byBuf {
			vs := &p.byBuf[i]
			for v, b := range vs {
				if b == nil {
					continue
				}
				shared := false
				for w := range v { // an earlier variant with the same rules
					if o := vs[w]; o != nil && o != b && sameRules(o.ids, b.ids) {
						vs[v], shared = o, true
						break
					}
				}
				if shared {
					continue
				}
				p.maxRules = max(p.maxRules, len(b.rules))
				if len(b.rules) < acMinRules {
					continue
				}
				if p.lit == nil && useLiteral {
					p.lit = literal.NewGroup()
				}
				jobs = append(jobs, job{b, Buffer(i)})
			}
			if !usePortSplit {
				continue
			}
			for v, b := range vs { // sub-buckets by port, per direction
				if b == nil || b.split[v%2] != nil || len(b.rules) < splitMinRules {
					continue
				}
				sp := b.splitByPort(v%2, p.named)
				if sp == nil {
					continue
				}
				for c, sub := range sp.sub {
					if sub != nil && len(sub.rules) >= acMinRules && !slices.Contains(sp.sub[:c], sub) {
						jobs = append(jobs, job{sub, Buffer(i)})
					}
				}
				b.split[v%2] = sp
			}
		}
		// Hyperscan and the automata compile each bucket on its own: one
		// goroutine per core, the biggest buckets first.
		slices.SortStableFunc(jobs, func(x, y job) int { return len(y.b.rules) - len(x.b.rules) })
		next := atomic.Int32{}
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(jobs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if k >= len(jobs) {
						return
					}
					jobs[k].b.compile(p.lit, shortBuffer(jobs[k].buf))
				}
			}()
		}
		wg.Wait()
		for v := range p.scan {
			for bi := range p.byBuf {
				if b := p.byBuf[bi][v]; b != nil {
					p.scan[v] = append(p.scan[v], bufBucket{Buffer(bi), b})
				}
			}
		}
		for _, j := range jobs {
			b := j.b
			p.maxRules = max(p.maxRules, len(b.rules))
			p.maxPats = max(p.maxPats, b.npats)
			p.tables += 4*len(b.patRule) + 4*len(b.patAt)
			if b.lit != nil {
				p.tables += b.lit.Size()
			}
			if b.ac != nil {
				p.tables += b.ac.size()
			}
		}
	})
}

// usePortSplit turns the port groups off, to measure them against whole
// buckets.
var usePortSplit = true

func sameRules(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// patterns returns b's distinct fast patterns in first-use order and, per
// pattern, the rules (bucket indexes) that have it.
func (b *bucket) patterns() ([]acPattern, [][]int32) {
	type key struct {
		pat    string
		nocase bool
	}
	ids := make(map[key]int32)
	var pats []acPattern
	var lists [][]int32
	for i, r := range b.rules {
		pat, nocase := r.fastPattern()
		k := key{string(pat), nocase}
		id, ok := ids[k]
		if !ok {
			id = int32(len(pats))
			ids[k] = id
			pats = append(pats, acPattern{pat: pat, nocase: nocase})
			lists = append(lists, nil)
		}
		lists[id] = append(lists[id], int32(i))
	}
	return pats, lists
}

func (b *bucket) compile(g *literal.Group, short bool) {
	pats, lists := b.patterns()
	b.npats = len(pats)
	if g != nil {
		var lp []literal.Pattern
		var fixed []anchoredPat
		for i, p := range pats {
			w := b.runWindow(p, int32(i), lists[i]) // where its rules can have it
			if w.hi >= 0 && w.hi-w.lo == len(p.pat) {
				fixed = append(fixed, anchoredPat{pat: p, id: int32(i), off: w.lo})
				continue
			}
			lit := trimRun(p.pat)
			if len(lit) == 1 {
				b.runs = append(b.runs, w)
				continue
			}
			lp, b.litPat = append(lp, literal.Pattern{Bytes: lit, Nocase: p.nocase}), append(b.litPat, int32(i))
		}
		if len(lp) > 0 {
			db, err := literalCompile(g, lp)
			if err == nil {
				b.lit = db
			} else {
				literalErrors.Add(1)
			}
		}
		if b.lit == nil {
			b.runs, b.litPat = nil, nil
		} else {
			b.anch = buildAnchored(fixed)
		}
	}
	if b.lit == nil || short {
		b.ac = buildAutomaton(pats)
	}
	b.patAt = make([]int32, 0, len(lists)+1)
	for _, l := range lists {
		b.patAt = append(b.patAt, int32(len(b.patRule)))
		b.patRule = append(b.patRule, l...)
	}
	b.patAt = append(b.patAt, int32(len(b.patRule)))
}

// scratchFor returns in's scratch, grown to fit p. It allocates only on
// an Input's first Match and when a bigger Set is matched.
func (in *Input) scratchFor(p *prefilter) *scratch {
	sc := in.scratch
	words := (p.maxRules + 63) / 64
	if sc == nil || len(sc.cand) < words || len(sc.patGen) < p.maxPats {
		if sc != nil {
			words = max(words, len(sc.cand))
		}
		sc = &scratch{cand: make([]uint64, words), patGen: make([]uint32, p.maxPats)}
		in.scratch = sc
	}
	return sc
}

// match appends the matching rules of s to out: first the groups of rules
// without a fast pattern that in's protocol and application can match, then
// per present buffer (in Buffer order) the bucket's matches, each in load
// order.
func (s *Set) prefilterMatch(in *Input, out []*Rule) []*Rule {
	p := &s.pf
	p.compile()
	prof := p.prof.Load()
	for gi := range p.groups {
		g := &p.groups[gi]
		if g.ipProto != 0 && g.ipProto != in.Proto && !(g.ipProto == 1 && in.Proto == 58) {
			continue
		}
		if g.app != "" && g.app != in.App {
			continue
		}
		g.walk(in, func(i int32) {
			r := g.rules[i]
			if prof != nil {
				if prof.verify(g.ids[i], r, in) {
					out = append(out, r)
				}
			} else if r.quick(in) && r.full(in) {
				out = append(out, r)
			}
		})
	}
	out = p.ip.match(in, prof, out)
	var sc *scratch
	v := variant(in)
	for _, e := range p.scan[v] {
		data := in.Buf[e.buf]
		if data == nil {
			continue
		}
		b := e.b.pick(in, p.named)
		if b.ac == nil && b.lit == nil {
			for i, r := range b.rules {
				if !r.quick(in) {
					continue
				}
				pat, nocase := r.fastPattern()
				if find(data, pat, nocase, 0, len(data)) < 0 {
					continue
				}
				if prof != nil {
					if prof.verify(b.ids[i], r, in) {
						out = append(out, r)
					}
				} else if r.full(in) {
					out = append(out, r)
				}
			}
			continue
		}
		if sc == nil {
			sc = in.scratchFor(p)
		}
		out = b.match(in, data, sc, prof, out)
	}
	return out
}

// laneMin is the shortest buffer scanned as four interleaved lanes.
const laneMin = 256

// useLanes is false only in tests comparing with the one-lane scan.
var useLanes = true

// useLiteral: buckets scan with Hyperscan (package literal) rather than
// the automaton; false only in tests comparing the two.
var useLiteral = true

// litMin is the shortest buffer a bucket with both scans through
// Hyperscan: a scan costs about 75 ns before its first byte (the cgo call
// and Hyperscan's set-up), then 0.3 ns a byte; the automaton costs 2-4 ns
// a byte from the first.
const litMin = 32

// shortBuffer reports whether buffer b is most often shorter than litMin
// (a method, a host name, a status code, a DNS name): its buckets keep an
// automaton beside their Hyperscan database. The buffers that carry
// payload, bodies and header blocks scan through Hyperscan only, which
// spares the biggest automata (3-4 MB each).
func shortBuffer(b Buffer) bool {
	switch b {
	case BufPayload, BufHTTPURI, BufHTTPRawURI, BufHTTPHeader, BufHTTPRawHeader, BufHTTPCookie, BufHTTPUserAgent,
		BufHTTPRequestBody, BufHTTPResponseBody, BufHTTPHeaderNames, BufHTTPRequestLine, BufHTTPStart,
		BufHTTPRequestHeader, BufHTTPResponseHeader, BufJA3String, BufHTTPReferer:
		return false
	}
	return true
}

// literalErrors counts Hyperscan compile and scan failures (each falls
// back to a slower exact path).
var literalErrors atomic.Uint64

// literalCompile and literalScan are literal's Compile and Scan; tests
// make them fail.
var (
	literalCompile = (*literal.Group).Compile
	literalScan    = (*literal.Scanner).Scan
)

// PrefilterErrors returns how many Hyperscan compiles and scans failed in
// this process (a bucket then falls back to its automaton, a scan to
// verifying every rule of the bucket: no match is lost, time is). Not 0:
// the box is short of memory.
func PrefilterErrors() uint64 { return literalErrors.Load() }

// match runs data through b's automaton and verifies the candidates.
//
// The scan is bound by the latency of one dependent table load per byte.
// A buffer of laneMin bytes or more is cut in four lanes scanned in one
// loop, so four loads are in flight at once. Each lane after the first
// starts depth-1 bytes early from the root: every trie state is at most
// depth bytes deep, so from its own first byte on a lane is in the same
// state as a scan from the buffer's start. A pattern seen by two lanes is
// confirmed once (the generation stamps); candidates are verified in load
// order whatever the lane, so the result does not depend on the lanes.
func (b *bucket) match(in *Input, data []byte, sc *scratch, prof *profile, out []*Rule) []*Rule {
	sc.gen++
	if sc.gen == 0 { // wrapped: old stamps could collide
		clear(sc.patGen)
		sc.gen = 1
	}
	if b.lit != nil && (b.ac == nil || len(data) >= litMin) {
		return b.verify(in, sc, prof, b.litHits(data, sc), out)
	}
	any := false
	a := b.ac
	class, outFrom := &a.class, a.outFrom
	// The table is closed (every entry a row offset, every class below
	// the width), so no index leaves it: the loads skip Go's bounds check,
	// which sits on the scan's critical path.
	t := unsafe.Pointer(unsafe.SliceData(a.trans))
	next := func(s int32, c byte) int32 {
		return *(*int32)(unsafe.Add(t, uintptr(s+int32(class[c]))*4))
	}
	if n := len(data); n >= laneMin && useLanes {
		q, pre := n/4, a.depth-1
		// Lane k covers [k*q-pre, (k+1)*q) (the last to n; lane 0 from
		// 0): lanes 1..3 roll in over their first pre bytes, then all
		// four step together over q bytes each.
		d1, d2, d3 := data[q-pre:2*q], data[2*q-pre:3*q], data[3*q-pre:]
		var s0, s1, s2, s3 int32
		for i := range pre {
			s1 = next(s1, d1[i])
			s2 = next(s2, d2[i])
			s3 = next(s3, d3[i])
		}
		d0 := data[:q]
		e1, e2, e3 := d1[pre:][:len(d0)], d2[pre:][:len(d0)], d3[pre:][:len(d0)]
		for j := range d0 {
			s0 = next(s0, d0[j])
			s1 = next(s1, e1[j])
			s2 = next(s2, e2[j])
			s3 = next(s3, e3[j])
			if max(max(s0, s1), max(s2, s3)) >= outFrom {
				if s0 >= outFrom {
					any = b.hits(data, j, s0, sc) || any
				}
				if s1 >= outFrom {
					any = b.hits(data, q+j, s1, sc) || any
				}
				if s2 >= outFrom {
					any = b.hits(data, 2*q+j, s2, sc) || any
				}
				if s3 >= outFrom {
					any = b.hits(data, 3*q+j, s3, sc) || any
				}
			}
		}
		// The last lane is longer by n%4 bytes.
		for i := 4 * q; i < n; i++ {
			s3 = next(s3, data[i])
			if s3 >= outFrom {
				any = b.hits(data, i, s3, sc) || any
			}
		}
	} else {
		s := int32(0)
		for i, c := range data {
			s = next(s, c)
			if s >= outFrom {
				any = b.hits(data, i, s, sc) || any
			}
		}
	}
	return b.verify(in, sc, prof, any, out)
}

// litHits marks the rules of the patterns Hyperscan finds in data. If the
// scan fails (no memory for scratch space), every rule of the bucket is a
// candidate: slower, never a missed match.
func (b *bucket) litHits(data []byte, sc *scratch) bool {
	if sc.lit == nil {
		sc.lit = literal.NewScanner()
	}
	ids, err := literalScan(sc.lit, b.lit, data)
	if err != nil {
		literalErrors.Add(1)
		for ri := range b.rules {
			sc.cand[ri>>6] |= 1 << (ri & 63)
		}
		return true
	}
	for _, id := range ids {
		b.mark(b.litPat[id], sc)
	}
	any := len(ids) > 0
	if b.anch != nil && b.anch.hits(b, data, sc) {
		any = true
	}
	for i := range b.runs {
		rs := &b.runs[i]
		hi := len(data)
		if rs.hi >= 0 {
			hi = min(hi, rs.hi)
		}
		if hasRun(data, rs.pat.pat, rs.pat.nocase, rs.lo, hi) {
			b.mark(rs.id, sc)
			any = true
		}
	}
	return any
}

// runWindow returns the scan for pattern id, p, of the bucket's rules
// rules: where an absolute content (offset, depth, startswith) puts it in
// each of them, joined; ET's one-byte patterns mostly sit at depth 1.
func (b *bucket) runWindow(p acPattern, id int32, rules []int32) runScan {
	rs := runScan{pat: p, id: id, lo: math.MaxInt}
	for _, ri := range rules {
		c := b.rules[ri].pre
		lo, hi := 0, -1
		if !c.relative && c.offVar == 0 && c.depthVar == 0 {
			lo = c.offset
			if c.depth > 0 {
				hi = c.offset + c.depth
			}
		}
		rs.lo = min(rs.lo, lo)
		if hi < 0 || rs.hi < 0 {
			rs.hi = -1
		} else {
			rs.hi = max(rs.hi, hi)
		}
	}
	return rs
}

// hasRun reports whether data[lo:hi] holds run, n bytes c in a row
// (folded when nocase: c is then lowercase). It jumps from one c to the
// next with bytes.IndexByte (memchr speed where c is absent, the common
// case: a body without "&" is passed over in one sweep) and measures the
// run each starts, so a long run ("|00|" x 20, 44 "B"s) costs one step
// per occurrence of its byte instead of bytes.Index's comparison of the
// whole pattern there. A caseless letter, rare, reads every byte.
func hasRun(data, run []byte, nocase bool, lo, hi int) bool {
	c, n := run[0], len(run)
	if lo < 0 || hi > len(data) || hi-lo < n {
		return false
	}
	d := data[:hi]
	if nocase && 'a' <= c && c <= 'z' {
		k := 0
		for _, x := range d[lo:] {
			if fold(x) != c {
				k = 0
			} else if k++; k >= n {
				return true
			}
		}
		return false
	}
	for p := lo; p <= len(d)-n; {
		i := bytes.IndexByte(d[p:], c)
		if i < 0 {
			return false
		}
		q := p + i
		r := q + 1
		for r < len(d) && d[r] == c {
			r++
		}
		if r-q >= n {
			return true
		}
		p = r + 1 // d[r] is not c
	}
	return false
}

// trimRun returns the part of pattern pat the Hyperscan database looks
// for: pat cut after the first byte of its trailing run, if any ("x|00 00
// 00|" becomes "x|00|"). Hyperscan's literal matcher confirms, at every
// position of the data, the literals whose last bytes end there; a literal
// ending in a run of one byte value is confirmed at every byte of a run of
// that value, and runs of zeros (and 0xff) fill binary traffic: ET's
// payload database then costs 20-30 ns a byte instead of 0.5. A prefix
// occurs wherever the pattern does, and verification checks the whole
// content, so nothing is missed. A pattern of one repeated byte ("|00
// 00|", "a") comes back as one byte: it stays out of the database, and
// each scan looks for it with bytes.Index (memchr speed) where its rules
// can have it (runWindow).
func trimRun(pat []byte) []byte {
	n := len(pat)
	for n >= 2 && pat[n-1] == pat[n-2] {
		n--
	}
	return pat[:n]
}

// mark marks the rules of pattern id as candidates.
func (b *bucket) mark(id int32, sc *scratch) {
	for _, ri := range b.patRule[b.patAt[id]:b.patAt[id+1]] {
		sc.cand[ri>>6] |= 1 << (ri & 63)
	}
}

// verify checks the candidates marked in sc in load order, appends the
// matches to out and clears the marks.
func (b *bucket) verify(in *Input, sc *scratch, prof *profile, any bool, out []*Rule) []*Rule {
	if !any {
		return out
	}
	words := sc.cand[:(len(b.rules)+63)/64]
	for w := range words {
		for set := words[w]; set != 0; set &= set - 1 {
			i := w<<6 + bits.TrailingZeros64(set)
			r := b.rules[i]
			if prof != nil {
				if prof.verify(b.ids[i], r, in) {
					out = append(out, r)
				}
			} else if r.quick(in) && r.full(in) {
				out = append(out, r)
			}
		}
		words[w] = 0
	}
	return out
}

// hits confirms the patterns of output state s (row offset) ending at
// data[i] and marks their rules as candidates; it reports whether any was
// confirmed.
func (b *bucket) hits(data []byte, i int, s int32, sc *scratch) bool {
	a := b.ac
	k := (s - a.outFrom) / a.width
	gen, any := sc.gen, false
	for _, id := range a.outs[a.outAt[k]:a.outAt[k+1]] {
		if sc.patGen[id] == gen {
			continue
		}
		pt := &a.pats[id]
		if pt.quickReject(data, i+1) || !pt.confirm(data, i+1-pt.pre) {
			continue
		}
		sc.patGen[id] = gen
		b.mark(id, sc)
		any = true
	}
	return any
}

// fastPattern returns the bytes the prefilter looks for and whether they
// are caseless.
func (r *Rule) fastPattern() ([]byte, bool) {
	c := r.pre
	if c.fastLen > 0 {
		return c.pat[c.fastOff : c.fastOff+c.fastLen], c.nocase
	}
	return c.pat, c.nocase
}

// selectFastPattern sets r.pre as Suricata chooses it: the positive
// content marked fast_pattern, else among the positive contents of the
// highest-priority buffers (every application buffer before the payload,
// http_method, http_stat_code and http_stat_msg) the longest, then the most
// varied (patternStrength), then one of those three before the payload,
// then the first; nil when the rule has no positive content. A method
// ("GET") or a status code is thus the fast pattern only of rules with
// nothing else to look for: with it, every request verified those rules.
// It runs once the contents are final.
func (r *Rule) selectFastPattern() {
	r.pre = nil
	for i := range r.contents {
		if c := &r.contents[i]; c.fast && !c.negate {
			r.pre = c
			return
		}
	}
	lowPrio := func(b Buffer) bool {
		return b == BufPayload || b == BufHTTPMethod || b == BufHTTPStatCode || b == BufHTTPStatMsg
	}
	better := func(c, than *content) bool {
		if lc, lt := lowPrio(c.buf), lowPrio(than.buf); lc != lt {
			return lt
		}
		if len(c.pat) != len(than.pat) {
			return len(c.pat) > len(than.pat)
		}
		if sc, st := patternStrength(c.pat), patternStrength(than.pat); sc != st {
			return sc > st
		}
		return c.buf != BufPayload && than.buf == BufPayload
	}
	for i := range r.contents {
		c := &r.contents[i]
		if !c.negate && (r.pre == nil || better(c, r.pre)) {
			r.pre = c
		}
	}
}

// patternStrength is Suricata's score of how varied pat is: 3 for a new
// letter, 4 for a new printable byte, NUL, 0x01 or 0xff, 6 for any other
// new byte, 1 for a byte seen before.
func patternStrength(pat []byte) int {
	var seen [256]bool
	s := 0
	for _, c := range pat {
		switch {
		case seen[c]:
			s++
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			s += 3
		case ' ' <= c && c <= '~' || c == 0 || c == 1 || c == 0xff:
			s += 4
		default:
			s += 6
		}
		seen[c] = true
	}
	return s
}

// fastPatternOpt handles "fast_pattern", "fast_pattern:only" (legacy: the
// same as plain; the content is still verified, which is only redundant) and "fast_pattern:offset,length" (the prefilter uses
// that slice of the content).
func fastPatternOpt(p *ruleParser, v string) error {
	if err := needContent(p, "fast_pattern"); err != nil {
		return err
	}
	// Suricata refuses a second fast_pattern; the last one wins here, so
	// such a rule still loads.
	for i := range p.r.contents {
		p.r.contents[i].fast, p.r.contents[i].fastOff, p.r.contents[i].fastLen = false, 0, 0
	}
	c := &p.r.contents[len(p.r.contents)-1]
	v = strings.TrimSpace(v)
	switch {
	case v == "" || v == "only":
	default:
		o, l, ok := strings.Cut(v, ",")
		off, err1 := strconv.Atoi(strings.TrimSpace(o))
		n, err2 := strconv.Atoi(strings.TrimSpace(l))
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("%q is neither only nor offset,length", v)
		}
		if off < 0 || n <= 0 || off+n > len(c.pat) {
			return fmt.Errorf("chop %d,%d does not fit the %d-byte content", off, n, len(c.pat))
		}
		c.fastOff, c.fastLen = off, n
	}
	c.fast = true
	return nil
}
