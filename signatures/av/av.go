// Package av scans files for malware with YARA (libyara through go-yara)
// and hash blocklists (ClamAV .hdb/.hsb/.hdu/.hsu and plain lists of MD5,
// SHA-1 or SHA-256). EICAR is built in, by hash and by a YARA rule.
//
// # Loading
//
// New compiles the YARA sources and every *.yar / *.yara below
// Options.YaraDirs (recursively, in lexical order), one file at a time: a
// file that does not compile is skipped and reported in
// Scanner.LoadErrors (file:line and libyara's reason), the rest loads.
// Each file is its own YARA namespace, named "<dir base>/<path in dir>"
// for directory files and by its key for YaraSources, so a rule is named
// "namespace:rule" in results and in Options.DisableRules. The external
// variables filename, filepath, extension and filetype are defined for
// every rule (see ScanMeta). A hash list line that is not a digest is
// skipped and reported with file:line.
//
// # Scanning and its cost
//
// Scan and ScanWith are safe for concurrent use. A scan takes one of
// Options.Workers libyara scanners (compiled rules are shared, scanners are
// not goroutine-safe) and waits when all are busy, so size Workers to the
// engine's workers. A scan first computes only the digests the hash lists
// need, and only for sizes a list names (ClamAV lists give sizes: a file
// of another size costs no hashing), or takes them from ScanMeta.Sums when
// the caller hashed the file already (HashKinds says which kinds are worth
// passing), then runs libyara over the buffer, unless the literal gate
// (gate.go) shows that no rule can match: when every reporting rule needs
// one of its strings and every such string contains a literal, a
// Hyperscan scan for those literals runs first and a file without any of
// them is clean (Stats.Gated) without libyara: 35 us a MiB instead of
// 1.2 ms with the default rules (BenchmarkScan1MBGate). Scanner.Gate says
// whether the gate is on, or which rule keeps it off (the ReversingLabs
// set's certificate rules do).
// On the clean path the scan allocates only inside go-yara: 3-4 small
// objects per scan for its callback registration (a handle, its
// container, a callback context; see TestScanAllocs) and 2 more per YARA
// module the rules import (8 in all with ReversingLabs' pe and elf);
// nothing grows with the file; a gated scan allocates nothing. A
// detection allocates the Result's rule name and meta.
// It runs once per extracted file, never per packet.
//
// # Limits and the unscannable policy
//
//   - Options.MaxFileSize (default 64 MiB): the hash lists see the whole
//     buffer, YARA scans its first MaxFileSize bytes; a clean result is
//     then VerdictPartial ("partially-scanned"), a hit is still malicious.
//   - Options.Timeout (default 10 s, libyara counts whole seconds): a scan
//     libyara abandons returns VerdictUnscanned ("unscanned") and an error
//     wrapping ErrTimeout, and is counted in Stats.Timeouts. A hash hit
//     found before is still reported as malicious.
//   - Options.MaxDepth (default 8): ScanWith of a file nested deeper than
//     MaxDepth in containers checks the hash lists only; unless one
//     matches it returns VerdictUnscanned and ErrTooDeep.
//   - Options.Unscannable (PolicyAllow by default) is what the engine
//     should do with an "unscanned" file: PolicyAllow lets it through with
//     a ★★ alert, PolicyBlock neutralises it like a malicious one.
//     Result.Block applies it. A partially-scanned file is not
//     unscannable: it passes unless its scanned prefix matched, because
//     otherwise every download bigger than MaxFileSize (ISO images,
//     updates) would be cut.
package av

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hillu/go-yara/v4"
)

// Errors.
var (
	// ErrNoRules is returned by New when the options name no YARA rule and
	// no hash that loaded (the built-in EICAR signatures do not count).
	ErrNoRules = errors.New("av: no YARA rules and no hashes to scan with")
	// ErrTimeout is wrapped by Scan when libyara gave up after
	// Options.Timeout; the file was not fully scanned.
	ErrTimeout = errors.New("av: scan timed out")
	// ErrTooDeep is wrapped by ScanWith when ScanMeta.Depth exceeds
	// Options.MaxDepth; the file was not scanned.
	ErrTooDeep = errors.New("av: file nested too deep to scan")
	// ErrClosed is returned by Scan after Close.
	ErrClosed = errors.New("av: scanner closed")
)

var errClash = errors.New("av: a YARA file clashes with an earlier one")

// Defaults for the zero Options fields.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxFileSize = 64 << 20
	DefaultMaxDepth    = 8
)

// Verdict is a scan's outcome, spelled as in fileinfo events.
type Verdict string

// Verdicts.
const (
	VerdictClean     Verdict = "clean"
	VerdictMalicious Verdict = "malicious"
	VerdictPartial   Verdict = "partially-scanned" // clean in the first MaxFileSize bytes
	VerdictUnscanned Verdict = "unscanned"         // timeout, too deep, scanner error
)

// Policy says what to do with a file that could not be scanned.
type Policy uint8

// Policies.
const (
	PolicyAllow Policy = iota // let it through, alert ★★
	PolicyBlock               // neutralise it like a malicious file
)

func (p Policy) String() string {
	if p == PolicyBlock {
		return "block"
	}
	return "allow"
}

// ParsePolicy reads "allow" or "block" (the config spelling).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "allow", "":
		return PolicyAllow, nil
	case "block":
		return PolicyBlock, nil
	}
	return PolicyAllow, fmt.Errorf("av: unscannable policy %q: want allow or block", s)
}

// Meta is one meta field of the YARA rule that matched.
type Meta struct {
	Key   string
	Value string // integers and booleans formatted
}

// Result is a scan's verdict.
type Result struct {
	Malicious bool
	Threat    string // the YARA rule's "threat" meta, else the rule name; or the hash list's name
	Engine    string // "yara" or "hash"
	// Rule names what matched: "namespace:rule" for YARA, "list:line"
	// (the hash list's base name and line; "builtin" for EICAR) for a
	// hash.
	Rule    string
	Meta    []Meta  // the matching YARA rule's meta, in source order; nil for a hash
	Verdict Verdict // always set
	Scanned int     // bytes YARA scanned (less than len(data) when partial)
}

// Block reports whether the engine should neutralise the file under the
// unscannable policy p: malicious files always, unscanned ones with
// PolicyBlock.
func (r Result) Block(p Policy) bool {
	return r.Malicious || r.Verdict == VerdictUnscanned && p == PolicyBlock
}

// ScanMeta describes the file for ScanWith.
type ScanMeta struct {
	Name  string // file name or path as the transfer gave it; sets filename, filepath, extension
	Depth int    // container nesting: 0 for the transferred file, 1 inside one archive...
	Type  string // filetype external; "" detects it from magic bytes (pe, elf, macho, zip, gzip, pdf, ole, rar, 7z, text, data)
	// Sums are digests of data the caller already computed (the engine
	// hashes a file as it streams): the hash lists use them instead of
	// hashing data again. A nil field is computed by the scan when a list
	// could match it. A sum must be of exactly data.
	Sums Sums
}

// Sums are digests of the data given to ScanWith; nil: not known.
type Sums struct {
	MD5    *[16]byte
	SHA1   *[20]byte
	SHA256 *[32]byte
}

// Options says what to load.
type Options struct {
	YaraSources map[string][]byte // name -> rule source
	YaraDirs    []string          // every *.yar / *.yara below each dir, recursively
	// HashFiles are .hdb/.hdu (md5:size:name), .hsb/.hsu
	// (sha1|sha256:size:name, size "*" = any) or plain lists of hex
	// digests with '#' comments.
	HashFiles []string
	// DisableRules lists YARA rules to load but never report, as
	// "namespace:rule" or a bare rule name (every namespace). For noisy
	// public rules; an entry that names no rule is a LoadError.
	DisableRules []string
	// Timeout bounds one scan; default DefaultTimeout. libyara counts
	// whole seconds, so it is rounded to at least 1s.
	Timeout     time.Duration
	MaxFileSize int    // bytes YARA scans per file; default DefaultMaxFileSize
	MaxDepth    int    // deepest container nesting scanned; default DefaultMaxDepth
	Workers     int    // concurrent scans (libyara scanners); default GOMAXPROCS
	Unscannable Policy // for the engine: see Result.Block
}

// LoadError names a rule file or hash list line that was skipped.
type LoadError struct {
	File   string
	Line   int // 0 when the whole file failed without a line
	Reason string
}

func (e LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return e.File + ": " + e.Reason
}

// Stats counts scans since New.
type Stats struct {
	Scans     uint64 // ScanWith calls that ran (not after Close)
	Bytes     uint64 // bytes scanned (by libyara or the gate)
	Malicious uint64
	Partial   uint64 // clean in the scanned prefix of a bigger file
	Unscanned uint64 // timeouts, too deep, libyara errors
	Timeouts  uint64 // of which timeouts
	Gated     uint64 // clean without libyara: no literal of the gate occurs
}

// Scanner scans buffers.
type Scanner struct {
	mu      sync.RWMutex // Scan holds it shared, Close exclusive
	closed  bool
	rules   *yara.Rules
	idle    chan *pooled // Workers slots; nil = not created yet
	timeout time.Duration
	maxSize int
	maxDep  int
	policy  Policy
	extern  bool // some rule references an external variable

	hashes hashSet
	gate   *gate // nil: libyara scans every file

	stats struct {
		scans, bytes, malicious, partial, unscanned, timeouts, gated atomic.Uint64
	}

	RuleCount  int // YARA rules loaded, the built-in one included
	HashCount  int // listed digests, the built-in ones excluded
	LoadErrors []LoadError
	// Gate says whether the literal gate runs in front of libyara: how
	// many literals of how many rules, or why not (see gate.go).
	Gate string
}

// externals are the variables every rule may reference; ScanWith sets them.
var externals = []string{"filename", "filepath", "extension", "filetype"}

// New compiles the rules and reads the hash lists. The error is for a
// directory or hash list that cannot be read, or nothing to scan with.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{
		timeout: opts.Timeout, maxSize: opts.MaxFileSize, maxDep: opts.MaxDepth, policy: opts.Unscannable,
		hashes: newHashSet(),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	s.timeout = max(time.Second, s.timeout.Round(time.Second))
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxFileSize
	}
	if s.maxDep <= 0 {
		s.maxDep = DefaultMaxDepth
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	comp, err := newCompiler()
	if err != nil {
		return nil, err
	}
	defer comp.Destroy()
	loaded := 0
	plan := newGatePlan()
	plan.add("built-in EICAR rule", []byte(eicarYara))
	add := func(ns, file string, src []byte) error {
		if line, err := check(string(src)); err != nil {
			s.LoadErrors = append(s.LoadErrors, LoadError{File: file, Line: line, Reason: err.Error()})
			return nil
		}
		if err := comp.AddString(string(src), ns); err != nil {
			// check passed, so this clashes with an earlier file (the
			// same rule twice in one namespace); libyara's compiler is
			// unusable after an error.
			return fmt.Errorf("%w: %s in namespace %s: %v (give each source a distinct name)", errClash, file, ns, err)
		}
		if usesExternals(src) {
			s.extern = true
		}
		plan.add(file, src)
		loaded++
		return nil
	}
	if err := comp.AddString(eicarYara, "builtin"); err != nil {
		return nil, fmt.Errorf("av: built-in EICAR rule: %w", err)
	}
	names := make([]string, 0, len(opts.YaraSources))
	for n := range opts.YaraSources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := add(n, n, opts.YaraSources[n]); err != nil {
			return nil, err
		}
	}
	for _, dir := range opts.YaraDirs {
		base := filepath.Base(filepath.Clean(dir))
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
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				rel = path
			}
			return add(base+"/"+filepath.ToSlash(rel), path, b)
		})
		if errors.Is(err, errClash) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("av: read YARA rules in %s: %w (check signatures.yara_dirs)", dir, err)
		}
	}
	for _, path := range opts.HashFiles {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("av: hash list: %w (check signatures.hash_files)", err)
		}
		s.LoadErrors = append(s.LoadErrors, s.hashes.read(f, path)...)
		f.Close()
	}
	s.HashCount = s.hashes.len()
	if loaded == 0 && s.HashCount == 0 {
		return nil, ErrNoRules
	}
	s.hashes.addBuiltin()
	s.rules, err = comp.GetRules()
	if err != nil {
		return nil, fmt.Errorf("av: link YARA rules: %w", err)
	}
	all := s.rules.GetRules()
	s.RuleCount = len(all)
	s.LoadErrors = append(s.LoadErrors, disable(all, opts.DisableRules)...)
	var off string
	if s.gate, off = plan.build(); s.gate != nil {
		s.Gate = fmt.Sprintf("on: %d literals of %d rules", s.gate.db.Len(), s.gate.rules)
	} else {
		s.Gate = "off: " + off
	}
	s.idle = make(chan *pooled, workers)
	for range workers {
		s.idle <- nil
	}
	return s, nil
}

func newCompiler() (*yara.Compiler, error) {
	c, err := yara.NewCompiler()
	if err != nil {
		return nil, fmt.Errorf("av: libyara compiler: %w", err)
	}
	for _, v := range externals {
		if err := c.DefineVariable(v, ""); err != nil {
			c.Destroy()
			return nil, fmt.Errorf("av: define external %s: %w", v, err)
		}
	}
	return c, nil
}

// check compiles src alone: libyara's compiler is unusable after an error,
// so a bad file must be found before it reaches the shared compiler. It
// returns the first error's line.
func check(src string) (int, error) {
	c, err := newCompiler()
	if err != nil {
		return 0, err
	}
	defer c.Destroy()
	if err := c.AddString(src, "check"); err != nil {
		var msgs []string
		line := 0
		for i, e := range c.Errors {
			if i == 0 {
				line = e.Line
				msgs = append(msgs, e.Text)
				continue
			}
			msgs = append(msgs, fmt.Sprintf("line %d: %s", e.Line, e.Text))
		}
		if len(msgs) > 0 {
			return line, errors.New(strings.Join(msgs, "; "))
		}
		return 0, err
	}
	return 0, nil
}

// usesExternals reports whether a rule source mentions an external
// variable as a word; a false positive only costs setting them per scan.
func usesExternals(src []byte) bool {
	for _, v := range externals {
		for i := 0; ; {
			j := strings.Index(string(src[i:]), v)
			if j < 0 {
				break
			}
			j += i
			end := j + len(v)
			if (j == 0 || !isIdent(src[j-1])) && (end == len(src) || !isIdent(src[end])) {
				return true
			}
			i = end
		}
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// disable turns off the listed rules.
func disable(all []yara.Rule, names []string) []LoadError {
	var errs []LoadError
	for _, n := range names {
		ns, id, full := strings.Cut(n, ":")
		if !full {
			id = ns
		}
		found := false
		for i := range all {
			if all[i].Identifier() == id && (!full || all[i].Namespace() == ns) {
				all[i].Disable()
				found = true
			}
		}
		if !found {
			errs = append(errs, LoadError{File: "disable_rules", Reason: fmt.Sprintf("%q names no loaded YARA rule (want namespace:rule or rule)", n)})
		}
	}
	return errs
}

// Rules lists the loaded YARA rules as "namespace:rule".
func (s *Scanner) Rules() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.rules == nil {
		return nil
	}
	var out []string
	for _, r := range s.rules.GetRules() {
		out = append(out, r.Namespace()+":"+r.Identifier())
	}
	return out
}

// Unscannable is the configured policy for files that could not be
// scanned (Options.Unscannable).
func (s *Scanner) Unscannable() Policy { return s.policy }

// Stats returns the counters since New.
func (s *Scanner) Stats() Stats {
	return Stats{
		Scans: s.stats.scans.Load(), Bytes: s.stats.bytes.Load(), Malicious: s.stats.malicious.Load(),
		Partial: s.stats.partial.Load(), Unscanned: s.stats.unscanned.Load(), Timeouts: s.stats.timeouts.Load(),
		Gated: s.stats.gated.Load(),
	}
}
