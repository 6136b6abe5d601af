// Package mail follows SMTP, POP3 and IMAP connections and delivers the mail
// messages they carry, for the inline antivirus.
//
// A Parser follows one TCP connection. The engine feeds it the in-order bytes
// of each direction as the stream reassembler delivers them (ToServer and
// ToClient). The parser pairs commands with their replies (ESMTP and POP3
// pipelining: replies come in command order; IMAP: by tag) and calls its
// Handler, synchronously inside Feed, when a message begins, for every piece
// of it, and when it ends:
//
//   - SMTP: DATA after the 354 reply (dot-unstuffed, up to the "\r\n.\r\n"
//     terminator, which is not part of the message) and BDAT chunks (CHUNKING,
//     up to the last byte of BDAT ... LAST). A rejected DATA carries no
//     message; RSET or a rejected BDAT ends a message incomplete.
//   - POP3: the multi-line answer to RETR and TOP (dot-unstuffed).
//   - IMAP: the literal of a BODY[], RFC822 or BINARY[] item of an
//     untagged FETCH response (wherever it stands in the response), the
//     chunks of a partial fetch (BODY[]<origin>) as one message, a section
//     (BODY[2]) as a message of one part (imapfetch.go), and APPEND
//     message literals ({n}, {n+} LITERAL+ and ~{n} literal8; MULTIAPPEND;
//     a synchronizing literal the server refuses carries no message).
//
// MessageEnd(true) is called inside the Feed that delivers the message's
// final byte(s): the SMTP terminator line, the last byte of BDAT LAST, the
// POP3 ".\r\n" line, the IMAP literal's last byte. The inline engine holds
// that packet until the message is scanned; dropping it means the SMTP
// server never answers 250 and a POP3/IMAP client never has the whole
// message. MessageEnd(false) means the connection ended (Close) or parsing
// stopped (Broken) first.
//
// STARTTLS (SMTP 220, IMAP tagged OK) and STLS (POP3 +OK) accepted call
// Encrypted and stop parsing: the rest is TLS. AUTH exchanges are skipped.
// Lines are CRLF-terminated as RFC 5321 requires (a bare LF never starts a
// line inside DATA, matching strict servers such as go-smtp).
//
// Cost: a Parser allocates its two line buffers (MaxLine bytes each) once;
// after that, feeding bytes does not allocate, except the envelope strings
// (one per MAIL FROM / RCPT TO command). Message bytes are passed to the
// handler as sub-slices of the input and never copied; they are valid only
// during the call. Memory per parser is bounded: 2×MaxLine plus a fixed
// pending-command ring and at most MaxRcpt recipients.
//
// What is not the protocol (an SMTP reply that is not three digits, a POP3
// reply that is neither +OK nor -ERR, a bad IMAP literal, more than
// MaxPending unanswered commands) stops parsing: Broken reports it, the
// Anomaly handler is told why, and the engine treats the rest of the flow as
// opaque. Lesser problems (a line over MaxLine, a reply with no command, data
// before the 354 reply) are reported through Anomaly and parsing goes on.
//
// Not handled (reported through Anomaly where seen): IMAP partial fetches
// out of order; IMAP COMPRESS=DEFLATE stops parsing; an APPEND and a FETCH
// message flowing at the same time in both directions: the second is
// skipped.
package mail

import "bytes"

// Limits.
const (
	// MaxLine is the part of a command or reply line kept for parsing;
	// longer lines are parsed from their first MaxLine and last tailLen
	// bytes and reported as an anomaly (SMTP and POP3 only: IMAP lines
	// are long by nature).
	MaxLine = 2048
	// MaxPending caps SMTP/POP3 commands sent and not yet answered.
	MaxPending = 256
	// MaxRcpt caps the recipients kept for one SMTP envelope.
	MaxRcpt = 1000
	// MaxLiteral is the largest IMAP literal accepted (1 TiB).
	MaxLiteral = 1 << 40
)

const tailLen = 64

// Proto is the protocol a Parser follows.
type Proto uint8

// Protocols.
const (
	SMTP Proto = iota
	POP3
	IMAP
)

func (p Proto) String() string {
	switch p {
	case SMTP:
		return "smtp"
	case POP3:
		return "pop3"
	case IMAP:
		return "imap"
	}
	return "unknown"
}

// Dir is a direction of the connection.
type Dir uint8

// Directions.
const (
	ToServer Dir = 0
	ToClient Dir = 1
)

// Envelope describes a message at MessageStart. The parser reuses it: it is
// valid until MessageEnd. MailFrom and RcptTo are SMTP only (the addresses
// as sent, without angle brackets; recipients the server rejected are left
// out); Command is "DATA", "BDAT", "RETR", "TOP", "FETCH" or "APPEND".
type Envelope struct {
	MailFrom string
	RcptTo   []string
	Command  string
}

// Handler receives parse events, on the caller's goroutine, from inside
// Parser.Feed and Parser.Close. At most one message is open at a time.
type Handler interface {
	// MessageStart: message bytes begin flowing in direction d.
	MessageStart(d Dir, env *Envelope)
	// MessageData: the next raw RFC 5322 bytes of the open message.
	MessageData(b []byte)
	// MessageEnd ends the open message; complete is false when the
	// connection ended or parsing broke first.
	MessageEnd(complete bool)
	// Encrypted: STARTTLS/STLS accepted; the rest is not inspected.
	Encrypted()
	// Anomaly reports a counted problem (a short constant string).
	Anomaly(what string)
}

// Anomalies reported through Handler.Anomaly.
const (
	AnomLineTooLong  = "line too long"
	AnomBadReply     = "reply is not the protocol"
	AnomOrphanReply  = "reply without a command"
	AnomTooManyCmds  = "too many unanswered commands"
	AnomTooManyRcpt  = "too many recipients"
	AnomEarlyData    = "message data before the server's go-ahead"
	AnomDataRejected = "message data sent but the command was rejected"
	AnomBadLiteral   = "bad IMAP literal"
	AnomBadCommand   = "bad command"
	AnomPartialFetch = "partial FETCH out of order or unknown FETCH section: not inspected"
	AnomOverlap      = "messages in both directions at once: second not inspected"
	AnomCompress     = "COMPRESS accepted: rest of the session not inspected"
	AnomBadBDAT      = "bad BDAT size"
)

type mode uint8

const (
	mLine  mode = iota // command or reply lines
	mDot               // dot-stuffed multi-line data
	mCount             // counted bytes (BDAT chunk, IMAP literal)
)

// dot decoder states
const (
	dsBOL   uint8 = iota // at the beginning of a line
	dsDot                // a dot at the beginning of a line was dropped
	dsDotCR              // ".\r" at the beginning of a line
	dsMid                // inside a line
)

// what ends a counted or dotted run
const (
	endSkip    uint8 = iota // bytes are not a message
	endMsg                  // message: finish it at the end
	endChunk                // BDAT chunk that is not the last
	endPart                 // IMAP partial fetch chunk that is not the last
	endCapture              // IMAP BODY[n.MIME]: kept to head part n
)

type half struct {
	mode mode
	// line accumulation
	line []byte
	tail [tailLen]byte
	tn   int
	long bool
	// dotted and counted data
	ds        uint8
	prevCR    bool
	end       uint8
	remaining int64
	// IMAP per-direction state
	seg        int   // literal-separated segment of the current command/response
	awaitCont  bool  // ToServer: synchronizing literal waiting for "+"
	litStarted bool  // ToServer: bytes of the literal arrived
	tagged     bool  // ToClient: the current response is tagged
	fetch      bool  // ToClient: the current response is an untagged FETCH
	fseq       int64 // ToClient: its message sequence number
	fsize      int64 // ToClient: its RFC822.SIZE; -1: not seen
	guess      bool  // ToClient: a section's first bytes wait in peek (imapfetch.go)
	peek       [96]byte
	peekN      int
	tag        [64]byte
	tagn       int
	kind       uint8 // ToServer: IMAP command kind
}

type pend struct {
	cmd uint8
	idx int32
}

const (
	msgNone uint8 = iota
	msgPending
	msgOpen
)

// Parser follows one mail connection. The zero value is not usable; call
// Init.
type Parser struct {
	proto  Proto
	h      Handler
	half   [2]half
	broken bool
	off    bool // encrypted or compressed: nothing more is parsed

	// the message
	msg    uint8
	msgDir Dir
	env    Envelope

	// SMTP/POP3 pending commands, FIFO
	q     [MaxPending]pend
	qhead int
	qn    int

	authWait bool // the next client line is SASL data

	// SMTP envelope in progress
	from    string
	rcpt    []string
	rcptBad []bool

	// IMAP
	imapAuth bool
	authTag  [64]byte
	authTagn int
	tlsTag   [64]byte
	tlsTagn  int
	compTag  [64]byte
	compTagn int
	fpart    fetchPart // partial fetch in progress (imapfetch.go)
	reqLen   int64     // partial length the client's last FETCH asked for; 0: none
	mimeHdr  []byte    // the last BODY[n.MIME] literal (maxMIMEHeader), made on first use
	mimeSec  [32]byte  // its section n
	mimeSecN int       // 0: none kept
	mimeSeq  int64     // its message sequence number
}

// Init readies p for a new connection of protocol proto, keeping its buffers.
func (p *Parser) Init(proto Proto, h Handler) {
	line0, line1 := p.half[0].line, p.half[1].line
	rcpt, bad, rt, mh := p.rcpt, p.rcptBad, p.env.RcptTo, p.mimeHdr
	*p = Parser{proto: proto, h: h, mimeHdr: mh[:0]}
	if line0 == nil {
		line0 = make([]byte, 0, MaxLine)
	}
	if line1 == nil {
		line1 = make([]byte, 0, MaxLine)
	}
	p.half[0].line, p.half[1].line = line0[:0], line1[:0]
	p.rcpt, p.rcptBad, p.env.RcptTo = rcpt[:0], bad[:0], rt[:0]
	if proto != IMAP {
		p.push(cmdConnect, 0) // the server's greeting answers the connection
	}
}

// Broken reports whether parsing stopped because the bytes are not the
// protocol.
func (p *Parser) Broken() bool { return p.broken }

// Encrypted reports whether STARTTLS/STLS was accepted.
func (p *Parser) Encrypted() bool { return p.off && !p.broken }

// InMessage reports whether a message is open or about to open.
func (p *Parser) InMessage() bool { return p.msg != msgNone }

// Close ends the connection: an open message ends incomplete.
func (p *Parser) Close() {
	p.flushPeek(&p.half[ToClient])
	p.cancel()
}

// Feed parses the next in-order bytes of direction d.
func (p *Parser) Feed(d Dir, b []byte) {
	s := &p.half[d]
	for len(b) > 0 {
		if p.broken || p.off {
			return
		}
		switch s.mode {
		case mLine:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				s.add(b)
				return
			}
			s.add(b[:i])
			b = b[i+1:]
			p.lineDone(d, s)
		case mDot:
			if s.awaitCont {
				s.awaitCont = false
				p.h.Anomaly(AnomEarlyData)
			}
			b = p.dot(d, s, b)
		case mCount:
			n := int64(len(b))
			if n > s.remaining {
				n = s.remaining
			}
			if n > 0 {
				s.litStarted = true
			}
			switch {
			case s.end == endCapture:
				p.capture(b[:n])
			case s.guess:
				p.peekData(s, b[:n])
			case s.end != endSkip:
				p.data(b[:n])
			}
			b = b[n:]
			s.remaining -= n
			if s.remaining == 0 {
				p.countDone(d, s)
			}
		}
	}
}

// add appends a piece of the current line.
func (s *half) add(c []byte) {
	if len(c) == 0 {
		return
	}
	room := MaxLine - len(s.line)
	if room >= len(c) {
		s.line = append(s.line, c...)
	} else {
		s.line = append(s.line, c[:room]...)
		s.long = true
	}
	if len(c) >= tailLen {
		s.tn = copy(s.tail[:], c[len(c)-tailLen:])
		return
	}
	keep := tailLen - len(c)
	if keep > s.tn {
		keep = s.tn
	}
	copy(s.tail[:keep], s.tail[s.tn-keep:s.tn])
	s.tn = keep + copy(s.tail[keep:], c)
}

func (p *Parser) lineDone(d Dir, s *half) {
	line := s.line
	if !s.long && len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	tail := s.tail[:s.tn]
	if len(tail) > 0 && tail[len(tail)-1] == '\r' {
		tail = tail[:len(tail)-1]
	}
	long := s.long
	switch p.proto {
	case SMTP:
		if d == ToServer {
			p.smtpCommand(s, line, long)
		} else {
			p.smtpReply(line)
		}
	case POP3:
		if d == ToServer {
			p.popCommand(line, long)
		} else {
			p.popReply(line)
		}
	case IMAP:
		if d == ToServer {
			p.imapCommand(s, line, tail, long)
		} else {
			p.imapResponse(s, line, tail, long)
		}
	}
	s.line, s.tn, s.long = s.line[:0], 0, false
}

// startDot switches direction s to dot-stuffed data.
func (s *half) startDot(end uint8) {
	s.mode, s.ds, s.prevCR, s.end = mDot, dsBOL, false, end
}

func (s *half) startCount(n int64, end uint8) {
	s.mode, s.remaining, s.end, s.litStarted = mCount, n, end, false
}

var crlf = []byte("\r\n")

// dot decodes dot-stuffed data (RFC 5321 4.5.2, RFC 1939 3) and returns
// the bytes after the terminating ".\r\n" line (nil if not reached).
func (p *Parser) dot(d Dir, s *half, b []byte) []byte {
	start, i := 0, 0
	for i < len(b) {
		switch s.ds {
		case dsBOL:
			if b[i] == '.' {
				p.emit(s, b[start:i])
				i++
				start = i
				s.ds = dsDot
				continue
			}
			s.ds = dsMid
		case dsDot:
			if b[i] == '\r' {
				p.emit(s, b[start:i])
				i++
				start = i
				s.ds = dsDotCR
				continue
			}
			s.ds = dsMid
		case dsDotCR:
			if b[i] == '\n' {
				// The terminator line: the message ends with the
				// CRLF before it.
				s.mode = mLine
				p.dotDone(d, s)
				return b[i+1:]
			}
			// ".\rX": not a terminator; the CR is data.
			p.emit(s, crlf[:1])
			s.ds, s.prevCR = dsMid, true
			continue
		case dsMid:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				s.prevCR = b[len(b)-1] == '\r'
				i = len(b)
				continue
			}
			cr := s.prevCR
			if j > 0 {
				cr = b[i+j-1] == '\r'
			}
			i += j + 1
			s.prevCR = false
			if cr {
				s.ds = dsBOL
			}
		}
	}
	p.emit(s, b[start:i])
	return nil
}

func (p *Parser) emit(s *half, b []byte) {
	if len(b) > 0 && s.end != endSkip {
		p.data(b)
	}
}

// dotDone ends a dotted run.
func (p *Parser) dotDone(d Dir, s *half) {
	if s.end == endSkip {
		return
	}
	p.finish(true)
	if p.proto == SMTP {
		p.push(cmdEndData, 0)
		p.resetEnvelope()
	}
}

// countDone ends a counted run.
func (p *Parser) countDone(d Dir, s *half) {
	s.mode = mLine
	p.flushPeek(s)
	switch s.end {
	case endMsg:
		p.finish(true)
		if p.proto == SMTP {
			p.resetEnvelope()
		}
	}
	s.awaitCont = false
}

// begin marks a message about to flow in direction d. It reports false when
// another message is already open in the other direction.
func (p *Parser) begin(d Dir, command string) bool {
	if p.msg != msgNone {
		if p.msgDir == d {
			return true
		}
		p.h.Anomaly(AnomOverlap)
		return false
	}
	p.msg, p.msgDir, p.env.Command = msgPending, d, command
	return true
}

func (p *Parser) open() {
	if p.msg != msgPending {
		return
	}
	p.msg = msgOpen
	p.env.MailFrom = p.from
	p.env.RcptTo = p.env.RcptTo[:0]
	for i, r := range p.rcpt {
		if !p.rcptBad[i] {
			p.env.RcptTo = append(p.env.RcptTo, r)
		}
	}
	p.h.MessageStart(p.msgDir, &p.env)
}

func (p *Parser) data(b []byte) {
	if len(b) == 0 || p.msg == msgNone {
		return
	}
	p.open()
	p.h.MessageData(b)
}

// finish ends the message; a complete message that had no bytes still
// starts and ends.
func (p *Parser) finish(complete bool) {
	if complete {
		p.open()
	}
	if p.msg == msgOpen {
		p.h.MessageEnd(complete)
	}
	p.msg = msgNone
}

// cancel drops a message that has not begun and ends an open one
// incomplete.
func (p *Parser) cancel() { p.finish(false) }

func (p *Parser) stop(what string) {
	p.h.Anomaly(what)
	p.cancel()
	p.broken = true
}

func (p *Parser) encrypted() {
	p.cancel()
	p.off = true
	p.h.Encrypted()
}

// pending-command FIFO

func (p *Parser) push(cmd uint8, idx int32) {
	if p.qn == MaxPending {
		p.stop(AnomTooManyCmds)
		return
	}
	p.q[(p.qhead+p.qn)%MaxPending] = pend{cmd, idx}
	p.qn++
}

func (p *Parser) peek() (pend, bool) {
	if p.qn == 0 {
		return pend{}, false
	}
	return p.q[p.qhead], true
}

func (p *Parser) pop() {
	p.qhead = (p.qhead + 1) % MaxPending
	p.qn--
}

// helpers

// word splits the first space-separated word off b.
func word(b []byte) (w, rest []byte) {
	b = bytes.TrimLeft(b, " ")
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// is reports whether b equals the upper-case ASCII s, ignoring case.
func is(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether b begins with the upper-case ASCII s.
func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && is(b[:len(s)], s)
}

func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
