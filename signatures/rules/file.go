package rules

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File keywords match the facts of one file a flow carried (Input.File,
// which the engine fills when the file ends; nil: no file, and every file
// keyword fails):
//
//	filename:[!]"x"    x occurs in the file's name (case-sensitive)
//	fileext:[!]"pdf"   the name's extension is pdf (caseless)
//	filemagic:[!]"PE32"  x occurs in the type description (caseless)
//	filesize:<range>   as dsize: 100, <100, >100, 100<>200, 100-200, != ...;
//	                   < and = wait for the file's end (Complete)
//	filemd5:[!]list, filesha1:[!]list, filesha256:[!]list
//	                   the digest is (not) in the list: a file of hex
//	                   digests, one a line (more fields after a space or
//	                   comma are ignored, # comments), named relative to
//	                   the rules file's directory as in Suricata; or, as an
//	                   extension, the digests inline separated by commas.
//
// A hash list is read once per rule at load; a lookup is a map access.

// FileFacts is what the engine knows of a file when it ends (or when the
// flow ends with the file open: Complete false).
type FileFacts struct {
	Name     string // as the protocol named it (HTTP URI path or Content-Disposition, mail attachment name)
	Ext      string // Name's extension without the dot, lowercase ("pdf")
	Magic    string // type description, libmagic style ("PE32 executable", "PDF document", "JPEG image data, JFIF")
	Size     uint64 // bytes seen
	MD5      [16]byte
	SHA1     [20]byte
	SHA256   [32]byte
	Complete bool // the whole file was seen: Size and the digests are final
}

// hashList is a set of digests of one length.
type hashList struct {
	n   int // digest bytes: 16, 20, 32
	set map[string]struct{}
}

func (h *hashList) has(f *FileFacts) bool {
	var d []byte
	switch h.n {
	case 16:
		d = f.MD5[:]
	case 20:
		d = f.SHA1[:]
	default:
		d = f.SHA256[:]
	}
	_, ok := h.set[string(d)]
	return ok
}

func init() {
	keywords["filename"] = fileStrOpt(pFileName, false)
	keywords["fileext"] = fileStrOpt(pFileExt, true)
	keywords["filemagic"] = fileStrOpt(pFileMagic, true)
	keywords["filesize"] = fileSizeOpt
	keywords["filemd5"] = fileHashOpt("filemd5", 16)
	keywords["filesha1"] = fileHashOpt("filesha1", 20)
	keywords["filesha256"] = fileHashOpt("filesha256", 32)
}

func fileStrOpt(kind pktKind, caseless bool) optionFunc {
	return func(p *ruleParser, v string) error {
		v = strings.TrimSpace(v)
		c := pktCheck{kind: kind}
		if rest, ok := strings.CutPrefix(v, "!"); ok {
			c.neg, v = true, strings.TrimSpace(rest)
		}
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return fmt.Errorf("want a quoted string, got %q", v)
		}
		c.str = unquote(v)
		if kind == pFileExt {
			c.str = strings.TrimPrefix(c.str, ".")
		}
		if c.str == "" {
			return fmt.Errorf("empty string")
		}
		if caseless {
			c.str = strings.ToLower(c.str)
		}
		p.r.pkt = append(p.r.pkt, c)
		return nil
	}
}

func fileSizeOpt(p *ruleParser, v string) error {
	rg, err := parseRange(v, 1<<62)
	if err != nil {
		return err
	}
	p.r.pkt = append(p.r.pkt, pktCheck{kind: pFileSize, rng: rg})
	return nil
}

func fileHashOpt(name string, n int) optionFunc {
	return func(p *ruleParser, v string) error {
		v = strings.TrimSpace(v)
		c := pktCheck{kind: pFileHash}
		if rest, ok := strings.CutPrefix(v, "!"); ok {
			c.neg, v = true, strings.TrimSpace(rest)
		}
		v = unquote(v)
		if v == "" {
			return fmt.Errorf("no hash list file")
		}
		h := &hashList{n: n, set: make(map[string]struct{})}
		if inline, ok := inlineDigests(v, n); ok {
			for _, d := range inline {
				h.set[string(d)] = struct{}{}
			}
		} else if err := h.load(v, p.dir); err != nil {
			return err
		}
		if len(h.set) == 0 {
			return fmt.Errorf("%s list %q holds no digest", name, v)
		}
		c.hash = h
		p.r.pkt = append(p.r.pkt, c)
		return nil
	}
}

// inlineDigests reads v as digests of n bytes separated by commas.
func inlineDigests(v string, n int) ([][]byte, bool) {
	var out [][]byte
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		d, err := hex.DecodeString(f)
		if err != nil || len(d) != n {
			return nil, false
		}
		out = append(out, d)
	}
	return out, true
}

// load reads the hash list file name (relative to dir unless absolute).
func (h *hashList) load(name, dir string) error {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, name)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash list: %w (the path is relative to the rules file's directory)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		t := bytes.TrimSpace(sc.Bytes())
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if i := bytes.IndexAny(t, " \t,"); i >= 0 {
			t = t[:i]
		}
		d := make([]byte, h.n)
		if k, err := hex.Decode(d, t); err != nil || k != h.n || len(t) != 2*h.n {
			return fmt.Errorf("hash list %s:%d: %q is not a %d-hex-digit digest", path, line, t, 2*h.n)
		}
		h.set[string(d)] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("hash list %s: %w", path, err)
	}
	return nil
}

// fileOK runs one file keyword against f.
func (c *pktCheck) fileOK(f *FileFacts) bool {
	if f == nil {
		return false
	}
	switch c.kind {
	case pFileName:
		return strings.Contains(f.Name, c.str) != c.neg
	case pFileExt:
		return (len(f.Ext) == len(c.str) && strings.EqualFold(f.Ext, c.str)) != c.neg
	case pFileMagic:
		return containsFold(f.Magic, c.str) != c.neg
	case pFileSize:
		if !f.Complete && c.rng.op != ">" && c.rng.op != ">=" {
			return false // the final size is not known yet
		}
		return c.rng.match(f.Size)
	case pFileHash:
		if !f.Complete {
			return false
		}
		return c.hash.has(f) != c.neg
	}
	return false
}

// containsFold reports whether lower (lowercase) occurs in s, ignoring
// ASCII case.
func containsFold(s, lower string) bool {
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for j < len(lower) && fold(s[i+j]) == lower[j] {
			j++
		}
		if j == len(lower) {
			return true
		}
	}
	return false
}
