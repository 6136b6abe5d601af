package av

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Digest kinds.
const (
	kindMD5 = iota
	kindSHA1
	kindSHA256
	nKinds
)

// hashEntry is one listed digest.
type hashEntry struct {
	size   int64 // -1: any size
	threat string
	src    int32 // index into hashSet.sources
	line   int32
}

// hashSet holds every listed digest and, per digest kind, which file
// sizes a list names, so a scan hashes only what can match.
type hashSet struct {
	m       map[string]hashEntry // lowercase hex digest -> entry
	sources []string             // list base names
	kinds   [nKinds]struct {
		listed  bool
		anySize bool               // some entry has size "*" or none (plain list)
		sizes   map[int64]struct{} // sizes named when !anySize
	}
	builtin int // entries added by addBuiltin
}

func newHashSet() hashSet { return hashSet{m: make(map[string]hashEntry)} }

func (h *hashSet) len() int { return len(h.m) - h.builtin }

func (h *hashSet) add(kind int, digest string, e hashEntry) {
	k := &h.kinds[kind]
	k.listed = true
	if e.size < 0 {
		k.anySize = true
	} else {
		if k.sizes == nil {
			k.sizes = make(map[int64]struct{})
		}
		k.sizes[e.size] = struct{}{}
	}
	h.m[digest] = e
}

// eicarMD5 is the 68-byte EICAR test file's MD5.
const eicarMD5 = "44d88612fea8a8f36de82e1278abb02f"

// addBuiltin adds the built-in digests unless a list already named them.
func (h *hashSet) addBuiltin() {
	if _, ok := h.m[eicarMD5]; ok {
		return
	}
	h.sources = append(h.sources, "builtin")
	h.add(kindMD5, eicarMD5, hashEntry{size: 68, threat: "EICAR-Test-File", src: int32(len(h.sources) - 1)})
	h.builtin++
}

// read adds the digests listed in r and returns the lines it skipped.
// Formats, one entry per line, '#' comments:
//
//	md5:size:Threat.Name[:...]      ClamAV .hdb / .hdu (size "*" = any)
//	sha256:size:Threat.Name[:...]   ClamAV .hsb / .hsu (sha1 too)
//	digest [name]                   plain list (sha256sum output works);
//	                                the threat is the name, else the file's
func (h *hashSet) read(r io.Reader, path string) []LoadError {
	var errs []LoadError
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	base := filepath.Base(path)
	h.sources = append(h.sources, base)
	src := int32(len(h.sources) - 1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		e := hashEntry{size: -1, threat: base, src: src, line: int32(line)}
		var digest string
		if fields := strings.Split(text, ":"); len(fields) >= 3 {
			digest = fields[0]
			if fields[1] != "*" {
				n, err := strconv.ParseInt(fields[1], 10, 64)
				if err != nil || n < 0 {
					errs = append(errs, LoadError{path, line, fmt.Sprintf("size %q is not a number or *", fields[1])})
					continue
				}
				e.size = n
			}
			if name := strings.TrimSpace(fields[2]); name != "" {
				e.threat = name
			}
		} else {
			f := strings.Fields(text)
			digest = f[0]
			if len(f) > 1 {
				e.threat = strings.TrimPrefix(strings.Join(f[1:], " "), "*") // sha256sum's binary marker
			}
		}
		digest = strings.ToLower(digest)
		k := -1
		switch len(digest) {
		case 32:
			k = kindMD5
		case 40:
			k = kindSHA1
		case 64:
			k = kindSHA256
		}
		if k < 0 || !isHex(digest) {
			errs = append(errs, LoadError{path, line, "not an MD5, SHA-1 or SHA-256 hex digest"})
			continue
		}
		h.add(k, digest, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, LoadError{path, line + 1, "reading stopped: " + err.Error()})
	}
	return errs
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// wants reports whether a digest of this kind could match a file of n bytes.
func (h *hashSet) wants(kind int, n int64) bool {
	k := &h.kinds[kind]
	if !k.listed {
		return false
	}
	if k.anySize {
		return true
	}
	_, ok := k.sizes[n]
	return ok
}

// scan computes the digests that can match data, unless sums has them,
// and looks them up. It allocates only on a hit (the rule name).
func (h *hashSet) scan(data []byte, sums Sums) (Result, bool) {
	n := int64(len(data))
	var buf [64]byte
	hit := func(sum []byte) (Result, bool) {
		// The map index with a converted []byte does not allocate.
		e, ok := h.m[string(hex.AppendEncode(buf[:0], sum))]
		if !ok || e.size >= 0 && e.size != n {
			return Result{}, false
		}
		rule := h.sources[e.src]
		if e.line > 0 {
			rule += ":" + strconv.Itoa(int(e.line))
		}
		return Result{Malicious: true, Threat: e.threat, Engine: "hash", Rule: rule, Verdict: VerdictMalicious}, true
	}
	if h.wants(kindMD5, n) {
		sum := sums.MD5
		if sum == nil {
			s := md5.Sum(data)
			sum = &s
		}
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	if h.wants(kindSHA1, n) {
		sum := sums.SHA1
		if sum == nil {
			s := sha1.Sum(data)
			sum = &s
		}
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	if h.wants(kindSHA256, n) {
		sum := sums.SHA256
		if sum == nil {
			s := sha256.Sum256(data)
			sum = &s
		}
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	return Result{}, false
}

// HashKinds reports which digests a scan computes whatever the file's
// size: the kinds some hash list holds with size "*" or in a plain list.
// A caller that hashes files as they stream (the engine) computes these
// too and passes them in ScanMeta.Sums, so the scan does not hash the
// file again; a list that names sizes (ClamAV .hdb) costs a hash only for
// a file of a size it names.
func (s *Scanner) HashKinds() (md5, sha1, sha256 bool) {
	k := &s.hashes.kinds
	return k[kindMD5].anySize, k[kindSHA1].anySize, k[kindSHA256].anySize
}
