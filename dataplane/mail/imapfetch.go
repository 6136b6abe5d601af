package mail

import "bytes"

// IMAP partial and section fetches.
//
// Clients do not always fetch a message whole. Thunderbird fetches a large
// message in chunks (BODY[]<0>, BODY[]<65536>, ...) and, for a message
// with big attachments, only the structure first and then each attachment
// on demand (BODY[2], often with BODY[2.MIME]). Either way the attachment
// reaches the client, so either way it is inspected:
//
//   - Partial fetches of one message (same message number and section,
//     each chunk starting where the previous one ended) are one message to
//     the Handler. It ends complete with the chunk that reaches the size
//     the server announced (RFC822.SIZE in the same response), else with a
//     chunk shorter than the length the client asked for (<origin.length>
//     in its FETCH command): that chunk's last byte is the one the engine
//     holds. A chunk out of order is reported (AnomPartialFetch) and not
//     inspected; a partial message left open ends incomplete when another
//     message starts or the connection ends.
//   - A section (BODY[2], BODY[1.2], BODY[TEXT], RFC822.TEXT) is a MIME
//     part's content without its header. The Handler gets it as a message
//     whose header is the part's own MIME header when the server sent
//     BODY[n.MIME] just before it, else a synthetic one: an attachment of
//     type application/octet-stream, base64-encoded when the content's
//     first bytes look like base64 lines (BINARY[n] content is already
//     decoded: never). So the MIME parser decodes it and the engine scans
//     the attachment as it would inside the whole message.

// Kinds of FETCH items that carry a literal.
const (
	itemOther   = iota // not message content: header fields, envelope strings
	itemMsg            // the whole message: BODY[], BINARY[], RFC822
	itemSection        // a part's content: BODY[2], BINARY[1.2], BODY[TEXT], RFC822.TEXT
	itemMIME           // a part's MIME header: BODY[2.MIME]
)

// maxMIMEHeader bounds the BODY[n.MIME] literal kept to head its part.
const maxMIMEHeader = 4096

// fetchRef is the FETCH item a literal belongs to.
type fetchRef struct {
	kind   int
	binary bool   // BINARY[...]: the content is already decoded
	sec    []byte // the section between the brackets; "" for the whole message
	origin int64  // <origin> of a partial fetch; -1: not partial
}

// fetchPart is the partial fetch in progress.
type fetchPart struct {
	on   bool
	seq  int64 // message sequence number
	sec  [32]byte
	secN int
	next int64 // the origin the next chunk must have
	size int64 // RFC822.SIZE; -1: unknown
}

var (
	hdrOctet  = []byte("Content-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n\r\n")
	hdrBase64 = []byte("Content-Type: application/octet-stream\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n")
)

// parseFetchItem classifies the item that ends pre, the response text
// before a literal ("* 1 FETCH (UID 7 BODY[2]<0> ").
func parseFetchItem(pre []byte) fetchRef {
	r := fetchRef{origin: -1}
	pre = bytes.TrimRight(pre, " ")
	if n := len(pre); n > 0 && pre[n-1] == '>' {
		lt := bytes.LastIndexByte(pre, '<')
		if lt < 0 {
			return r
		}
		o, ok := parseUint(pre[lt+1 : n-1])
		if !ok {
			return r
		}
		r.origin, pre = o, pre[:lt]
	}
	if n := len(pre); n > 0 && pre[n-1] == ']' {
		lb := bytes.LastIndexByte(pre, '[')
		if lb < 0 {
			return r
		}
		name, sec := pre[:lb], pre[lb+1:n-1]
		switch {
		case endsWord(name, "BODY"):
		case endsWord(name, "BINARY"):
			r.binary = true
		default:
			return r
		}
		r.sec = sec
		switch {
		case len(sec) == 0:
			r.kind = itemMsg
		case len(sec) > 5 && is(sec[len(sec)-5:], ".MIME"):
			if partNumber(sec[:len(sec)-5]) {
				r.kind, r.sec = itemMIME, sec[:len(sec)-5]
			}
		case sectionContent(sec):
			r.kind = itemSection
		}
		return r
	}
	if r.origin >= 0 {
		return r
	}
	switch {
	case endsWord(pre, "RFC822"):
		r.kind = itemMsg
	case endsWord(pre, "RFC822.TEXT"):
		r.kind, r.sec = itemSection, []byte("TEXT")
	}
	return r
}

// endsWord reports whether b ends with the item name s (ASCII case
// ignored, s upper-case) that starts b or follows a space or "(".
func endsWord(b []byte, s string) bool {
	if len(b) < len(s) || !is(b[len(b)-len(s):], s) {
		return false
	}
	i := len(b) - len(s) - 1
	return i < 0 || b[i] == ' ' || b[i] == '('
}

// partNumber reports whether b is a part specifier: "2", "1.2.3".
func partNumber(b []byte) bool {
	if len(b) == 0 || b[0] == '.' || b[len(b)-1] == '.' {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// sectionContent reports whether a section names content: a part ("2",
// "1.2") or a message's text ("TEXT", "2.TEXT"); headers are not.
func sectionContent(sec []byte) bool {
	if is(sec, "TEXT") {
		return true
	}
	if len(sec) > 5 && is(sec[len(sec)-5:], ".TEXT") {
		sec = sec[:len(sec)-5]
	}
	return partNumber(sec)
}

// rfc822Size finds "RFC822.SIZE n" in b.
func rfc822Size(b []byte) (int64, bool) {
	i := upperIndex(b, "RFC822.SIZE ")
	if i < 0 {
		return 0, false
	}
	num, _ := word(b[i+len("RFC822.SIZE "):])
	num = bytes.TrimRight(num, ")")
	return parseUint(num)
}

// requestedLength returns the length of the partial a FETCH command asks
// for ("BODY.PEEK[]<0.65536>"), 0 when it asks for none.
func requestedLength(args []byte) int64 {
	i := bytes.Index(args, []byte("]<"))
	if i < 0 {
		return 0
	}
	spec := args[i+2:]
	end := bytes.IndexByte(spec, '>')
	if end < 0 {
		return 0
	}
	_, l, ok := bytes.Cut(spec[:end], []byte("."))
	if !ok {
		return 0
	}
	n, ok := parseUint(l)
	if !ok {
		return 0
	}
	return n
}

// fetchLiteral decides what the n-byte literal of FETCH item pre is and
// returns how its bytes end (endSkip, endMsg, endPart, endCapture). A
// section's synthetic or captured header goes to the Handler here, before
// the literal's bytes.
func (p *Parser) fetchLiteral(s *half, pre []byte, n int64) uint8 {
	if sz, ok := rfc822Size(pre); ok {
		s.fsize = sz
	}
	ref := parseFetchItem(pre)
	switch ref.kind {
	case itemOther:
		if ref.origin >= 0 || upperIndex(pre, "BODY[") >= 0 || upperIndex(pre, "BINARY[") >= 0 {
			if !endsHeader(ref.sec) {
				p.h.Anomaly(AnomPartialFetch)
			}
		}
		return endSkip
	case itemMIME:
		p.mimeSecN, p.mimeSeq = 0, s.fseq
		if n > maxMIMEHeader {
			return endSkip
		}
		if p.mimeHdr == nil {
			p.mimeHdr = make([]byte, 0, maxMIMEHeader)
		}
		p.mimeHdr = p.mimeHdr[:0]
		p.mimeSecN = copy(p.mimeSec[:], ref.sec)
		return endCapture
	}
	if ref.origin < 0 {
		p.endPartial()
		if !p.begin(ToClient, CommandFETCH) {
			return endSkip
		}
		p.sectionHead(s, ref)
		return endMsg
	}
	fp := &p.fpart
	if ref.origin == 0 {
		p.endPartial()
		if !p.begin(ToClient, CommandFETCH) {
			return endSkip
		}
		*fp = fetchPart{on: true, seq: s.fseq, size: -1}
		fp.secN = copy(fp.sec[:], ref.sec)
		if ref.kind == itemMsg && !ref.binary {
			fp.size = s.fsize
		}
		p.sectionHead(s, ref)
	} else if !fp.on || fp.seq != s.fseq || !bytes.Equal(fp.sec[:fp.secN], ref.sec) || ref.origin != fp.next {
		p.h.Anomaly(AnomPartialFetch)
		return endSkip
	}
	fp.next += n
	if fp.size >= 0 && fp.next >= fp.size || fp.size < 0 && p.reqLen > 0 && n < p.reqLen {
		fp.on = false
		return endMsg
	}
	return endPart
}

// endsHeader reports whether a section names header fields.
func endsHeader(sec []byte) bool { return upperIndex(sec, "HEADER") >= 0 }

// endPartial ends a partial message left open (incomplete).
func (p *Parser) endPartial() {
	if !p.fpart.on {
		return
	}
	p.fpart.on = false
	if p.msg != msgNone && p.msgDir == ToClient {
		p.finish(false)
	}
}

// sectionHead starts a section's message with its header: the part's MIME
// header captured just before, else a synthetic one (decided now for
// BINARY, after the content's first bytes otherwise).
func (p *Parser) sectionHead(s *half, ref fetchRef) {
	if ref.kind != itemSection {
		return
	}
	if p.mimeSecN > 0 && p.mimeSeq == s.fseq && bytes.Equal(p.mimeSec[:p.mimeSecN], ref.sec) {
		h := p.mimeHdr
		p.mimeSecN = 0
		switch {
		case bytes.HasSuffix(h, []byte("\r\n\r\n")):
		case bytes.HasSuffix(h, []byte("\r\n")):
			h = append(h, "\r\n"...)
		default:
			h = append(h, "\r\n\r\n"...)
		}
		p.data(h)
		return
	}
	if ref.binary {
		p.data(hdrOctet)
		return
	}
	s.guess, s.peekN = true, 0
}

// capture keeps the bytes of a BODY[n.MIME] literal.
func (p *Parser) capture(b []byte) {
	if p.mimeSecN > 0 {
		p.mimeHdr = append(p.mimeHdr, b[:min(len(b), cap(p.mimeHdr)-len(p.mimeHdr))]...)
	}
}

// peekData holds a section's first bytes until there are enough to tell
// base64 from other content; flush ends the wait.
func (p *Parser) peekData(s *half, b []byte) {
	k := copy(s.peek[s.peekN:], b)
	s.peekN += k
	if s.peekN == len(s.peek) {
		p.flushPeek(s)
		p.data(b[k:])
	}
}

func (p *Parser) flushPeek(s *half) {
	if !s.guess {
		return
	}
	s.guess = false
	if looksBase64(s.peek[:s.peekN]) {
		p.data(hdrBase64)
	} else {
		p.data(hdrOctet)
	}
	p.data(s.peek[:s.peekN])
}

// looksBase64 reports whether b, the start of some content, is base64
// text: only the alphabet, '=' and line ends, and a first full line whose
// length is a multiple of four (or one short run of it).
func looksBase64(b []byte) bool {
	n := 0
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=':
			n++
		case c == '\r' || c == '\n':
		default:
			return false
		}
	}
	if n < 8 {
		return false
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line := bytes.TrimRight(b[:i], "\r")
		return len(line) > 0 && len(line)%4 == 0
	}
	return true
}
