package av

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/openutm/utm/signatures/literal"
)

// The literal gate. libyara walks its Aho-Corasick automaton over every
// byte of a file, whatever the rules: 1.2 ms a MiB with the EICAR rule
// alone, the biggest cost of inspecting a download. Most YARA rules cannot
// be true unless one of their strings is found ("$a", "any of them",
// "uint16(0) == 0x5A4D and 2 of ($x*)"), and a text or hex string
// contains a literal every match of it contains. When every rule that can
// report (not private) is of that kind, those literals go into a Hyperscan
// database (signatures/literal: 35 us a MiB with the default rules) and a
// file in which none of them occurs is clean without running libyara: no
// rule can be true without a string match, and no string can match without
// its literal.
//
// The analysis reads the rule source with a small YARA lexer and is
// conservative: a condition it does not recognise as needing a string
// ("filesize > 1MB", "not $a", "#a == 0", "for ... : (...)", a reference
// to another rule, a module function), a regular expression, a xor or
// base64 string, or an include turns the gate off for the whole scanner
// (Scanner.Gate says why) and libyara scans every file as before. The
// ReversingLabs set runs ungated because of its certificate rules, which
// read only the pe module; each of its other 273 files is gateable.

// gateMinLiteral is the shortest literal worth gating on: shorter ones
// occur in most files, where the gate would only add its own scan.
const gateMinLiteral = 3

// gate is the compiled literal set; nil when the analysis turned it off.
type gate struct {
	db    *literal.DB
	rules int // rules gated
}

// gatePlan collects the literals of every source, or the reason there is
// no gate.
type gatePlan struct {
	pats  []literal.Pattern
	seen  map[string]bool
	rules int
	off   string // why there is no gate ("" while there may be one)
}

func newGatePlan() *gatePlan { return &gatePlan{seen: map[string]bool{}} }

// add analyses one source file; the first reason to give up sticks.
func (g *gatePlan) add(file string, src []byte) {
	if g.off != "" {
		return
	}
	rs, err := parseYara(src)
	if err != nil {
		g.off = fmt.Sprintf("%s: %v", file, err)
		return
	}
	for _, r := range rs {
		if r.private {
			continue
		}
		lits, why := r.gateLiterals()
		if why != "" {
			g.off = fmt.Sprintf("%s: rule %s %s", file, r.name, why)
			return
		}
		for _, p := range lits {
			k := strconv.FormatBool(p.Nocase) + string(p.Bytes)
			if !g.seen[k] {
				g.seen[k] = true
				g.pats = append(g.pats, p)
			}
		}
		g.rules++
	}
}

// build compiles the literals; nil and the reason when there is no gate.
func (g *gatePlan) build() (*gate, string) {
	if g.off != "" {
		return nil, g.off
	}
	if len(g.pats) == 0 {
		return nil, "no rule to gate"
	}
	db, err := literal.NewGroup().Compile(g.pats)
	if err != nil {
		return nil, err.Error()
	}
	return &gate{db: db, rules: g.rules}, ""
}

// yaraRule is what the gate needs of one rule.
type yaraRule struct {
	name    string
	private bool
	strs    []yaraString
	cond    []ytok
}

// yaraString is one string definition: its literals (nil: none that every
// match contains).
type yaraString struct {
	id   string // "$a", "$" for an anonymous one
	lits []literal.Pattern
	why  string // why lits is nil
}

// gateLiterals returns the literals one of which occurs in every input
// that makes r true, or why there are none.
func (r *yaraRule) gateLiterals() ([]literal.Pattern, string) {
	set, ok := r.needs(r.cond)
	if !ok {
		return nil, "can be true without a string match"
	}
	var lits []literal.Pattern
	for _, i := range set {
		s := r.strs[i]
		if s.lits == nil {
			return nil, "needs string " + s.id + ", which " + s.why
		}
		lits = append(lits, s.lits...)
	}
	return lits, ""
}

// needs returns the strings (indices into r.strs) one of which must match
// for the condition toks to be true; ok false when the condition may hold
// without any (or the analysis cannot tell).
func (r *yaraRule) needs(toks []ytok) (set []int, ok bool) {
	if len(toks) == 0 {
		return nil, false
	}
	if parts := splitTop(toks, "or"); len(parts) > 1 {
		for _, p := range parts {
			s, ok := r.needs(p)
			if !ok {
				return nil, false
			}
			set = union(set, s)
		}
		return set, true
	}
	if parts := splitTop(toks, "and"); len(parts) > 1 {
		// Any conjunct that needs a string will do; take one whose
		// strings all have literals ("$re and $text": $text), then the
		// one needing the fewest.
		best, found := []int(nil), false
		for _, p := range parts {
			s, ok := r.needs(p)
			if !ok {
				continue
			}
			better := !found || r.literal(s) && !r.literal(best) || r.literal(s) == r.literal(best) && len(s) < len(best)
			if better {
				best, found = s, true
			}
		}
		return best, found
	}
	if toks[0].is("(") && closing(toks, 0) == len(toks)-1 {
		return r.needs(toks[1 : len(toks)-1])
	}
	return r.primary(toks)
}

// literal reports whether every string of set has literals.
func (r *yaraRule) literal(set []int) bool {
	for _, i := range set {
		if r.strs[i].lits == nil {
			return false
		}
	}
	return true
}

// primary recognises the conditions that need a string match.
func (r *yaraRule) primary(t []ytok) ([]int, bool) {
	switch {
	case t[0].kind == tStrRef && t[0].val[0] == '$' && !strings.HasSuffix(t[0].val, "*") && t[0].val != "$":
		// "$a", "$a at X", "$a in (A..B)"
		if len(t) == 1 || t[1].is("at") || t[1].is("in") {
			return r.refs(t[0].val)
		}
	case t[0].kind == tStrRef && t[0].val[0] == '#' && len(t) == 3 && t[2].kind == tNum:
		// "#a > N" (N >= 0), "#a >= N" (N >= 1)
		n, err := strconv.ParseInt(t[2].val, 0, 64)
		if err == nil && (t[1].is(">") && n >= 0 || t[1].is(">=") && n >= 1) {
			return r.refs("$" + t[0].val[1:])
		}
	}
	// "any|all|N|N% of them|($a, $b*)", optionally "at X" / "in (A..B)".
	i := 0
	switch {
	case t[0].is("any"), t[0].is("all"):
		i = 1
	case t[0].kind == tNum:
		n, err := strconv.ParseInt(t[0].val, 0, 64)
		if err != nil || n < 1 {
			return nil, false
		}
		i = 1
		if len(t) > 1 && t[1].is("%") {
			i = 2
		}
	default:
		return nil, false
	}
	if len(t) <= i+1 || !t[i].is("of") {
		return nil, false
	}
	i++
	var set []int
	switch {
	case t[i].is("them"):
		for k := range r.strs {
			set = append(set, k)
		}
		i++
	case t[i].is("("):
		end := closing(t, i)
		if end < 0 {
			return nil, false
		}
		for _, e := range splitTop(t[i+1:end], ",") {
			if len(e) != 1 || e[0].kind != tStrRef || e[0].val[0] != '$' {
				return nil, false // rule sets ("any of (rule*)") and worse
			}
			s, ok := r.refs(e[0].val)
			if !ok {
				return nil, false
			}
			set = union(set, s)
		}
		i = end + 1
	default:
		return nil, false
	}
	if len(set) == 0 || i < len(t) && !t[i].is("at") && !t[i].is("in") {
		return nil, false
	}
	return set, true
}

// refs resolves "$a" or "$a*" ("$*": all) to the rule's strings.
func (r *yaraRule) refs(ref string) ([]int, bool) {
	var set []int
	prefix, wild := strings.CutSuffix(ref, "*")
	for i, s := range r.strs {
		if s.id == ref || wild && s.id != "$" && strings.HasPrefix(s.id, prefix) {
			set = append(set, i)
		}
	}
	return set, len(set) > 0
}

// union adds to a the elements of b it lacks.
func union(a, b []int) []int {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}

// splitTop splits toks at the word sep outside parentheses and brackets.
func splitTop(toks []ytok, sep string) [][]ytok {
	var parts [][]ytok
	depth, start := 0, 0
	for i, t := range toks {
		switch {
		case t.is("(") || t.is("["):
			depth++
		case t.is(")") || t.is("]"):
			depth--
		case depth == 0 && t.is(sep):
			parts = append(parts, toks[start:i])
			start = i + 1
		}
	}
	return append(parts, toks[start:])
}

// closing returns the index of the parenthesis closing toks[open], or -1.
func closing(toks []ytok, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		switch {
		case toks[i].is("("):
			depth++
		case toks[i].is(")"):
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// parseYara reads the rules of one source. It knows YARA's structure, not
// its whole grammar: libyara has compiled the source already, so only
// what the gate needs is checked.
func parseYara(src []byte) ([]yaraRule, error) {
	toks, err := lexYara(src)
	if err != nil {
		return nil, err
	}
	var rs []yaraRule
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.is("import"):
			i += 2
			continue
		case t.is("include"):
			return nil, errors.New("includes another file")
		}
		r := yaraRule{}
		for ; i < len(toks) && (toks[i].is("private") || toks[i].is("global")); i++ {
			r.private = r.private || toks[i].is("private")
		}
		if i+1 >= len(toks) || !toks[i].is("rule") {
			return nil, fmt.Errorf("line %d: expected a rule", t.line)
		}
		r.name = toks[i+1].val
		for i < len(toks) && !toks[i].is("{") {
			i++
		}
		i++
		// meta: and strings: up to condition:
		for i < len(toks) && !toks[i].is("condition") {
			if toks[i].kind != tStrRef || i+2 >= len(toks) || !toks[i+1].is("=") {
				i++ // meta entries and section names
				continue
			}
			s := yaraString{id: toks[i].val}
			def := toks[i+2]
			i += 3
			var mods []string
			for i < len(toks) && toks[i].kind == tIdent && !toks[i].is("condition") {
				m := toks[i].val
				i++
				if i < len(toks) && toks[i].is("(") {
					if end := closing(toks, i); end > 0 {
						m += "()"
						i = end + 1
					}
				}
				mods = append(mods, m)
			}
			s.lits, s.why = stringLiterals(def, mods)
			r.strs = append(r.strs, s)
		}
		if i >= len(toks) {
			return nil, fmt.Errorf("line %d: rule %s has no condition", t.line, r.name)
		}
		i += 2 // condition :
		start, depth := i, 0
		for ; i < len(toks); i++ {
			if toks[i].is("{") {
				depth++
			}
			if toks[i].is("}") {
				if depth == 0 {
					break
				}
				depth--
			}
		}
		if i >= len(toks) {
			return nil, fmt.Errorf("line %d: rule %s does not end", t.line, r.name)
		}
		r.cond = toks[start:i]
		rs = append(rs, r)
		i++
	}
	return rs, nil
}

// stringLiterals returns the literals of a string definition: a text
// string in each of its encodings (ascii, wide), a hex string's longest
// run of fixed bytes; nil and why for the rest.
func stringLiterals(def ytok, mods []string) ([]literal.Pattern, string) {
	var nocase, wide, ascii bool
	for _, m := range mods {
		switch m {
		case "nocase":
			nocase = true
		case "wide":
			wide = true
		case "ascii":
			ascii = true
		case "fullword", "private":
		default:
			return nil, "is " + strings.TrimSuffix(m, "()") + "-encoded"
		}
	}
	var b []byte
	switch def.kind {
	case tText:
		b = []byte(def.val)
	case tHex:
		var err error
		if b, err = hexRun(def.val); err != nil {
			return nil, err.Error()
		}
	default:
		return nil, "is a regular expression"
	}
	if len(b) < gateMinLiteral {
		return nil, fmt.Sprintf("has no literal of %d bytes", gateMinLiteral)
	}
	var lits []literal.Pattern
	if ascii || !wide {
		lits = append(lits, literal.Pattern{Bytes: b, Nocase: nocase})
	}
	if wide {
		w := make([]byte, 0, 2*len(b))
		for _, c := range b {
			w = append(w, c, 0)
		}
		lits = append(lits, literal.Pattern{Bytes: w, Nocase: nocase})
	}
	return lits, ""
}

// hexRun returns the longest run of fixed bytes of a hex string's body
// (comments removed), outside alternatives: a wildcard ("??", "?A"), a
// negation ("~4D"), a jump ("[2-4]") or a group ends a run.
func hexRun(body string) ([]byte, error) {
	var best, cur []byte
	depth := 0
	end := func() {
		if len(cur) > len(best) {
			best = cur
		}
		cur = nil
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '(':
			depth++
			end()
		case c == ')':
			depth--
			end()
		case c == '|':
			end()
		case c == '[':
			j := strings.IndexByte(body[i:], ']')
			if j < 0 {
				return nil, errors.New("has an unclosed jump in its hex string")
			}
			i += j
			end()
		case c == '~':
			end()
			i += 2 // the negated byte
		case (isHexDigit(c) || c == '?') && i+1 < len(body) && (isHexDigit(body[i+1]) || body[i+1] == '?'):
			if c == '?' || body[i+1] == '?' || depth > 0 {
				end()
			} else {
				v, _ := strconv.ParseUint(body[i:i+2], 16, 8)
				cur = append(cur, byte(v))
			}
			i++
		default:
			return nil, fmt.Errorf("has %q in its hex string", c)
		}
	}
	end()
	return best, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
