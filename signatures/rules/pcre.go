package rules

import (
	"fmt"
	"strings"

	"github.com/openutm/utm/signatures/pcre"
)

// The pcre keyword: pcre:[!]"/pattern/flags".
//
// Compile flags: i s m x A E G (caseless, dotall, multiline, extended,
// anchored, dollar-end-only, ungreedy). R is relative to the previous
// match in the same buffer. Buffer flags pick the buffer: U normalised
// URI, I raw URI, P request body, Q response body (file_data), H header,
// D raw header, M method, C cookie, S status code, Y status message, V
// user agent, W host, Z raw host; without one the pcre inspects the
// current sticky buffer, or (relative) the previous content's buffer, or
// the payload. B (rawbytes) and O (override match limits) are accepted.
// A relative pcre's subject starts at the previous match's end, so ^
// anchors there, as in Suricata. Cost: one PCRE2 call per pcre verified
// (Has when nothing after depends on where it matched), no allocation.

// regex is a compiled pcre: Find returns the first match at or after
// start in data (offsets into data), ms = -1 for none; Has reports
// whether there is one (when the match's end does not matter). Neither may
// allocate.
// mt is the calling Input's match state (nil: take one from a pool).
type regex interface {
	Find(mt *pcre.Matcher, data []byte, start int) (ms, me int)
	Has(mt *pcre.Matcher, data []byte, start int) bool
}

// regexOptions are the compile flags, field for field the engine's.
type regexOptions struct {
	Caseless, DotAll, Multiline, Extended, Anchored, DollarEndOnly, Ungreedy bool
}

// compileRegex builds a pcre with PCRE2 (signatures/pcre: JIT, Suricata's
// match limits; a pattern that hits them does not match).
var compileRegex = compilePCRE

// pcreBuffers maps pcre buffer flags to buffers.
var pcreBuffers = map[byte]Buffer{
	'U': BufHTTPURI, 'I': BufHTTPRawURI, 'P': BufHTTPRequestBody, 'Q': BufHTTPResponseBody,
	'H': BufHTTPHeader, 'D': BufHTTPRawHeader, 'M': BufHTTPMethod, 'C': BufHTTPCookie,
	'S': BufHTTPStatCode, 'Y': BufHTTPStatMsg, 'V': BufHTTPUserAgent, 'W': BufHTTPHost,
	'Z': BufHTTPHost,
}

func init() {
	keywords["pcre"] = pcreOpt
}

func pcreOpt(p *ruleParser, v string) error {
	e := elem{kind: ePcre}
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "!") {
		e.negate, v = true, strings.TrimSpace(v[1:])
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return fmt.Errorf("%s is not quoted", v)
	}
	v = v[1 : len(v)-1]
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q does not start with /", v)
	}
	end := strings.LastIndexByte(v, '/')
	if end == 0 {
		return fmt.Errorf("%q has no closing /", v)
	}
	pat, flags := v[1:end], v[end+1:]
	var o regexOptions
	buf, explicit := BufPayload, false
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		switch f {
		case 'i':
			o.Caseless = true
		case 's':
			o.DotAll = true
		case 'm':
			o.Multiline = true
		case 'x':
			o.Extended = true
		case 'A':
			o.Anchored = true
		case 'E':
			o.DollarEndOnly = true
		case 'G':
			o.Ungreedy = true
		case 'R':
			e.relative = true
		case 'B', 'O':
		default:
			b, ok := pcreBuffers[f]
			if !ok {
				return fmt.Errorf("unknown flag %q in %q", f, flags)
			}
			if explicit && b != buf {
				return fmt.Errorf("flags %q name two buffers", flags)
			}
			buf, explicit = b, true
			if f == 'W' {
				// Suricata lowercases the host buffer; the engine
				// passes it as sent.
				o.Caseless = true
			}
		}
	}
	re, err := compileRegex(pat, o)
	if err != nil {
		return fmt.Errorf("/%s/: %v", pat, err)
	}
	e.re = re
	p.addElem(e, explicit, buf)
	return nil
}

// pcreRegex adapts *pcre.Regexp (PCRE2, signatures/pcre) to regex.
type pcreRegex struct{ re *pcre.Regexp }

func compilePCRE(pat string, o regexOptions) (regex, error) {
	re, err := pcre.Compile(pat, pcre.Options(o))
	if err != nil {
		return nil, err
	}
	return pcreRegex{re}, nil
}

func (r pcreRegex) Find(mt *pcre.Matcher, data []byte, start int) (int, int) {
	if mt == nil {
		return r.re.Find(data, start)
	}
	return r.re.FindWith(mt, data, start)
}

func (r pcreRegex) Has(mt *pcre.Matcher, data []byte, start int) bool {
	ms, _ := r.Find(mt, data, start)
	return ms >= 0
}
