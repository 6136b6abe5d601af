package http1

import "bytes"

// NormalizeURI appends to dst the URI as Suricata's http.uri buffer shows it:
// percent-encoded bytes decoded, "+" kept, and "." and ".." path segments
// resolved. The query string is decoded but not path-normalised. A request
// to a proxy (absolute-form, "http://host:8080/a?b") shows its path and
// query only, as Suricata's default (libhtp uri-include-all: false), so a
// rule anchored at the path's first "/" matches it as it would the same
// request sent to the server. It does not allocate when dst has room.
func NormalizeURI(dst, uri []byte) []byte {
	start := len(dst)
	if p, ok := absolutePath(uri); ok {
		uri = p
		if len(uri) == 0 || uri[0] != '/' {
			dst = append(dst, '/') // "http://host" or "http://host?q": the path is "/"
			start++
		}
	}
	q := bytes.IndexByte(uri, '?')
	path, query := uri, []byte(nil)
	if q >= 0 {
		path, query = uri[:q], uri[q:]
	}
	dst = percentDecode(dst, path)
	dst = append(dst[:start], removeDots(dst[start:])...)
	return percentDecode(dst, query)
}

func percentDecode(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				dst = append(dst, h<<4|l)
				i += 2
				continue
			}
		}
		dst = append(dst, c)
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

// removeDots resolves "." and ".." segments of p in place (RFC 3986 5.2.4)
// and returns the shortened slice. Writing never overtakes reading, so the
// in-place rewrite is safe.
func removeDots(p []byte) []byte {
	if bytes.IndexByte(p, '.') < 0 {
		return p
	}
	out := p[:0]
	i := 0
	if len(p) > 0 && p[0] == '/' {
		out = p[:1]
		i = 1
	}
	root := len(out)
	for i <= len(p) {
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i:j]
		last := j >= len(p)
		switch {
		case len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			k := len(out) - 1 // out ends with '/' or is at root
			if k >= root {
				k = bytes.LastIndexByte(out[root:k], '/')
				if k >= 0 {
					out = out[:root+k+1]
				} else {
					out = out[:root]
				}
			}
		default:
			out = append(out, seg...)
			if !last {
				out = append(out, '/')
			}
		}
		i = j + 1
	}
	return out
}

// FileName returns the file name a transfer carries: the filename parameter
// of Content-Disposition when present, else the last segment of the URI
// path. The result aliases its inputs.
func FileName(disposition, uri []byte) []byte {
	if i := indexFold(disposition, "filename="); i >= 0 {
		v := disposition[i+len("filename="):]
		if len(v) > 0 && v[0] == '"' {
			v = v[1:]
			if j := bytes.IndexByte(v, '"'); j >= 0 {
				return v[:j]
			}
			return v
		}
		if j := bytes.IndexAny(v, "; "); j >= 0 {
			v = v[:j]
		}
		return v
	}
	if p, ok := absolutePath(uri); ok {
		uri = p
	}
	if q := bytes.IndexAny(uri, "?#"); q >= 0 {
		uri = uri[:q]
	}
	if i := bytes.LastIndexByte(uri, '/'); i >= 0 {
		uri = uri[i+1:]
	}
	return uri
}

func indexFold(b []byte, lower string) int {
	for i := 0; i+len(lower) <= len(b); i++ {
		if equalFold(b[i:i+len(lower)], lower) {
			return i
		}
	}
	return -1
}

// absolutePath returns what follows the scheme and authority of an
// absolute-form request target (RFC 9112 3.2.2: "scheme://authority" then
// path and query), and whether uri is one. An origin-form target starts
// with "/" and is not.
func absolutePath(uri []byte) ([]byte, bool) {
	if len(uri) == 0 || uri[0] == '/' {
		return nil, false // origin-form, nearly every request: no scan for "://"
	}
	i := bytes.Index(uri, []byte("://"))
	if i <= 0 {
		return nil, false
	}
	for k, c := range uri[:i] { // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
		alpha := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !alpha && (k == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return nil, false
		}
	}
	rest := uri[i+3:]
	if j := bytes.IndexAny(rest, "/?#"); j >= 0 {
		return rest[j:], true
	}
	return nil, true
}

// authority returns the host and port of an absolute-form target, without
// user information ("http://u@host:8080/a" -> "host:8080"); nil for any
// other form.
func authority(uri []byte) []byte {
	path, ok := absolutePath(uri)
	if !ok {
		return nil
	}
	a := uri[bytes.Index(uri, []byte("://"))+3 : len(uri)-len(path)]
	if k := bytes.LastIndexByte(a, '@'); k >= 0 {
		a = a[k+1:]
	}
	return a
}
