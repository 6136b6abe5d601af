package intel

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats counts what Parse read.
type Stats struct {
	Format                                              string    // detected format (of the first file, for summed stats)
	Domains, IPs, IPPorts, CIDRs, URLs, JA3, JA4, Certs int       // new indicators by kind
	Duplicates                                          int       // indicators listed before (in this set)
	Skipped                                             int       // indicators of kinds not matched here (file hashes, ...)
	Bad                                                 int       // lines that are not indicators
	Problems                                            []Problem // the first few bad or skipped lines
}

// Problem is a bad or skipped line.
type Problem struct {
	File   string
	Line   int
	Reason string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason) }

// maxProblems is how many bad or skipped lines Stats keeps as examples.
const maxProblems = 8

// Indicators is the number of new indicators counted.
func (st *Stats) Indicators() int {
	return st.Domains + st.IPs + st.IPPorts + st.CIDRs + st.URLs + st.JA3 + st.JA4 + st.Certs
}

// Add sums o into st (Format stays the first one's).
func (st *Stats) Add(o Stats) {
	if st.Format == "" {
		st.Format = o.Format
	}
	st.Domains += o.Domains
	st.IPs += o.IPs
	st.IPPorts += o.IPPorts
	st.CIDRs += o.CIDRs
	st.URLs += o.URLs
	st.JA3 += o.JA3
	st.JA4 += o.JA4
	st.Certs += o.Certs
	st.Duplicates += o.Duplicates
	st.Skipped += o.Skipped
	st.Bad += o.Bad
	for _, p := range o.Problems {
		if len(st.Problems) < maxProblems {
			st.Problems = append(st.Problems, p)
		}
	}
}

func (st *Stats) problem(file string, line int, skipped bool, reason string) {
	if skipped {
		st.Skipped++
	} else {
		st.Bad++
	}
	if len(st.Problems) < maxProblems {
		st.Problems = append(st.Problems, Problem{File: file, Line: line, Reason: reason})
	}
}

func (st *Stats) count(kind string, isNew bool) {
	if !isNew {
		st.Duplicates++
		return
	}
	switch kind {
	case KindDomain:
		st.Domains++
	case KindIP:
		st.IPs++
	case KindIPPort:
		st.IPPorts++
	case KindCIDR:
		st.CIDRs++
	case KindURL:
		st.URLs++
	case KindJA3:
		st.JA3++
	case KindJA4:
		st.JA4++
	case KindCertSHA1, KindCertSHA256:
		st.Certs++
	}
}

// Formats Parse detects.
const (
	FormatPlain     = "plain"     // one indicator per line, optional family; hosts-file lines too
	FormatHosts     = "hosts"     // a plain list whose first line is a hosts-file line
	FormatFeodo     = "feodo"     // abuse.ch Feodo Tracker ipblocklist.csv
	FormatSSLBL     = "sslbl"     // abuse.ch SSLBL sslblacklist.csv
	FormatJA3       = "sslbl-ja3" // abuse.ch SSLBL ja3_fingerprints.csv
	FormatURLhaus   = "urlhaus"   // abuse.ch URLhaus CSV export
	FormatThreatFox = "threatfox" // abuse.ch ThreatFox CSV export
	FormatMaltrail  = "maltrail"  // maltrail static trails (tarball or directory)
)

// csvFormats maps a header's first two column names to its format.
var csvFormats = []struct{ c0, c1, format string }{
	{"first_seen_utc", "dst_ip", FormatFeodo},
	{"listingdate", "sha1", FormatSSLBL},
	{"ja3_md5", "firstseen", FormatJA3},
	{"id", "dateadded", FormatURLhaus},
	{"first_seen_utc", "ioc_id", FormatThreatFox},
}

// Parse reads indicators from r; name is the feed's name (its source in
// the indicators, and the file name in Stats.Problems). The format is
// detected from the content (a gzip stream, a maltrail tarball, a CSV
// header, commented or not, among the lines before the first data line)
// or, for a CSV without its header, the name (ipblocklist,
// sslblacklist, ja3_fingerprints):
//
//   - plain lists: one indicator per line (any kind, detected), then
//     optionally a family name (the rest of the line) and the tokens
//     confidence=N and expires=RFC3339; '#' starts a comment. Hosts-file
//     lines ("0.0.0.0 x y", "127.0.0.1 x", "::1 x") list their names.
//     Confidence 80.
//   - Feodo ipblocklist.csv: dst_ip:dst_port, family malware; confidence
//     100 while c2_status is online, 75 otherwise.
//   - SSLBL sslblacklist.csv: certificate SHA-1, family from
//     Listingreason without " C&C"; confidence 90.
//   - SSLBL ja3_fingerprints.csv: JA3, family Listingreason; confidence 75
//     (JA3s collide with benign clients more than other kinds).
//   - URLhaus: url, family the tags (else threat); confidence 100 while
//     url_status is online, 80 otherwise.
//   - ThreatFox: ioc_value by ioc_type (domain, ip:port, url; file hashes
//     are skipped: they belong to the antivirus hash lists), family
//     malware_printable, confidence confidence_level.
//   - maltrail: see ParseMaltrail.
//
// Bad lines are counted in Stats with a reason and line number, never fatal.
func Parse(r io.Reader, name string) (*Set, Stats) {
	s := NewSet()
	st := s.Read(r, name)
	s.trim()
	return s, st
}

// Read adds the indicators of r to s, as Parse does.
func (s *Set) Read(r io.Reader, name string) Stats {
	var st Stats
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			st.problem(name, 0, false, "gzip header damaged: "+err.Error())
			return st
		}
		br = bufio.NewReaderSize(gz, 64<<10)
		if h, _ := br.Peek(262); len(h) == 262 && string(h[257:262]) == "ustar" {
			st.Format = FormatMaltrail
			if err := s.readMaltrailTar(br, &st); err != nil {
				st.problem(name, 0, false, err.Error())
			}
			return st
		}
	}
	head, _ := br.Peek(16 << 10)
	st.Format = detect(head, name)
	source := strings.TrimSuffix(path.Base(filepath.ToSlash(name)), ".gz")
	if st.Format == FormatPlain || st.Format == FormatHosts {
		s.readPlain(br, name, meta{source: source, conf: defaultConfidence}, &st)
		return st
	}
	s.readCSV(br, name, st.Format, &st)
	return st
}

// detect names the format of a text feed from its first lines.
func detect(head []byte, name string) string {
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		comment := bytes.HasPrefix(bytes.TrimSpace(line), []byte("#"))
		cols := bytes.Split(bytes.Trim(line, "# \t\r"), []byte(","))
		if len(cols) >= 2 {
			c0 := strings.ToLower(strings.Trim(string(cols[0]), "\" \t"))
			c1 := strings.ToLower(strings.Trim(string(cols[1]), "\" \t"))
			for _, f := range csvFormats {
				if c0 == f.c0 && c1 == f.c1 {
					return f.format
				}
			}
		}
		if f := bytes.Fields(line); !comment && len(f) > 0 {
			if len(f) > 1 && sinkholes[string(f[0])] {
				return FormatHosts
			}
			break
		}
	}
	base := strings.ToLower(path.Base(filepath.ToSlash(name)))
	switch {
	case strings.HasPrefix(base, "ipblocklist") && strings.HasSuffix(base, ".csv"):
		return FormatFeodo
	case strings.HasPrefix(base, "sslblacklist") && strings.HasSuffix(base, ".csv"):
		return FormatSSLBL
	case strings.HasPrefix(base, "ja3_fingerprints") && strings.HasSuffix(base, ".csv"):
		return FormatJA3
	}
	return FormatPlain
}

// sinkholes are the addresses hosts files point listed names at.
var sinkholes = map[string]bool{"0.0.0.0": true, "127.0.0.1": true, "::": true, "::1": true, "0:0:0:0:0:0:0:0": true}

// hostsNames are names hosts files carry that are not indicators.
var hostsNames = map[string]bool{"localhost": true, "localhost.localdomain": true, "local": true, "broadcasthost": true,
	"ip6-localhost": true, "ip6-loopback": true, "0.0.0.0": true, "localhost4": true, "localhost6": true}

// readPlain reads a plain list (or hosts file) into s with the defaults m.
func (s *Set) readPlain(r io.Reader, file string, m meta, st *Stats) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	var fields [][]byte
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if i := bytes.IndexByte(b, '#'); i >= 0 {
			b = b[:i]
		}
		fields = appendFields(fields[:0], b)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 1 && sinkholes[string(fields[0])] {
			for _, n := range fields[1:] {
				if hostsNames[strings.ToLower(string(n))] {
					continue
				}
				kind, isNew, err := s.add(n, KindDomain, m)
				if err != nil {
					st.problem(file, line, false, err.Error())
					continue
				}
				st.count(kind, isNew)
			}
			continue
		}
		lm := m
		var fam []string
		for _, f := range fields[1:] {
			switch {
			case bytes.HasPrefix(f, []byte("confidence=")):
				c, err := strconv.Atoi(string(f[len("confidence="):]))
				if err != nil || c < 0 || c > 100 {
					st.problem(file, line, false, fmt.Sprintf("confidence %q is not 0..100", f))
					lm.conf = 255
				} else {
					lm.conf = uint8(c)
				}
			case bytes.HasPrefix(f, []byte("expires=")):
				t, err := time.Parse(time.RFC3339, string(f[len("expires="):]))
				if err != nil {
					st.problem(file, line, false, fmt.Sprintf("expires %q is not RFC 3339 (2026-09-01T00:00:00Z)", f))
					lm.conf = 255
				} else {
					lm.expiry = t.Unix()
				}
			default:
				fam = append(fam, string(f))
			}
		}
		if lm.conf == 255 {
			continue
		}
		if len(fam) > 0 {
			lm.family = strings.Join(fam, " ")
		}
		if reason := unsupported(fields[0]); reason != "" {
			st.problem(file, line, true, reason)
			continue
		}
		kind, isNew, err := s.add(fields[0], "", lm)
		if err != nil {
			st.problem(file, line, false, err.Error())
			continue
		}
		st.count(kind, isNew)
	}
	if err := sc.Err(); err != nil {
		st.problem(file, line+1, false, "reading stopped: "+err.Error())
	}
}

func appendFields(dst [][]byte, b []byte) [][]byte {
	for {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
			b = b[1:]
		}
		if len(b) == 0 {
			return dst
		}
		i := 0
		for i < len(b) && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		dst = append(dst, b[:i])
		b = b[i:]
	}
}

// readCSV reads one of the abuse.ch CSV formats.
func (s *Set) readCSV(r io.Reader, file, format string, st *Stats) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.LazyQuotes = true
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var want int
	var header string
	for _, f := range csvFormats {
		if f.format == format {
			header = f.c0
		}
	}
	switch format {
	case FormatFeodo:
		want = 6
	case FormatSSLBL:
		want = 3
	case FormatJA3:
		want = 4
	case FormatURLhaus:
		want = 8
	case FormatThreatFox:
		want = 10
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			st.problem(file, line, false, "not CSV: "+err.Error())
			if !errors.As(err, &pe) {
				return // a read error, not a bad line
			}
			continue
		}
		if len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), header) {
			continue // the header, uncommented
		}
		if len(rec) < want {
			st.problem(file, line, false, fmt.Sprintf("%d fields, want %d (%s)", len(rec), want, format))
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		var value, kind string
		m := meta{conf: defaultConfidence}
		switch format {
		case FormatFeodo:
			m.source, m.family = "feodotracker", rec[5]
			value, kind = rec[1]+":"+rec[2], KindIPPort
			if strings.Contains(rec[1], ":") {
				value = "[" + rec[1] + "]:" + rec[2]
			}
			m.conf = 75
			if strings.EqualFold(rec[3], "online") {
				m.conf = 100
			}
		case FormatSSLBL:
			m.source, m.family, m.conf = "sslbl", strings.TrimSuffix(rec[2], " C&C"), 90
			value, kind = rec[1], KindCertSHA1
		case FormatJA3:
			m.source, m.family, m.conf = "sslbl-ja3", rec[3], 75
			value, kind = rec[0], KindJA3
		case FormatURLhaus:
			m.source, m.family = "urlhaus", rec[6]
			if m.family == "" {
				m.family = rec[5]
			}
			m.conf = 80
			if strings.EqualFold(rec[3], "online") {
				m.conf = 100
			}
			value, kind = rec[2], KindURL
		case FormatThreatFox:
			m.source, m.family = "threatfox", rec[7]
			if c, err := strconv.Atoi(rec[9]); err == nil && c >= 0 && c <= 100 {
				m.conf = uint8(c)
			}
			value = rec[2]
			switch strings.ToLower(rec[3]) {
			case "domain":
				kind = KindDomain
			case "ip:port":
				kind = KindIPPort
			case "url":
				kind = KindURL
			default:
				st.problem(file, line, true, fmt.Sprintf("ioc_type %q is not matched by threat intel (file hashes go to the antivirus hash lists)", rec[3]))
				continue
			}
		}
		k, isNew, err := s.add([]byte(value), kind, m)
		if err != nil {
			st.problem(file, line, false, err.Error())
			continue
		}
		st.count(k, isNew)
	}
}

// ParseFile reads a feed file in any format Parse detects, a maltrail
// tarball (*.tar.gz, *.tgz) or a maltrail checkout directory. The error is
// for a file that cannot be read; bad lines are counted in Stats.
func ParseFile(p string) (*Set, Stats, error) {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
		return ParseMaltrail(p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %w", err)
	}
	defer f.Close()
	s, st := Parse(f, p)
	return s, st, nil
}

// Maltrail confidence by trail folder.
var maltrailConfidence = map[string]uint8{"malware": 90, "malicious": 80, "suspicious": 50}

// ParseMaltrail reads maltrail's static trails (MIT licence,
// https://github.com/stamparm/maltrail) from a tarball of the repository
// or a checkout directory: every trails/static/<category>/<family>.txt
// holds one indicator per line with '#' comments; the file name is the
// family, "maltrail/<category>" the source, and the category the
// confidence (malware 90, malicious 80, suspicious 50; the lists directly
// in static/, mass scanners, 30). URL trails (host/path, /path,
// http://...) are URLs; "http://host" alone is the host.
func ParseMaltrail(p string) (*Set, Stats, error) {
	s := NewSet()
	st := Stats{Format: FormatMaltrail}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: maltrail trails: %w", err)
	}
	if fi.IsDir() {
		err := filepath.WalkDir(p, func(fp string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isTrail(filepath.ToSlash(fp)) {
				return err
			}
			f, err := os.Open(fp)
			if err != nil {
				return err
			}
			defer f.Close()
			s.readTrail(filepath.ToSlash(fp), f, &st)
			return nil
		})
		if err != nil {
			return nil, st, fmt.Errorf("intel: maltrail trails in %s: %w", p, err)
		}
		s.trim()
		return s, st, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %s is not a gzip tarball: %w", p, err)
	}
	if err := s.readMaltrailTar(gz, &st); err != nil {
		return nil, st, fmt.Errorf("intel: %s: %w (the tarball is damaged; download it again)", p, err)
	}
	s.trim()
	return s, st, nil
}

func isTrail(name string) bool {
	return strings.HasSuffix(name, ".txt") && strings.Contains(name, "/static/")
}

func (s *Set) readMaltrailTar(r io.Reader, st *Stats) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg && isTrail(h.Name) {
			s.readTrail(h.Name, tr, st)
		}
	}
}

func (s *Set) readTrail(name string, r io.Reader, st *Stats) {
	family := strings.TrimSuffix(path.Base(name), ".txt")
	category := path.Base(path.Dir(name))
	conf, ok := maltrailConfidence[category]
	if !ok {
		category, conf = family, 30
	}
	s.readPlain(r, name, meta{source: "maltrail/" + category, family: family, conf: conf}, st)
}

// trim releases spare capacity after a load.
func (s *Set) trim() {
	for i := range s.t {
		s.t[i].trim()
	}
}

// unsupported says why a plain-list value is a kind this package does not
// match (maltrail's regular-expression trails, non-HTTP URLs), or "".
func unsupported(v []byte) string {
	if i := bytes.Index(v, []byte("://")); i > 0 && hasScheme(v) == 0 {
		return fmt.Sprintf("%.60q: only http and https URLs are matched", v)
	}
	if i, j := bytes.IndexByte(v, '['), bytes.IndexByte(v, ']'); i >= 0 && j > i {
		if _, err := netip.ParseAddr(string(v[i+1 : j])); err == nil {
			return "" // [IPv6]
		}
	}
	if bytes.ContainsAny(v, `\()[]{}^$|`) {
		return fmt.Sprintf("%.60q: regular-expression trails are not matched", v)
	}
	return ""
}
