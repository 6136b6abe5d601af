package tlshello

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// JA4 follows FoxIO's published algorithm (github.com/FoxIO-LLC/ja4,
// technical_details/JA4.md; JA4 itself is BSD-3-Clause, unlike the rest of
// JA4+). A fingerprint is always JA4Len bytes:
//
//	t13d1516h2_8daaf6152771_e5627efa2ab1
//	│└┤│└┤└┤└┤ └─ b ──────┘ └─ c ──────┘
//	│ │ │ │ │ └ ALPN: first and last character of the first protocol
//	│ │ │ │ └ extension count (GREASE left out, SNI and ALPN counted, max 99)
//	│ │ │ └ cipher count (GREASE left out, max 99)
//	│ │ └ d: server_name extension present, i: absent
//	│ └ version: highest of supported_versions, else legacy_version
//	└ t: TLS over TCP (the only transport Feed follows)
//
// b is the first 12 hex digits of the SHA-256 of the sorted cipher suites
// as 4-digit lower hex joined by ","; c the same of the sorted extensions
// without server_name (0x0000) and ALPN (0x0010), followed, when the hello
// has any, by "_" and the signature algorithms in their order. GREASE
// values are left out of every list. An empty list hashes to twelve "0".
const JA4Len = 36

// Extension types JA4 reads besides those of JA3.
const (
	extSignatureAlgorithms = 13
	extALPN                = 16
)

// ja4Version is the two characters of a TLS version in JA4_a.
func ja4Version(v int) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// alnum reports whether c is an ASCII letter or digit.
func alnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

const hexDigits = "0123456789abcdef"

// ja4ALPN writes the two ALPN characters of JA4_a from the data of the
// first ALPN extension (nil when there is none): "00" without a first
// protocol, its first and last bytes when both are alphanumeric (a single
// byte counts as both), else the first and last digits of its hex form.
func ja4ALPN(dst []byte, data []byte) {
	r := reader{b: data}
	list := reader{b: r.bytes(r.u16())}
	proto := list.bytes(list.u8())
	if r.bad || list.bad || len(proto) == 0 {
		dst[0], dst[1] = '0', '0'
		return
	}
	first, last := proto[0], proto[len(proto)-1]
	if alnum(first) && alnum(last) {
		dst[0], dst[1] = first, last
		return
	}
	dst[0], dst[1] = hexDigits[first>>4], hexDigits[last&0x0f]
}

// count2 writes n as two decimal digits, capped at 99.
func count2(dst []byte, n int) {
	n = min(n, 99)
	dst[0], dst[1] = byte('0'+n/10), byte('0'+n%10)
}

// appendHex16 appends the values of vs as 4-digit lower hex joined by ','.
func appendHex16(dst []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	return dst
}

// hash12 writes the first 12 hex digits of the SHA-256 of s, or twelve
// '0' when s is empty.
func hash12(dst []byte, s []byte) {
	if len(s) == 0 {
		copy(dst[:12], "000000000000")
		return
	}
	sum := sha256.Sum256(s)
	hex.Encode(dst[:12], sum[:6])
}

// appendList16NoGrease appends the non-GREASE 16-bit values of l.
func appendList16NoGrease(dst []uint16, l []byte) []uint16 {
	for i := 0; i+1 < len(l); i += 2 {
		if v := int(l[i])<<8 | int(l[i+1]); !grease(v) {
			dst = append(dst, uint16(v))
		}
	}
	return dst
}

// computeJA4 fills p.ja4 from a ClientHello's legacy_version and its
// cipher_suites and extensions blocks, which clientHello has already
// framed. Sorting and hashing use Parser scratch buffers: no allocation
// once they have grown.
func (p *Parser) computeJA4(legacy int, ciphers, exts []byte) {
	out := &p.ja4
	var alpn, versions, sigalgs []byte
	sni, hasALPN, hasVersions, hasSigalgs := false, false, false, false
	nExt := 0
	vals := p.ja4vals[:0]
	r := reader{b: exts}
	for len(r.b) > 0 {
		typ := r.u16()
		data := r.bytes(r.u16())
		if r.bad {
			break
		}
		if grease(typ) {
			continue
		}
		nExt++
		switch typ {
		case extServerName:
			sni = true
			continue // in JA4_a, not in JA4_c
		case extALPN:
			if !hasALPN {
				alpn, hasALPN = data, true
			}
			continue
		case extSupportedVersions:
			if !hasVersions {
				vr := reader{b: data}
				versions, hasVersions = vr.bytes(vr.u8()), true
			}
		case extSignatureAlgorithms:
			if !hasSigalgs {
				sr := reader{b: data}
				sigalgs, hasSigalgs = sr.bytes(sr.u16()), true
			}
		}
		vals = append(vals, uint16(typ))
	}
	nExts := len(vals)

	ver := legacy
	if hasVersions {
		ver = 0 // "00" unless a non-GREASE version is listed
		for i := 0; i+1 < len(versions); i += 2 {
			if v := int(versions[i])<<8 | int(versions[i+1]); !grease(v) && v > ver {
				ver = v
			}
		}
	}
	out[0] = 't'
	if p.QUIC {
		out[0] = 'q'
	}
	copy(out[1:3], ja4Version(ver))
	out[3] = 'i'
	if sni {
		out[3] = 'd'
	}
	ja4ALPN(out[8:10], alpn)
	out[10], out[23] = '_', '_'

	// JA4_c: sorted extensions, then the signature algorithms in order.
	slices.Sort(vals)
	text := appendHex16(p.ja4text[:0], vals)
	if nExts > 0 {
		start := len(vals)
		vals = appendList16NoGrease(vals, sigalgs)
		if len(vals) > start {
			text = append(text, '_')
			text = appendHex16(text, vals[start:])
		}
	}
	hash12(out[24:36], text)
	count2(out[6:8], nExt)

	// JA4_b: sorted cipher suites.
	vals = appendList16NoGrease(vals[:0], ciphers)
	count2(out[4:6], len(vals))
	slices.Sort(vals)
	text = appendHex16(text[:0], vals)
	hash12(out[11:23], text)

	p.ja4vals, p.ja4text = vals, text
	p.info.JA4 = out[:]
}
