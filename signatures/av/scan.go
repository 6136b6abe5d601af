package av

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hillu/go-yara/v4"
	"github.com/openutm/utm/signatures/literal"
)

// eicarYara is the built-in EICAR rule (namespace "builtin"): EICAR's own
// definition, the 68-byte string at the start of a file of at most 128
// bytes (trailing whitespace allowed), so documents quoting the string
// are not flagged.
const eicarYara = `rule EICAR_Test_File {
	meta:
		threat = "EICAR-Test-File"
		description = "EICAR anti-malware test file (built in)"
	strings:
		$eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
	condition:
		$eicar at 0 and filesize <= 128
}`

// pooled is one libyara scanner and the callback that records its first
// match; the callback aborts the scan there (one rule is a verdict).
type pooled struct {
	sc  *yara.Scanner
	hit *yara.Rule
	lit *literal.Scanner // the gate's
}

func (p *pooled) RuleMatching(_ *yara.ScanContext, r *yara.Rule) (bool, error) {
	p.hit = r
	return true, nil
}

// Scan scans data as a top-level file without a name: ScanWith(data,
// ScanMeta{}).
func (s *Scanner) Scan(data []byte) (Result, error) { return s.ScanWith(data, ScanMeta{}) }

// ScanWith scans data, described by m. It is safe for concurrent use and
// waits while Options.Workers scans run. A non-nil error means the data
// was not scanned in full (Result.Verdict is VerdictUnscanned): ErrTimeout,
// ErrTooDeep, ErrClosed or a libyara error, each wrapped; a hash hit is
// reported as malicious even when YARA would time out or the file is too
// deep, because hashes are checked first.
func (s *Scanner) ScanWith(data []byte, m ScanMeta) (Result, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Result{Verdict: VerdictUnscanned}, ErrClosed
	}
	s.stats.scans.Add(1)
	if r, ok := s.hashes.scan(data, m.Sums); ok {
		s.stats.malicious.Add(1)
		return r, nil
	}
	if m.Depth > s.maxDep {
		s.stats.unscanned.Add(1)
		return Result{Verdict: VerdictUnscanned}, fmt.Errorf("%w: %q is %d containers deep, the limit is %d (raise the AV max depth to scan it)", ErrTooDeep, m.Name, m.Depth, s.maxDep)
	}
	buf, partial := data, false
	if len(buf) > s.maxSize {
		buf, partial = buf[:s.maxSize], true
	}
	p := <-s.idle
	if p == nil {
		sc, err := yara.NewScanner(s.rules)
		if err != nil {
			s.idle <- nil
			s.stats.unscanned.Add(1)
			return Result{Verdict: VerdictUnscanned}, fmt.Errorf("av: new libyara scanner: %w", err)
		}
		p = &pooled{sc: sc, lit: literal.NewScanner()}
		sc.SetTimeout(s.timeout).SetFlags(yara.ScanFlagsFastMode).SetCallback(p)
	}
	if s.gate != nil {
		ids, err := p.lit.Scan(s.gate.db, buf)
		if err == nil && len(ids) == 0 {
			s.idle <- p
			s.stats.bytes.Add(uint64(len(buf)))
			s.stats.gated.Add(1)
			r := Result{Verdict: VerdictClean, Scanned: len(buf)}
			if partial {
				s.stats.partial.Add(1)
				r.Verdict = VerdictPartial
			}
			return r, nil
		}
		// A hit, or a Hyperscan error: libyara decides.
	}
	p.hit = nil
	if s.extern {
		s.setExternals(p.sc, buf, m)
	}
	err := p.sc.ScanMem(buf)
	var r Result
	if p.hit != nil {
		r = result(p.hit)
		err = nil // a match found before a timeout is a verdict
	}
	p.hit = nil
	s.idle <- p
	s.stats.bytes.Add(uint64(len(buf)))
	switch {
	case err != nil:
		s.stats.unscanned.Add(1)
		var ye yara.Error
		if errors.As(err, &ye) && ye.Error() == "scan timeout" {
			s.stats.timeouts.Add(1)
			return Result{Verdict: VerdictUnscanned, Scanned: len(buf)}, fmt.Errorf("%w after %v (%d bytes); raise the AV timeout or shrink the YARA set", ErrTimeout, s.timeout, len(buf))
		}
		return Result{Verdict: VerdictUnscanned}, fmt.Errorf("av: libyara scan: %w", err)
	case r.Malicious:
		s.stats.malicious.Add(1)
	case partial:
		s.stats.partial.Add(1)
		r.Verdict = VerdictPartial
	default:
		r.Verdict = VerdictClean
	}
	r.Scanned = len(buf)
	return r, nil
}

// result describes the matching rule (allocates: detections only).
func result(rule *yara.Rule) Result {
	r := Result{Malicious: true, Engine: "yara", Verdict: VerdictMalicious, Threat: rule.Identifier()}
	r.Rule = rule.Namespace() + ":" + r.Threat
	for _, m := range rule.Metas() {
		var v string
		switch x := m.Value.(type) {
		case string:
			v = x
		case int:
			v = strconv.Itoa(x)
		case bool:
			v = strconv.FormatBool(x)
		}
		r.Meta = append(r.Meta, Meta{Key: m.Identifier, Value: v})
		if m.Identifier == "threat" && v != "" {
			r.Threat = v
		}
	}
	return r
}

// setExternals gives the rules filename, filepath, extension and filetype.
func (s *Scanner) setExternals(sc *yara.Scanner, data []byte, m ScanMeta) {
	name := strings.ReplaceAll(m.Name, `\`, "/")
	base := path.Base(name)
	if name == "" {
		base = ""
	}
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(base), "."))
	typ := m.Type
	if typ == "" {
		typ = FileType(data)
	}
	// Errors are impossible here: the variables were defined at compile
	// time with string values.
	_ = sc.DefineVariable("filename", base)
	_ = sc.DefineVariable("filepath", m.Name)
	_ = sc.DefineVariable("extension", ext)
	_ = sc.DefineVariable("filetype", typ)
}

// FileType names data's type from its magic bytes: pe, elf, macho, zip,
// gzip, pdf, ole, rar, 7z, text (printable first 512 bytes) or data.
func FileType(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("MZ")):
		return "pe"
	case bytes.HasPrefix(data, []byte("\x7fELF")):
		return "elf"
	case bytes.HasPrefix(data, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(data, []byte{0xfe, 0xed, 0xfa, 0xcf}),
		bytes.HasPrefix(data, []byte{0xce, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(data, []byte{0xcf, 0xfa, 0xed, 0xfe}),
		bytes.HasPrefix(data, []byte{0xca, 0xfe, 0xba, 0xbe}):
		return "macho"
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return "zip"
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(data, []byte("%PDF")):
		return "pdf"
	case bytes.HasPrefix(data, []byte{0xd0, 0xcf, 0x11, 0xe0}):
		return "ole"
	case bytes.HasPrefix(data, []byte("Rar!")):
		return "rar"
	case bytes.HasPrefix(data, []byte("7z\xbc\xaf\x27\x1c")):
		return "7z"
	}
	head := data[:min(len(data), 512)]
	if len(head) == 0 {
		return "data"
	}
	for _, c := range head {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
			return "data"
		}
	}
	return "text"
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
	for n := cap(s.idle); n > 0; n-- {
		if p := <-s.idle; p != nil {
			p.sc.Destroy()
		}
	}
	if s.rules != nil {
		s.rules.Destroy()
		s.rules = nil
	}
}
