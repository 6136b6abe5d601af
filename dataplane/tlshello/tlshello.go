package tlshello

// MaxMessage is the default cap on the bytes of one handshake message kept
// per direction (Parser.Max).
const MaxMessage = 64 << 10

// keepBuffer is the largest per-direction buffer Reset keeps for the next
// flow; larger ones (rare: huge hellos or certificates) are let go.
const keepBuffer = 16 << 10

// keepJA4 is the longest cipher or extension list whose JA4 scratch
// (2 bytes a value to sort, 5 to hash) Reset keeps; real hellos have ~20.
const keepJA4 = 1024

// Event is a set of handshake messages whose results became available.
type Event uint8

// Events Feed reports.
const (
	ClientHello Event = 1 << iota // Info: SNI, Version, JA3, JA3Hash, JA4
	ServerHello                   // Info: ServerVersion, JA3S, JA3SHash
	Certificate                   // Info: Subject, Issuer, Serial, Fingerprint
)

// Status says whether a direction is still followed, and if not, why.
type Status uint8

// Statuses of a direction.
const (
	Following Status = iota // still in the cleartext handshake
	Encrypted               // ChangeCipherSpec or application data seen: nothing more in clear
	NotTLS                  // bytes that are not TLS records or a hello that does not parse
	Overflow                // a handshake message larger than Max: not followed further
)

func (s Status) String() string {
	switch s {
	case Following:
		return "following"
	case Encrypted:
		return "encrypted"
	case NotTLS:
		return "not-tls"
	case Overflow:
		return "overflow"
	}
	return "unknown"
}

// TLS versions as they appear on the wire.
const (
	VersionTLS10 = 0x0301
	VersionTLS11 = 0x0302
	VersionTLS12 = 0x0303
	VersionTLS13 = 0x0304
)

// Info is what the handshake revealed. Slices point into the Parser's
// buffers: valid until Reset, nil while unknown.
type Info struct {
	SNI      []byte // server_name host_name of the ClientHello
	Version  uint16 // ClientHello legacy_version
	JA3      []byte // "771,4865-4866,0-23,29-23,0"
	JA3Hash  []byte // lower hex MD5 of JA3, 32 bytes
	Versions bool   // the ClientHello offered supported_versions (TLS 1.3 capable)
	JA4      []byte // "t13d1516h2_8daaf6152771_e5627efa2ab1", JA4Len bytes (ja4.go)

	ServerVersion uint16 // negotiated: supported_versions of the ServerHello, else its legacy_version
	JA3S          []byte
	JA3SHash      []byte

	Subject     []byte // "C=US, O=Let's Encrypt, CN=R3"
	Issuer      []byte
	Serial      []byte // "0A:1B:..."
	Fingerprint []byte // SHA-1 of the DER certificate, "4a:a3:..."
}

// Parser follows both directions of one flow. The zero value is ready.
type Parser struct {
	// Max caps the bytes kept for one handshake message per direction;
	// 0 means MaxMessage.
	Max int
	// QUIC: the handshake comes from a QUIC connection's CRYPTO stream
	// (FeedHandshake); JA4 then starts with "q".
	QUIC bool

	dirs [2]dirState
	info Info
	seen Event // events already reported

	sni, ja3, ja3s, subject, issuer, serial []byte // backing storage of info
	ja3Hash, ja3sHash                       [32]byte
	fp                                      [59]byte
	ja4                                     [JA4Len]byte
	ja4vals                                 []uint16 // JA4 scratch: a list to sort
	ja4text                                 []byte   // JA4 scratch: the text to hash
}

// dirState is the record and handshake framing of one direction.
type dirState struct {
	status Status

	hdr       [5]byte // record header being read
	hn        int
	recType   byte
	recRemain int // bytes left in the current record

	mhdr    [4]byte // handshake message header being read
	mhn     int
	msgType byte
	msgLen  int  // body length
	msgGot  int  // body bytes passed
	keep    int  // body bytes to keep (a prefix of the body)
	partial bool // kept bytes are in buf (the message spans Feed calls)
	buf     []byte
}

// Info returns the handshake's results so far.
func (p *Parser) Info() *Info { return &p.info }

// Status reports whether direction d is still followed.
func (p *Parser) Status(d int) Status { return p.dirs[d&1].status }

// Done reports whether direction d will reveal nothing more.
func (p *Parser) Done(d int) bool { return p.dirs[d&1].status != Following }

// Reset forgets the flow and keeps buffers of moderate size for the next.
func (p *Parser) Reset() {
	for i := range p.dirs {
		b := p.dirs[i].buf[:0]
		if cap(b) > keepBuffer {
			b = nil
		}
		p.dirs[i] = dirState{buf: b}
	}
	p.info = Info{}
	p.QUIC = false
	p.seen = 0
	p.sni, p.ja3, p.ja3s = p.sni[:0], p.ja3[:0], p.ja3s[:0]
	p.subject, p.issuer, p.serial = p.subject[:0], p.issuer[:0], p.serial[:0]
	if cap(p.ja4vals) > keepJA4 || cap(p.ja4text) > 5*keepJA4 {
		p.ja4vals, p.ja4text = nil, nil // an odd hello with huge lists: let them go
	}
}

func (p *Parser) max() int {
	if p.Max > 0 {
		return p.Max
	}
	return MaxMessage
}

// Feed takes the next in-order bytes of direction d (0: client to server,
// 1: server to client) and returns the events they completed.
func (p *Parser) Feed(d int, b []byte) Event {
	d &= 1
	s := &p.dirs[d]
	var ev Event
	for len(b) > 0 && s.status == Following {
		if s.recRemain == 0 {
			n := copy(s.hdr[s.hn:], b)
			s.hn += n
			b = b[n:]
			if s.hn < len(s.hdr) {
				break
			}
			s.hn = 0
			typ, major := s.hdr[0], s.hdr[1]
			l := int(s.hdr[3])<<8 | int(s.hdr[4])
			if typ < 20 || typ > 24 || major != 3 || l == 0 || l > 1<<14+2048 {
				s.status = NotTLS
				break
			}
			switch typ {
			case 20, 23: // change_cipher_spec, application_data
				s.status = Encrypted
				return ev
			}
			s.recType, s.recRemain = typ, l
			continue
		}
		n := min(s.recRemain, len(b))
		chunk := b[:n]
		b = b[n:]
		s.recRemain -= n
		if s.recType == 22 {
			ev |= p.handshake(d, s, chunk)
		}
	}
	return ev
}

// FeedHandshake takes the next in-order bytes of direction d's handshake
// messages without TLS record framing: a QUIC connection's CRYPTO stream.
func (p *Parser) FeedHandshake(d int, b []byte) Event {
	d &= 1
	return p.handshake(d, &p.dirs[d], b)
}

// handshake takes bytes of handshake records.
func (p *Parser) handshake(d int, s *dirState, b []byte) Event {
	var ev Event
	for len(b) > 0 && s.status == Following {
		if s.mhn < len(s.mhdr) {
			n := copy(s.mhdr[s.mhn:], b)
			s.mhn += n
			b = b[n:]
			if s.mhn < len(s.mhdr) {
				break
			}
			s.msgType = s.mhdr[0]
			s.msgLen = int(s.mhdr[1])<<16 | int(s.mhdr[2])<<8 | int(s.mhdr[3])
			s.msgGot, s.keep, s.partial = 0, 0, false
			s.buf = s.buf[:0]
			if p.wanted(d, s.msgType) {
				s.keep = s.msgLen
				if s.msgType == hsCertificate {
					s.keep = min(s.keep, 6) // grown once the first certificate's length is known
				}
				if s.keep > p.max() {
					s.status = Overflow
					break
				}
				if s.msgLen == 0 {
					ev |= p.message(d, s, nil)
				}
			}
			if s.msgLen == 0 {
				s.mhn = 0
			}
			continue
		}
		if s.msgGot < s.keep {
			if s.msgType == hsCertificate && s.keep == 6 && s.msgGot == 0 && len(b) >= 6 && !p.certKeep(s, b) {
				continue // status changed, or the chain is empty (keep 0)
			}
			k := min(len(b), s.keep-s.msgGot)
			if !s.partial && s.msgGot == 0 && k == s.keep {
				ev |= p.message(d, s, b[:k]) // whole in this chunk: parsed in place
			} else {
				s.partial = true
				s.buf = append(s.buf, b[:k]...)
				if s.msgGot+k == s.keep {
					if s.msgType == hsCertificate && s.keep == 6 {
						s.msgGot += k
						b = b[k:]
						p.certKeep(s, s.buf)
						if s.msgGot == s.msgLen {
							s.mhn = 0
						}
						continue
					}
					ev |= p.message(d, s, s.buf)
				}
			}
			s.msgGot += k
			b = b[k:]
		} else {
			n := min(s.msgLen-s.msgGot, len(b))
			s.msgGot += n
			b = b[n:]
		}
		if s.msgGot == s.msgLen {
			s.mhn = 0
		}
	}
	return ev
}

// certKeep reads the first 6 bytes of a Certificate message (the chain's
// length and the first certificate's) and sets keep to end with the first
// certificate. It reports false when there is no certificate to read.
func (p *Parser) certKeep(s *dirState, h []byte) bool {
	certLen := int(h[3])<<16 | int(h[4])<<8 | int(h[5])
	switch {
	case certLen == 0 || 6+certLen > s.msgLen:
		s.keep = 0 // empty chain or bad length: no certificate; skip the message
		return false
	case 6+certLen > p.max():
		s.status = Overflow
		return false
	}
	s.keep = 6 + certLen
	return true
}

// Handshake message types.
const (
	hsClientHello = 1
	hsServerHello = 2
	hsCertificate = 11
)

// wanted reports whether a message of type t from direction d is kept.
func (p *Parser) wanted(d int, t byte) bool {
	switch {
	case d == 0 && t == hsClientHello:
		return p.seen&ClientHello == 0
	case d == 1 && t == hsServerHello:
		return p.seen&ServerHello == 0
	case d == 1 && t == hsCertificate:
		return p.seen&ServerHello != 0 && p.seen&Certificate == 0 && p.info.ServerVersion <= VersionTLS12
	}
	return false
}

// message parses a kept message body (or the first bytes of it, for a
// certificate chain).
func (p *Parser) message(d int, s *dirState, b []byte) Event {
	switch s.msgType {
	case hsClientHello:
		if d != 0 || p.seen&ClientHello != 0 {
			return 0
		}
		if !p.clientHello(b) {
			s.status = NotTLS
			return 0
		}
		p.seen |= ClientHello
		return ClientHello
	case hsServerHello:
		if d != 1 || p.seen&ServerHello != 0 {
			return 0
		}
		if !p.serverHello(b) {
			s.status = NotTLS
			return 0
		}
		p.seen |= ServerHello
		return ServerHello
	case hsCertificate:
		if len(b) < 6 || p.seen&Certificate != 0 {
			return 0
		}
		if p.certificate(b[6:]) {
			p.seen |= Certificate
			return Certificate
		}
	}
	return 0
}
