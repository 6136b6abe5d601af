// Package av scans files for malware with YARA (libyara through go-yara)
// and hash blocklists (ClamAV .hdb/.hsb and plain lists of MD5, SHA-1 or
// SHA-256).
//
// Rules are compiled once in New; Scan is safe for concurrent use: it takes
// a libyara scanner from a pool (scanners are not goroutine-safe, compiled
// rules are). A scan is bounded by Options.Timeout. Scan costs one pass of
// each hash plus libyara's scan of the buffer; it runs once per file, never
// per packet.
//
// A YARA file that does not compile is skipped and reported in
// Scanner.LoadErrors; the others load.
package av

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hillu/go-yara/v4"
)

// ErrNoRules is returned by New when no rule and no hash was given.
var ErrNoRules = errors.New("av: no YARA rules and no hashes to scan with")

// Result is a scan's verdict.
type Result struct {
	Malicious bool
	Threat    string // the rule's "threat" meta, the rule name, or the hash list's name
	Engine    string // "yara" or "hash"
}

// Options says what to load.
type Options struct {
	YaraSources map[string][]byte // name -> rule source
	YaraDirs    []string          // every *.yar / *.yara below each dir
	HashFiles   []string          // .hdb (md5:size:name), .hsb (sha256:size:name), or plain hex lists
	Timeout     time.Duration     // per scan; default 10s
}

// LoadError names a rule file that was skipped.
type LoadError struct {
	File   string
	Reason string
}

func (e LoadError) Error() string { return e.File + ": " + e.Reason }

// Scanner scans buffers.
type Scanner struct {
	rules      *yara.Rules
	pool       sync.Pool
	timeout    time.Duration
	hashes     map[string]string // lowercase hex digest -> threat name
	RuleCount  int
	HashCount  int
	LoadErrors []LoadError
}

// New compiles the rules and reads the hash lists.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{timeout: opts.Timeout, hashes: make(map[string]string)}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	comp, err := yara.NewCompiler()
	if err != nil {
		return nil, fmt.Errorf("av: libyara compiler: %w", err)
	}
	defer comp.Destroy()
	sources := 0
	names := make([]string, 0, len(opts.YaraSources))
	for n := range opts.YaraSources {
		names = append(names, n)
	}
	sort.Strings(names)
	add := func(name string, src string) {
		if err := check(src); err != nil {
			s.LoadErrors = append(s.LoadErrors, LoadError{name, err.Error()})
			return
		}
		if err := comp.AddString(src, namespace(name)); err != nil {
			s.LoadErrors = append(s.LoadErrors, LoadError{name, err.Error()})
			return
		}
		sources++
	}
	for _, n := range names {
		add(n, string(opts.YaraSources[n]))
	}
	for _, dir := range opts.YaraDirs {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !(strings.HasSuffix(path, ".yar") || strings.HasSuffix(path, ".yara")) {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			add(path, string(b))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("av: read YARA rules in %s: %w", dir, err)
		}
	}
	for _, f := range opts.HashFiles {
		if err := s.loadHashes(f); err != nil {
			return nil, err
		}
	}
	if sources > 0 {
		s.rules, err = comp.GetRules()
		if err != nil {
			return nil, fmt.Errorf("av: link YARA rules: %w", err)
		}
		s.RuleCount = len(s.rules.GetRules())
	}
	s.HashCount = len(s.hashes)
	if s.rules == nil && len(s.hashes) == 0 {
		return nil, ErrNoRules
	}
	return s, nil
}

// check compiles src alone: libyara's compiler is unusable after an error,
// so a bad file must be found before it reaches the shared compiler.
func check(src string) error {
	c, err := yara.NewCompiler()
	if err != nil {
		return err
	}
	defer c.Destroy()
	if err := c.AddString(src, "check"); err != nil {
		var msgs []string
		for _, e := range c.Errors {
			msgs = append(msgs, fmt.Sprintf("line %d: %s", e.Line, e.Text))
		}
		if len(msgs) > 0 {
			return errors.New(strings.Join(msgs, "; "))
		}
		return err
	}
	return nil
}

func namespace(name string) string {
	base := filepath.Base(name)
	return strings.TrimSuffix(strings.TrimSuffix(base, ".yara"), ".yar")
}

// loadHashes reads one hash list.
func (s *Scanner) loadHashes(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("av: hash list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	base := filepath.Base(path)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		digest, name := strings.ToLower(fields[0]), base
		if len(fields) >= 3 { // ClamAV: hash:size:name
			name = fields[2]
		} else if sp := strings.Fields(line); len(sp) >= 2 {
			digest, name = strings.ToLower(sp[0]), strings.Join(sp[1:], " ")
		}
		if !isHex(digest) || (len(digest) != 32 && len(digest) != 40 && len(digest) != 64) {
			return fmt.Errorf("av: %s:%d: %q is not an MD5, SHA-1 or SHA-256 digest", path, n+1, fields[0])
		}
		s.hashes[digest] = name
		n++
	}
	return sc.Err()
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// Scan scans data.
func (s *Scanner) Scan(data []byte) (Result, error) {
	if len(s.hashes) > 0 {
		var buf [64]byte
		m := md5.Sum(data)
		if t, ok := s.hashes[string(hex.AppendEncode(buf[:0], m[:]))]; ok {
			return Result{true, t, "hash"}, nil
		}
		h1 := sha1.Sum(data)
		if t, ok := s.hashes[string(hex.AppendEncode(buf[:0], h1[:]))]; ok {
			return Result{true, t, "hash"}, nil
		}
		h2 := sha256.Sum256(data)
		if t, ok := s.hashes[string(hex.AppendEncode(buf[:0], h2[:]))]; ok {
			return Result{true, t, "hash"}, nil
		}
	}
	if s.rules == nil {
		return Result{}, nil
	}
	sc, _ := s.pool.Get().(*yara.Scanner)
	if sc == nil {
		var err error
		sc, err = yara.NewScanner(s.rules)
		if err != nil {
			return Result{}, fmt.Errorf("av: new libyara scanner: %w", err)
		}
		sc.SetTimeout(s.timeout)
	}
	defer s.pool.Put(sc)
	var m yara.MatchRules
	if err := sc.SetCallback(&m).ScanMem(data); err != nil {
		return Result{}, fmt.Errorf("av: scan: %w", err)
	}
	if len(m) == 0 {
		return Result{}, nil
	}
	threat := m[0].Rule
	for _, meta := range m[0].Metas {
		if meta.Identifier == "threat" {
			if v, ok := meta.Value.(string); ok && v != "" {
				threat = v
			}
		}
	}
	return Result{true, threat, "yara"}, nil
}

// Close releases the compiled rules. Scanners still pooled are released by
// the garbage collector's finalizers.
func (s *Scanner) Close() {
	if s.rules != nil {
		s.rules.Destroy()
		s.rules = nil
	}
}
