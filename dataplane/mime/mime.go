package mime

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Default limits used for zero (or negative) Limits fields.
const (
	DefaultMaxDepth  = 8        // nesting of multipart and message/rfc822 below the top entity
	DefaultMaxParts  = 1000     // entities (header blocks and uuencoded blocks) per input
	DefaultMaxHeader = 64 << 10 // bytes of one header block kept for decoding (see Limits)
)

// Anomaly strings passed to Handler.Anomaly.
const (
	AnomalyBadBase64       = "bad base64"             // a character outside the alphabet, or a lone trailing one (once per part)
	AnomalyBadQP           = "bad quoted-printable"   // '=' not followed by two hex digits (once per part; kept literally)
	AnomalyBadUU           = "bad uuencode"           // a uuencoded block without "begin" or "end"
	AnomalyDepth           = "depth limit"            // a multipart or message/rfc822 deeper than MaxDepth: handed over undecoded as one leaf
	AnomalyParts           = "parts limit"            // more than MaxParts entities: the rest of the input is ignored
	AnomalyHeaderLong      = "header too long"        // a header block larger than MaxHeader bytes (fields past the limit are not kept)
	AnomalyMissingBoundary = "missing boundary"       // a multipart ended (by an outer delimiter or the end of input) without its close delimiter
	AnomalyNoBoundaryParam = "no boundary parameter"  // multipart/* without a usable boundary: handled as a leaf
	AnomalyBadHeader       = "bad header line"        // a line in a header block that is no field: the body starts there
	AnomalyTruncatedHeader = "header cut by boundary" // a delimiter came before a part's header block ended: the part is dropped
)

// Errors returned by InitMultipart.
var (
	ErrNotMultipart = errors.New("mime: content type is not multipart/*")
	ErrNoBoundary   = errors.New("mime: multipart content type has no boundary parameter")
)

// Limits bound one Parser. Zero fields take the Default* values.
type Limits struct {
	MaxDepth  int
	MaxParts  int
	MaxHeader int // also the most memory a Parser holds for header fields
}

// Header holds the fields of a message header block that alerts may carry,
// RFC 2047 decoded to valid UTF-8, unfolded, trimmed, each at most 512 bytes.
type Header struct {
	From, To, Cc, Subject, MessageID, Date string
}

// Part describes a leaf part.
type Part struct {
	Depth       int    // 0 = top-level message body; nested multiparts and message/rfc822 go deeper
	ContentType string // lowercased type/subtype, e.g. "application/zip"
	Filename    string // Content-Disposition filename (RFC 2231 or 2047), else Content-Type name, else uuencode begin name
	Disposition string // lowercased disposition value as sent: "attachment", "inline", "form-data", ""
	Encoding    string // the transfer encoding as sent, lowercased
}

// Handler receives the parse events. Slices and pointers are valid only during the call.
type Handler interface {
	Message(depth int, h *Header) // each message header block: the top-level one and each message/rfc822 inside
	PartStart(p *Part)            // a leaf part begins
	PartData(b []byte)            // its decoded bytes
	PartEnd(complete bool)        // complete=false when the input or an outer boundary ended it early
	Anomaly(what string)          // a counted problem, one of the Anomaly* strings
}

const (
	lineMax   = 2048 // longest piece handed to the state machine; longer lines are cut
	outMax    = 4096 // decoded bytes gathered before a PartData call
	fieldCap  = 512  // decoded Header fields and file names
	rawShort  = 2 << 10
	rawStruct = 16 << 10
	maxBound  = 200
)

type state uint8

const (
	stHeader state = iota // reading an entity's header block
	stBody                // a leaf's body
	stSkip                // preamble / epilogue: only delimiters matter
	stStop                // end of input or parts limit
)

type encKind uint8

const (
	encRaw encKind = iota
	encB64
	encQP
	encUU
)

const (
	fContentType = iota
	fDisposition
	fCTE
	fFrom
	fTo
	fCc
	fSubject
	fMessageID
	fDate
	nFields
)

var fieldNames = [nFields]string{"content-type", "content-disposition", "content-transfer-encoding", "from", "to", "cc", "subject", "message-id", "date"}

type span struct {
	off, end int
	set      bool
}

type frame struct {
	b      []byte
	depth  int
	digest bool
}

// Parser is a streaming MIME parser. The zero value is unusable: call Init or InitMultipart.
type Parser struct {
	h   Handler
	lim Limits

	buf   [lineMax]byte
	n     int
	start bool // the next piece begins a line

	st       state
	stack    []frame
	entities int

	// header block
	depth     int
	isMsg     bool
	digest    bool
	firstLine bool
	hbuf      []byte
	fld       [nFields]span
	cur       int
	hdrBytes  int
	hdrOver   bool
	hdr       Header

	// leaf
	part       Part
	text       Part
	owner      int
	open       bool
	enc        encKind
	uuText     bool
	inUU       bool
	deferStart bool
	bad        bool // anomaly already counted for this part's encoding
	pend       [2]byte
	pendN      int
	quad       [4]byte
	qn         int
	qpState    int
	qpHex      byte
	out        [outMax]byte
	on         int
}

func (p *Parser) reset(h Handler, lim Limits) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	if lim.MaxParts <= 0 {
		lim.MaxParts = DefaultMaxParts
	}
	if lim.MaxHeader <= 0 {
		lim.MaxHeader = DefaultMaxHeader
	}
	p.h, p.lim = h, lim
	p.n, p.start = 0, true
	p.stack = p.stack[:0]
	p.entities = 0
	p.open = false
	p.on, p.pendN = 0, 0
}

// Init prepares p for a whole RFC 5322 message (header block, then body).
func (p *Parser) Init(h Handler, lim Limits) {
	p.reset(h, lim)
	p.beginEntity(0, true, false)
}

// InitMultipart prepares p for an HTTP multipart body (e.g. multipart/form-data)
// whose Content-Type header value is contentType. Its parts have Depth 1; form
// fields that carry a file have Filename set and Disposition "form-data".
func (p *Parser) InitMultipart(h Handler, lim Limits, contentType string) error {
	p.reset(h, lim)
	mt, ps := parseParams(contentType)
	if !strings.HasPrefix(mt, "multipart/") {
		p.st = stStop
		return fmt.Errorf("%w: %q", ErrNotMultipart, mt)
	}
	b := param(ps, "boundary")
	if b == "" || len(b) > maxBound {
		p.st = stStop
		return fmt.Errorf("%w: %q (a boundary of 1 to %d characters is needed)", ErrNoBoundary, contentType, maxBound)
	}
	p.entities = 1
	p.push(b, 0, mt == "multipart/digest")
	p.st = stSkip
	return nil
}

// Write feeds the next bytes of input.
func (p *Parser) Write(b []byte) {
	for len(b) > 0 && p.st != stStop {
		if p.n == 0 {
			lim := min(len(b), lineMax)
			if i := bytes.IndexByte(b[:lim], '\n'); i >= 0 {
				p.line(b[:i+1])
				b = b[i+1:]
				continue
			}
			if len(b) >= lineMax {
				k := lineMax
				if b[k-1] == '\r' {
					k--
				}
				p.frag(b[:k])
				b = b[k:]
				continue
			}
			p.n = copy(p.buf[:], b)
			return
		}
		lim := min(len(b), lineMax-p.n)
		if i := bytes.IndexByte(b[:lim], '\n'); i >= 0 {
			n := p.n + copy(p.buf[p.n:], b[:i+1])
			b = b[i+1:]
			p.n = 0
			p.line(p.buf[:n])
			continue
		}
		p.n += copy(p.buf[p.n:], b[:lim])
		b = b[lim:]
		if p.n == lineMax {
			k := lineMax
			carry := p.buf[k-1] == '\r'
			if carry {
				k--
			}
			p.n = 0
			p.frag(p.buf[:k])
			if carry {
				p.buf[0] = '\r'
				p.n = 1
			}
		}
	}
}

// Close ends the input: open parts end (complete only if nothing was left
// unclosed), unclosed multiparts count as AnomalyMissingBoundary.
func (p *Parser) Close() {
	if p.st != stStop && p.n > 0 {
		n := p.n
		p.n = 0
		p.piece(p.buf[:n], p.start, true, nil)
	}
	p.n = 0
	for p.st == stHeader {
		p.endHeader()
	}
	if p.st == stBody {
		p.flushPend()
		p.endLeaf(len(p.stack) == 0)
	}
	for range p.stack {
		p.h.Anomaly(AnomalyMissingBoundary)
	}
	p.stack = p.stack[:0]
	p.st = stStop
}

func (p *Parser) line(b []byte) {
	n := len(b) - 1
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	p.piece(b[:n], p.start, true, b[n:])
	p.start = true
}

func (p *Parser) frag(b []byte) {
	p.piece(b, p.start, false, nil)
	p.start = false
}

// piece handles a whole line (eol; term is its terminator, empty at the end of
// input) or a cut of an overlong line (start tells whether it begins the line).
func (p *Parser) piece(b []byte, start, eol bool, term []byte) {
	switch p.st {
	case stHeader:
		p.headerPiece(b, start, eol, term)
	case stSkip:
		if start && eol {
			p.delimiter(b)
		}
	case stBody:
		if start && eol && p.delimiter(b) {
			return
		}
		p.bodyPiece(b, start, eol, term)
	}
}

func (p *Parser) push(b string, depth int, digest bool) {
	if n := len(p.stack); n < cap(p.stack) {
		p.stack = p.stack[:n+1]
		f := &p.stack[n]
		f.b = append(f.b[:0], b...)
		f.depth, f.digest = depth, digest
		return
	}
	p.stack = append(p.stack, frame{b: []byte(b), depth: depth, digest: digest})
}

// delimiter handles b if it is a delimiter line of an open multipart.
func (p *Parser) delimiter(b []byte) bool {
	if len(p.stack) == 0 || len(b) < 3 || b[0] != '-' || b[1] != '-' {
		return false
	}
	rest := b[2:]
	for i := len(p.stack) - 1; i >= 0; i-- {
		bd := p.stack[i].b
		if !bytes.HasPrefix(rest, bd) {
			continue
		}
		tail := rest[len(bd):]
		closing := len(tail) >= 2 && tail[0] == '-' && tail[1] == '-'
		if closing {
			tail = tail[2:]
		}
		if !allSpace(tail) {
			continue
		}
		p.onDelimiter(i, closing)
		return true
	}
	return false
}

func (p *Parser) onDelimiter(i int, closing bool) {
	switch p.st {
	case stBody:
		p.pendN = 0 // the line break before a delimiter belongs to it
		p.endLeaf(i == p.owner)
	case stHeader:
		p.h.Anomaly(AnomalyTruncatedHeader)
	}
	for j := len(p.stack) - 1; j > i; j-- {
		p.h.Anomaly(AnomalyMissingBoundary)
	}
	p.stack = p.stack[:i+1]
	if closing {
		p.stack = p.stack[:i]
		p.st = stSkip
		return
	}
	f := &p.stack[i]
	p.beginEntity(f.depth+1, false, f.digest)
}

func (p *Parser) countEntity() bool {
	p.entities++
	if p.entities > p.lim.MaxParts {
		p.h.Anomaly(AnomalyParts)
		if p.open {
			p.open = false
			p.flushOut()
			p.h.PartEnd(false)
		}
		p.st = stStop
		p.stack = p.stack[:0]
		return false
	}
	return true
}

func (p *Parser) beginEntity(depth int, isMsg, digest bool) {
	if !p.countEntity() {
		return
	}
	p.st = stHeader
	p.depth, p.isMsg, p.digest = depth, isMsg, digest
	p.firstLine = true
	p.hbuf = p.hbuf[:0]
	p.fld = [nFields]span{}
	p.cur = -1
	p.hdrBytes, p.hdrOver = 0, false
}

func (p *Parser) headerPiece(b []byte, start, eol bool, term []byte) {
	p.hdrBytes += len(b) + len(term)
	if p.hdrBytes > p.lim.MaxHeader && !p.hdrOver {
		p.hdrOver = true
		p.h.Anomaly(AnomalyHeaderLong)
	}
	if !start {
		p.appendField(b)
		return
	}
	if eol && len(b) == 0 {
		p.endHeader()
		return
	}
	if eol && p.delimiter(b) {
		return
	}
	if b[0] == ' ' || b[0] == '\t' {
		p.appendField(b)
		return
	}
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 || !validName(b[:colon]) {
		if p.firstLine && p.isMsg && p.depth == 0 && bytes.HasPrefix(b, []byte("From ")) {
			p.firstLine = false // mbox separator
			return
		}
		p.h.Anomaly(AnomalyBadHeader)
		p.endHeader()
		p.piece(b, start, eol, term)
		return
	}
	p.firstLine = false
	p.cur = -1
	name := b[:colon]
	for id := range fieldNames {
		if len(name) == len(fieldNames[id]) && bytes.EqualFold(name, []byte(fieldNames[id])) {
			if !p.fld[id].set {
				p.fld[id] = span{off: len(p.hbuf), end: len(p.hbuf), set: true}
				p.cur = id
				p.appendField(bytes.TrimLeft(b[colon+1:], " \t"))
			}
			break
		}
	}
}

func (p *Parser) appendField(b []byte) {
	if p.cur < 0 {
		return
	}
	f := &p.fld[p.cur]
	capb := rawStruct
	if p.cur >= fFrom {
		capb = rawShort
	}
	room := min(capb-(f.end-f.off), p.lim.MaxHeader-len(p.hbuf))
	if room <= 0 {
		return
	}
	if len(b) > room {
		b = b[:room]
	}
	p.hbuf = append(p.hbuf, b...)
	f.end = len(p.hbuf)
}

func (p *Parser) field(id int) string {
	f := p.fld[id]
	return strings.TrimSpace(string(p.hbuf[f.off:f.end]))
}

func (p *Parser) endHeader() {
	mt, ps := parseParams(p.field(fContentType))
	if !validMediaType(mt) {
		mt = "text/plain"
		if p.digest {
			mt = "message/rfc822"
		}
	}
	enc := strings.ToLower(p.field(fCTE))
	disp, dps := parseParams(p.field(fDisposition))
	if p.isMsg {
		p.hdr = Header{
			From:      decodeText(p.field(fFrom)),
			To:        decodeText(p.field(fTo)),
			Cc:        decodeText(p.field(fCc)),
			Subject:   decodeText(p.field(fSubject)),
			MessageID: decodeText(p.field(fMessageID)),
			Date:      decodeText(p.field(fDate)),
		}
		p.h.Message(p.depth, &p.hdr)
	}
	d := p.depth
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		b := param(ps, "boundary")
		switch {
		case b == "" || len(b) > maxBound:
			p.h.Anomaly(AnomalyNoBoundaryParam)
		case d+1 > p.lim.MaxDepth:
			p.h.Anomaly(AnomalyDepth)
		default:
			p.push(b, d, mt == "multipart/digest")
			p.st = stSkip
			return
		}
	case (mt == "message/rfc822" || mt == "message/global") && enc != "base64" && enc != "quoted-printable":
		if d+1 > p.lim.MaxDepth {
			p.h.Anomaly(AnomalyDepth)
			break
		}
		p.beginEntity(d+1, true, false)
		return
	}
	p.part = Part{Depth: d, ContentType: mt, Disposition: disp, Encoding: enc,
		Filename: filename(dps, ps)}
	p.owner = len(p.stack) - 1
	p.st = stBody
	p.on, p.pendN, p.qn, p.qpState = 0, 0, 0, 0
	p.bad, p.inUU, p.deferStart = false, false, false
	switch enc {
	case "base64":
		p.enc = encB64
	case "quoted-printable":
		p.enc = encQP
	case "x-uuencode", "uuencode", "x-uue", "x-uudecode":
		p.enc = encUU
		p.deferStart = true
		return
	default:
		p.enc = encRaw
	}
	p.uuText = p.enc == encRaw && strings.HasPrefix(mt, "text/")
	p.open = true
	p.h.PartStart(&p.part)
}

func (p *Parser) endLeaf(complete bool) {
	switch {
	case p.enc == encB64 && p.qn == 1:
		p.badEnc(AnomalyBadBase64)
	case p.enc == encB64 && p.qn > 1:
		p.b64flush()
	case p.enc == encQP && p.qpState > 0:
		p.emit('=')
		if p.qpState == 2 {
			p.emit(p.qpHex)
		}
	}
	if p.deferStart {
		p.deferStart = false
		p.open = true
		p.h.PartStart(&p.part)
		p.h.Anomaly(AnomalyBadUU)
		complete = false
	}
	if p.inUU {
		p.h.Anomaly(AnomalyBadUU)
		complete = false
	}
	p.inUU = false
	p.flushOut()
	if p.open {
		p.open = false
		p.h.PartEnd(complete)
	}
	p.st = stSkip
}

func (p *Parser) badEnc(what string) {
	if !p.bad {
		p.bad = true
		p.h.Anomaly(what)
	}
}

func (p *Parser) emit(c byte) {
	if p.on == outMax {
		p.flushOut()
	}
	p.out[p.on] = c
	p.on++
}

func (p *Parser) emitBytes(b []byte) {
	for len(b) > 0 {
		if p.on == outMax {
			p.flushOut()
		}
		k := copy(p.out[p.on:], b)
		p.on += k
		b = b[k:]
	}
}

func (p *Parser) flushOut() {
	if p.on > 0 {
		n := p.on
		p.on = 0
		p.h.PartData(p.out[:n])
	}
}

func (p *Parser) flushPend() {
	if p.pendN > 0 {
		p.emitBytes(p.pend[:p.pendN])
		p.pendN = 0
	}
}

func (p *Parser) setPend(t []byte) {
	p.pendN = copy(p.pend[:], t)
}

func (p *Parser) bodyPiece(b []byte, start, eol bool, term []byte) {
	if start {
		p.flushPend()
	}
	whole := start && eol
	switch {
	case p.enc == encUU:
		if !whole {
			return
		}
		if !p.inUU {
			if name, ok := uuBegin(b); ok {
				p.inUU = true
				if p.deferStart {
					p.deferStart = false
					if p.part.Filename == "" {
						p.part.Filename = name
					}
					p.open = true
					p.h.PartStart(&p.part)
				}
			}
			return
		}
		if uuEnd(b) {
			p.inUU = false
			return
		}
		p.uuLine(b)
	case p.inUU: // a uuencoded block inside a text part
		if !whole {
			return
		}
		if uuEnd(b) {
			p.inUU = false
			p.flushOut()
			p.open = false
			p.h.PartEnd(true)
			if !p.countEntity() {
				return
			}
			p.part = p.text
			p.open = true
			p.h.PartStart(&p.part)
			return
		}
		p.uuLine(b)
	case p.uuText && whole && bytes.HasPrefix(b, []byte("begin ")):
		name, ok := uuBegin(b)
		if !ok {
			p.raw(b, eol, term)
			return
		}
		if !p.countEntity() {
			return
		}
		p.flushOut()
		p.open = false
		p.h.PartEnd(true)
		p.text = p.part
		p.part = Part{Depth: p.text.Depth, ContentType: "application/octet-stream", Filename: name,
			Disposition: "attachment", Encoding: "x-uuencode"}
		p.inUU = true
		p.open = true
		p.h.PartStart(&p.part)
	case p.enc == encB64:
		p.b64(b)
	case p.enc == encQP:
		p.qp(b, eol)
	default:
		p.raw(b, eol, term)
	}
}

func (p *Parser) raw(b []byte, eol bool, term []byte) {
	p.emitBytes(b)
	if eol {
		p.setPend(term)
	}
}

func allSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func validName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7F {
			return false
		}
	}
	return true
}

func validMediaType(mt string) bool {
	i := strings.IndexByte(mt, '/')
	if i <= 0 || i == len(mt)-1 {
		return false
	}
	for j := 0; j < len(mt); j++ {
		c := mt[j]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`()<>@,;:\"[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}
