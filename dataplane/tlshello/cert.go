package tlshello

import (
	"bytes"
	"crypto/sha1"
	"strconv"
	"unicode/utf8"
)

// DER tags used.
const (
	tagInteger  = 0x02
	tagOID      = 0x06
	tagSequence = 0x30
	tagSet      = 0x31
	tagVersion  = 0xa0 // [0] EXPLICIT Version
)

// tlv reads one DER element: its tag, its content and what follows. ok is
// false for a truncated element, a multi-byte tag, an indefinite or
// over-long length.
func tlv(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 || b[0]&0x1f == 0x1f {
		return 0, nil, nil, false
	}
	tag = b[0]
	l := int(b[1])
	b = b[2:]
	if l >= 0x80 {
		n := l & 0x7f
		if n == 0 || n > 3 || len(b) < n {
			return 0, nil, nil, false
		}
		l = 0
		for _, c := range b[:n] {
			l = l<<8 | int(c)
		}
		b = b[n:]
	}
	if l > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:l], b[l:], true
}

// certificate reads the serial, issuer and subject of a DER certificate
// and its SHA-1 fingerprint.
func (p *Parser) certificate(der []byte) bool {
	tag, cert, after, ok := tlv(der)
	if !ok || tag != tagSequence {
		return false
	}
	der = der[:len(der)-len(after)]
	tag, tbs, _, ok := tlv(cert)
	if !ok || tag != tagSequence {
		return false
	}
	tag, v, rest, ok := tlv(tbs)
	if ok && tag == tagVersion {
		tag, v, rest, ok = tlv(rest)
	}
	if !ok || tag != tagInteger || len(v) == 0 {
		return false
	}
	serial := v
	tag, _, rest, ok = tlv(rest) // signature AlgorithmIdentifier
	if !ok || tag != tagSequence {
		return false
	}
	tag, issuer, rest, ok := tlv(rest)
	if !ok || tag != tagSequence {
		return false
	}
	tag, _, rest, ok = tlv(rest) // validity
	if !ok || tag != tagSequence {
		return false
	}
	tag, subject, _, ok := tlv(rest)
	if !ok || tag != tagSequence {
		return false
	}
	is, ok := appendName(p.issuer[:0], issuer)
	if !ok {
		return false
	}
	su, ok := appendName(p.subject[:0], subject)
	if !ok {
		return false
	}
	p.issuer, p.subject = is, su
	p.serial = appendHexColon(p.serial[:0], serial, upperHex)
	sum := sha1.Sum(der)
	fp := appendHexColon(p.fp[:0], sum[:], lowerHex)
	p.info.Subject, p.info.Issuer = p.subject, p.issuer
	p.info.Serial = p.serial
	p.info.Fingerprint = fp
	return true
}

const (
	upperHex = "0123456789ABCDEF"
	lowerHex = "0123456789abcdef"
)

func appendHexColon(dst, b []byte, digits string) []byte {
	for i, c := range b {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, digits[c>>4], digits[c&0xf])
	}
	return dst
}

// appendName appends a Name (SEQUENCE OF RDN) as Suricata prints it:
// "C=US, O=Let's Encrypt, CN=R3".
func appendName(dst, name []byte) ([]byte, bool) {
	firstRDN := true
	for len(name) > 0 {
		tag, rdn, rest, ok := tlv(name)
		if !ok || tag != tagSet {
			return dst, false
		}
		name = rest
		if !firstRDN {
			dst = append(dst, ", "...)
		}
		firstRDN = false
		firstAttr := true
		for len(rdn) > 0 {
			tag, atv, rest, ok := tlv(rdn)
			if !ok || tag != tagSequence {
				return dst, false
			}
			rdn = rest
			tag, oid, val, ok := tlv(atv)
			if !ok || tag != tagOID {
				return dst, false
			}
			vtag, v, _, ok := tlv(val)
			if !ok {
				return dst, false
			}
			if !firstAttr {
				dst = append(dst, " + "...)
			}
			firstAttr = false
			dst = appendOIDName(dst, oid)
			dst = append(dst, '=')
			dst = appendValue(dst, vtag, v, val)
		}
	}
	return dst, true
}

// attrNames are the abbreviations Suricata's certificate parser
// (x509-parser) prints, by the DER content of the OID.
var attrNames = []struct {
	oid  []byte
	name string
}{
	{[]byte{0x55, 0x04, 0x03}, "CN"},
	{[]byte{0x55, 0x04, 0x06}, "C"},
	{[]byte{0x55, 0x04, 0x07}, "L"},
	{[]byte{0x55, 0x04, 0x08}, "ST"},
	{[]byte{0x55, 0x04, 0x0a}, "O"},
	{[]byte{0x55, 0x04, 0x0b}, "OU"},
	{[]byte{0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19}, "DC"},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01}, "Email"},
	{[]byte{0x55, 0x04, 0x04}, "surname"},
	{[]byte{0x55, 0x04, 0x05}, "serialNumber"},
	{[]byte{0x55, 0x04, 0x09}, "street"},
	{[]byte{0x55, 0x04, 0x0c}, "title"},
	{[]byte{0x55, 0x04, 0x0f}, "businessCategory"},
	{[]byte{0x55, 0x04, 0x11}, "postalCode"},
	{[]byte{0x55, 0x04, 0x2a}, "givenName"},
}

// appendOIDName appends the attribute's abbreviation, or its dotted form.
func appendOIDName(dst, oid []byte) []byte {
	for _, a := range attrNames {
		if bytes.Equal(oid, a.oid) {
			return append(dst, a.name...)
		}
	}
	if len(oid) == 0 {
		return dst
	}
	first := uint64(oid[0])
	x := min(first/40, 2)
	y := first - 40*x
	dst = strconv.AppendUint(dst, x, 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, y, 10)
	var v uint64
	for _, c := range oid[1:] {
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			dst = append(dst, '.')
			dst = strconv.AppendUint(dst, v, 10)
			v = 0
		}
	}
	return dst
}

// appendValue appends an attribute value: strings as text (BMPString and
// UniversalString converted to UTF-8), anything else as '#' and the hex of
// its DER encoding (RFC 4514).
func appendValue(dst []byte, tag byte, v, der []byte) []byte {
	switch tag {
	case 0x0c, 0x12, 0x13, 0x14, 0x16, 0x1a: // UTF8, Numeric, Printable, Teletex, IA5, Visible
		return append(dst, v...)
	case 0x1e: // BMPString: UCS-2 big endian
		for i := 0; i+1 < len(v); i += 2 {
			dst = utf8.AppendRune(dst, rune(v[i])<<8|rune(v[i+1]))
		}
		return dst
	case 0x1c: // UniversalString: UCS-4 big endian
		for i := 0; i+3 < len(v); i += 4 {
			dst = utf8.AppendRune(dst, rune(v[i])<<24|rune(v[i+1])<<16|rune(v[i+2])<<8|rune(v[i+3]))
		}
		return dst
	}
	dst = append(dst, '#')
	for _, c := range der {
		dst = append(dst, lowerHex[c>>4], lowerHex[c&0xf])
	}
	return dst
}
