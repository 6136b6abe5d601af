package engine

import (
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/signatures/rules"
)

// Request implements http1.Handler: a request's header block is complete.
func (st *flowState) Request(r *http1.Request) {
	e := st.e
	b := e.bundle.Load()
	if st.reqN == len(st.reqs) {
		st.reqHead = (st.reqHead + 1) % len(st.reqs)
		st.reqN--
	}
	m := &st.reqs[(st.reqHead+st.reqN)%len(st.reqs)]
	m.set(r)
	st.reqN++
	st.reqSeen = true
	e.stats.HTTPRequests.Add(1)

	if b.Intel != nil && len(r.Host) > 0 {
		host := hostOnly(r.Host)
		if ind, ok := b.Intel.LookupDomain(host); ok {
			e.alertIntel(st, sidCNCHTTPHost, string(host), ind, Reject, m)
		}
	}
	in := e.input(st, 0)
	e.uriBuf = http1.NormalizeURI(e.uriBuf[:0], r.URI)
	in.Buf[rules.BufHTTPURI] = e.uriBuf
	in.Buf[rules.BufHTTPRawURI] = r.URI
	in.Buf[rules.BufHTTPMethod] = r.Method
	in.Buf[rules.BufHTTPHeader] = r.Headers
	in.Buf[rules.BufHTTPRawHeader] = r.Headers
	in.Buf[rules.BufHTTPHost] = r.Host
	if len(r.UserAgent) > 0 {
		in.Buf[rules.BufHTTPUserAgent] = r.UserAgent
	}
	if len(r.Cookie) > 0 {
		in.Buf[rules.BufHTTPCookie] = r.Cookie
	}
	e.matchRules(b, st, in, m)
}

// Response implements http1.Handler.
func (st *flowState) Response(r *http1.Response) {
	e := st.e
	if r.Status >= 200 {
		if st.reqN > 0 {
			m := &st.reqs[st.reqHead]
			// swap buffers rather than copy
			st.resp, *m = *m, st.resp
			st.reqHead = (st.reqHead + 1) % len(st.reqs)
			st.reqN--
		} else {
			st.resp.method, st.resp.host, st.resp.uri = st.resp.method[:0], st.resp.host[:0], st.resp.uri[:0]
		}
		st.status = r.Status
		f := &st.file[1]
		f.name = append(f.name[:0], http1.FileName(r.Disposition, st.resp.uri)...)
	}
	b := e.bundle.Load()
	in := e.input(st, 1)
	in.Buf[rules.BufHTTPStatCode] = r.StatCode
	in.Buf[rules.BufHTTPStatMsg] = r.StatMsg
	in.Buf[rules.BufHTTPHeader] = r.Headers
	in.Buf[rules.BufHTTPRawHeader] = r.Headers
	e.matchRules(b, st, in, &st.resp)
}

// Body implements http1.Handler.
func (st *flowState) Body(d http1.Dir, data []byte) {
	f := &st.file[d]
	if !f.active {
		meta := &st.resp
		if d == http1.ToServer {
			meta = st.lastRequest()
			f.name = append(f.name[:0], http1.FileName(nil, meta.uri)...)
		}
		st.e.startFile(f, meta)
	}
	st.e.fileData(f, data)
}

// BodyEnd implements http1.Handler.
func (st *flowState) BodyEnd(d http1.Dir, complete bool) {
	f := &st.file[d]
	if !f.active {
		return
	}
	st.e.endFile(st, int(d), f, complete)
}

func (st *flowState) lastRequest() *reqMeta {
	if st.reqN == 0 {
		return &st.resp
	}
	return &st.reqs[(st.reqHead+st.reqN-1)%len(st.reqs)]
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
