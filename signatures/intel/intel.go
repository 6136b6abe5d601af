// Package intel holds threat-intelligence indicators of command-and-control
// infrastructure and answers, on the packet path, whether a domain or an
// address is listed.
//
// Lookups do not allocate: LookupDomain lowercases into a stack buffer and
// walks the name's parent domains (a listed domain lists every subdomain),
// costing one map probe per label; LookupIP is one map probe plus a scan of
// the (few) listed networks. A Set is read-only after it is built and safe
// for concurrent lookups.
//
// Feeds are parsed leniently: a line that is not an indicator is counted in
// Stats, never fatal.
package intel

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"strings"
)

// Indicator is one listed domain or address.
type Indicator struct {
	Value  string // as listed, normalised
	Kind   string // "domain", "ip", "cidr"
	Source string // the feed
	Family string // the malware family or campaign, when the feed says
}

// Stats counts what Parse read.
type Stats struct {
	Domains, IPs, CIDRs int
	Skipped             int // URLs and other kinds this version does not match yet
	Bad                 int // lines that are not indicators
}

// Set is a collection of indicators.
type Set struct {
	domains map[string]*Indicator
	ips     map[netip.Addr]*Indicator
	cidrs   []cidr
}

type cidr struct {
	p   netip.Prefix
	ind *Indicator
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{domains: make(map[string]*Indicator), ips: make(map[netip.Addr]*Indicator)}
}

// Len returns the number of indicators.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.domains) + len(s.ips) + len(s.cidrs)
}

// Parse reads a plain list: one indicator per line, optionally followed by
// whitespace and a family name; '#' starts a comment.
func Parse(r io.Reader, source string) (*Set, Stats) {
	s := NewSet()
	st := s.read(r, source, "")
	return s, st
}

// Add adds one indicator given as text, reporting whether it was one.
func (s *Set) Add(value, source, family string) bool {
	var st Stats
	s.addLine(value, source, family, &st)
	return st.Bad == 0 && st.Skipped == 0
}

func (s *Set) read(r io.Reader, source, family string) Stats {
	var st Stats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fam := family
		if len(f) > 1 {
			fam = strings.Join(f[1:], " ")
		}
		s.addLine(f[0], source, fam, &st)
	}
	if sc.Err() != nil {
		st.Bad++
	}
	return st
}

func (s *Set) addLine(v, source, family string, st *Stats) {
	v = strings.ToLower(strings.TrimSpace(v))
	if strings.Contains(v, "://") || strings.Contains(v, "/") && !isCIDR(v) {
		st.Skipped++ // URLs: matched by the C&C issue
		return
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		s.cidrs = append(s.cidrs, cidr{p.Masked(), &Indicator{Value: p.Masked().String(), Kind: "cidr", Source: source, Family: family}})
		st.CIDRs++
		return
	}
	host := v
	if ap, err := netip.ParseAddrPort(v); err == nil {
		host = ap.Addr().String() // the port is kept by the C&C issue; any port matches today
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if _, dup := s.ips[ip]; !dup {
			s.ips[ip] = &Indicator{Value: ip.String(), Kind: "ip", Source: source, Family: family}
			st.IPs++
		}
		return
	}
	d := strings.TrimSuffix(v, ".")
	if !validDomain(d) {
		st.Bad++
		return
	}
	if _, dup := s.domains[d]; !dup {
		s.domains[d] = &Indicator{Value: d, Kind: "domain", Source: source, Family: family}
		st.Domains++
	}
}

func isCIDR(v string) bool {
	_, err := netip.ParsePrefix(v)
	return err == nil
}

func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// LookupDomain reports whether name or one of its parent domains is listed.
func (s *Set) LookupDomain(name []byte) (*Indicator, bool) {
	if s == nil || len(s.domains) == 0 || len(name) == 0 || len(name) > 255 {
		return nil, false
	}
	var buf [256]byte
	n := copy(buf[:], name)
	b := buf[:n]
	if b[n-1] == '.' {
		b = b[:n-1]
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	for len(b) > 0 {
		if ind, ok := s.domains[string(b)]; ok {
			return ind, true
		}
		i := 0
		for i < len(b) && b[i] != '.' {
			i++
		}
		if i >= len(b) {
			break
		}
		b = b[i+1:]
	}
	return nil, false
}

// LookupIP reports whether ip is listed, alone or in a listed network.
func (s *Set) LookupIP(ip netip.Addr) (*Indicator, bool) {
	if s == nil {
		return nil, false
	}
	ip = ip.Unmap()
	if ind, ok := s.ips[ip]; ok {
		return ind, true
	}
	for i := range s.cidrs {
		if s.cidrs[i].p.Contains(ip) {
			return s.cidrs[i].ind, true
		}
	}
	return nil, false
}

// Merge returns a set with every indicator of sets; the first set listing
// an indicator names its source and family.
func Merge(sets ...*Set) *Set {
	out := NewSet()
	for _, s := range sets {
		if s == nil {
			continue
		}
		for k, v := range s.domains {
			if _, ok := out.domains[k]; !ok {
				out.domains[k] = v
			}
		}
		for k, v := range s.ips {
			if _, ok := out.ips[k]; !ok {
				out.ips[k] = v
			}
		}
		out.cidrs = append(out.cidrs, s.cidrs...)
	}
	return out
}

// ParseFile reads a plain list, or a maltrail trails tarball (*.tar.gz).
func ParseFile(p string) (*Set, Stats, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %w", err)
	}
	defer f.Close()
	if strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
		return parseMaltrail(f, path.Base(p))
	}
	s, st := Parse(f, path.Base(p))
	return s, st, nil
}

// parseMaltrail reads maltrail's static trails: one file per family under
// trails/static/{malware,malicious,suspicious}/.
func parseMaltrail(r io.Reader, source string) (*Set, Stats, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %s is not gzip: %w", source, err)
	}
	tr := tar.NewReader(gz)
	s := NewSet()
	var total Stats
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, total, fmt.Errorf("intel: %s: %w", source, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".txt") || !strings.Contains(h.Name, "/static/") {
			continue
		}
		family := strings.TrimSuffix(path.Base(h.Name), ".txt")
		st := s.read(tr, "maltrail/"+path.Base(path.Dir(h.Name)), family)
		total.Domains += st.Domains
		total.IPs += st.IPs
		total.CIDRs += st.CIDRs
		total.Skipped += st.Skipped
		total.Bad += st.Bad
	}
	return s, total, nil
}
