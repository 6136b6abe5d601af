package rules

// FileDigests reports whether a rule of s compares a file's MD5
// (filemd5) or SHA-1 (filesha1), so the engine computes those digests only
// when a rule reads them (SHA-256 it always computes). It walks every rule:
// call it once per Set, not per file.
func (s *Set) FileDigests() (md5, sha1 bool) {
	if s == nil {
		return false, false
	}
	for _, r := range s.rules {
		for i := range r.pkt {
			if c := &r.pkt[i]; c.kind == pFileHash && c.hash != nil {
				switch c.hash.n {
				case 16:
					md5 = true
				case 20:
					sha1 = true
				}
			}
		}
	}
	return md5, sha1
}
