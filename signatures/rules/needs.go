package rules

// FileDigests reports whether a rule of s compares a file's MD5
// (filemd5), SHA-1 (filesha1) or SHA-256 (filesha256). The engine computes
// the MD5 and SHA-1 only when a rule (or a hash list) reads them; the
// SHA-256 it always computes, and a file's verdict waits for it only when
// something reads it. It walks every rule: call it once per Set, not per
// file.
func (s *Set) FileDigests() (md5, sha1, sha256 bool) {
	if s == nil {
		return false, false, false
	}
	for _, r := range s.rules {
		for i := range r.pkt {
			if c := &r.pkt[i]; c.kind == pFileHash && c.hash != nil {
				switch c.hash.n {
				case 16:
					md5 = true
				case 20:
					sha1 = true
				case 32:
					sha256 = true
				}
			}
		}
	}
	return md5, sha1, sha256
}
