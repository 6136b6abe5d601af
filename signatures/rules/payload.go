package rules

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/openutm/utm/signatures/pcre"
)

// Payload keywords and the per-buffer inspection lists.
//
// As in Suricata, each buffer has one ordered list of match elements
// (content, pcre, isdataat, byte_test, byte_jump, byte_extract, bsize),
// kept in rule order. Every element may count from the end of the previous
// match in the same list (relative); content and pcre set that position to
// their match end, byte_jump to its jump target, byte_extract to the end
// of the bytes it read; the others leave it. When the rest of a list fails
// after a content or pcre match and the next element depends on its end, a
// later occurrence is tried (bounded by backtrackBudget per list).
//
// byte_extract stores a value in a rule variable; later elements may use
// the variable's name for byte_test's value and offset, byte_jump's and
// isdataat's offset and content offset/depth/distance/within. Variables
// live in a fixed array on the stack of one rule's verification.

// maxVars is the most byte_extract variables one rule may define.
const maxVars = 8

// backtrackBudget bounds the later occurrences tried per list.
const backtrackBudget = 64

type elemKind uint8

const (
	eContent elemKind = iota
	ePcre
	eIsdataat
	eByteTest
	eByteJump
	eByteExtract
	eBsize
)

// elem is one match element of a buffer's list.
type elem struct {
	kind     elemKind
	buf      Buffer
	follow   bool // relative, no sticky buffer: inspects the previous content's or pcre's buffer
	relative bool
	negate   bool
	relNext  bool // a later element counts from this one's end: backtrack

	ci  int      // eContent: index into Rule.contents
	c   *content // eContent, set by buildLists
	re  regex    // ePcre (pcre.go)
	bop *byteOp  // byte_test, byte_jump, byte_extract

	n    int  // isdataat
	nVar int8 // isdataat: 0 n, else variable k-1
	rng  uintRange
}

// inspList is one buffer's elements.
type inspList struct {
	buf   Buffer
	elems []elem
}

// byteOp is byte_test, byte_jump or byte_extract.
type byteOp struct {
	nbytes  int
	offset  int
	offVar  int8
	little  bool
	base    int // 0: binary; 8, 10, 16: an ASCII number
	bitmask uint64
	shift   uint

	// byte_test
	op     string // "<", ">", "=", "<=", ">=", "&", "^"
	neg    bool
	value  uint64
	valVar int8

	// byte_jump, byte_extract
	multiplier    uint64
	align         uint64 // round the value up to a multiple (byte_jump align: 4)
	fromBeginning bool
	fromEnd       bool
	postOffset    int
	dst           int8 // byte_extract: the variable index
}

func init() {
	for k, f := range map[string]optionFunc{
		"isdataat":     isdataatOpt,
		"byte_test":    func(p *ruleParser, v string) error { return byteOpt(p, eByteTest, v) },
		"byte_jump":    func(p *ruleParser, v string) error { return byteOpt(p, eByteJump, v) },
		"byte_extract": func(p *ruleParser, v string) error { return byteOpt(p, eByteExtract, v) },
		"bsize":        bsizeOpt,
		"startswith":   startswithOpt,
		"endswith":     endswithOpt,
		"rawbytes":     func(p *ruleParser, v string) error { return nil }, // packet and stream are one payload here
	} {
		keywords[k] = f
	}
}

// operand parses a number or the name of a byte_extract variable defined
// earlier in the rule; vr is 0 for a number, else the variable index + 1.
func (p *ruleParser) operand(s string) (n int, vr int8, err error) {
	if x, err := strconv.ParseInt(s, 0, 64); err == nil {
		if x > 1<<30 || x < -(1<<30) {
			return 0, 0, fmt.Errorf("%s is out of range", s)
		}
		return int(x), 0, nil
	}
	if i := slices.Index(p.bvars, s); i >= 0 {
		return 0, int8(i + 1), nil
	}
	return 0, 0, fmt.Errorf("%q is neither a number nor a byte_extract variable defined before", s)
}

// addElem places e: an explicit buffer (pcre flag) wins, then the sticky
// buffer; a relative element without either follows the previous content
// or pcre (legacy modifiers may still move it); else the payload.
func (p *ruleParser) addElem(e elem, explicit bool, buf Buffer) {
	switch {
	case explicit:
		e.buf = buf
	case p.sticky != BufPayload:
		e.buf = p.sticky
	case e.relative:
		e.follow = true
	default:
		e.buf = BufPayload
	}
	if e.kind == ePcre {
		p.r.hasPcre = true
	}
	p.elems = append(p.elems, e)
}

func isdataatOpt(p *ruleParser, v string) error {
	f := splitArgs(v)
	e := elem{kind: eIsdataat}
	s := f[0]
	if strings.HasPrefix(s, "!") {
		e.negate, s = true, strings.TrimSpace(s[1:])
	}
	n, vr, err := p.operand(s)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%d must not be negative", n)
	}
	e.n, e.nVar = n, vr
	for _, a := range f[1:] {
		switch a {
		case "relative":
			e.relative = true
		case "rawbytes":
		default:
			return fmt.Errorf("unknown option %q (want relative, rawbytes)", a)
		}
	}
	p.addElem(e, false, 0)
	return nil
}

func bsizeOpt(p *ruleParser, v string) error {
	rg, err := parseRange(v, 1<<32)
	if err != nil {
		return err
	}
	p.addElem(elem{kind: eBsize, rng: rg}, false, 0)
	return nil
}

func startswithOpt(p *ruleParser, v string) error {
	if err := needContent(p, "startswith"); err != nil {
		return err
	}
	c := &p.r.contents[len(p.r.contents)-1]
	if c.relative || c.offset != 0 || c.depth != 0 || c.offVar != 0 || c.depthVar != 0 {
		return fmt.Errorf("cannot be combined with offset, depth, distance or within")
	}
	c.startsWith, c.depth = true, len(c.pat)
	return nil
}

func endswithOpt(p *ruleParser, v string) error {
	if err := needContent(p, "endswith"); err != nil {
		return err
	}
	p.r.contents[len(p.r.contents)-1].endsWith = true
	return nil
}

func splitArgs(v string) []string {
	f := strings.Split(v, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// byteOpt parses byte_test, byte_jump and byte_extract:
//
// A byte_test of 0 bytes with string reads the whole number at offset.
//
//	byte_test:bytes,[!]op,value,offset[,relative][,big|little|dce][,string[,hex|dec|oct]][,bitmask m]
//	byte_jump:bytes,offset[,relative][,multiplier n][,big|little|dce][,string[,base]][,align][,from_beginning|from_end][,post_offset n][,bitmask m]
//	byte_extract:bytes,offset,name[,relative][,multiplier n][,big|little|dce][,string[,base]][,align n][,bitmask m]
func byteOpt(p *ruleParser, kind elemKind, v string) error {
	f := splitArgs(v)
	need := map[elemKind]int{eByteTest: 4, eByteJump: 2, eByteExtract: 3}[kind]
	if len(f) < need {
		return fmt.Errorf("%q needs at least %d values", v, need)
	}
	b := &byteOp{multiplier: 1}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 || n == 0 && kind != eByteTest {
		return fmt.Errorf("byte count %q is not a positive number", f[0])
	}
	b.nbytes = n
	var offArg string
	rest := f[need:]
	switch kind {
	case eByteTest:
		op := f[1]
		if strings.HasPrefix(op, "!") {
			b.neg, op = true, op[1:]
		}
		switch op {
		case "":
			op = "=" // "!" alone: not equal
		case "<", ">", "=", "<=", ">=", "&", "^":
		default:
			return fmt.Errorf("unknown operator %q (want <, >, =, <=, >=, &, ^, optionally after !)", f[1])
		}
		b.op = op
		if x, err := strconv.ParseUint(f[2], 0, 64); err == nil {
			b.value = x
		} else if i := slices.Index(p.bvars, f[2]); i >= 0 {
			b.valVar = int8(i + 1)
		} else {
			return fmt.Errorf("value %q is neither a number nor a byte_extract variable defined before", f[2])
		}
		offArg = f[3]
	case eByteJump:
		offArg = f[1]
	case eByteExtract:
		offArg = f[1]
		name := f[2]
		if name == "" || name[0] >= '0' && name[0] <= '9' || strings.ContainsAny(name, " \"") {
			return fmt.Errorf("bad variable name %q", name)
		}
		if slices.Contains(p.bvars, name) {
			return fmt.Errorf("variable %q is already defined", name)
		}
		if len(p.bvars) >= maxVars {
			return fmt.Errorf("more than %d byte_extract variables in one rule", maxVars)
		}
		p.bvars = append(p.bvars, name)
		b.dst = int8(len(p.bvars) - 1)
	}
	if b.offset, b.offVar, err = p.operand(offArg); err != nil {
		return fmt.Errorf("offset: %v", err)
	}
	e := elem{kind: kind, bop: b}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		key, val, hasVal := strings.Cut(a, " ")
		val = strings.TrimSpace(val)
		switch key {
		case "relative":
			e.relative = true
		case "big":
		case "little", "dce": // dce: the DCE/RPC stub's byte order; little on the hosts that speak it
			b.little = true
		case "string":
			b.base = 10
			if i+1 < len(rest) {
				switch rest[i+1] {
				case "hex":
					b.base, i = 16, i+1
				case "dec":
					b.base, i = 10, i+1
				case "oct":
					b.base, i = 8, i+1
				}
			}
		case "hex", "dec", "oct":
			return fmt.Errorf("%s must follow string", key)
		case "bitmask":
			m, err := strconv.ParseUint(val, 0, 64)
			if !hasVal || err != nil || m == 0 {
				return fmt.Errorf("bitmask %q is not a non-zero number", val)
			}
			b.bitmask, b.shift = m, uint(bits.TrailingZeros64(m))
		case "multiplier":
			m, err := strconv.ParseUint(val, 0, 32)
			if kind == eByteTest || !hasVal || err != nil || m == 0 {
				return fmt.Errorf("bad multiplier %q", a)
			}
			b.multiplier = m
		case "align":
			switch {
			case kind == eByteJump && !hasVal:
				b.align = 4
			case kind == eByteExtract && (val == "2" || val == "4"):
				b.align = uint64(val[0] - '0')
			default:
				return fmt.Errorf("bad align %q", a)
			}
		case "from_beginning", "from_end":
			if kind != eByteJump {
				return fmt.Errorf("%s is for byte_jump", key)
			}
			b.fromBeginning, b.fromEnd = key == "from_beginning", key == "from_end"
		case "post_offset":
			x, err := strconv.Atoi(val)
			if kind != eByteJump || !hasVal || err != nil {
				return fmt.Errorf("bad post_offset %q", a)
			}
			b.postOffset = x
		default:
			return fmt.Errorf("unknown option %q", a)
		}
	}
	if b.nbytes == 0 && b.base == 0 {
		return fmt.Errorf("byte count 0 (the whole number) needs string")
	}
	if max := map[bool]int{false: 8, true: 20}[b.base != 0]; b.nbytes > max {
		return fmt.Errorf("%d bytes is more than %d", b.nbytes, max)
	}
	p.addElem(e, false, 0)
	return nil
}

// buildLists resolves the elements' buffers and groups them into one list
// per buffer, each in rule order. It runs once the options are read.
func (p *ruleParser) buildLists() error {
	r := p.r
	last := BufPayload // buffer of the previous content or pcre
	for i := range p.elems {
		e := &p.elems[i]
		switch e.kind {
		case eContent:
			e.c = &r.contents[e.ci]
			e.buf, e.relative, e.negate = e.c.buf, e.c.relative, e.c.negate
		default:
			if e.follow {
				e.buf = last
			}
		}
		if e.kind == eContent || e.kind == ePcre {
			last = e.buf
		}
		if e.buf != BufPayload && r.app == "" {
			switch e.buf { // a buffer implies its protocol
			case BufDNSQuery:
				r.app = "dns"
			case BufTLSSNI, BufTLSCertSubject, BufTLSCertIssuer, BufTLSCertSerial,
				BufTLSCertFingerprint, BufJA3Hash, BufJA3String, BufJA3SHash, BufJA4Hash:
				r.app = "tls"
			default:
				r.app = "http"
			}
		}
	}
	r.nvars = len(p.bvars)
	r.lists = r.lists[:0]
	for b := Buffer(0); b < NumBuffers; b++ {
		var es []elem
		for _, e := range p.elems {
			if e.buf == b {
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			continue
		}
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				if es[j].relative {
					es[i].relNext = true
					break
				}
				if es[j].setsOffset() {
					break
				}
			}
		}
		r.lists = append(r.lists, inspList{buf: b, elems: es})
	}
	// Every list must match, each on its own buffer, so their order is
	// free: the ones without a pcre go first, as a failed content there
	// spares the regex (ET's ".exe" URI rules fail on a header content
	// after their URI pcre, 0.3-0.9 us each). byte_extract variables may
	// cross lists: those rules keep the buffer order.
	if r.nvars == 0 {
		slices.SortStableFunc(r.lists, func(a, b inspList) int { return cmp.Compare(a.pcres(), b.pcres()) })
	}
	return nil
}

// pcres returns how many regexes l runs.
func (l *inspList) pcres() int {
	n := 0
	for i := range l.elems {
		if l.elems[i].kind == ePcre {
			n++
		}
	}
	return n
}

// setsOffset reports whether e moves the list's position.
func (e *elem) setsOffset() bool {
	switch e.kind {
	case eContent, ePcre:
		return !e.negate
	case eByteJump, eByteExtract:
		return true
	}
	return false
}

// inspector runs one list over one buffer.
type inspector struct {
	data   []byte
	budget int
	// failed: a content failed whatever the earlier elements matched;
	// failedRel: whatever later occurrences of the earlier contents are
	// tried (see content). Trying them is pointless.
	failed, failedRel bool
	noVars            bool            // the rule has no byte_extract: what follows an element depends on its end alone
	vars              [maxVars]uint64 // byte_extract values, shared by the rule's lists
	rx                *pcre.Matcher   // the Input's PCRE2 match state (nil: pooled)
}

// val returns the constant n or variable vr-1, clamped to a sane offset.
func (m *inspector) val(n int, vr int8) int {
	if vr == 0 {
		return n
	}
	return int(min(m.vars[vr-1], 1<<30))
}

// run matches es from position prev (the end of the previous match).
func (m *inspector) run(es []elem, prev int) bool {
	if len(es) == 0 {
		return true
	}
	e := &es[0]
	data := m.data
	switch e.kind {
	case eContent:
		return m.content(e, es, prev)
	case ePcre:
		return m.pcre(e, es, prev)
	case eIsdataat:
		n := m.val(e.n, e.nVar)
		var ok bool
		if e.relative {
			ok = prev+n <= len(data)
		} else {
			ok = n < len(data)
		}
		return ok != e.negate && m.run(es[1:], prev)
	case eBsize:
		return e.rng.match(uint64(len(data))) && m.run(es[1:], prev)
	case eByteTest:
		b := e.bop
		pos := m.val(b.offset, b.offVar)
		if e.relative {
			pos += prev
		}
		x, ok := b.extract(data, pos)
		if !ok {
			return false
		}
		y := b.value
		if b.valVar != 0 {
			y = m.vars[b.valVar-1]
		}
		var t bool
		switch b.op {
		case "<":
			t = x < y
		case ">":
			t = x > y
		case "=":
			t = x == y
		case "<=":
			t = x <= y
		case ">=":
			t = x >= y
		case "&":
			t = x&y != 0
		case "^":
			t = x^y != 0
		}
		return t != b.neg && m.run(es[1:], prev)
	case eByteJump:
		b := e.bop
		pos := m.val(b.offset, b.offVar)
		if e.relative {
			pos += prev
		}
		x, ok := b.extract(data, pos)
		if !ok || x > 1<<30 {
			return false
		}
		x *= b.multiplier
		if b.align > 0 && x%b.align != 0 {
			x += b.align - x%b.align
		}
		var j int
		switch {
		case b.fromBeginning:
			j = int(x)
		case b.fromEnd:
			j = len(data) + int(x)
		default:
			j = pos + b.nbytes + int(x)
		}
		j += b.postOffset
		if j < 0 {
			j = 0
		}
		if j > len(data) {
			return false
		}
		if m.run(es[1:], j) {
			return true
		}
		m.failedRel = false // an earlier element's later match may jump shorter
		return false
	case eByteExtract:
		b := e.bop
		pos := m.val(b.offset, b.offVar)
		if e.relative {
			pos += prev
		}
		x, ok := b.extract(data, pos)
		if !ok {
			return false
		}
		x *= b.multiplier
		if b.align > 0 && x%b.align != 0 {
			x += b.align - x%b.align
		}
		m.vars[b.dst] = x
		return m.run(es[1:], pos+b.nbytes)
	}
	return false
}

// content matches a content element, trying later occurrences when the
// rest of the list fails and depends on this match's end.
func (m *inspector) content(e *elem, es []elem, prev int) bool {
	c, data := e.c, m.data
	start, end := 0, len(data)
	if c.relative {
		d := m.val(c.distance, c.distVar)
		start = prev + d
		if c.within > 0 || c.withinVar != 0 {
			end = min(end, prev+d+m.val(c.within, c.withinVar))
		}
	} else {
		start = m.val(c.offset, c.offVar)
		if c.depth > 0 || c.depthVar != 0 {
			end = min(end, start+m.val(c.depth, c.depthVar))
		}
	}
	start = max(start, 0)
	if c.endsWith {
		// The only occurrence that counts ends the buffer.
		at := len(data) - len(c.pat)
		found := at >= start && len(data) <= end && find(data, c.pat, c.nocase, at, len(data)) == at
		if c.negate {
			return !found && m.run(es[1:], prev)
		}
		return found && m.run(es[1:], len(data))
	}
	if c.negate {
		if start <= end && find(data, c.pat, c.nocase, start, end) >= 0 {
			return false
		}
		return m.run(es[1:], prev)
	}
	// When a content is not found, retrying the earlier elements at their
	// later occurrences cannot help if it does not depend on them (not
	// relative, no variable in its window: Suricata stops there too). Nor
	// if it is relative without within and the rule has no byte_extract:
	// a later start only searches a suffix of its window, and the earlier
	// contents already tried, in order, every occurrence that could give
	// it an earlier start, with the same outcome (what follows an element
	// depends on its end alone; with variables it also depends on where
	// an earlier byte_extract read). A pcre's or byte_jump's later match
	// may end earlier: they clear failedRel and retry.
	abs := useFailed && !c.relative && c.offVar == 0 && c.depthVar == 0
	rel := useFailed && m.noVars && c.relative && c.within == 0
	for first := true; ; first = false {
		i := -1
		if start+len(c.pat) <= end {
			i = find(data, c.pat, c.nocase, start, end)
		}
		if i < 0 {
			// Only the first search counts: once this content's own
			// later occurrences are used up, what failed after them may
			// depend on the earlier elements (a byte_extract value).
			// Without variables, an absolute content's occurrences and
			// what follows each do not depend on them.
			if first {
				m.failed = m.failed || abs
				m.failedRel = m.failedRel || rel
			} else {
				m.failed = m.failed || abs && m.noVars
			}
			return false
		}
		if m.run(es[1:], i+len(c.pat)) {
			return true
		}
		m.budget--
		if !e.relNext {
			m.failed = m.failed || m.restFixed()
			return false
		}
		if m.budget <= 0 || m.failed || m.failedRel {
			// failedRel: no later occurrence of this one helps either.
			m.failed = m.failed || m.failedRel && abs && m.noVars
			return false
		}
		start = i + 1
	}
}

// useFailed is false only in tests comparing with retries that never stop
// early.
var useFailed = true

// restFixed reports whether a failure of the rest of the list after an
// element whose position nothing later is relative to (!relNext) is
// final: without byte_extract variables, that rest reads only absolute
// positions, so no later occurrence of an earlier element can change it.
// ET's certificate rules retry a one-byte "|16|" at every occurrence
// ahead of an absolute fast pattern: once the chain after it has failed,
// they stop.
func (m *inspector) restFixed() bool { return useFailed && m.noVars }

// pcre matches a pcre element. A relative pcre's subject starts at prev
// (so ^ anchors there, as in Suricata); a later match is tried when the
// rest fails and depends on this match's end.
func (m *inspector) pcre(e *elem, es []elem, prev int) bool {
	base := 0
	if e.relative {
		base = prev
	}
	if base > len(m.data) {
		return e.negate && m.run(es[1:], prev)
	}
	sub := m.data[base:]
	if !e.relNext {
		// Nothing after depends on where it matched.
		if e.re.Has(m.rx, sub, 0) == e.negate {
			m.failed = m.failed || !e.relative && m.restFixed()
			return false
		}
		if m.run(es[1:], prev) {
			return true
		}
		m.failed = m.failed || m.restFixed()
		return false
	}
	for from := 0; from <= len(sub); {
		ms, me := e.re.Find(m.rx, sub, from)
		if ms < 0 {
			if from > 0 && !e.negate && !e.relative {
				// Every match of an absolute pcre was tried.
				m.failed = m.failed || m.restFixed()
				return false
			}
			return e.negate && m.run(es[1:], prev)
		}
		if e.negate {
			return false
		}
		if m.run(es[1:], base+me) {
			return true
		}
		m.failedRel = false // a later match may end earlier
		m.budget--
		if !e.relNext || m.budget <= 0 || m.failed {
			return false
		}
		from = ms + 1
	}
	return false
}

// extract reads b.nbytes at pos as b describes: binary (big or little
// endian) or an ASCII number, then applies the bitmask.
func (b *byteOp) extract(data []byte, pos int) (uint64, bool) {
	if pos < 0 || pos+b.nbytes > len(data) {
		return 0, false
	}
	p := data[pos : pos+b.nbytes]
	if b.nbytes == 0 {
		// byte_test:0,...,string: the number at pos, however long (as
		// Suricata's strtoull on the buffer).
		p = data[pos:min(len(data), pos+20)]
	}
	var x uint64
	switch {
	case b.base != 0:
		// strtoull: the leading digits count, at least one.
		n := 0
		for _, c := range p {
			var d uint64
			switch {
			case '0' <= c && c <= '9':
				d = uint64(c - '0')
			case 'a' <= c && c <= 'f':
				d = uint64(c-'a') + 10
			case 'A' <= c && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				d = 99
			}
			if d >= uint64(b.base) {
				break
			}
			x = x*uint64(b.base) + d
			n++
		}
		if n == 0 {
			return 0, false
		}
	case b.little:
		for i := len(p) - 1; i >= 0; i-- {
			x = x<<8 | uint64(p[i])
		}
	default:
		for _, c := range p {
			x = x<<8 | uint64(c)
		}
	}
	if b.bitmask != 0 {
		x = (x & b.bitmask) >> b.shift
	}
	return x, true
}

// uintRange is a numeric test as Suricata writes them: "N", "<N", ">N",
// "<=N", ">=N", "!N", and the exclusive ranges "N<>M" and "N-M".
type uintRange struct {
	op     string // "=", "!", "<", ">", "<=", ">=", "<>"
	lo, hi uint64
}

func parseRange(v string, limit uint64) (uintRange, error) {
	s := strings.TrimSpace(v)
	num := func(t string) (uint64, error) {
		x, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", strings.TrimSpace(t))
		}
		if x > limit {
			return 0, fmt.Errorf("%d is more than %d", x, limit)
		}
		return x, nil
	}
	var r uintRange
	var err error
	for _, op := range []string{"<=", ">=", "<", ">", "!"} {
		if rest, ok := strings.CutPrefix(s, op); ok {
			r.op = op
			r.lo, err = num(rest)
			return r, err
		}
	}
	if lo, hi, ok := strings.Cut(s, "<>"); ok {
		return rangeOf(num, lo, hi)
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		return rangeOf(num, lo, hi)
	}
	r.op = "="
	r.lo, err = num(s)
	return r, err
}

func rangeOf(num func(string) (uint64, error), lo, hi string) (uintRange, error) {
	r := uintRange{op: "<>"}
	var err error
	if r.lo, err = num(lo); err != nil {
		return r, err
	}
	if r.hi, err = num(hi); err != nil {
		return r, err
	}
	if r.lo >= r.hi {
		return r, fmt.Errorf("range %d<>%d is empty (the bounds are exclusive)", r.lo, r.hi)
	}
	return r, nil
}

func (r uintRange) match(x uint64) bool {
	switch r.op {
	case "=":
		return x == r.lo
	case "!":
		return x != r.lo
	case "<":
		return x < r.lo
	case ">":
		return x > r.lo
	case "<=":
		return x <= r.lo
	case ">=":
		return x >= r.lo
	case "<>":
		return r.lo < x && x < r.hi
	}
	return false
}
