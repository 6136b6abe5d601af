// Package av scans files for malware with YARA (libyara through go-yara)
// and hash blocklists (ClamAV .hdb/.hsb and plain lists of MD5, SHA-1 or
// SHA-256).
//
// Rules are compiled once in New; Scan is safe for concurrent use: it takes
// a libyara scanner from a bounded pool (scanners are not goroutine-safe,
// compiled rules are) and returns it after the scan. A scan is bounded by
// Options.Timeout. Scan costs the digests the hash lists need (one pass
// each) plus libyara's scan of the buffer, and allocates a little; it runs
// once per extracted file, never per packet.
//
// A YARA file that does not compile, or a hash list line that is not a
// digest, is skipped and reported in Scanner.LoadErrors; the rest loads.
package av

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hillu/go-yara/v4"
)

// Errors.
var (
	// ErrNoRules is returned by New when no YARA rule and no hash loaded.
	ErrNoRules = errors.New("av: no YARA rules and no hashes to scan with")
	// ErrTimeout is wrapped by Scan when libyara gave up after
	// Options.Timeout; the file was not fully scanned.
	ErrTimeout = errors.New("av: scan timed out")
	// ErrClosed is returned by Scan after Close.
	ErrClosed = errors.New("av: scanner closed")
)

// Result is a scan's verdict.
type Result struct {
	Malicious bool
	Threat    string // the YARA rule's "threat" meta, else the rule name; or the hash list's name
	Engine    string // "yara" or "hash"
}

// Options says what to load.
type Options struct {
	YaraSources map[string][]byte // name -> rule source
	YaraDirs    []string          // every *.yar / *.yara below each dir
	HashFiles   []string          // .hdb (md5:size:name), .hsb (sha256:size:name), or plain hex lists
	// Timeout bounds one scan; default 10s. libyara counts whole seconds,
	// so it is rounded up to at least 1s.
	Timeout time.Duration
}

// LoadError names a rule file or hash list line that was skipped.
type LoadError struct {
	File   string
	Line   int // 0 for a whole YARA file
	Reason string
}

func (e LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return e.File + ": " + e.Reason
}

// hashEntry is one listed digest.
type hashEntry struct {
	size   int64 // -1: any size
	threat string
}

// Scanner scans buffers.
type Scanner struct {
	mu      sync.RWMutex // Scan holds it shared, Close exclusive
	closed  bool
	rules   *yara.Rules
	idle    chan *yara.Scanner // pooled scanners
	timeout time.Duration

	hashes  map[string]hashEntry // lowercase hex digest -> entry
	digests [3]bool              // md5, sha1, sha256 listed at all

	RuleCount  int
	HashCount  int
	LoadErrors []LoadError
}

// New compiles the rules and reads the hash lists. The error is for a
// directory or hash list that cannot be read, or nothing to scan with.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{timeout: opts.Timeout, hashes: make(map[string]hashEntry)}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	s.timeout = max(time.Second, s.timeout.Round(time.Second))
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
			s.LoadErrors = append(s.LoadErrors, LoadError{File: name, Reason: err.Error()})
			return
		}
		// One namespace per file: rule names only need to be unique
		// within their file, as they are when each file is used alone.
		if err := comp.AddString(src, name); err != nil {
			s.LoadErrors = append(s.LoadErrors, LoadError{File: name, Reason: err.Error()})
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
			return nil, fmt.Errorf("av: read YARA rules in %s: %w (check signatures.yara_dirs)", dir, err)
		}
	}
	for _, path := range opts.HashFiles {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("av: hash list: %w (check signatures.hash_files)", err)
		}
		s.LoadErrors = append(s.LoadErrors, s.readHashes(f, path)...)
		f.Close()
	}
	if sources > 0 {
		s.rules, err = comp.GetRules()
		if err != nil {
			return nil, fmt.Errorf("av: link YARA rules: %w", err)
		}
		s.RuleCount = len(s.rules.GetRules())
		s.idle = make(chan *yara.Scanner, 2*runtime.GOMAXPROCS(0))
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

// readHashes adds the digests listed in r and returns the lines it
// skipped. Formats, one entry per line, '#' comments:
//
//	md5:size:Threat.Name[:...]      ClamAV .hdb (size "*" = any)
//	sha256:size:Threat.Name[:...]   ClamAV .hsb (sha1 too)
//	digest [name]                   plain list (sha256sum output works);
//	                                the threat is the name, else the file's
func (s *Scanner) readHashes(r io.Reader, path string) []LoadError {
	var errs []LoadError
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	base := filepath.Base(path)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		e := hashEntry{size: -1, threat: base}
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
			k = 0
		case 40:
			k = 1
		case 64:
			k = 2
		}
		if k < 0 || !isHex(digest) {
			errs = append(errs, LoadError{path, line, "not an MD5, SHA-1 or SHA-256 hex digest"})
			continue
		}
		s.digests[k] = true
		s.hashes[digest] = e
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

// Scan scans data. It is safe for concurrent use. A non-nil error means the
// data was not fully scanned (ErrTimeout, ErrClosed, a libyara error); a
// hash hit is reported even then.
func (s *Scanner) Scan(data []byte) (Result, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	if r, ok := s.scanHashes(data); ok {
		return r, nil
	}
	if s.rules == nil {
		return Result{}, nil
	}
	var sc *yara.Scanner
	select {
	case sc = <-s.idle:
	default:
		var err error
		sc, err = yara.NewScanner(s.rules)
		if err != nil {
			return Result{}, fmt.Errorf("av: new libyara scanner: %w", err)
		}
		sc.SetTimeout(s.timeout).SetFlags(yara.ScanFlagsFastMode)
	}
	var m yara.MatchRules
	err := sc.SetCallback(&m).ScanMem(data)
	sc.SetCallback(nil)
	select {
	case s.idle <- sc:
	default:
		sc.Destroy()
	}
	if err != nil {
		var ye yara.Error
		if errors.As(err, &ye) && ye.Error() == "scan timeout" {
			return Result{}, fmt.Errorf("%w after %v (%d bytes); raise signatures timeout or shrink the YARA set", ErrTimeout, s.timeout, len(data))
		}
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
	return Result{Malicious: true, Threat: threat, Engine: "yara"}, nil
}

func (s *Scanner) scanHashes(data []byte) (Result, bool) {
	if len(s.hashes) == 0 {
		return Result{}, false
	}
	var buf [64]byte
	hit := func(sum []byte) (Result, bool) {
		// The map index with a converted []byte does not allocate.
		if e, ok := s.hashes[string(hex.AppendEncode(buf[:0], sum))]; ok && (e.size < 0 || e.size == int64(len(data))) {
			return Result{Malicious: true, Threat: e.threat, Engine: "hash"}, true
		}
		return Result{}, false
	}
	if s.digests[0] {
		sum := md5.Sum(data)
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	if s.digests[1] {
		sum := sha1.Sum(data)
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	if s.digests[2] {
		sum := sha256.Sum256(data)
		if r, ok := hit(sum[:]); ok {
			return r, true
		}
	}
	return Result{}, false
}

// Close releases the pooled scanners and the compiled rules. It waits for
// running scans; later scans return ErrClosed. Close is idempotent.
func (s *Scanner) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for {
		select {
		case sc := <-s.idle:
			sc.Destroy()
			continue
		default:
		}
		break
	}
	if s.rules != nil {
		s.rules.Destroy()
		s.rules = nil
	}
}
