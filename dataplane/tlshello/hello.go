package tlshello

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
)

// reader reads big-endian fields of a handshake message; any read past
// the end sets bad and returns zeros.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() int {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := int(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() int {
	if len(r.b) < 2 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := int(r.b[0])<<8 | int(r.b[1])
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// grease reports whether v is a GREASE value (RFC 8701): 0x0a0a, 0x1a1a,
// ..., 0xfafa.
func grease(v int) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// Extension types used.
const (
	extServerName        = 0
	extSupportedGroups   = 10
	extECPointFormats    = 11
	extSupportedVersions = 43
)

// appendList appends the non-GREASE 16-bit values of l joined by '-'.
func appendList16(dst, l []byte) []byte {
	first := true
	for i := 0; i+1 < len(l); i += 2 {
		v := int(l[i])<<8 | int(l[i+1])
		if grease(v) {
			continue
		}
		if !first {
			dst = append(dst, '-')
		}
		first = false
		dst = strconv.AppendUint(dst, uint64(v), 10)
	}
	return dst
}

// clientHello parses a ClientHello body into SNI and JA3.
func (p *Parser) clientHello(b []byte) bool {
	r := reader{b: b}
	ver := r.u16()
	r.bytes(32) // random
	r.bytes(r.u8())
	ciphers := r.bytes(r.u16())
	r.bytes(r.u8()) // compression methods
	if r.bad || len(ciphers)%2 != 0 {
		return false
	}
	var exts []byte
	if len(r.b) > 0 {
		exts = r.bytes(r.u16())
		if r.bad {
			return false
		}
	}
	var groups, formats, sni []byte
	versions := false
	ja3 := strconv.AppendUint(p.ja3[:0], uint64(ver), 10)
	ja3 = append(ja3, ',')
	ja3 = appendList16(ja3, ciphers)
	ja3 = append(ja3, ',')
	first := true
	er := reader{b: exts}
	for len(er.b) > 0 {
		typ := er.u16()
		data := er.bytes(er.u16())
		if er.bad {
			return false
		}
		if !grease(typ) {
			if !first {
				ja3 = append(ja3, '-')
			}
			first = false
			ja3 = strconv.AppendUint(ja3, uint64(typ), 10)
		}
		switch typ {
		case extServerName:
			if sni == nil {
				sni = serverName(data)
			}
		case extSupportedGroups:
			dr := reader{b: data}
			groups = dr.bytes(dr.u16())
		case extECPointFormats:
			dr := reader{b: data}
			formats = dr.bytes(dr.u8())
		case extSupportedVersions:
			versions = true
		}
	}
	ja3 = append(ja3, ',')
	ja3 = appendList16(ja3, groups)
	ja3 = append(ja3, ',')
	for i, f := range formats {
		if i > 0 {
			ja3 = append(ja3, '-')
		}
		ja3 = strconv.AppendUint(ja3, uint64(f), 10)
	}
	p.ja3 = ja3
	sum := md5.Sum(ja3)
	hex.Encode(p.ja3Hash[:], sum[:])
	p.info.Version = uint16(ver)
	p.info.JA3 = p.ja3
	p.info.JA3Hash = p.ja3Hash[:]
	p.info.Versions = versions
	p.computeJA4(ver, ciphers, exts)
	if sni != nil {
		p.sni = append(p.sni[:0], sni...)
		p.info.SNI = p.sni
	}
	return true
}

// serverName returns the first host_name of a server_name extension.
func serverName(data []byte) []byte {
	r := reader{b: data}
	list := reader{b: r.bytes(r.u16())}
	for len(list.b) > 0 && !list.bad {
		typ := list.u8()
		name := list.bytes(list.u16())
		if typ == 0 && !list.bad && len(name) > 0 {
			return name
		}
	}
	return nil
}

// serverHello parses a ServerHello body into JA3S and the version.
func (p *Parser) serverHello(b []byte) bool {
	r := reader{b: b}
	ver := r.u16()
	r.bytes(32)
	r.bytes(r.u8())
	cipher := r.u16()
	r.u8()
	if r.bad {
		return false
	}
	var exts []byte
	if len(r.b) > 0 {
		exts = r.bytes(r.u16())
		if r.bad {
			return false
		}
	}
	neg := ver
	s := strconv.AppendUint(p.ja3s[:0], uint64(ver), 10)
	s = append(s, ',')
	s = strconv.AppendUint(s, uint64(cipher), 10)
	s = append(s, ',')
	first := true
	er := reader{b: exts}
	for len(er.b) > 0 {
		typ := er.u16()
		data := er.bytes(er.u16())
		if er.bad {
			return false
		}
		if typ == extSupportedVersions && len(data) == 2 {
			neg = int(data[0])<<8 | int(data[1])
		}
		if grease(typ) {
			continue
		}
		if !first {
			s = append(s, '-')
		}
		first = false
		s = strconv.AppendUint(s, uint64(typ), 10)
	}
	p.ja3s = s
	sum := md5.Sum(s)
	hex.Encode(p.ja3sHash[:], sum[:])
	p.info.ServerVersion = uint16(neg)
	p.info.JA3S = p.ja3s
	p.info.JA3SHash = p.ja3sHash[:]
	return true
}
