package engine

import (
	"bytes"
	"sync"

	"github.com/openutm/utm/dataplane/contentenc"
	"github.com/openutm/utm/dataplane/flow"
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/dataplane/mail"
	"github.com/openutm/utm/dataplane/mime"
	"github.com/openutm/utm/dataplane/packet"
	"github.com/openutm/utm/dataplane/stream"
	"github.com/openutm/utm/dataplane/tlshello"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

type appProto uint8

const (
	appUnknown appProto = iota
	appHTTP
	appDNS
	appOpaque // not a protocol we parse: only packet rules and intel apply
	appTLS    // TLS records: followed until both sides encrypt, then bypassed
	appSMTP   // mail (mail.go): followed to the end, messages extracted
	appPOP3
	appIMAP
	appQUIC // QUIC (quic.go): followed until its ClientHello is read, then bypassed
)

// carriesFiles reports whether the protocol's transfers are extracted and
// scanned, so its flows are followed to their end (never bypassed by depth).
func (a appProto) carriesFiles() bool {
	return a == appHTTP || a == appSMTP || a == appPOP3 || a == appIMAP
}

func (a appProto) String() string {
	switch a {
	case appHTTP:
		return "http"
	case appDNS:
		return "dns"
	case appTLS:
		return "tls"
	case appSMTP:
		return "smtp"
	case appPOP3:
		return "pop3"
	case appIMAP:
		return "imap"
	case appQUIC:
		return "quic"
	}
	return ""
}

// flowState is the engine's per-flow state, kept in flow.Flow.Ext and
// pooled.
type flowState struct {
	e           *Engine
	f           *flow.Flow
	app         appProto
	blocked     bool
	established bool
	midstream   bool
	synAck      bool

	tcp     [2]stream.Stream
	tcpInit [2]bool
	fin     [2]bool   // a FIN was taken in this direction
	finSeq  [2]uint32 // the FIN's sequence number: no data may pass it
	closed  [2]bool   // the stream reached its FIN
	rst     bool      // a valid RST ended the connection
	bypass  bool      // needs no more inspection (evasion.go)
	recv    [2]dirRecv
	depth   [2]int // bytes delivered or skipped per direction
	tls     [2]tlsRecords
	tiny    int  // tiny client segments before the first request
	reqSeen bool // a request header block completed
	lastTx  bool // an HTTP request or response said Connection: close

	http *httpFlow // nil until the flow is found to be HTTP (pooled)

	alerted []int      // sids already alerted on this flow
	bits    rules.Bits // the flow's flowbits (rules.Set.PostMatch)

	hello *tlshello.Parser // TLS handshake (tls.go); nil until the first TLS bytes (pooled)
	dns   *[2]dnsStream    // DNS over TCP, per direction (dns.go); nil until its first bytes (pooled)
	quic  *quicFlow        // a QUIC client's Initial packets (quic.go); nil unless followed (pooled)

	msg     *msgFlow // mail session or multipart upload state; nil until one starts (st.message)
	mailOn  bool     // a mail message is (or was last) in transfer: msg.hdr is its
	mailDir int      // direction of the message in transfer
	mailTLS bool     // STARTTLS accepted: the rest is encrypted
}

// httpFlow is the state of an HTTP connection: its parser, the requests
// waiting for their responses, the files in transfer and their
// Content-Encoding decoders, about 2.6 KB that no other flow needs. A flow
// takes one from the engine's pool when it is found to be HTTP (startHTTP)
// and gives it back when it ends.
type httpFlow struct {
	p       http1.Parser
	reqs    [4]reqMeta // requests waiting for their response, FIFO
	reqHead int
	reqN    int
	resp    reqMeta // the request the current response answers
	interim bool    // the server's last response was a 1xx: reqs[reqHead] still waits for its final one
	file    [2]fileState

	upMIME    bool                  // the request body in transfer is multipart: parts go to mime
	dec       [2]contentenc.Decoder // Content-Encoding per direction (http.go)
	decOn     [2]bool
	decOut    [2]func([]byte) // the decoders' output: into file[d]
	encErr    [2]string       // why the coming body cannot be decoded
	rangeFrom [2]int64        // Content-Range start of the coming body
	expect    [2]int64        // its Content-Length when it is the file's size
}

// startHTTP gives the flow its HTTP state, from the pool.
func (st *flowState) startHTTP() {
	e := st.e
	h, _ := e.httpPool.Get().(*httpFlow)
	if h == nil {
		h = &httpFlow{}
		for d := range h.decOut {
			f := &h.file[d]
			h.decOut[d] = func(b []byte) { e.fileData(f, b) }
		}
	}
	h.p.Init(st)
	st.http = h
}

// endHTTP drops the files in transfer, stops the decoders and gives the
// HTTP state back to the pool; the parser is readied by its next Init.
func (e *Engine) endHTTP(st *flowState) {
	h := st.http
	if h == nil {
		return
	}
	for d := range h.file {
		e.dropFile(&h.file[d])
	}
	st.closeDecoder(0)
	st.closeDecoder(1)
	h.upMIME, h.interim = false, false
	h.encErr, h.rangeFrom, h.expect = [2]string{}, [2]int64{}, [2]int64{}
	h.reqHead, h.reqN = 0, 0
	h.resp.set(nil) // named by no later flow
	e.httpPool.Put(h)
	st.http = nil
}

// msgFlow is the state of a flow that carries messages: a mail session
// (SMTP, POP3, IMAP) or an HTTP multipart upload. Few flows do, and its
// parsers are most of what a flow state would weigh (about 10 of 14 KB,
// kept for every flow of the table, a SYN flood's included), so a flow
// takes one from the engine's pool when it first needs it (message) and
// gives it back when it ends.
type msgFlow struct {
	hdr   mailMeta // the message's envelope and header fields (mail.go)
	mail  mail.Parser
	mime  mime.Parser // the message in transfer, or the multipart upload
	mailR mailRecv
	mimeR mimeRecv
	file  fileState // the MIME part in transfer
}

// message returns the flow's message state, taking one from the pool on
// first use.
func (st *flowState) message() *msgFlow {
	if st.msg == nil {
		m := poolGet[msgFlow](&st.e.msgPool)
		m.mailR, m.mimeR = mailRecv{st}, mimeRecv{st}
		st.msg = m
	}
	return st.msg
}

// poolGet takes a *T from p, or a new one when p is empty.
func poolGet[T any](p *sync.Pool) *T {
	if v, _ := p.Get().(*T); v != nil {
		return v
	}
	return new(T)
}

// reqMeta is what a file or an alert needs to know about a request, and
// the status of its response once that is known (0 before). Buffers are
// reused across requests.
type reqMeta struct {
	method, host, uri []byte
	status            int
}

// set makes m request r, no response yet; r nil: no request.
func (m *reqMeta) set(r *http1.Request) {
	m.method, m.host, m.uri, m.status = m.method[:0], m.host[:0], m.uri[:0], 0
	if r != nil {
		m.method = append(m.method, r.Method...)
		m.host = append(m.host, r.Host...)
		m.uri = append(m.uri, r.URI...)
	}
}

// copyFrom makes m a copy of o, in m's own buffers.
func (m *reqMeta) copyFrom(o *reqMeta) {
	m.method = append(m.method[:0], o.method...)
	m.host = append(m.host[:0], o.host...)
	m.uri = append(m.uri[:0], o.uri...)
	m.status = o.status
}

func (e *Engine) newFlowState(f *flow.Flow) *flowState {
	st, _ := e.pool.Get().(*flowState)
	if st == nil {
		st = &flowState{e: e}
		st.recv[0] = dirRecv{st, 0}
		st.recv[1] = dirRecv{st, 1}
		st.alerted = make([]int, 0, 4)
	}
	st.f = f
	f.Ext = st
	e.stats.Flows.Add(1)
	return st
}

// release is called by the flow table before it forgets f.
func (e *Engine) release(f *flow.Flow) {
	st, _ := f.Ext.(*flowState)
	if st == nil {
		return
	}
	if !st.blocked && !st.bypass && !st.rst {
		// The flow ends: bytes still buffered behind a hole are inspected
		// (the hole becomes a gap), and an HTTP connection ends.
		e.cur = pktCtx{st: st}
		e.closeStreams(st)
		e.cur = pktCtx{}
	}
	if m := st.msg; m != nil {
		e.dropFile(&m.file)
		m.hdr.reset()
		m.mailR, m.mimeR = mailRecv{}, mimeRecv{}
		e.msgPool.Put(m)
		st.msg = nil
	}
	e.endHTTP(st)
	st.tcp[0].Reset() // out-of-order pages back to the pool
	st.tcp[1].Reset()
	f.Ext = nil
	st.f = nil
	st.app, st.blocked, st.established, st.midstream, st.synAck = appUnknown, false, false, false, false
	st.tcpInit = [2]bool{}
	st.fin, st.closed, st.finSeq = [2]bool{}, [2]bool{}, [2]uint32{}
	st.rst, st.bypass, st.reqSeen, st.tiny, st.lastTx = false, false, false, 0, false
	st.depth = [2]int{}
	st.tls = [2]tlsRecords{}
	if st.hello != nil {
		st.hello.Reset()
		e.helloPool.Put(st.hello)
		st.hello = nil
	}
	e.endQUIC(st)
	if st.dns != nil {
		for d := range st.dns {
			st.dns[d] = dnsStream{msg: st.dns[d].msg[:0]}
		}
		e.dnsPool.Put(st.dns)
		st.dns = nil
	}
	st.alerted = st.alerted[:0]
	st.bits.Reset() // keeps its words for the next flow
	st.mailOn, st.mailTLS, st.mailDir = false, false, 0
	e.pool.Put(st)
}

// next returns the next sequence number expected in direction d, or def when
// that direction was never seen.
func (st *flowState) next(d int, def uint32) uint32 {
	if st.tcpInit[d] {
		return st.tcp[d].Next()
	}
	return def
}

func (st *flowState) alertedOnce(sid int) bool {
	for _, s := range st.alerted {
		if s == sid {
			return true
		}
	}
	st.alerted = append(st.alerted, sid)
	return false
}

// tcp follows a TCP segment through the normalisation policy of the package
// doc: what the stream refuses, and data after the connection's end, is
// dropped (this packet only); everything else is reassembled and inspected
// before the packet is released.
func (e *Engine) tcp(b *bundle.Bundle, st *flowState, dir int) {
	p := &e.p
	flags := p.TCPFlags
	if flags&packet.FlagSYN != 0 {
		if !st.tcpInit[dir] {
			st.tcp[dir].Init(p.Seq+1, e.streamConfig())
			st.tcpInit[dir] = true
		}
		if dir == 1 && flags&packet.FlagACK != 0 {
			st.synAck = true
		}
		return
	}
	if st.rst {
		// The connection was reset: its data is not taken into the
		// streams, and not let through uninspected either.
		if len(p.Payload) > 0 {
			e.stats.Stream.AfterClose.Add(1)
			e.discard()
		}
		return
	}
	if dir == 0 && st.synAck && flags&packet.FlagACK != 0 {
		st.established = true
	}
	if !st.tcpInit[dir] {
		// We did not see this direction start (the engine restarted, or
		// the flow table evicted it): follow from here but do not parse
		// the application protocol from the middle of a message.
		st.tcp[dir].Init(p.Seq, e.streamConfig())
		st.tcpInit[dir] = true
		st.midstream = true
		st.established = true
		if st.app == appUnknown {
			st.app = appOpaque
			e.stats.Midstream.Add(1)
		}
	}
	s := &st.tcp[dir]
	if flags&packet.FlagRST != 0 {
		// RFC 5961: a reset counts only at exactly the next expected byte
		// (Linux answers others with a challenge ACK). A forged one with
		// another seq changes nothing here.
		if p.Seq != s.Next() {
			e.stats.Stream.BadRST.Add(1)
			return
		}
		st.rst = true
		e.closeStreams(st)
		return
	}
	if flags&packet.FlagACK != 0 {
		// The receiver's acknowledgement of the other direction: bytes it
		// holds that the engine never saw become a gap.
		if o := 1 - dir; st.tcpInit[o] {
			ack := p.Ack
			if st.fin[o] && int32(ack-st.finSeq[o]) > 0 {
				ack = st.finSeq[o] // the FIN takes a sequence number, not a byte
			}
			st.tcp[o].Acked(ack, &st.recv[o])
		}
	}
	if n := len(p.Payload); n > 0 {
		switch {
		case flags&packet.FlagURG != 0:
			// Urgent data: a receiver takes the byte at the urgent pointer
			// out of the stream (or not, with SO_OOBINLINE), so the bytes
			// it reads cannot be known here. Nothing legitimate needs it
			// any more (RFC 6093): drop the segment.
			e.stats.Stream.Urgent.Add(1)
			e.streamAlert(st, dir, sidStreamUrgent)
			e.discard()
			return
		case st.fin[dir] && int32(p.Seq+uint32(n)-st.finSeq[dir]) > 0:
			e.stats.Stream.AfterClose.Add(1) // data past the FIN
			e.discard()
			return
		}
		if dir == 0 && n < tinySegment && !st.reqSeen && st.tiny <= tinyFlowCount && st.depth[0] < tinyWindowSize {
			if st.tiny++; st.tiny > tinyFlowCount {
				e.stats.Stream.TinySegmentFlows.Add(1)
			}
		}
		switch s.Push(p.Seq, p.Payload, &st.recv[dir]) {
		case stream.Overflow:
			e.stats.StreamOverflow.Add(1)
			e.discard()
			return
		case stream.Conflict:
			e.stats.Stream.Conflicts.Add(1)
			e.streamAlert(st, dir, sidStreamConflict)
			e.discard()
			return
		}
	}
	if flags&packet.FlagFIN != 0 && !st.fin[dir] {
		st.fin[dir] = true
		st.finSeq[dir] = p.Seq + uint32(len(p.Payload))
	}
	if st.fin[dir] && !st.closed[dir] && s.Next() == st.finSeq[dir] {
		// Every byte before the FIN was inspected.
		st.closed[dir] = true
		switch st.app {
		case appHTTP:
			// A body delimited by the close ends here; this packet is held
			// until the file's verdict.
			st.http.p.Close()
		case appSMTP, appPOP3, appIMAP:
			st.msg.mail.Close()
		}
	}
}

// data receives in-order stream bytes of direction d.
func (st *flowState) data(d int, b []byte) {
	st.depth[d] += len(b)
	st.parse(d, b)
}

// parse gives b to the flow's application parser, the first bytes of a
// stream (or of an HTTP tunnel) choosing it.
func (st *flowState) parse(d int, b []byte) {
	e := st.e
	if st.app == appUnknown {
		switch {
		case st.f.Server.Port() == 53:
			st.app = appDNS // over TCP: large answers, zone transfers, and lookups that avoid the UDP watch
		case d == 0 && looksHTTP(b):
			st.app = appHTTP
			st.startHTTP()
		case d == 0 && looksTLS(b):
			st.app = appTLS
		case d == 1:
			// Mail servers speak first.
			if app, proto, ok := mailProto(b, st.f.Server.Port()); ok {
				st.app = app
				m := st.message()
				m.mail.Init(proto, &m.mailR)
				e.stats.Mail.Sessions.Add(1)
				break
			}
			st.app = appOpaque
		default:
			st.app = appOpaque
		}
	}
	if e.cur.verdict != Accept {
		return
	}
	switch st.app {
	case appHTTP:
		rest := st.http.p.Feed(http1.Dir(d), b)
		if st.http.p.Tunneled() {
			// A CONNECT through a proxy or an Upgrade: what follows is
			// another protocol (TLS, most often), recognised afresh.
			e.stats.HTTPTunnels.Add(1)
			e.endHTTP(st)
			st.app = appUnknown
			if len(rest) > 0 {
				st.parse(d, rest)
			}
		}
	case appSMTP, appPOP3, appIMAP:
		st.msg.mail.Feed(mail.Dir(d), b) // mail.go
		if st.msg.mail.Broken() {
			e.stats.Mail.Broken.Add(1)
			st.endMail(false)
			st.app = appOpaque
		} else if st.msg.mail.Encrypted() {
			st.app = appOpaque // TLS from here: inspected to the stream depth, then bypassed
		}
	case appDNS:
		st.dnsTCP(d, b) // dns.go
	case appTLS:
		st.tlsHandshake(d, b) // tls.go
		if !st.tls[d].feed(b) {
			st.app = appOpaque // not TLS after all: inspected to the stream depth
		}
	}
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

func looksHTTP(b []byte) bool {
	for _, m := range httpMethods {
		n := min(len(m), len(b))
		if bytes.Equal(b[:n], m[:n]) && n > 0 {
			return true
		}
	}
	return false
}
