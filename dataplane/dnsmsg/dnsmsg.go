// Package dnsmsg decodes the parts of a DNS message the engine inspects: the
// header, the first question (name lowercased, type) and the A/AAAA records
// of the answer section with their TTLs.
//
// Decode works on a UDP payload (or a TCP message without its length
// prefix) into a reused Msg and does not allocate: the question name is
// written into a fixed array, answers into a fixed slice. Compression
// pointers are followed with a hop limit, so hostile loops end as
// ErrMalformed.
package dnsmsg

import (
	"errors"
	"net/netip"
)

// Errors returned by Decode.
var (
	// ErrTruncated is returned when the message ends inside a field.
	ErrTruncated = errors.New("dnsmsg: message truncated")
	// ErrMalformed is returned for a bad label, a pointer loop or a name
	// longer than 255 bytes.
	ErrMalformed = errors.New("dnsmsg: malformed message")
)

// MaxAnswers is how many A/AAAA answers Decode keeps.
const MaxAnswers = 16

// Record types and response codes the engine names.
const (
	TypeA    = 1
	TypeAAAA = 28

	RcodeNoError  = 0
	RcodeNXDomain = 3
)

// Answer is one A or AAAA record.
type Answer struct {
	Addr netip.Addr
	TTL  uint32
}

// Msg is a decoded message. Name is valid until the next Decode.
type Msg struct {
	ID        uint16
	Response  bool
	Opcode    uint8
	Rcode     uint8
	QDCount   uint16
	QType     uint16
	QClass    uint16
	Answers   []Answer // A/AAAA records in the answer section, at most MaxAnswers
	name      [255]byte
	nameLen   int
	answerBuf [MaxAnswers]Answer
}

// Name returns the first question's name, lowercase, without the trailing
// dot ("" for the root or when there is no question).
func (m *Msg) Name() []byte { return m.name[:m.nameLen] }

// Decode parses b into m.
func (m *Msg) Decode(b []byte) error {
	m.Answers = m.answerBuf[:0]
	m.nameLen = 0
	m.QType, m.QClass = 0, 0
	if len(b) < 12 {
		return ErrTruncated
	}
	m.ID = uint16(b[0])<<8 | uint16(b[1])
	m.Response = b[2]&0x80 != 0
	m.Opcode = (b[2] >> 3) & 0x0f
	m.Rcode = b[3] & 0x0f
	m.QDCount = be16(b[4:])
	ancount := be16(b[6:])
	off := 12
	for q := 0; q < int(m.QDCount); q++ {
		var err error
		if q == 0 {
			off, err = m.readName(b, off, true)
		} else {
			off, err = m.readName(b, off, false)
		}
		if err != nil {
			return err
		}
		if off+4 > len(b) {
			return ErrTruncated
		}
		if q == 0 {
			m.QType, m.QClass = be16(b[off:]), be16(b[off+2:])
		}
		off += 4
	}
	for a := 0; a < int(ancount); a++ {
		var err error
		off, err = m.readName(b, off, false)
		if err != nil {
			return err
		}
		if off+10 > len(b) {
			return ErrTruncated
		}
		typ, ttl, rdlen := be16(b[off:]), be32(b[off+4:]), int(be16(b[off+8:]))
		off += 10
		if off+rdlen > len(b) {
			return ErrTruncated
		}
		rd := b[off : off+rdlen]
		off += rdlen
		if len(m.Answers) == MaxAnswers {
			continue
		}
		switch {
		case typ == TypeA && rdlen == 4:
			m.Answers = append(m.Answers, Answer{netip.AddrFrom4([4]byte(rd)), ttl})
		case typ == TypeAAAA && rdlen == 16:
			m.Answers = append(m.Answers, Answer{netip.AddrFrom16([16]byte(rd)), ttl})
		}
	}
	return nil
}

// readName walks the name at off and returns the offset after it. With keep
// it stores the lowercased dotted name in m.name.
func (m *Msg) readName(b []byte, off int, keep bool) (int, error) {
	end := -1 // offset after the name in the original position
	hops := 0
	n := 0
	for {
		if off >= len(b) {
			return 0, ErrTruncated
		}
		l := int(b[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+1 >= len(b) {
				return 0, ErrTruncated
			}
			if end < 0 {
				end = off + 2
			}
			hops++
			if hops > 16 {
				return 0, ErrMalformed
			}
			off = (l&0x3f)<<8 | int(b[off+1])
			continue
		case 0x00:
		default:
			return 0, ErrMalformed
		}
		off++
		if l == 0 {
			break
		}
		if off+l > len(b) {
			return 0, ErrTruncated
		}
		if keep {
			if n+l+1 > len(m.name) {
				return 0, ErrMalformed
			}
			if n > 0 {
				m.name[n] = '.'
				n++
			}
			for _, c := range b[off : off+l] {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				m.name[n] = c
				n++
			}
		}
		off += l
	}
	if keep {
		m.nameLen = n
	}
	if end < 0 {
		end = off
	}
	return end, nil
}

// TypeString names common record types for alerts ("A", "AAAA", ...).
func TypeString(t uint16) string {
	switch t {
	case 1:
		return "A"
	case 2:
		return "NS"
	case 5:
		return "CNAME"
	case 6:
		return "SOA"
	case 12:
		return "PTR"
	case 15:
		return "MX"
	case 16:
		return "TXT"
	case 28:
		return "AAAA"
	case 33:
		return "SRV"
	case 65:
		return "HTTPS"
	case 255:
		return "ANY"
	}
	return "TYPE" + itoa(int(t))
}

// RcodeString names a response code ("NOERROR", "NXDOMAIN", ...).
func RcodeString(r uint8) string {
	switch r {
	case 0:
		return "NOERROR"
	case 1:
		return "FORMERR"
	case 2:
		return "SERVFAIL"
	case 3:
		return "NXDOMAIN"
	case 5:
		return "REFUSED"
	}
	return "RCODE" + itoa(int(r))
}

func itoa(v int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
