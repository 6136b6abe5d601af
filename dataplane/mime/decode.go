package mime

import (
	stdmime "mime"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	b64Pad   = 0xFE
	b64Space = 0xFD
	b64Bad   = 0xFF
)

var b64tab = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Bad
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	t['='] = b64Pad
	for _, c := range " \t\r\n\f\v" {
		t[c] = b64Space
	}
	return t
}()

// b64 decodes tolerantly: whitespace is skipped, other bytes outside the
// alphabet are skipped and counted, padding ends a quantum early.
func (p *Parser) b64(b []byte) {
	for _, c := range b {
		v := b64tab[c]
		if v < 64 {
			p.quad[p.qn] = v
			p.qn++
			if p.qn == 4 {
				if p.on+3 > outMax {
					p.flushOut()
				}
				q := &p.quad
				p.out[p.on] = q[0]<<2 | q[1]>>4
				p.out[p.on+1] = q[1]<<4 | q[2]>>2
				p.out[p.on+2] = q[2]<<6 | q[3]
				p.on += 3
				p.qn = 0
			}
			continue
		}
		switch v {
		case b64Space:
		case b64Pad:
			if p.qn == 1 {
				p.badEnc(AnomalyBadBase64)
				p.qn = 0
			} else if p.qn > 1 {
				p.b64flush()
			}
		default:
			p.badEnc(AnomalyBadBase64)
		}
	}
}

// b64flush emits a partial quantum of 2 or 3 characters.
func (p *Parser) b64flush() {
	q := &p.quad
	p.emit(q[0]<<2 | q[1]>>4)
	if p.qn == 3 {
		p.emit(q[1]<<4 | q[2]>>2)
	}
	p.qn = 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// qp decodes quoted-printable (RFC 2045 6.7): trailing whitespace of a line is
// dropped, "=" at the end of a line joins it to the next, a hard line break
// becomes CRLF. An "=" not followed by two hex digits is kept literally.
func (p *Parser) qp(b []byte, eol bool) {
	if eol {
		n := len(b)
		for n > 0 && (b[n-1] == ' ' || b[n-1] == '\t') {
			n--
		}
		b = b[:n]
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch p.qpState {
		case 0:
			if c == '=' {
				p.qpState = 1
			} else {
				p.emit(c)
			}
		case 1:
			if _, ok := unhex(c); ok {
				p.qpHex = c
				p.qpState = 2
				continue
			}
			p.badEnc(AnomalyBadQP)
			p.emit('=')
			p.qpState = 0
			i--
		case 2:
			lo, ok := unhex(c)
			p.qpState = 0
			if !ok {
				p.badEnc(AnomalyBadQP)
				p.emit('=')
				p.emit(p.qpHex)
				i--
				continue
			}
			hi, _ := unhex(p.qpHex)
			p.emit(hi<<4 | lo)
		}
	}
	if !eol {
		return
	}
	switch p.qpState {
	case 1: // soft line break
		p.qpState = 0
		return
	case 2:
		p.badEnc(AnomalyBadQP)
		p.emit('=')
		p.emit(p.qpHex)
		p.qpState = 0
	}
	p.pend = [2]byte{'\r', '\n'}
	p.pendN = 2
}

// uuBegin recognises "begin <octal mode> <name>".
func uuBegin(b []byte) (string, bool) {
	if len(b) < 6 || string(b[:6]) != "begin " {
		return "", false
	}
	r := b[6:]
	i := 0
	for i < len(r) && r[i] >= '0' && r[i] <= '7' {
		i++
	}
	if i < 3 || i > 4 || i >= len(r) || r[i] != ' ' {
		return "", false
	}
	name := strings.TrimSpace(string(r[i+1:]))
	if name == "" {
		return "", false
	}
	return capUTF8(strings.ToValidUTF8(name, "\uFFFD")), true
}

func uuEnd(b []byte) bool {
	n := len(b)
	for n > 0 && (b[n-1] == ' ' || b[n-1] == '\t') {
		n--
	}
	return string(b[:n]) == "end"
}

func (p *Parser) uuLine(b []byte) {
	if len(b) == 0 {
		return
	}
	n := int((b[0] - ' ') & 63)
	b = b[1:]
	for n > 0 {
		var q [4]byte
		for j := range q {
			if j < len(b) {
				q[j] = (b[j] - ' ') & 63
			}
		}
		if len(b) >= 4 {
			b = b[4:]
		} else {
			b = b[len(b):]
		}
		o := [3]byte{q[0]<<2 | q[1]>>4, q[1]<<4 | q[2]>>2, q[2]<<6 | q[3]}
		k := min(n, 3)
		for j := 0; j < k; j++ {
			p.emit(o[j])
		}
		n -= k
	}
}

type kv struct{ k, v string }

// parseParams splits a Content-Type or Content-Disposition value leniently:
// the lowercased value and its parameters (keys lowercased, quoted values
// unquoted). Never fails.
func parseParams(s string) (string, []kv) {
	i := strings.IndexByte(s, ';')
	if i < 0 {
		return strings.ToLower(strings.TrimSpace(s)), nil
	}
	v := strings.ToLower(strings.TrimSpace(s[:i]))
	s = s[i+1:]
	var ps []kv
	for len(s) > 0 && len(ps) < 64 {
		s = strings.TrimLeft(s, " \t\r\n;")
		if s == "" {
			break
		}
		j := strings.IndexAny(s, "=;")
		if j < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(s[:j]))
		if s[j] == ';' {
			s = s[j+1:]
			continue
		}
		s = strings.TrimLeft(s[j+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			k := 1
			for ; k < len(s) && s[k] != '"'; k++ {
				if s[k] == '\\' && k+1 < len(s) {
					k++
				}
				b.WriteByte(s[k])
			}
			val = b.String()
			if k < len(s) {
				k++
			}
			s = s[k:]
			if e := strings.IndexByte(s, ';'); e >= 0 {
				s = s[e+1:]
			} else {
				s = ""
			}
		} else {
			e := strings.IndexByte(s, ';')
			if e < 0 {
				e = len(s)
			}
			val = strings.TrimSpace(s[:e])
			s = s[e:]
		}
		ps = append(ps, kv{key, val})
	}
	return v, ps
}

func param(ps []kv, k string) string {
	for _, p := range ps {
		if p.k == k {
			return p.v
		}
	}
	return ""
}

// filename picks the file name: Content-Disposition filename (RFC 2231, then
// plain with RFC 2047 words), else Content-Type name the same way.
func filename(dps, cps []kv) string {
	for _, x := range [...]struct {
		ps []kv
		k  string
	}{{dps, "filename"}, {cps, "name"}} {
		if v, ok := rfc2231(x.ps, x.k); ok {
			return v
		}
		if v := param(x.ps, x.k); v != "" {
			return decodeText(v)
		}
	}
	return ""
}

// rfc2231 assembles name* or name*0, name*1* ... (RFC 2231 sections 3-4).
func rfc2231(ps []kv, name string) (string, bool) {
	var segs [32]struct {
		v   string
		ext bool
		set bool
	}
	found := false
	for _, p := range ps {
		if !strings.HasPrefix(p.k, name+"*") {
			continue
		}
		rest := p.k[len(name)+1:]
		if rest == "" {
			segs[0] = struct {
				v   string
				ext bool
				set bool
			}{p.v, true, true}
			found = true
			break
		}
		ext := strings.HasSuffix(rest, "*")
		n, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
		if err != nil || n < 0 || n >= len(segs) || segs[n].set {
			continue
		}
		segs[n].v, segs[n].ext, segs[n].set = p.v, ext, true
		found = true
	}
	if !found {
		return "", false
	}
	charset := "us-ascii"
	var raw []byte
	for i, s := range segs {
		if !s.set {
			continue
		}
		v := s.v
		if s.ext {
			if i == 0 {
				if a := strings.IndexByte(v, '\''); a >= 0 {
					if b := strings.IndexByte(v[a+1:], '\''); b >= 0 {
						charset = v[:a]
						v = v[a+1+b+1:]
					}
				}
			}
			raw = appendPct(raw, v)
		} else {
			raw = append(raw, v...)
		}
	}
	s := string(toUTF8(nil, charset, raw))
	if s == "" {
		return "", false
	}
	return capUTF8(s), true
}

func appendPct(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 2
				continue
			}
		}
		dst = append(dst, s[i])
	}
	return dst
}

var wordDecoder = &stdmime.WordDecoder{CharsetReader: charsetReader}

// decodeText decodes RFC 2047 encoded words, makes s valid UTF-8 and caps it.
func decodeText(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
	return capUTF8(strings.TrimSpace(s))
}

func capUTF8(s string) string {
	if len(s) <= fieldCap {
		return s
	}
	n := fieldCap
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
