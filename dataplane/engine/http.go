package engine

import (
	"bytes"
	"errors"

	"github.com/openutm/utm/dataplane/contentenc"
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/dataplane/mime"
	"github.com/openutm/utm/signatures/rules"
)

// Request implements http1.Handler: a request's header block is complete.
func (st *flowState) Request(r *http1.Request) {
	e := st.e
	h := st.http
	b := e.pb
	if h.reqN == len(h.reqs) {
		h.reqHead = (h.reqHead + 1) % len(h.reqs)
		h.reqN--
	}
	m := &h.reqs[(h.reqHead+h.reqN)%len(h.reqs)]
	m.set(r)
	h.reqN++
	st.reqSeen = true
	e.stats.HTTPRequests.Add(1)
	if hasToken(r.Connection, "close") {
		st.lastTx = true
	}

	if b.Intel != nil && len(r.Host) > 0 {
		host := hostOnly(r.Host)
		if ind, ok := b.Intel.LookupDomain(host); ok {
			e.alertIntel(st, sidCNCHTTPHost, string(host), ind, Reject, m)
		} else if ind, ok := b.Intel.LookupURL(host, r.URI); ok {
			e.alertIntel(st, sidCNCURL, string(host)+string(r.URI), ind, Reject, m)
		}
	}
	in := e.input(st, 0)
	e.uriBuf = http1.NormalizeURI(e.uriBuf[:0], r.URI)
	if e.blocked.Len() > 0 {
		e.keyBuf = urlKey(e.keyBuf[:0], r.Host, e.uriBuf)
		if b, ok := e.blocked.lookup(e.keyBuf, e.now); ok {
			e.alertBlockedRetry(st, m, b)
			return
		}
	}
	in.Buf[rules.BufHTTPURI] = e.uriBuf
	in.Buf[rules.BufHTTPRawURI] = r.URI
	in.Buf[rules.BufHTTPMethod] = r.Method
	in.Buf[rules.BufHTTPRequestLine] = r.Line
	in.Buf[rules.BufHTTPProtocol] = r.Proto
	in.Buf[rules.BufHTTPHost] = r.Host
	in.Buf[rules.BufHTTPUserAgent] = r.UserAgent
	in.Buf[rules.BufHTTPCookie] = r.Cookie
	in.Buf[rules.BufHTTPContentType] = r.ContentType
	in.Buf[rules.BufHTTPContentLen] = r.ContentLen
	in.Buf[rules.BufHTTPReferer] = r.Referer
	in.Buf[rules.BufHTTPAccept] = r.Accept
	in.Buf[rules.BufHTTPAcceptEnc] = r.AcceptEncoding
	in.Buf[rules.BufHTTPAcceptLang] = r.AcceptLanguage
	in.Buf[rules.BufHTTPConnection] = r.Connection
	e.hs.headers(in, r.Line, r.Headers, "cookie", rules.BufHTTPRequestHeader)
	if r.ContentLength > 0 || r.Chunked {
		in.Buf[rules.BufFileName] = http1.FileName(nil, r.URI) // as Body names the upload
		h.upMIME = false
		h.expect[0] = max(r.ContentLength, 0)
		if ct := r.ContentType; hasMediaType(ct, "multipart/") {
			// The form's files are extracted part by part (mail.go's
			// mimeRecv); the raw body is still kept for the body rules.
			if m := st.message(); m.mime.InitMultipart(&m.mimeR, mime.Limits{}, string(ct)) == nil {
				h.upMIME, st.mailDir = true, 0
			}
		}
	}
	e.matchRules(b, st, in, m)
}

// Response implements http1.Handler.
func (st *flowState) Response(r *http1.Response) {
	e := st.e
	h := st.http
	if hasToken(r.Connection, "close") || (bytes.Equal(r.Proto, []byte("HTTP/1.0")) && !hasToken(r.Connection, "keep-alive")) {
		st.lastTx = true
	}
	meta := &h.resp
	h.interim = r.Status < 200
	if h.interim && h.reqN > 0 {
		// "100 Continue" and the like: the request still waits for its
		// final response, and this one is about it.
		meta = &h.reqs[h.reqHead]
		meta.status = r.Status
	}
	if r.Status >= 200 {
		if h.reqN > 0 {
			m := &h.reqs[h.reqHead]
			// swap buffers rather than copy
			h.resp, *m = *m, h.resp
			h.reqHead = (h.reqHead + 1) % len(h.reqs)
			h.reqN--
		} else {
			h.resp.set(nil)
		}
		h.resp.status = r.Status
		f := &h.file[1]
		f.name = append(f.name[:0], http1.FileName(r.Disposition, h.resp.uri)...)
		st.closeDecoder(1)
		h.encErr[1] = ""
		if ce := bytes.TrimSpace(r.ContentEncoding); len(ce) > 0 && !bytes.EqualFold(ce, []byte("identity")) && hasBody(r) {
			if err := h.dec[1].Init(ce, e.cfg.ContentEncoding, h.decOut[1]); err != nil {
				// Unknown coding or too many layers: the client may still
				// decode it; the box cannot look inside.
				e.stats.DecodeErrors.Add(1)
				h.encErr[1] = "Content-Encoding " + string(ce) + ": " + err.Error()
			} else {
				h.decOn[1] = true
			}
		}
		h.rangeFrom[1] = contentRangeStart(r.Headers)
		h.expect[1] = 0
		if !h.decOn[1] && h.encErr[1] == "" {
			h.expect[1] = max(r.ContentLength, 0)
		}
	}
	b := e.pb
	in := e.input(st, 1)
	in.Buf[rules.BufHTTPStatCode] = r.StatCode
	in.Buf[rules.BufHTTPStatMsg] = r.StatMsg
	in.Buf[rules.BufHTTPResponseLine] = r.Line
	in.Buf[rules.BufHTTPProtocol] = r.Proto
	in.Buf[rules.BufHTTPContentType] = r.ContentType
	in.Buf[rules.BufHTTPContentLen] = r.ContentLen
	in.Buf[rules.BufHTTPServer] = r.Server
	in.Buf[rules.BufHTTPLocation] = r.Location
	in.Buf[rules.BufHTTPConnection] = r.Connection
	e.hs.headers(in, r.Line, r.Headers, "set-cookie", rules.BufHTTPResponseHeader)
	if r.Status >= 200 && hasBody(r) {
		in.Buf[rules.BufFileName] = h.file[1].name
	}
	e.matchRules(b, st, in, meta)
}

// hasBody reports whether a final response carries a body (not to HEAD,
// not 204 or 304, not an empty Content-Length).
func hasBody(r *http1.Response) bool {
	return r.Status != 204 && r.Status != 304 && !bytes.Equal(r.Method, []byte("HEAD")) && r.ContentLength != 0
}

// httpScratch holds the HTTP buffers the engine derives from a header block,
// rebuilt in place for each request or response (one per Engine: a header
// block is matched before the next one is parsed).
type httpScratch struct {
	header []byte // http.header: "Name: value\r\n" per header, cookie excluded
	all    []byte // http.request_header / http.response_header: every header
	names  []byte // http.header_names: "\r\nName\r\n...\r\n\r\n"
	start  []byte // http.start: start line, headers, empty line
}

// headers fills the header buffers of in from a start line and the header
// lines after it, as Suricata builds them: http.header is normalised (names
// and values trimmed, "Name: value\r\n" each, no start line, no trailing
// empty line) without the header named cookie (Cookie in requests,
// Set-Cookie in responses: http.cookie has it); http.header.raw is the block
// as received; http.start is the start line, the normalised headers with the
// cookie, and the empty line; all is the buffer of every header, cookie
// included. Absent when the block has no header.
func (s *httpScratch) headers(in *rules.Input, line, block []byte, cookie string, all rules.Buffer) {
	s.header, s.all = s.header[:0], s.all[:0]
	s.names = append(s.names[:0], "\r\n"...)
	s.start = append(append(s.start[:0], line...), "\r\n"...)
	n := 0
	for b := block; ; n++ {
		name, value, rest, ok := http1.NextHeader(b)
		if !ok {
			break
		}
		b = rest
		s.names = append(append(s.names, name...), "\r\n"...)
		i := len(s.all)
		s.all = append(append(append(append(s.all, name...), ": "...), value...), "\r\n"...)
		if !bytes.EqualFold(name, []byte(cookie)) {
			s.header = append(s.header, s.all[i:]...)
		}
	}
	s.names = append(s.names, "\r\n"...)
	s.start = append(append(s.start, s.all...), "\r\n"...)
	in.Buf[rules.BufHTTPStart] = s.start
	if n == 0 {
		return
	}
	in.Buf[rules.BufHTTPRawHeader] = block
	in.Buf[rules.BufHTTPHeaderNames] = s.names
	in.Buf[all] = s.all
	if len(s.header) > 0 {
		in.Buf[rules.BufHTTPHeader] = s.header
	}
}

// Body implements http1.Handler. A Content-Encoding is decoded on the way
// (contentenc: synchronous, bounded), so the file scanned and hashed is the
// one the client saves; a multipart upload also goes to the MIME parser,
// whose parts are files of their own.
func (st *flowState) Body(d http1.Dir, data []byte) {
	e := st.e
	h := st.http
	f := &h.file[d]
	if !f.active {
		meta := &h.resp
		if d == http1.ToServer {
			meta = st.lastRequest()
			f.name = append(f.name[:0], http1.FileName(nil, meta.uri)...)
		}
		e.startFile(f, meta)
		f.unscannable = h.encErr[d]
		f.quiet = d == http1.ToServer && h.upMIME // the parts are reported instead
		f.rangeFrom = h.rangeFrom[d]
		f.expect = h.expect[d]
	}
	if d == http1.ToServer && h.upMIME {
		st.msg.mime.Write(data)
	}
	if h.decOn[d] {
		if err := h.dec[d].Write(data); err != nil {
			st.decodeFailed(d, f, err)
		}
		return
	}
	e.fileData(f, data)
}

// BodyEnd implements http1.Handler.
func (st *flowState) BodyEnd(d http1.Dir, complete bool) {
	h := st.http
	f := &h.file[d]
	if h.decOn[d] {
		h.decOn[d] = false
		if err := h.dec[d].Close(); err != nil { // flushes the decoder's last bytes into f
			st.decodeFailed(d, f, err)
		}
	}
	if d == http1.ToServer && h.upMIME {
		h.upMIME = false
		st.msg.mime.Close()
		if mf := &st.msg.file; mf.active {
			st.e.endFile(st, 0, mf, complete)
		}
	}
	if !f.active {
		return
	}
	st.e.endFile(st, int(d), f, complete)
}

// decodeFailed handles a Content-Encoding error: a bomb makes the file
// unscannable, a corrupt or truncated stream partial (what decoded is
// scanned).
func (st *flowState) decodeFailed(d http1.Dir, f *fileState, err error) {
	h := st.http
	st.e.stats.DecodeErrors.Add(1)
	if h.decOn[d] {
		h.decOn[d] = false
		h.dec[d].Close()
	}
	if errors.Is(err, contentenc.ErrBomb) {
		if f.unscannable == "" {
			f.unscannable = "Content-Encoding decompression limit exceeded"
		}
		return
	}
	f.gap = true
}

// closeDecoder stops direction d's Content-Encoding decoder, if running.
func (st *flowState) closeDecoder(d int) {
	h := st.http
	if h.decOn[d] {
		h.decOn[d] = false
		h.dec[d].Close()
	}
}

// contentRangeStart returns the first byte position of a response's
// Content-Range ("bytes 500-999/1000" -> 500), or 0.
func contentRangeStart(headers []byte) int64 {
	for b := headers; ; {
		name, value, rest, ok := http1.NextHeader(b)
		if !ok {
			return 0
		}
		b = rest
		if !bytes.EqualFold(name, []byte("content-range")) {
			continue
		}
		v, ok := bytes.CutPrefix(bytes.TrimSpace(value), []byte("bytes "))
		if !ok {
			return 0
		}
		var n int64
		for _, c := range v {
			if c < '0' || c > '9' || n > 1<<50 {
				break
			}
			n = n*10 + int64(c-'0')
		}
		return n
	}
}

// hasMediaType reports whether a Content-Type value starts with prefix
// (ASCII case-insensitive).
func hasMediaType(ct []byte, prefix string) bool {
	ct = bytes.TrimSpace(ct)
	return len(ct) >= len(prefix) && bytes.EqualFold(ct[:len(prefix)], []byte(prefix))
}

// payloadMeta is the request an HTTP packet of direction dir belongs to,
// for its payload alerts, once the parser has taken the packet. A
// client's packet: the last request, or none while a request header is
// incomplete (the request being sent is not known yet). A server's
// packet: the request it answers; while a response header is incomplete
// or after a 1xx, the oldest request waiting (the Response call of its
// final response moves it to resp).
func (st *flowState) payloadMeta(dir int) *reqMeta {
	h := st.http
	if dir == 0 {
		if h.p.InHeader(http1.ToServer) {
			return nil
		}
		return st.lastRequest()
	}
	if h.reqN > 0 && (h.interim || h.p.InHeader(http1.ToClient)) {
		return &h.reqs[h.reqHead]
	}
	return &h.resp
}

func (st *flowState) lastRequest() *reqMeta {
	h := st.http
	if h.reqN == 0 {
		return &h.resp
	}
	return &h.reqs[(h.reqHead+h.reqN-1)%len(h.reqs)]
}

// hostOnly strips a port from a Host header value.
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i, c := range h {
			if c == ']' {
				return h[1:i]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	return h
}

// hasToken reports whether the comma-separated header value v has token
// (ASCII case-insensitive).
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(token)) {
			return true
		}
	}
	return false
}
