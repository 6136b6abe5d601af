package engine

import (
	"sync/atomic"

	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/dataplane/stream"
	"github.com/openutm/utm/telemetry/alert"
)

// Signature ids of the stream detections (gid 1).
const (
	sidStreamConflict = 2230010
	sidStreamUrgent   = 2230011
)

// tinySegment and tinySegmentFlow: a flow whose client sends more than
// tinyFlowCount segments shorter than tinySegment bytes before its first
// request (or its first 2 KiB) is counted. Reassembly is byte based, so such
// splitting does not hide anything from inspection; the count shows it.
const (
	tinySegment    = 8
	tinyFlowCount  = 32
	tinyWindowSize = 2048
)

// StreamStats counts what TCP normalisation and bypass did.
type StreamStats struct {
	Conflicts        atomic.Uint64 // segments dropped: other bytes than the ones that came first
	Gaps, GapBytes   atomic.Uint64 // holes declared (acknowledged unseen, or left at the end)
	Urgent           atomic.Uint64 // data segments with URG dropped
	AfterClose       atomic.Uint64 // data after a valid RST or past the FIN dropped
	BadRST           atomic.Uint64 // RSTs whose seq is not the next expected: ignored for state
	TinySegmentFlows atomic.Uint64 // flows that split their first request into many tiny segments
	BypassDepth      atomic.Uint64 // flows bypassed at their stream depth
	BypassTLS        atomic.Uint64 // TLS flows bypassed once both sides encrypt
	BypassQUIC       atomic.Uint64 // QUIC flows bypassed once their ClientHello was inspected
	BypassPass       atomic.Uint64 // flows bypassed by a pass rule
	// PayloadPastDepth counts TCP packets whose raw payload was past the
	// stream depth of their direction: the payload rules skipped them,
	// the protocol parsers (HTTP, mail) and the antivirus did not.
	PayloadPastDepth atomic.Uint64
}

// dirRecv receives one direction's stream.
type dirRecv struct {
	st *flowState
	d  int
}

func (r *dirRecv) Data(b []byte) { r.st.data(r.d, b) }
func (r *dirRecv) Gap(n int)     { r.st.gap(r.d, n) }

// streamConfig is the stream configuration of a new direction.
func (e *Engine) streamConfig() stream.Config {
	return stream.Config{MaxBuffered: e.cfg.StreamBuffer, Budget: &e.streamMem}
}

// discard drops the current packet only: the stream took nothing from it,
// so the flow goes on in step with the receiver.
func (e *Engine) discard() { e.cur.discard = true }

// gap is called when n bytes of direction d will never be seen. The
// application parser cannot resync in the middle of a stream: a file in
// transfer ends partial, and the flow is opaque from here on.
func (st *flowState) gap(d, n int) {
	e := st.e
	e.stats.Stream.Gaps.Add(1)
	e.stats.Stream.GapBytes.Add(uint64(n))
	st.depth[d] += n
	if st.app == appHTTP {
		h := st.http
		for i := range h.file {
			f := &h.file[i]
			if !f.active && h.p.InBody(http1.Dir(i)) {
				st.Body(http1.Dir(i), nil) // a body whose first bytes were lost
			}
			if f.active {
				f.gap = true
				e.endFile(st, i, f, false)
			}
		}
	}
	if st.app == appSMTP || st.app == appPOP3 || st.app == appIMAP {
		st.msg.file.gap = st.msg.file.active
		st.endMail(false)
	}
	st.app = appOpaque
}

// closeStreams ends both directions: holes become gaps and buffered bytes
// are inspected; an HTTP connection ends.
func (e *Engine) closeStreams(st *flowState) {
	for d := range st.tcp {
		if st.tcpInit[d] {
			st.tcp[d].Flush(&st.recv[d])
		}
	}
	switch st.app {
	case appHTTP:
		st.http.p.Close()
	case appSMTP, appPOP3, appIMAP:
		st.msg.mail.Close() // an open message ends incomplete and is scanned
	}
}

// streamAlert raises a stream detection once per flow (the packets are
// counted every time).
func (e *Engine) streamAlert(st *flowState, dir, sid int) {
	if st.alertedOnce(sid) {
		return
	}
	var sig, what string
	stars := alert.Stars(2)
	switch sid {
	case sidStreamConflict:
		sig = "UTM STREAM conflicting retransmission (evasion attempt)"
		what = "a TCP segment carried other bytes than the copy already inspected; it was dropped"
	case sidStreamUrgent:
		sig = "UTM STREAM urgent data (evasion attempt)"
		what = "a TCP segment with urgent data was dropped"
		stars = 1
	}
	ev := e.event(st, dir, alert.TypeAlert, nil)
	ev.Alert = &alert.Alert{
		Action: alert.ActionBlocked, GID: 1, SignatureID: sid, Rev: 1,
		Signature: sig, Category: "Potentially Bad Traffic", Severity: 2,
	}
	ev.Stars = stars
	ev.Summary = sig + ": " + what
	e.emit(ev)
}

// settle turns what inspection found into the packet's verdict.
func (e *Engine) settle(st *flowState, dir int) Verdict {
	if e.cur.verdict == Accept && !e.cur.discard && !st.bypass && e.p.Proto == 6 {
		e.checkBypass(st)
	}
	v := e.cur.verdict
	switch {
	case v != Accept:
		e.block(st, dir, v)
	case e.cur.discard:
		v = Drop // this packet only
	case st.bypass:
		v = Bypass
	}
	return v
}

// checkBypass bypasses a TCP flow that needs no more inspection:
//   - TLS, once both sides sent ChangeCipherSpec or application data;
//   - past the stream depth in either direction, unless the flow carries
//     files: mail is followed to its end, and so is HTTP until a request or
//     response says "Connection: close" (no transaction can follow: a file
//     after a long transfer on a keep-alive connection would otherwise
//     escape extraction). Then HTTP bypasses once no file is kept for
//     scanning: a file past MaxScanSize is scanned up to it, reported
//     partially scanned, and the rest of the connection bypassed.
func (e *Engine) checkBypass(st *flowState) {
	if st.app == appTLS && st.tls[0].done && st.tls[1].done {
		e.bypassFlow(st, &e.stats.Stream.BypassTLS)
		return
	}
	depth := e.cfg.StreamDepth
	if depth < 0 || (st.depth[0] < depth && st.depth[1] < depth) {
		return
	}
	if st.app.carriesFiles() && !(st.app == appHTTP && st.lastTx) {
		return
	}
	if st.app == appHTTP {
		h := st.http
		for i := range h.file {
			if f := &h.file[i]; f.active && !f.overflow {
				return // still scanning
			}
		}
		for i := range h.file {
			if f := &h.file[i]; f.active {
				e.endFile(st, i, f, false)
			}
		}
		if e.cur.verdict != Accept {
			return // the partial file was malicious
		}
	}
	e.bypassFlow(st, &e.stats.Stream.BypassDepth)
}

// bypassFlow marks the flow as needing no more inspection and releases its
// reassembly memory. Files still open are dropped without a verdict.
func (e *Engine) bypassFlow(st *flowState, reason *atomic.Uint64) {
	if st.bypass {
		return
	}
	st.bypass = true
	reason.Add(1)
	st.tcp[0].Reset()
	st.tcp[1].Reset()
	if h := st.http; h != nil {
		for d := range h.file {
			e.dropFile(&h.file[d])
		}
	}
}

// tlsRecords follows the record layer of one direction of a TLS flow just
// far enough to see when it starts encrypting.
type tlsRecords struct {
	hdr    [5]byte
	hn     int
	remain int
	done   bool // ChangeCipherSpec or application data seen
}

// feed reports false when b does not continue a TLS record stream.
func (t *tlsRecords) feed(b []byte) bool {
	for len(b) > 0 && !t.done {
		if t.remain > 0 {
			n := min(t.remain, len(b))
			t.remain -= n
			b = b[n:]
			continue
		}
		n := copy(t.hdr[t.hn:], b)
		t.hn += n
		b = b[n:]
		if t.hn < len(t.hdr) {
			return true
		}
		t.hn = 0
		typ, major := t.hdr[0], t.hdr[1]
		l := int(t.hdr[3])<<8 | int(t.hdr[4])
		if typ < 20 || typ > 24 || major != 3 || l == 0 || l > 1<<14+2048 {
			return false
		}
		if typ == 20 || typ == 23 { // change_cipher_spec, application_data
			t.done = true
		}
		t.remain = l
	}
	return true
}

// looksTLS reports whether a client's first bytes start a TLS handshake
// record (content type 22, version 3.x).
func looksTLS(b []byte) bool {
	return len(b) > 0 && b[0] == 22 && (len(b) < 2 || b[1] == 3) && (len(b) < 3 || b[2] <= 4)
}
