package mail

import "bytes"

// IMAP command kinds (half.kind of ToServer); ToClient uses kindOK.
const (
	kOther uint8 = iota
	kAppend
	kStartTLS
	kAuth
	kCompress
)

const kindOK = 1

// literal finds a literal marker ("{n}", "{n+}", "~{n}") at the end of a
// line's tail. at is the index in tail where the marker begins.
func literal(tail []byte) (n int64, nonsync bool, at int, found, bad bool) {
	if len(tail) == 0 || tail[len(tail)-1] != '}' {
		return 0, false, 0, false, false
	}
	open := bytes.LastIndexByte(tail, '{')
	if open < 0 {
		return 0, false, 0, false, false // "}" ends an atom
	}
	digits := tail[open+1 : len(tail)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		nonsync, digits = true, digits[:len(digits)-1]
	}
	at = open
	if at > 0 && tail[at-1] == '~' {
		at--
	}
	if len(digits) > 13 {
		return 0, false, at, true, true
	}
	n, ok := parseUint(digits)
	if !ok || n > MaxLiteral {
		return 0, false, at, true, true
	}
	return n, nonsync, at, true, false
}

func (s *half) setTag(t []byte) {
	s.tagn = copy(s.tag[:], t)
}

func sameTag(a []byte, b []byte) bool { return len(a) > 0 && bytes.Equal(a, b) }

func (p *Parser) imapCommand(s *half, line, tail []byte, long bool) {
	if s.seg == 0 && p.imapAuth {
		return // a SASL response line
	}
	var verb, args []byte
	if s.seg == 0 {
		tag, rest := word(line)
		verb, rest = word(rest)
		if is(verb, "UID") {
			verb, rest = word(rest)
		}
		args = rest
		s.setTag(tag)
		switch {
		case is(verb, "APPEND"):
			s.kind = kAppend
		case is(verb, "STARTTLS"):
			s.kind = kStartTLS
		case is(verb, "AUTHENTICATE"):
			s.kind = kAuth
		case is(verb, "COMPRESS"):
			s.kind = kCompress
		case is(verb, "FETCH"):
			s.kind = kOther
			p.reqLen = requestedLength(args)
		default:
			s.kind = kOther
		}
	}
	n, nonsync, at, found, bad := literal(tail)
	if bad {
		// The server answers BAD; the line is a whole command.
		p.h.Anomaly(AnomBadLiteral)
		found = false
	}
	if found {
		end := endSkip
		if s.kind == kAppend {
			msg := s.seg > 0 || long
			if !msg {
				// "tag APPEND {5}": the literal is the mailbox name.
				cut, from := len(line)-(len(tail)-at), len(line)-len(args)
				msg = cut > from && len(bytes.TrimSpace(line[from:cut])) > 0
			}
			if msg && p.begin(ToServer, CommandAPPEND) {
				end = endMsg
			}
		}
		s.seg++
		s.awaitCont = !nonsync
		if n == 0 {
			if end == endMsg {
				p.finish(true)
			}
			s.awaitCont = false
			return
		}
		s.startCount(n, end)
		return
	}
	s.seg = 0
	tag := s.tag[:s.tagn]
	switch s.kind {
	case kStartTLS:
		p.tlsTagn = copy(p.tlsTag[:], tag)
	case kAuth:
		p.imapAuth = true
		p.authTagn = copy(p.authTag[:], tag)
	case kCompress:
		p.compTagn = copy(p.compTag[:], tag)
	}
}

func (p *Parser) imapResponse(s *half, line, tail []byte, long bool) {
	if s.seg == 0 {
		s.tagged, s.fetch, s.kind = false, false, 0
		if len(line) == 0 {
			p.stop(AnomBadReply)
			return
		}
		switch line[0] {
		case '+':
			if c := &p.half[ToServer]; c.mode == mCount && c.awaitCont {
				c.awaitCont = false
			}
			return // continuation requests carry no literals
		case '*':
			_, rest := word(line)
			num, rest := word(rest)
			item, _ := word(rest)
			seq, isNum := parseUint(num)
			s.fetch = isNum && is(item, "FETCH")
			s.fseq, s.fsize = seq, -1
		default:
			tag, rest := word(line)
			st, _ := word(rest)
			s.tagged = true
			s.setTag(tag)
			if is(st, "OK") {
				s.kind = kindOK
			}
		}
	}
	n, _, at, found, bad := literal(tail)
	if bad {
		p.stop(AnomBadLiteral)
		return
	}
	if found {
		end := endSkip
		if s.fetch {
			end = p.fetchLiteral(s, tail[:at], n)
		}
		s.seg++
		if n == 0 {
			p.flushPeek(s) // an empty section still gets its header
			if end == endMsg {
				p.finish(true)
			}
			return
		}
		s.startCount(n, end)
		return
	}
	s.seg = 0
	if !s.tagged {
		return
	}
	tag, ok := s.tag[:s.tagn], s.kind == kindOK
	if sameTag(tag, p.authTag[:p.authTagn]) {
		p.imapAuth, p.authTagn = false, 0
	}
	if c := &p.half[ToServer]; c.mode == mCount && c.awaitCont && !c.litStarted &&
		sameTag(tag, c.tag[:c.tagn]) {
		// The server refused a synchronizing literal: the client
		// does not send it and the command is over.
		if c.end != endSkip {
			p.cancel()
		}
		c.mode, c.seg, c.awaitCont = mLine, 0, false
	}
	if sameTag(tag, p.tlsTag[:p.tlsTagn]) {
		p.tlsTagn = 0
		if ok {
			p.encrypted()
			return
		}
	}
	if sameTag(tag, p.compTag[:p.compTagn]) {
		p.compTagn = 0
		if ok {
			p.cancel()
			p.h.Anomaly(AnomCompress)
			p.off = true
		}
	}
}

// upperIndex is bytes.Index ignoring ASCII case, s upper-case.
func upperIndex(b []byte, s string) int {
	for i := len(b) - len(s); i >= 0; i-- {
		if is(b[i:i+len(s)], s) {
			return i
		}
	}
	return -1
}
