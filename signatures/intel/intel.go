// Package intel holds threat-intelligence indicators of command-and-control
// infrastructure and answers, on the packet path, whether a domain or an
// address is listed.
//
// Lookups do not allocate: LookupDomain lowercases into a stack buffer and
// walks the name's parent domains (a listed domain lists every subdomain),
// costing one map probe per label; LookupIP is one map probe for the address
// plus one per distinct listed prefix length of its family (networks are
// kept in one map per prefix length, longest first, so the most specific
// listed network answers). A Set is read-only after it is built and safe
// for concurrent lookups; building (Parse, Add, Merge) is not concurrent.
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
	"path/filepath"
	"slices"
	"sort"
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
	nets4   []netsOfLen // sorted by bits, longest first
	nets6   []netsOfLen
	nnets   int
}

// netsOfLen holds the listed networks of one family and prefix length.
type netsOfLen struct {
	bits int
	m    map[netip.Prefix]*Indicator
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
	return len(s.domains) + len(s.ips) + s.nnets
}

// addNet lists p (masked) unless it is listed already.
func (s *Set) addNet(p netip.Prefix, ind *Indicator) bool {
	tab := &s.nets4
	if p.Addr().Is6() {
		tab = &s.nets6
	}
	i := sort.Search(len(*tab), func(i int) bool { return (*tab)[i].bits <= p.Bits() })
	if i == len(*tab) || (*tab)[i].bits != p.Bits() {
		*tab = slices.Insert(*tab, i, netsOfLen{bits: p.Bits(), m: make(map[netip.Prefix]*Indicator)})
	}
	if _, dup := (*tab)[i].m[p]; dup {
		return false
	}
	(*tab)[i].m[p] = ind
	s.nnets++
	return true
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
	host := v
	if ap, err := netip.ParseAddrPort(v); err == nil {
		host = ap.Addr().String() // the port is kept by the C&C issue; any port matches today
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		if _, dup := s.ips[ip]; !dup {
			s.ips[ip] = &Indicator{Value: ip.String(), Kind: "ip", Source: source, Family: family}
			st.IPs++
		}
		return
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if !p.IsValid() || p.Bits() == 0 {
			st.Bad++ // 0.0.0.0/0 would list the whole internet
			return
		}
		if s.addNet(p, &Indicator{Value: p.String(), Kind: "cidr", Source: source, Family: family}) {
			st.CIDRs++
		}
		return
	}
	if strings.Contains(v, "/") {
		st.Skipped++ // URLs and domain/path trails: matched by the C&C issue
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

// unmapBits is what a prefix length loses when an IPv4-mapped IPv6 prefix
// becomes IPv4.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// validDomain accepts lowercase names of two or more labels, each 1..63
// letters, digits, '-' or '_'.
func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
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
	ip = ip.Unmap().WithZone("")
	if ind, ok := s.ips[ip]; ok {
		return ind, true
	}
	tab := s.nets4
	if ip.Is6() {
		tab = s.nets6
	}
	for i := range tab {
		p, err := ip.Prefix(tab[i].bits)
		if err != nil {
			continue
		}
		if ind, ok := tab[i].m[p]; ok {
			return ind, true
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
		for _, tab := range [][]netsOfLen{s.nets4, s.nets6} {
			for _, n := range tab {
				for p, ind := range n.m {
					out.addNet(p, ind)
				}
			}
		}
	}
	return out
}

// ParseFile reads a plain list, or maltrail trails (a *.tar.gz or a
// directory, see ParseMaltrail). The error is for a file that cannot be
// read; bad lines are counted in Stats.
func ParseFile(p string) (*Set, Stats, error) {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
		return ParseMaltrail(p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %w", err)
	}
	defer f.Close()
	s, st := Parse(f, path.Base(p))
	return s, st, nil
}

// ParseMaltrail reads maltrail's static trails (MIT licence,
// https://github.com/stamparm/maltrail) from a tarball of the repository
// or a checkout directory: every trails/static/<category>/<family>.txt
// holds one indicator per line with '#' comments; the file name is the
// family and "maltrail/<category>" the source. URLs and domain/path trails
// are counted as Skipped (the C&C issue matches them).
func ParseMaltrail(p string) (*Set, Stats, error) {
	s := NewSet()
	var total Stats
	add := func(name string, r io.Reader) {
		family := strings.TrimSuffix(path.Base(name), ".txt")
		st := s.read(r, "maltrail/"+path.Base(path.Dir(name)), family)
		total.Domains += st.Domains
		total.IPs += st.IPs
		total.CIDRs += st.CIDRs
		total.Skipped += st.Skipped
		total.Bad += st.Bad
	}
	isTrail := func(name string) bool {
		return strings.HasSuffix(name, ".txt") && strings.Contains(name, "/static/")
	}
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
			add(filepath.ToSlash(fp), f)
			return nil
		})
		if err != nil {
			return nil, total, fmt.Errorf("intel: maltrail trails in %s: %w", p, err)
		}
		return s, total, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("intel: %s is not a gzip tarball: %w", p, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, total, fmt.Errorf("intel: %s: %w (the tarball is damaged; download it again)", p, err)
		}
		if h.Typeflag == tar.TypeReg && isTrail(h.Name) {
			add(h.Name, tr)
		}
	}
	return s, total, nil
}
