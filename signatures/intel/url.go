package intel

// URL normalisation shared by indicators and lookups, so both sides build
// the same key: host lowercased without a trailing dot and without the
// default ports 80 and 443, then the path with percent-encoded unreserved
// characters decoded, other escapes' hex digits uppercased and dot
// segments removed (RFC 3986 6.2.2), then '?' and the query (escapes
// normalised the same way, nothing removed). The scheme is not part of the
// key: an indicator http://x/a matches https://x/a.

// hasScheme returns the length of a leading "http://" or "https://"
// (any case), or 0.
func hasScheme(b []byte) int {
	for _, s := range [...]string{"http://", "https://"} {
		if len(b) >= len(s) && equalFoldASCII(b[:len(s)], s) {
			return len(s)
		}
	}
	return 0
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// splitAbsolute splits an absolute-form target (http://host/path) into
// host and path; other targets are returned as they are.
func splitAbsolute(host, target []byte) ([]byte, []byte) {
	n := hasScheme(target)
	if n == 0 {
		return host, target
	}
	rest := target[n:]
	i := 0
	for i < len(rest) && rest[i] != '/' && rest[i] != '?' {
		i++
	}
	h := rest[:i]
	if at := lastByte(h, '@'); at >= 0 {
		h = h[at+1:]
	}
	return h, rest[i:]
}

func lastByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// appendHost appends the normalised host to dst.
func appendHost(dst, host []byte) []byte {
	// Drop a default port: the last ':' after any IPv6 bracket.
	// An unbracketed host with two colons is a bare IPv6 address: no port.
	if c := lastByte(host, ':'); c >= 0 && c > lastByte(host, ']') && (host[0] == '[' || indexByte(host, ':') == c) {
		if p := string(host[c+1:]); p == "80" || p == "443" || p == "" {
			host = host[:c]
		}
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	for _, c := range host {
		dst = append(dst, lower(c))
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

const hexUpper = "0123456789ABCDEF"

// appendPercent appends src with unreserved escapes decoded, the hex of the
// others uppercased, and a '%' that starts no escape written %25.
func appendPercent(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '%' && i+2 < len(src) {
			hi, ok1 := unhex(src[i+1])
			lo, ok2 := unhex(src[i+2])
			if ok1 && ok2 {
				d := hi<<4 | lo
				if unreserved(d) {
					dst = append(dst, d)
				} else {
					dst = append(dst, '%', hexUpper[hi], hexUpper[lo])
				}
				i += 2
				continue
			}
		}
		if c <= ' ' || c >= 0x7f || c == '%' {
			// As clients send it; a stray '%' (not an escape) becomes %25
			// so that no escape can form from what follows ("/%%610"
			// would otherwise normalise to "/%a0", and that again to
			// "/%A0": normalising must be idempotent).
			dst = append(dst, '%', hexUpper[c>>4], hexUpper[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendPath appends the normalised path p (percent-normalised, dot
// segments removed; always starting with '/') to dst. scratch must have
// room for len(p) bytes; it is used for the percent-decoded path.
func appendPath(dst, p, scratch []byte) []byte {
	dec := appendPercent(scratch[:0], p)
	start := len(dst)
	dst = append(dst, '/')
	i := 0
	if len(dec) > 0 && dec[0] == '/' {
		i = 1
	}
	for i <= len(dec) {
		j := i
		for j < len(dec) && dec[j] != '/' {
			j++
		}
		seg := dec[i:j]
		last := j >= len(dec)
		switch string(seg) {
		case ".":
		case "..":
			// Remove the last output segment; dst ends with '/' here.
			if len(dst)-start > 1 {
				k := len(dst) - 1
				for k > start && dst[k-1] != '/' {
					k--
				}
				dst = dst[:k]
			}
		default:
			dst = append(dst, seg...)
			if !last {
				dst = append(dst, '/')
			}
		}
		if last {
			break
		}
		i = j + 1
	}
	return dst
}

// urlKey appends the normalised key of a request (Host header or the
// indicator's host, and the request-target) to dst, returning the key and
// the offsets where its path and query ('?') start; query == len(key)
// when there is none. scratch is as for appendPath. A target that does not
// start with '/' (and is not absolute-form) is treated as a path all the same.
func urlKey(dst, host, target, scratch []byte) (key []byte, path, query int) {
	host, target = splitAbsolute(host, target)
	if f := indexByte(target, '#'); f >= 0 {
		target = target[:f]
	}
	p, q := target, []byte(nil)
	if i := indexByte(target, '?'); i >= 0 {
		p, q = target[:i], target[i+1:]
	}
	dst = appendHost(dst, host)
	path = len(dst)
	dst = appendPath(dst, p, scratch)
	query = len(dst)
	if q != nil {
		dst = append(dst, '?')
		dst = appendPercent(dst, q)
	}
	return dst, path, query
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
