package rules

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// content is one content match and its modifiers.
type content struct {
	pat      []byte // lowercased when nocase
	nocase   bool
	negate   bool
	buf      Buffer
	offset   int
	depth    int // 0: none
	distance int
	within   int // 0: none
	relative bool

	// byte_extract variables (payload.go): 0 the constant above, else
	// variable k-1 of the rule.
	offVar, depthVar, distVar, withinVar int8
	startsWith, endsWith                 bool // content modifiers (payload.go)

	fast             bool // fast_pattern (prefilter.go)
	fastOff, fastLen int  // fast_pattern:offset,length; fastLen 0: the whole pattern
}

// parser state while reading one rule's options.
type ruleParser struct {
	r      *Rule
	sticky Buffer
	hasSID bool

	elems []elem   // payload.go: match elements in rule order, buffers resolved at the end
	bvars []string // byte_extract variable names, in order
	dir   string   // the rules file's directory
}

type optionFunc func(p *ruleParser, value string) error

// keywords maps each supported option to its handler. Options not here are
// reported as unsupported and the rule is skipped. It is filled by init
// functions, one per file that implements a family of keywords (each file
// adds its own entries: keywords["pcre"] = pcreOpt), so the language grows
// without editing this table.
var keywords = map[string]optionFunc{}

func init() {
	base := map[string]optionFunc{
		"msg": func(p *ruleParser, v string) error { p.r.Msg = unquote(v); return nil },
		"sid": func(p *ruleParser, v string) error {
			p.hasSID = true
			return intOpt(&p.r.SID, v)
		},
		"rev":       func(p *ruleParser, v string) error { return intOpt(&p.r.Rev, v) },
		"gid":       func(p *ruleParser, v string) error { return intOpt(&p.r.GID, v) },
		"priority":  func(p *ruleParser, v string) error { return intOpt(&p.r.Priority, v) },
		"classtype": classtypeOpt,
		"reference": func(p *ruleParser, v string) error {
			if v == "" {
				return fmt.Errorf("empty reference")
			}
			p.r.Refs = append(p.r.Refs, v)
			return nil
		},
		"metadata": metadataOpt,
		"target":   func(*ruleParser, string) error { return nil },
		"content":  func(p *ruleParser, v string) error { return contentOpt(p, v, p.sticky) },
		"uricontent": func(p *ruleParser, v string) error {
			return contentOpt(p, v, BufHTTPURI)
		},
		"nocase":       nocaseOpt,
		"fast_pattern": fastPatternOpt, // prefilter.go
		"depth":        func(p *ruleParser, v string) error { return modOpt(p, "depth", v) },
		"offset":       func(p *ruleParser, v string) error { return modOpt(p, "offset", v) },
		"distance":     func(p *ruleParser, v string) error { return modOpt(p, "distance", v) },
		"within":       func(p *ruleParser, v string) error { return modOpt(p, "within", v) },
		"flow":         flowOpt,
	}
	for k, f := range base {
		keywords[k] = f
	}
	sticky := map[string]Buffer{
		"http.uri": BufHTTPURI, "http.uri.raw": BufHTTPRawURI, "http.method": BufHTTPMethod,
		"http.header": BufHTTPHeader, "http.header.raw": BufHTTPRawHeader, "http.cookie": BufHTTPCookie,
		"http.user_agent": BufHTTPUserAgent, "http.host": BufHTTPHost, "http.request_body": BufHTTPRequestBody,
		"http.response_body": BufHTTPResponseBody, "http.stat_code": BufHTTPStatCode, "http.stat_msg": BufHTTPStatMsg,
		"file.data": BufHTTPResponseBody, "file_data": BufHTTPResponseBody, "dns.query": BufDNSQuery,
		"tls.sni": BufTLSSNI, "tls_sni": BufTLSSNI,
		"http.content_type": BufHTTPContentType, "http.header_names": BufHTTPHeaderNames,
		"http.request_line": BufHTTPRequestLine, "http.response_line": BufHTTPResponseLine,
		"http.referer": BufHTTPReferer, "http.accept": BufHTTPAccept, "http.accept_enc": BufHTTPAcceptEnc,
		"http.accept_lang": BufHTTPAcceptLang, "http.connection": BufHTTPConnection,
		"http.protocol": BufHTTPProtocol, "http.start": BufHTTPStart, "http.server": BufHTTPServer,
		"http.location": BufHTTPLocation, "http.content_len": BufHTTPContentLen,
		"http.request_header": BufHTTPRequestHeader, "http.response_header": BufHTTPResponseHeader,
		"tls.cert_subject": BufTLSCertSubject, "tls.cert_issuer": BufTLSCertIssuer,
		"tls.cert_serial": BufTLSCertSerial, "tls.cert_fingerprint": BufTLSCertFingerprint,
		"ja3.hash": BufJA3Hash, "ja3.string": BufJA3String, "ja3s.hash": BufJA3SHash, "ja4.hash": BufJA4Hash,
		"file.name": BufFileName,
		// Suricata 5's underscore sticky spellings (ET Open 2019 uses them).
		"http_content_type": BufHTTPContentType, "http_header_names": BufHTTPHeaderNames,
		"http_request_line": BufHTTPRequestLine, "http_response_line": BufHTTPResponseLine,
		"http_referer": BufHTTPReferer, "http_accept": BufHTTPAccept, "http_accept_enc": BufHTTPAcceptEnc,
		"http_accept_lang": BufHTTPAcceptLang, "http_connection": BufHTTPConnection,
		"http_protocol": BufHTTPProtocol, "http_start": BufHTTPStart, "http_content_len": BufHTTPContentLen,
		"tls_cert_subject": BufTLSCertSubject, "tls_cert_issuer": BufTLSCertIssuer,
		"tls_cert_serial": BufTLSCertSerial, "tls_cert_fingerprint": BufTLSCertFingerprint,
		"ja3_hash": BufJA3Hash, "ja3_string": BufJA3String, "ja3s_hash": BufJA3SHash,
	}
	for name, b := range sticky {
		b := b
		keywords[name] = func(p *ruleParser, v string) error {
			if v != "" {
				return fmt.Errorf("%s takes no value", name)
			}
			p.sticky = b
			return nil
		}
	}
	legacy := map[string]Buffer{
		"http_uri": BufHTTPURI, "http_raw_uri": BufHTTPRawURI, "http_method": BufHTTPMethod,
		"http_header": BufHTTPHeader, "http_raw_header": BufHTTPRawHeader, "http_cookie": BufHTTPCookie,
		"http_user_agent": BufHTTPUserAgent, "http_host": BufHTTPHost, "http_raw_host": BufHTTPHost,
		"http_client_body": BufHTTPRequestBody, "http_server_body": BufHTTPResponseBody,
		"http_stat_code": BufHTTPStatCode, "http_stat_msg": BufHTTPStatMsg, "dns_query": BufDNSQuery,
	}
	for name, b := range legacy {
		name, b := name, b
		keywords[name] = func(p *ruleParser, v string) error {
			if err := needContent(p, name); err != nil {
				return err
			}
			p.r.contents[len(p.r.contents)-1].buf = b
			return nil
		}
	}
	// dns_query is both: a legacy modifier after a content, and a sticky
	// buffer before one (Suricata accepts both).
	keywords["dns_query"] = func(p *ruleParser, v string) error {
		if n := len(p.r.contents); n > 0 && p.sticky == BufPayload && p.r.contents[n-1].buf == BufPayload {
			p.r.contents[n-1].buf = BufDNSQuery
			return nil
		}
		p.sticky = BufDNSQuery
		return nil
	}
}

func intOpt(dst *int, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*dst = n
	return nil
}

func classtypeOpt(p *ruleParser, v string) error {
	v = strings.TrimSpace(v)
	c, ok := classes[v]
	if !ok {
		return fmt.Errorf("unknown classtype %q (not in classification.config)", v)
	}
	p.r.Classtype, p.r.Category = v, c.desc
	if p.r.Priority == 0 {
		p.r.Priority = c.priority
	}
	return nil
}

func metadataOpt(p *ruleParser, v string) error {
	if p.r.Metadata == nil {
		p.r.Metadata = make(map[string][]string)
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), " ")
		if k != "" {
			p.r.Metadata[k] = append(p.r.Metadata[k], strings.TrimSpace(val))
		}
	}
	return nil
}

func needContent(p *ruleParser, kw string) error {
	if len(p.r.contents) == 0 {
		return fmt.Errorf("%s without a preceding content", kw)
	}
	return nil
}

func nocaseOpt(p *ruleParser, v string) error {
	if err := needContent(p, "nocase"); err != nil {
		return err
	}
	c := &p.r.contents[len(p.r.contents)-1]
	c.nocase = true
	c.pat = lowerASCII(c.pat)
	return nil
}

// lowerASCII returns a copy of b with A-Z lowercased and every other byte
// as it is:
// nocase is ASCII-only in Suricata, and a pattern's bytes are not UTF-8
// (strings.ToLower would turn |C8 C9| into U+FFFD).
func lowerASCII(b []byte) []byte {
	b = bytes.Clone(b)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

func modOpt(p *ruleParser, kw, v string) error {
	if err := needContent(p, kw); err != nil {
		return err
	}
	c := &p.r.contents[len(p.r.contents)-1]
	n, vr, err := p.operand(strings.TrimSpace(v)) // payload.go: a number or a byte_extract variable
	if err != nil {
		return err
	}
	if vr != 0 {
		switch kw {
		case "depth":
			c.depthVar = vr
		case "offset":
			c.offVar = vr
		case "distance":
			c.distVar, c.relative = vr, true
		case "within":
			c.withinVar, c.relative = vr, true
		}
		return nil
	}
	absolute := kw == "depth" || kw == "offset"
	if absolute && c.relative || !absolute && (c.depth > 0 || c.offset != 0) {
		return fmt.Errorf("%s cannot be combined with %s on one content", kw, map[bool]string{true: "distance/within", false: "depth/offset"}[absolute])
	}
	switch kw {
	case "depth":
		if n < len(c.pat) {
			return fmt.Errorf("depth %d is shorter than the content (%d bytes)", n, len(c.pat))
		}
		c.depth = n
	case "offset":
		if n < 0 {
			return fmt.Errorf("offset must not be negative")
		}
		c.offset = n
	case "distance":
		c.distance, c.relative = n, true
	case "within":
		if n < len(c.pat) {
			return fmt.Errorf("within %d is shorter than the content (%d bytes)", n, len(c.pat))
		}
		c.within, c.relative = n, true
	}
	return nil
}

func flowOpt(p *ruleParser, v string) error {
	for _, f := range strings.Split(v, ",") {
		switch strings.TrimSpace(f) {
		case "to_server", "from_client":
			p.r.flowToServer = true
		case "to_client", "from_server":
			p.r.flowToClient = true
		case "established":
			p.r.flowEstablished = true
		case "stateless", "not_established", "no_stream", "only_stream", "no_frag", "only_frag":
		default:
			return fmt.Errorf("flow: unknown option %q", f)
		}
	}
	return nil
}

func contentOpt(p *ruleParser, v string, buf Buffer) error {
	v = strings.TrimSpace(v)
	c := content{buf: buf}
	if strings.HasPrefix(v, "!") {
		c.negate = true
		v = strings.TrimSpace(v[1:])
	}
	pat, err := parseContent(v)
	if err != nil {
		return err
	}
	if len(pat) == 0 {
		return fmt.Errorf("empty content")
	}
	c.pat = pat
	p.r.contents = append(p.r.contents, c)
	p.elems = append(p.elems, elem{kind: eContent, ci: len(p.r.contents) - 1}) // payload.go
	return nil
}

// parseContent decodes a quoted content value with |hex| runs and
// backslash escapes.
func parseContent(v string) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, fmt.Errorf("content %s is not quoted", v)
	}
	v = v[1 : len(v)-1]
	var out []byte
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return nil, fmt.Errorf("content ends in a backslash")
			}
			i++
			out = append(out, v[i])
		case '|':
			j := strings.IndexByte(v[i+1:], '|')
			if j < 0 {
				return nil, fmt.Errorf("unterminated |hex| in content")
			}
			hex := strings.Fields(v[i+1 : i+1+j])
			for _, h := range hex {
				for len(h) > 0 {
					if len(h) < 2 {
						return nil, fmt.Errorf("odd hex digits in content")
					}
					b, err := strconv.ParseUint(h[:2], 16, 8)
					if err != nil {
						return nil, fmt.Errorf("bad hex %q in content", h[:2])
					}
					out = append(out, byte(b))
					h = h[2:]
				}
			}
			i += j + 1
		case '"', ';':
			return nil, fmt.Errorf("unescaped %c in content", c)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.NewReplacer(`\"`, `"`, `\;`, `;`, `\\`, `\`).Replace(v)
}

// splitOptions splits "a:b; c; d:\"x;y\";" at unquoted, unescaped
// semicolons.
func splitOptions(s string) ([]string, error) {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ';':
			if !inQuote {
				if t := strings.TrimSpace(s[start:i]); t != "" {
					out = append(out, t)
				}
				start = i + 1
			}
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in options")
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		return nil, fmt.Errorf("option %q does not end with ';'", t)
	}
	return out, nil
}

// parseRule parses one rule; dir is the rules file's directory (file.go:
// hash lists are named relative to it).
func parseRule(text string, vars Vars, dir string) (*Rule, error) {
	open := strings.IndexByte(text, '(')
	if open < 0 || !strings.HasSuffix(text, ")") {
		return nil, fmt.Errorf("rule has no (options)")
	}
	hdr := strings.Fields(text[:open])
	if len(hdr) != 7 {
		return nil, fmt.Errorf("header needs 7 fields (action proto src sport dir dst dport), has %d", len(hdr))
	}
	r := &Rule{Raw: text, GID: 1}
	switch hdr[0] {
	case "alert":
		r.Action = Alert
	case "drop":
		r.Action = Drop
	case "reject", "rejectsrc", "rejectdst", "rejectboth":
		r.Action = Reject
	case "pass":
		r.Action = Pass
	default:
		return nil, fmt.Errorf("unknown action %q", hdr[0])
	}
	proto, ok := protocols[hdr[1]]
	if !ok {
		return nil, fmt.Errorf("unsupported protocol %q", hdr[1])
	}
	r.Proto, r.ipProto, r.app = hdr[1], proto.ip, proto.app
	var err error
	if r.src, err = parseAddr(hdr[2], vars); err != nil {
		return nil, err
	}
	if r.sp, err = parsePorts(hdr[3], vars); err != nil {
		return nil, err
	}
	switch hdr[4] {
	case "->":
	case "<>":
		r.bidir = true
	default:
		return nil, fmt.Errorf("direction %q is neither -> nor <>", hdr[4])
	}
	if r.dst, err = parseAddr(hdr[5], vars); err != nil {
		return nil, err
	}
	if r.dp, err = parsePorts(hdr[6], vars); err != nil {
		return nil, err
	}
	opts, err := splitOptions(text[open+1 : len(text)-1])
	if err != nil {
		return nil, err
	}
	p := &ruleParser{r: r, dir: dir}
	for _, o := range opts {
		name, value, _ := strings.Cut(o, ":")
		name = strings.TrimSpace(name)
		fn, ok := keywords[name]
		if !ok {
			return nil, fmt.Errorf("unsupported keyword %q", name)
		}
		if err := fn(p, strings.TrimSpace(value)); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
	}
	if !p.hasSID {
		return nil, fmt.Errorf("rule has no sid")
	}
	if r.Priority == 0 {
		r.Priority = 3
	}
	for i := range r.contents {
		c := &r.contents[i]
		if c.buf == BufHTTPHost && !c.nocase {
			// The engine passes the Host header as sent; Suricata
			// lowercases this buffer, so a host content is caseless.
			c.nocase = true
			c.pat = lowerASCII(c.pat)
		}
	}
	// Suricata keeps one list of match elements per buffer: a relative
	// element counts from the previous match in the same buffer. A buffer
	// implies its protocol (dns, tls, else http).
	if err := p.buildLists(); err != nil { // payload.go
		return nil, err
	}
	r.selectFastPattern() // prefilter.go
	return r, nil
}
