// Package http1 is a streaming HTTP/1.x parser for the inline engine.
//
// A Parser follows one TCP connection. The engine feeds it the in-order bytes
// of each direction as the stream reassembler delivers them (ToServer and
// ToClient); the parser calls its Handler when a request's or a response's
// header block is complete, for every piece of body (de-chunked), and at the
// end of each body. Pipelined requests are paired with their responses in
// order, so a response to HEAD, a 1xx, 204 or 304 has no body.
//
// Cost: once a connection's header buffers exist, feeding bytes does not
// allocate. Header blocks are copied into a per-direction buffer capped at
// MaxHeader bytes; body bytes are passed to the handler as sub-slices of the
// input and never copied. Slices in Request and Response stay valid only
// until the next call into the parser.
//
// What is not HTTP (a header block over the cap, a bad request or status
// line, a bad chunk size) stops parsing of that direction: Broken reports it
// and the engine treats the rest of the flow as opaque.
//
// A connection that stops speaking HTTP on purpose, after a 2xx answer to
// CONNECT (a tunnel through a proxy) or a 101 (an Upgrade: WebSocket,
// h2c), is tunneled from the byte after that response's header: Feed
// returns the bytes from there on, for the caller to inspect as the
// protocol they are, and Tunneled reports it.
package http1

import "bytes"

// MaxHeader caps a header block (request or status line plus headers).
const MaxHeader = 32 << 10

// Dir is the direction of a body.
type Dir uint8

// Directions.
const (
	ToServer Dir = 0
	ToClient Dir = 1
)

// Request is a parsed request header block. Slices alias the parser's buffer.
type Request struct {
	Method, URI, Proto []byte
	Line               []byte // the request line, without its CRLF
	Host               []byte // the Host header; the target's authority ("host:port") for a target in absolute form and for CONNECT
	UserAgent          []byte
	Cookie             []byte
	ContentType        []byte
	Disposition        []byte
	Referer, Accept    []byte
	AcceptEncoding     []byte
	AcceptLanguage     []byte
	Connection         []byte
	ContentLen         []byte // the Content-Length value as sent
	Headers            []byte // header lines, without the request line
	Raw                []byte // the whole block, request line included
	ContentLength      int64  // -1 when absent
	Chunked            bool
}

// Response is a parsed response header block. Slices alias the parser's
// buffer.
type Response struct {
	Status          int
	StatCode        []byte
	StatMsg, Proto  []byte
	Line            []byte // the status line, without its CRLF
	ContentType     []byte
	Server          []byte
	Location        []byte
	Connection      []byte
	ContentLen      []byte // the Content-Length value as sent
	ContentEncoding []byte
	Disposition     []byte
	Headers         []byte
	Raw             []byte
	ContentLength   int64 // -1 when absent
	Chunked         bool
	// Method is the method of the request this answers ("" if unknown).
	Method []byte
}

// Handler receives parse events. Calls come from inside Parser.Feed and
// Parser.Close, on the caller's goroutine.
type Handler interface {
	Request(r *Request)
	Response(r *Response)
	Body(d Dir, data []byte)
	// BodyEnd ends a body; complete is false when the connection ended
	// before the declared length or final chunk.
	BodyEnd(d Dir, complete bool)
}

type state uint8

const (
	stHeader state = iota
	stBodyLen
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stBodyClose
	stBroken
	stTunnel // the connection switched to another protocol
)

type half struct {
	st        state
	hdr       []byte
	remaining int64
	line      []byte // chunk-size or trailer line accumulation (small)
	inBody    bool
}

// Parser follows one HTTP/1.x connection. The zero value is not usable; call
// Init.
type Parser struct {
	h       Handler
	dir     [2]half
	req     Request
	resp    Response
	methods [8][8]byte // pending request methods, FIFO, for response pairing
	mlen    [8]uint8
	mhead   uint8
	mcount  uint8
}

// Init readies p for a new connection, keeping its buffers.
func (p *Parser) Init(h Handler) {
	p.h = h
	for i := range p.dir {
		d := &p.dir[i]
		d.st, d.remaining, d.inBody = stHeader, 0, false
		d.hdr = d.hdr[:0]
		d.line = d.line[:0]
	}
	p.mhead, p.mcount = 0, 0
}

// Broken reports whether parsing of direction d stopped because the bytes
// are not HTTP.
func (p *Parser) Broken(d Dir) bool { return p.dir[d].st == stBroken }

// Tunneled reports whether the connection switched from HTTP to another
// protocol (a 2xx answer to CONNECT, a 101).
func (p *Parser) Tunneled() bool { return p.dir[ToClient].st == stTunnel }

// Feed parses the next in-order bytes of direction d. Once the connection
// is tunneled, it returns the bytes of b from the tunnel's first on; nil
// until then.
func (p *Parser) Feed(d Dir, b []byte) (tunneled []byte) {
	h := &p.dir[d]
	for len(b) > 0 {
		switch h.st {
		case stBroken:
			return nil
		case stTunnel:
			return b
		case stHeader:
			b = p.header(d, h, b)
		case stBodyLen:
			n := int64(len(b))
			if n > h.remaining {
				n = h.remaining
			}
			p.h.Body(d, b[:n])
			b = b[n:]
			h.remaining -= n
			if h.remaining == 0 {
				p.endBody(d, h, true)
			}
		case stBodyClose:
			p.h.Body(d, b)
			return nil
		case stChunkSize, stChunkCRLF, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(h.line)+len(b) > 1024 {
					p.broken(d, h)
					return nil
				}
				h.line = append(h.line, b...)
				return nil
			}
			h.line = append(h.line, b[:i]...)
			b = b[i+1:]
			line := bytes.TrimRight(h.line, "\r")
			switch h.st {
			case stChunkSize:
				if j := bytes.IndexByte(line, ';'); j >= 0 {
					line = line[:j]
				}
				n, ok := parseHex(bytes.TrimSpace(line))
				if !ok {
					p.broken(d, h)
					return nil
				}
				if n == 0 {
					h.st = stTrailer
				} else {
					h.st, h.remaining = stChunkData, n
				}
			case stChunkCRLF:
				h.st = stChunkSize
			case stTrailer:
				if len(line) == 0 {
					p.endBody(d, h, true)
				}
			}
			h.line = h.line[:0]
		case stChunkData:
			n := int64(len(b))
			if n > h.remaining {
				n = h.remaining
			}
			p.h.Body(d, b[:n])
			b = b[n:]
			h.remaining -= n
			if h.remaining == 0 {
				h.st = stChunkCRLF
			}
		}
	}
	return nil
}

// Close ends the connection: a body that runs until close ends complete,
// any other open body ends incomplete.
func (p *Parser) Close() {
	for d := range p.dir {
		h := &p.dir[d]
		if !h.inBody {
			continue
		}
		p.endBody(Dir(d), h, h.st == stBodyClose)
	}
}

// InBody reports whether direction d is inside a message body.
func (p *Parser) InBody(d Dir) bool { return p.dir[d].inBody }

// InHeader reports whether direction d holds the first bytes of a message
// header that is not complete yet.
func (p *Parser) InHeader(d Dir) bool {
	h := &p.dir[d]
	return h.st == stHeader && len(h.hdr) > 0
}

func (p *Parser) broken(d Dir, h *half) {
	if h.inBody {
		h.inBody = false
		p.h.BodyEnd(d, false)
	}
	h.st = stBroken
}

func (p *Parser) endBody(d Dir, h *half, complete bool) {
	h.st = stHeader
	h.hdr = h.hdr[:0]
	h.line = h.line[:0]
	if h.inBody {
		h.inBody = false
		p.h.BodyEnd(d, complete)
	}
}

// header accumulates a header block and returns the bytes after it.
func (p *Parser) header(d Dir, h *half, b []byte) []byte {
	// Skip empty lines between messages (RFC 9112 2.2).
	if len(h.hdr) == 0 {
		for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
			b = b[1:]
		}
		if len(b) == 0 {
			return b
		}
	}
	start := len(h.hdr) - 3
	if start < 0 {
		start = 0
	}
	if h.hdr == nil {
		h.hdr = make([]byte, 0, 2048)
	}
	take := len(b)
	if len(h.hdr)+take > MaxHeader {
		take = MaxHeader - len(h.hdr)
	}
	h.hdr = append(h.hdr, b[:take]...)
	end := bytes.Index(h.hdr[start:], []byte("\r\n\r\n"))
	sep := 4
	if end < 0 {
		end = bytes.Index(h.hdr[start:], []byte("\n\n"))
		sep = 2
	}
	if end < 0 {
		if len(h.hdr) >= MaxHeader {
			p.broken(d, h)
			return nil
		}
		return nil
	}
	end += start
	blockLen := end + sep
	rest := b[take-(len(h.hdr)-blockLen):]
	h.hdr = h.hdr[:blockLen]
	var ok bool
	if d == ToServer {
		ok = p.parseRequest(h)
	} else {
		ok = p.parseResponse(h)
	}
	if !ok {
		p.broken(d, h)
		return nil
	}
	return rest
}

func (p *Parser) parseRequest(h *half) bool {
	r := &p.req
	*r = Request{ContentLength: -1, Raw: h.hdr}
	line, rest := cutLine(h.hdr)
	r.Line = line
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	r.Method = line[:sp1]
	for _, c := range r.Method {
		if c < 'A' || c > 'Z' {
			if c != '-' && c != '_' {
				return false
			}
		}
	}
	u := line[sp1+1:]
	sp2 := bytes.LastIndexByte(u, ' ')
	if sp2 < 0 {
		return false // HTTP/0.9 is not inspected
	}
	r.URI, r.Proto = u[:sp2], u[sp2+1:]
	if !bytes.HasPrefix(r.Proto, []byte("HTTP/1.")) {
		return false
	}
	r.Headers = rest
	var te []byte
	if !eachHeader(rest, func(name, value []byte) {
		switch {
		case equalFold(name, "host"):
			r.Host = value
		case equalFold(name, "user-agent"):
			r.UserAgent = value
		case equalFold(name, "cookie"):
			r.Cookie = value
		case equalFold(name, "content-type"):
			r.ContentType = value
		case equalFold(name, "content-disposition"):
			r.Disposition = value
		case equalFold(name, "content-length"):
			r.ContentLength = parseLength(value)
			r.ContentLen = value
		case equalFold(name, "transfer-encoding"):
			te = value
		case equalFold(name, "referer"):
			r.Referer = value
		case equalFold(name, "accept"):
			r.Accept = value
		case equalFold(name, "accept-encoding"):
			r.AcceptEncoding = value
		case equalFold(name, "accept-language"):
			r.AcceptLanguage = value
		case equalFold(name, "connection"):
			r.Connection = value
		}
	}) {
		return false
	}
	r.Chunked = hasChunked(te)
	if a := authority(r.URI); len(a) > 0 {
		// A request to a proxy names its server in the target; the proxy
		// goes there whatever the Host header says (RFC 9112 3.2.2), and
		// so does Suricata's http.host.
		r.Host = a
	} else if bytes.Equal(r.Method, []byte("CONNECT")) && len(r.URI) > 0 && r.URI[0] != '/' {
		r.Host = r.URI // authority-form: the tunnel's end, "host:port"
	}
	p.pushMethod(r.Method)
	p.h.Request(r)
	switch {
	case r.Chunked:
		p.beginBody(h, stChunkSize, 0)
	case r.ContentLength > 0:
		p.beginBody(h, stBodyLen, r.ContentLength)
	default:
		h.hdr = h.hdr[:0]
	}
	return true
}

func (p *Parser) parseResponse(h *half) bool {
	r := &p.resp
	*r = Response{ContentLength: -1, Raw: h.hdr}
	line, rest := cutLine(h.hdr)
	r.Line = line
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || len(line) < sp+4 {
		return false
	}
	r.Proto = line[:sp]
	r.StatCode = line[sp+1 : sp+4]
	st := int(parseLength(r.StatCode))
	if st < 100 || st > 999 {
		return false
	}
	r.Status = st
	if len(line) > sp+5 {
		r.StatMsg = line[sp+5:]
	}
	r.Headers = rest
	var te []byte
	if !eachHeader(rest, func(name, value []byte) {
		switch {
		case equalFold(name, "content-type"):
			r.ContentType = value
		case equalFold(name, "content-encoding"):
			r.ContentEncoding = value
		case equalFold(name, "content-disposition"):
			r.Disposition = value
		case equalFold(name, "content-length"):
			r.ContentLength = parseLength(value)
			r.ContentLen = value
		case equalFold(name, "transfer-encoding"):
			te = value
		case equalFold(name, "server"):
			r.Server = value
		case equalFold(name, "location"):
			r.Location = value
		case equalFold(name, "connection"):
			r.Connection = value
		}
	}) {
		return false
	}
	r.Chunked = hasChunked(te)
	if st >= 200 || st == 101 {
		r.Method = p.popMethod()
	}
	p.h.Response(r)
	if st == 101 || st/100 == 2 && bytes.Equal(r.Method, []byte("CONNECT")) {
		p.tunnel()
		return true
	}
	switch {
	case st < 200, st == 204, st == 304, bytes.Equal(r.Method, []byte("HEAD")):
		h.hdr = h.hdr[:0]
	case r.Chunked:
		p.beginBody(h, stChunkSize, 0)
	case r.ContentLength >= 0:
		if r.ContentLength == 0 {
			h.hdr = h.hdr[:0]
			break
		}
		p.beginBody(h, stBodyLen, r.ContentLength)
	default:
		p.beginBody(h, stBodyClose, 0)
	}
	return true
}

// tunnel ends HTTP on both directions: a request body in transfer ends
// incomplete, and what follows the current header block is the tunnel's.
func (p *Parser) tunnel() {
	for d := range p.dir {
		h := &p.dir[d]
		if h.inBody {
			h.inBody = false
			p.h.BodyEnd(Dir(d), false)
		}
		h.st = stTunnel
		h.hdr = h.hdr[:0]
		h.line = h.line[:0]
	}
}

func (p *Parser) beginBody(h *half, st state, n int64) {
	h.st, h.remaining, h.inBody = st, n, true
	h.line = h.line[:0]
}

func (p *Parser) pushMethod(m []byte) {
	if p.mcount == uint8(len(p.methods)) {
		p.popMethod() // too many in flight: forget the oldest
	}
	i := (p.mhead + p.mcount) % uint8(len(p.methods))
	p.mlen[i] = uint8(copy(p.methods[i][:], m))
	p.mcount++
}

func (p *Parser) popMethod() []byte {
	if p.mcount == 0 {
		return nil
	}
	i := p.mhead
	p.mhead = (p.mhead + 1) % uint8(len(p.methods))
	p.mcount--
	return p.methods[i][:p.mlen[i]]
}

func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return bytes.TrimRight(b[:i], "\r"), b[i+1:]
}

// NextHeader splits the first header line off block (a Headers field):
// name and value trimmed of white space, and the lines after it. ok is false
// at the end of the block (an empty line or no bytes left). Obsolete folded
// continuation lines and lines without a colon are skipped, as the parser
// does. It does not allocate.
func NextHeader(block []byte) (name, value, rest []byte, ok bool) {
	for len(block) > 0 {
		var line []byte
		line, block = cutLine(block)
		if len(line) == 0 {
			return nil, nil, nil, false
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		return bytes.TrimSpace(line[:c]), bytes.TrimSpace(line[c+1:]), block, true
	}
	return nil, nil, nil, false
}

// eachHeader calls fn for each "Name: value" line of block. It reports false
// for a line without a colon.
func eachHeader(block []byte, fn func(name, value []byte)) bool {
	for len(block) > 0 {
		var line []byte
		line, block = cutLine(block)
		if len(line) == 0 {
			break
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			if line[0] == ' ' || line[0] == '\t' {
				continue // obsolete line folding: ignored
			}
			return false
		}
		fn(bytes.TrimSpace(line[:c]), bytes.TrimSpace(line[c+1:]))
	}
	return true
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func hasChunked(te []byte) bool {
	te = bytes.TrimSpace(te)
	if len(te) < 7 {
		return false
	}
	return equalFold(te[len(te)-7:], "chunked")
}

func parseLength(v []byte) int64 {
	var n int64
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func parseHex(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
