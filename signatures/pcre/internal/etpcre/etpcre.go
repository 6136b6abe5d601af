// Package etpcre extracts the pcre options of Suricata rule files (ET Open) for the tests and benchmarks of
// signatures/pcre: every `pcre:"/pattern/flags";`, enabled or commented out, with its sid and the rule's content
// strings (used to build inputs that reach past the prefilter). It is a test-data reader, not a rule parser.
package etpcre

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultDir is the ET Open 2019 snapshot shipped with the development machine.
const DefaultDir = "/work/shared/data/et-open-2019"

// PCRE is one pcre option of one rule.
type PCRE struct {
	File     string
	Sid      int
	Negated  bool
	Pattern  string   // between the first and the last '/', escapes kept as PCRE sees them
	Flags    string   // letters after the last '/'
	Contents []string // the rule's content strings, |hex| decoded
}

// Load reads every *.rules file in dir. Values that are not /pattern/flags (broken, commented-out rules in
// ET Open whose quoting is wrong) are counted in bad and skipped.
func Load(dir string) (out []PCRE, bad int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.rules"))
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("etpcre: no *.rules in %s", dir)
	}
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			line = strings.TrimLeft(line, "# ")
			if !strings.Contains(line, "pcre:") {
				continue
			}
			p, b := parseRule(line)
			for i := range p {
				p[i].File = filepath.Base(f)
			}
			out = append(out, p...)
			bad += b
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, 0, fmt.Errorf("etpcre: %s: %w", f, err)
		}
	}
	return out, bad, nil
}

// options splits the body of a rule "(k:v; k2:"v;\"x"; ...)" into key/value pairs; quoted values keep their
// backslash escapes (Suricata passes \" and \; to PCRE, which reads them as the literal characters).
func options(line string) [][2]string {
	i := strings.IndexByte(line, '(')
	if i < 0 {
		return nil
	}
	s := line[i+1:]
	var out [][2]string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == ')' {
			return out
		}
		// key
		j := strings.IndexAny(s, ":;")
		if j < 0 {
			return out
		}
		key := strings.TrimSpace(s[:j])
		if s[j] == ';' {
			out = append(out, [2]string{key, ""})
			s = s[j+1:]
			continue
		}
		s = s[j+1:]
		// value up to an unescaped ';' outside quotes
		var v strings.Builder
		inq := false
		k := 0
		for ; k < len(s); k++ {
			c := s[k]
			if c == '\\' && k+1 < len(s) {
				v.WriteByte(c)
				v.WriteByte(s[k+1])
				k++
				continue
			}
			if c == '"' {
				inq = !inq
			}
			if c == ';' && !inq {
				break
			}
			v.WriteByte(c)
		}
		out = append(out, [2]string{key, strings.TrimSpace(v.String())})
		if k >= len(s) {
			return out
		}
		s = s[k+1:]
	}
}

func parseRule(line string) (out []PCRE, bad int) {
	opts := options(line)
	sid := 0
	var contents []string
	for _, kv := range opts {
		switch kv[0] {
		case "sid":
			sid, _ = strconv.Atoi(kv[1])
		case "content":
			if c, ok := decodeContent(kv[1]); ok {
				contents = append(contents, c)
			}
		}
	}
	for _, kv := range opts {
		if kv[0] != "pcre" {
			continue
		}
		v := kv[1]
		neg := false
		if strings.HasPrefix(v, "!") {
			neg, v = true, strings.TrimSpace(v[1:])
		}
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			bad++
			continue
		}
		v = v[1 : len(v)-1]
		last := strings.LastIndexByte(v, '/')
		if len(v) == 0 || v[0] != '/' || last <= 0 || !letters(v[last+1:]) {
			bad++
			continue
		}
		out = append(out, PCRE{Sid: sid, Negated: neg, Pattern: v[1:last], Flags: v[last+1:], Contents: contents})
	}
	return out, bad
}

func letters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// decodeContent turns a quoted content value ("ab|0d 0a|c") into bytes.
func decodeContent(v string) (string, bool) {
	v = strings.TrimPrefix(v, "!")
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	hex := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '|':
			hex = !hex
		case hex:
			if c == ' ' {
				continue
			}
			if i+1 < len(v) {
				n, err := strconv.ParseUint(v[i:i+2], 16, 8)
				if err != nil {
					return "", false
				}
				b.WriteByte(byte(n))
				i++
			}
		case c == '\\' && i+1 < len(v):
			b.WriteByte(v[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
