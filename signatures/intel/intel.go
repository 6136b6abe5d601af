// Package intel holds threat-intelligence indicators of command-and-control
// infrastructure and answers, on the packet path, whether a domain, an
// address (with or without port), a URL, a TLS client fingerprint (JA3,
// JA4) or a certificate hash is listed.
//
// # Kinds
//
// Domains list themselves and every subdomain; "*.x" lists only the
// subdomains of x. Addresses (IPv4, IPv6; IPv4-mapped IPv6 is IPv4) may
// carry a port ("192.0.2.1:443", "[2001:db8::1]:443"); networks are CIDRs.
// URLs are normalised (see LookupURL); maltrail's path-only trails
// ("/gate.php") match that path on any host. JA3 is an MD5 (32 hex digits),
// JA4 its "t13d1516h2_8daaf6152771_b0da82dd1658" form, certificates a
// SHA-1 or SHA-256 of the DER (40 or 64 hex digits).
//
// # Expiry
//
// Each indicator has a Source, Family, Confidence (0-100) and an optional
// Expiry. Lookups take no clock: the Set keeps a coarse one, set to the
// time it was built and advanced by Expire(now), which the caller runs
// every minute or so (an atomic store, safe during lookups). An indicator
// whose Expiry is at or before that clock does not match.
//
// # Cost
//
// Lookups do not allocate (testing.AllocsPerRun proves it); a hit returns
// a shared *Indicator that is built the first time that indicator matches
// (one small allocation per indicator over the set's life, never per
// packet) and must not be modified. Every kind lives in an open-addressing
// hash table of byte keys in one arena (12 bytes of entry and 8-16 of slot
// per key beyond the key itself; source, family, confidence and expiry are
// interned), so a probe is one hash and, on a tag match, one compare:
// LookupDomain costs one probe per label of the name, LookupIP and
// LookupIPPort one or two probes plus one per distinct listed prefix
// length, LookupURL at most three probes, LookupJA3/JA4/Cert one. Names and
// URLs are normalised in stack buffers.
//
// A Set is safe for concurrent lookups (and Expire); building (Parse, Add,
// AddIndicator, Merge) is not concurrent with anything.
//
// Feeds are parsed leniently: a line that is not an indicator is counted in
// Stats with a reason and its line number, never fatal. See Parse for the
// formats.
package intel

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Indicator kinds.
const (
	KindDomain     = "domain"
	KindIP         = "ip"
	KindIPPort     = "ip-port"
	KindCIDR       = "cidr"
	KindURL        = "url"
	KindJA3        = "ja3"
	KindJA4        = "ja4"
	KindCertSHA1   = "cert-sha1"
	KindCertSHA256 = "cert-sha256"
)

// Indicator is one listed domain, address, network, URL, fingerprint or
// certificate hash.
type Indicator struct {
	Value      string    // as listed, normalised ("*.x" for subdomains only, "1.2.3.4:443", "host/path?q", hex hashes)
	Kind       string    // one of the Kind constants
	Source     string    // the feed
	Family     string    // the malware family or campaign, when the feed says
	Confidence int       // 0-100, from the feed or its default (see Parse)
	Expiry     time.Time // zero: never expires
}

// ErrBadIndicator is wrapped by AddIndicator for a value that is not an
// indicator of the given (or any) kind.
var ErrBadIndicator = errors.New("not an indicator")

// meta is the interned part of an indicator.
type meta struct {
	source, family string
	conf           uint8
	expiry         int64 // unix seconds; 0: never
}

// table ids, also the high half of cache keys.
const (
	tDomain = iota
	tURL
	tIP
	tNet
	tJA3
	tJA4
	tCert
	nTables
)

// Set is a collection of indicators.
type Set struct {
	t          [nTables]table
	portsOnly  int     // tIP entries that stand for address:port entries only
	lens4      []uint8 // distinct listed prefix lengths, longest first
	lens6      []uint8
	metas      []meta
	metaIdx    map[meta]uint32
	lastMeta   meta
	lastIdx    uint32
	now        atomic.Int64
	mu         sync.RWMutex
	cache      map[uint64]*Indicator
	defaultSrc string
}

// NewSet returns an empty set whose clock is now.
func NewSet() *Set {
	s := &Set{metaIdx: make(map[meta]uint32), cache: make(map[uint64]*Indicator), lastIdx: ^uint32(0)}
	s.now.Store(time.Now().Unix())
	return s
}

// Expire sets the set's clock: indicators whose Expiry is at or before now
// stop matching. Safe during lookups.
func (s *Set) Expire(now time.Time) { s.now.Store(now.Unix()) }

// Len returns the number of indicators.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	n := -s.portsOnly
	for i := range s.t {
		n += s.t[i].len()
	}
	return n
}

// MemBytes is the memory the set's tables hold (arenas, entries, slots).
func (s *Set) MemBytes() int {
	n := 0
	for i := range s.t {
		n += s.t[i].bytes()
	}
	return n
}

func (s *Set) intern(m meta) uint32 {
	if s.lastIdx != ^uint32(0) && m == s.lastMeta {
		return s.lastIdx
	}
	i, ok := s.metaIdx[m]
	if !ok {
		i = uint32(len(s.metas))
		s.metas = append(s.metas, m)
		s.metaIdx[m] = i
	}
	s.lastMeta, s.lastIdx = m, i
	return i
}

// Add adds one indicator given as text (kind detected as for plain lists),
// reporting whether it was one (a duplicate is one).
func (s *Set) Add(value, source, family string) bool {
	_, _, err := s.add([]byte(value), "", meta{source: source, family: family, conf: defaultConfidence})
	return err == nil
}

// AddIndicator adds ind. An empty Kind is detected from Value; Confidence
// 0 means the default (80); Value is normalised. It returns an error
// wrapping ErrBadIndicator when Value is not an indicator of that kind.
func (s *Set) AddIndicator(ind Indicator) error {
	m := meta{source: ind.Source, family: ind.Family, conf: defaultConfidence}
	if ind.Confidence > 0 {
		m.conf = uint8(min(ind.Confidence, 100))
	}
	if !ind.Expiry.IsZero() {
		m.expiry = ind.Expiry.Unix()
	}
	_, _, err := s.add([]byte(ind.Value), ind.Kind, m)
	return err
}

const defaultConfidence = 80

// add adds v (trimmed, any case) as an indicator of kind (detected when
// empty). It returns the kind added and whether it was new.
func (s *Set) add(v []byte, kind string, m meta) (string, bool, error) {
	v = trimSpace(v)
	if len(v) == 0 {
		return "", false, fmt.Errorf("empty value: %w", ErrBadIndicator)
	}
	if kind == "" {
		kind = detectKind(v)
	}
	switch kind {
	case KindDomain:
		return s.addDomain(v, m)
	case KindIP, KindIPPort, KindCIDR:
		return s.addAddr(v, kind == KindIPPort, m)
	case KindURL:
		return s.addURL(v, m)
	case KindJA3:
		var k [16]byte
		if len(v) != 32 || !decodeHex(k[:], v) {
			return "", false, fmt.Errorf("JA3 %.40q is not 32 hex digits: %w", v, ErrBadIndicator)
		}
		_, isNew := s.t[tJA3].insert(k[:], s.intern(m), 0)
		return KindJA3, isNew, nil
	case KindJA4:
		if !validJA4(v) {
			return "", false, fmt.Errorf("JA4 %.60q is not of the form t13d1516h2_8daaf6152771_b0da82dd1658: %w", v, ErrBadIndicator)
		}
		var k [64]byte
		n := copy(k[:], v)
		for i := range n {
			k[i] = lower(k[i])
		}
		_, isNew := s.t[tJA4].insert(k[:n], s.intern(m), 0)
		return KindJA4, isNew, nil
	case KindCertSHA1, KindCertSHA256:
		var k [32]byte
		n := len(v) / 2
		if len(v) != 40 && len(v) != 64 || !decodeHex(k[:n], v) {
			return "", false, fmt.Errorf("certificate hash %.70q is not 40 or 64 hex digits: %w", v, ErrBadIndicator)
		}
		_, isNew := s.t[tCert].insert(k[:n], s.intern(m), 0)
		if n == 20 {
			return KindCertSHA1, isNew, nil
		}
		return KindCertSHA256, isNew, nil
	}
	return "", false, fmt.Errorf("unknown kind %q: %w", kind, ErrBadIndicator)
}

// detectKind guesses the kind of a plain-list value.
func detectKind(v []byte) string {
	if hasScheme(v) > 0 || len(v) > 0 && v[0] == '/' {
		return KindURL
	}
	if i := indexByte(v, '/'); i >= 0 {
		if _, err := netip.ParsePrefix(string(v)); err == nil {
			return KindCIDR
		}
		return KindURL
	}
	if isHex(v) {
		switch len(v) {
		case 32:
			return KindJA3
		case 40:
			return KindCertSHA1
		case 64:
			return KindCertSHA256
		}
	}
	if indexByte(v, '_') > 0 && validJA4(v) {
		return KindJA4
	}
	if indexByte(v, ':') >= 0 || isDigitsDots(v) {
		return KindIP
	}
	return KindDomain
}

func isHex(v []byte) bool {
	for _, c := range v {
		if _, ok := unhex(c); !ok {
			return false
		}
	}
	return len(v) > 0
}

func isDigitsDots(v []byte) bool {
	for _, c := range v {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func decodeHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(src[2*i])
		lo, ok2 := unhex(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// validJA4 checks FoxIO's JA4 (TLS client) layout: a 10-character prefix
// (protocol t/q/d, version, SNI d/i, two 2-digit counts, ALPN), then two
// 12-hex-digit hashes.
func validJA4(v []byte) bool {
	if len(v) != 36 || v[10] != '_' || v[23] != '_' {
		return false
	}
	switch lower(v[0]) {
	case 't', 'q', 'd':
	default:
		return false
	}
	for _, c := range v[1:10] {
		if !('0' <= c && c <= '9' || 'a' <= lower(c) && lower(c) <= 'z') {
			return false
		}
	}
	return isHex(v[11:23]) && isHex(v[24:36])
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

func (s *Set) addDomain(v []byte, m meta) (string, bool, error) {
	var buf [256]byte
	if len(v) > 255 {
		return "", false, fmt.Errorf("domain longer than 253 characters: %w", ErrBadIndicator)
	}
	n := copy(buf[:], v)
	d := buf[:n]
	for i := range d {
		d[i] = lower(d[i])
	}
	var flags uint16
	if len(d) > 2 && d[0] == '*' && d[1] == '.' {
		d, flags = d[2:], flagSubsOnly
	}
	if len(d) > 0 && d[len(d)-1] == '.' {
		d = d[:len(d)-1]
	}
	if !validDomain(d) {
		return "", false, fmt.Errorf("%.80q is not a domain (two or more labels of letters, digits, '-', '_'): %w", v, ErrBadIndicator)
	}
	t := &s.t[tDomain]
	i, isNew := t.insert(d, s.intern(m), flags)
	if !isNew && flags == 0 && t.ents[i].flags&flagSubsOnly != 0 {
		t.ents[i].flags &^= flagSubsOnly // x listed after *.x: x itself too
		s.forget(tDomain, i)
	}
	return KindDomain, isNew, nil
}

// validDomain accepts lowercase names of two or more labels, each 1..63
// letters, digits, '-' or '_'.
func validDomain(d []byte) bool {
	if len(d) > 253 || indexByte(d, '.') < 0 {
		return false
	}
	label := 0
	for _, c := range d {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0
}

// addrKey appends a's key (4 or 16 bytes) to dst.
func addrKey(dst []byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...)
	}
	b := a.As16()
	return append(dst, b[:]...)
}

func (s *Set) addAddr(v []byte, needPort bool, m meta) (string, bool, error) {
	str := strings.ToLower(string(v))
	if ap, err := netip.ParseAddrPort(str); needPort && (err != nil || ap.Port() == 0) {
		return "", false, fmt.Errorf("%.60q is not address:port: %w", v, ErrBadIndicator)
	}
	if ap, err := netip.ParseAddrPort(str); err == nil {
		a := ap.Addr().Unmap().WithZone("")
		if ap.Port() == 0 {
			return s.addIP(a, m)
		}
		var k [18]byte
		key := binary.BigEndian.AppendUint16(addrKey(k[:0], a), ap.Port())
		mi := s.intern(m)
		_, isNew := s.t[tIP].insert(key, mi, 0)
		// The bare address stands for "some port of it is listed", for LookupIP.
		var p [2]byte
		binary.BigEndian.PutUint16(p[:], ap.Port())
		if _, bareNew := s.t[tIP].insert(key[:len(key)-2], mi, flagPortsOnly, p[:]...); bareNew {
			s.portsOnly++
		}
		return KindIPPort, isNew, nil
	}
	if a, err := netip.ParseAddr(str); err == nil {
		return s.addIP(a.Unmap().WithZone(""), m)
	}
	p, err := netip.ParsePrefix(str)
	if err != nil {
		return "", false, fmt.Errorf("%.60q is not an address, address:port or CIDR: %w", v, ErrBadIndicator)
	}
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), bits).Masked()
	if !p.IsValid() || p.Bits() == 0 {
		return "", false, fmt.Errorf("network %s lists a whole address family: %w", str, ErrBadIndicator)
	}
	if p.IsSingleIP() {
		return s.addIP(p.Addr(), m)
	}
	var k [17]byte
	key := append(addrKey(k[:0], p.Addr()), uint8(p.Bits()))
	_, isNew := s.t[tNet].insert(key, s.intern(m), 0)
	if isNew {
		lens := &s.lens4
		if p.Addr().Is6() {
			lens = &s.lens6
		}
		insertLen(lens, uint8(p.Bits()))
	}
	return KindCIDR, isNew, nil
}

func insertLen(lens *[]uint8, b uint8) {
	for i, l := range *lens {
		if l == b {
			return
		}
		if l < b {
			*lens = append((*lens)[:i], append([]uint8{b}, (*lens)[i:]...)...)
			return
		}
	}
	*lens = append(*lens, b)
}

func (s *Set) addIP(a netip.Addr, m meta) (string, bool, error) {
	var k [16]byte
	key := addrKey(k[:0], a)
	t := &s.t[tIP]
	i, isNew := t.insert(key, s.intern(m), 0)
	if !isNew && t.ents[i].flags&flagPortsOnly != 0 {
		// Listed with ports before, now as a whole address.
		t.ents[i].flags &^= flagPortsOnly
		t.ents[i].meta = s.intern(m)
		s.portsOnly--
		s.forget(tIP, i)
		return KindIP, true, nil
	}
	return KindIP, isNew, nil
}

func (s *Set) addURL(v []byte, m meta) (string, bool, error) {
	var host, target []byte
	switch {
	case hasScheme(v) > 0:
		host, target = splitAbsolute(nil, v)
		if len(target) == 0 {
			// http://host with no path at all is the host itself.
			return s.add(host, "", m)
		}
	case v[0] == '/':
		target = v
	default:
		i := 0
		for i < len(v) && v[i] != '/' && v[i] != '?' {
			i++
		}
		host, target = v[:i], v[i:]
	}
	if len(host) > 0 {
		h := appendHost(nil, host)
		if hostOK(h) != nil {
			return "", false, fmt.Errorf("URL %.80q: host %.60q is neither a domain nor an address: %w", v, host, ErrBadIndicator)
		}
	}
	key, path, _ := urlKey(make([]byte, 0, len(host)+3*len(target)+2), host, target, make([]byte, 0, 3*len(target)+1))
	if !urlFits(key[:path], key[path:]) {
		return "", false, fmt.Errorf("URL %.80q... is longer than LookupURL checks (%d bytes, escapes counting thrice): %w", v, maxKey-8, ErrBadIndicator)
	}
	_, isNew := s.t[tURL].insert(key, s.intern(m), 0)
	return KindURL, isNew, nil
}

// urlFits reports whether LookupURL's stack buffers hold the normalised
// key of host and target (normalising can triple a byte: ' ' -> %20).
func urlFits(host, target []byte) bool { return len(host)+3*len(target) <= maxKey-8 }

// hostOK accepts a lowercased host: a domain, an address, or either with a port.
func hostOK(h []byte) error {
	if validDomain(h) {
		return nil
	}
	if _, err := netip.ParseAddr(string(h)); err == nil {
		return nil
	}
	if _, err := netip.ParseAddrPort(string(h)); err == nil {
		return nil
	}
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		if _, err := netip.ParseAddr(string(h[1 : len(h)-1])); err == nil {
			return nil
		}
	}
	if c := lastByte(h, ':'); c > 0 {
		if _, err := strconv.ParseUint(string(h[c+1:]), 10, 16); err == nil && validDomain(h[:c]) {
			return nil
		}
	}
	return ErrBadIndicator
}

// forget drops a cached Indicator whose entry changed.
func (s *Set) forget(tid, i int) {
	s.mu.Lock()
	delete(s.cache, uint64(tid)<<32|uint64(i))
	s.mu.Unlock()
}

// live reports whether entry i of table tid has not expired.
func (s *Set) live(tid, i int) bool {
	m := &s.metas[s.t[tid].ents[i].meta]
	return m.expiry == 0 || m.expiry > s.now.Load()
}

// indicator returns the shared Indicator of entry i of table tid, building
// it the first time.
func (s *Set) indicator(tid, i int) *Indicator {
	ck := uint64(tid)<<32 | uint64(i)
	s.mu.RLock()
	ind := s.cache[ck]
	s.mu.RUnlock()
	if ind != nil {
		return ind
	}
	ind = s.build(tid, i)
	s.mu.Lock()
	if have := s.cache[ck]; have != nil {
		ind = have
	} else {
		s.cache[ck] = ind
	}
	s.mu.Unlock()
	return ind
}

func (s *Set) build(tid, i int) *Indicator {
	t := &s.t[tid]
	e := t.ents[i]
	m := s.metas[e.meta]
	ind := &Indicator{Source: m.source, Family: m.family, Confidence: int(m.conf)}
	if m.expiry != 0 {
		ind.Expiry = time.Unix(m.expiry, 0).UTC()
	}
	k := t.key(i)
	switch tid {
	case tDomain:
		ind.Kind, ind.Value = KindDomain, string(k)
		if e.flags&flagSubsOnly != 0 {
			ind.Value = "*." + ind.Value
		}
	case tURL:
		ind.Kind, ind.Value = KindURL, string(k)
	case tIP:
		a, port := keyAddr(k)
		if e.flags&flagPortsOnly != 0 {
			port = binary.BigEndian.Uint16(t.arena[e.off+uint32(e.n):])
		}
		ind.Kind, ind.Value = KindIP, a.String()
		if port != 0 || e.flags&flagPortsOnly != 0 {
			ind.Kind, ind.Value = KindIPPort, netip.AddrPortFrom(a, port).String()
		}
	case tNet:
		a, _ := keyAddr(k[:len(k)-1])
		ind.Kind, ind.Value = KindCIDR, netip.PrefixFrom(a, int(k[len(k)-1])).String()
	case tJA3:
		ind.Kind, ind.Value = KindJA3, hex.EncodeToString(k)
	case tJA4:
		ind.Kind, ind.Value = KindJA4, string(k)
	case tCert:
		ind.Kind, ind.Value = KindCertSHA256, hex.EncodeToString(k)
		if len(k) == 20 {
			ind.Kind = KindCertSHA1
		}
	}
	return ind
}

// keyAddr decodes an address key, with its port when the key has one.
func keyAddr(k []byte) (netip.Addr, uint16) {
	switch len(k) {
	case 4, 6:
		a := netip.AddrFrom4([4]byte(k[:4]))
		if len(k) == 6 {
			return a, binary.BigEndian.Uint16(k[4:])
		}
		return a, 0
	default:
		a := netip.AddrFrom16([16]byte(k[:16]))
		if len(k) == 18 {
			return a, binary.BigEndian.Uint16(k[16:])
		}
		return a, 0
	}
}

// LookupDomain reports whether name or one of its parent domains is
// listed (case and a trailing dot do not matter). Cost: one probe per label.
func (s *Set) LookupDomain(name []byte) (*Indicator, bool) {
	if s == nil || s.t[tDomain].len() == 0 || len(name) == 0 || len(name) > 255 {
		return nil, false
	}
	var buf [256]byte
	n := copy(buf[:], name)
	b := buf[:n]
	if b[n-1] == '.' {
		b = b[:n-1]
	}
	for i, c := range b {
		b[i] = lower(c)
	}
	t := &s.t[tDomain]
	first := true
	for len(b) > 0 {
		if i := t.find(b); i >= 0 && (!first || t.ents[i].flags&flagSubsOnly == 0) && s.live(tDomain, i) {
			return s.indicator(tDomain, i), true
		}
		first = false
		i := indexByte(b, '.')
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	return nil, false
}

// LookupIP reports whether ip is listed: as an address, as address:port
// with any port (the Indicator names one of them), or in a listed network
// (the most specific wins).
func (s *Set) LookupIP(ip netip.Addr) (*Indicator, bool) {
	if s == nil {
		return nil, false
	}
	ip = ip.Unmap()
	var k [18]byte
	key := addrKey(k[:0], ip)
	if i := s.t[tIP].find(key); i >= 0 && s.live(tIP, i) {
		return s.indicator(tIP, i), true
	}
	return s.lookupNet(ip)
}

// LookupIPPort reports whether ip:port is listed: as that address and
// port, as the address alone, or in a listed network. A flow's destination
// is checked with it.
func (s *Set) LookupIPPort(ip netip.Addr, port uint16) (*Indicator, bool) {
	if s == nil {
		return nil, false
	}
	ip = ip.Unmap()
	var k [18]byte
	key := addrKey(k[:0], ip)
	t := &s.t[tIP]
	if t.len() > 0 {
		if i := t.find(key); i >= 0 {
			if t.ents[i].flags&flagPortsOnly == 0 && s.live(tIP, i) {
				return s.indicator(tIP, i), true
			}
			// Only some ports of the address are listed.
			key = binary.BigEndian.AppendUint16(key, port)
			if i := t.find(key); i >= 0 && s.live(tIP, i) {
				return s.indicator(tIP, i), true
			}
		}
	}
	return s.lookupNet(ip)
}

func (s *Set) lookupNet(ip netip.Addr) (*Indicator, bool) {
	lens := s.lens4
	if ip.Is6() {
		lens = s.lens6
	}
	if len(lens) == 0 {
		return nil, false
	}
	var k [17]byte
	key := addrKey(k[:0], ip)
	addrLen := len(key)
	for _, bits := range lens {
		// Mask the address to bits in place (lens are descending, so the
		// mask only ever clears more).
		for j := int(bits); j < addrLen*8; j++ {
			key[j/8] &^= 0x80 >> (j % 8)
		}
		key = append(key[:addrLen], bits)
		if i := s.t[tNet].find(key); i >= 0 && s.live(tNet, i) {
			return s.indicator(tNet, i), true
		}
	}
	return nil, false
}

// LookupURL reports whether the URL of an HTTP request is listed, given
// the request's Host header and request-target (origin-form "/p?q" or
// absolute-form "http://h/p?q", which overrides host). Both are
// normalised as indicators are (host lowercased, default port 80/443 and
// trailing dot dropped, unreserved escapes decoded, dot segments removed)
// and tried as host+path+query, host+path, then path alone (path-only
// trails). A URL longer than about 4 KiB (escapes counting thrice) is
// checked without its query, then not at all. Cost: at most three probes plus one pass over the bytes.
func (s *Set) LookupURL(host, target []byte) (*Indicator, bool) {
	if s == nil || s.t[tURL].len() == 0 {
		return nil, false
	}
	host, target = splitAbsolute(host, target)
	if !urlFits(host, target) {
		// Check without the query; if that is still too long, give up.
		if q := indexByte(target, '?'); q >= 0 {
			target = target[:q]
		}
		if !urlFits(host, target) {
			return nil, false
		}
	}
	var buf, scratch [maxKey]byte
	key, path, query := urlKey(buf[:0], host, target, scratch[:])
	t := &s.t[tURL]
	if query < len(key) {
		if i := t.find(key); i >= 0 && s.live(tURL, i) {
			return s.indicator(tURL, i), true
		}
	}
	if path > 0 {
		if i := t.find(key[:query]); i >= 0 && s.live(tURL, i) {
			return s.indicator(tURL, i), true
		}
	}
	if i := t.find(key[path:query]); i >= 0 && s.live(tURL, i) {
		return s.indicator(tURL, i), true
	}
	return nil, false
}

// LookupJA3 reports whether a JA3 hash (32 hex digits, any case, or the 16
// raw bytes) is listed.
func (s *Set) LookupJA3(hash []byte) (*Indicator, bool) {
	if s == nil || s.t[tJA3].len() == 0 {
		return nil, false
	}
	var k [16]byte
	switch len(hash) {
	case 16:
		copy(k[:], hash)
	case 32:
		if !decodeHex(k[:], hash) {
			return nil, false
		}
	default:
		return nil, false
	}
	if i := s.t[tJA3].find(k[:]); i >= 0 && s.live(tJA3, i) {
		return s.indicator(tJA3, i), true
	}
	return nil, false
}

// LookupJA4 reports whether a JA4 fingerprint (any case) is listed.
func (s *Set) LookupJA4(fp []byte) (*Indicator, bool) {
	if s == nil || s.t[tJA4].len() == 0 || len(fp) != 36 {
		return nil, false
	}
	var k [36]byte
	for i, c := range fp {
		k[i] = lower(c)
	}
	if i := s.t[tJA4].find(k[:]); i >= 0 && s.live(tJA4, i) {
		return s.indicator(tJA4, i), true
	}
	return nil, false
}

// LookupCert reports whether a certificate hash is listed: SHA-1 or
// SHA-256 of the DER certificate, raw (20 or 32 bytes) or hex (40 or 64
// digits, any case).
func (s *Set) LookupCert(hash []byte) (*Indicator, bool) {
	if s == nil || s.t[tCert].len() == 0 {
		return nil, false
	}
	var k [32]byte
	var key []byte
	switch len(hash) {
	case 20, 32:
		key = hash
	case 40, 64:
		key = k[:len(hash)/2]
		if !decodeHex(key, hash) {
			return nil, false
		}
	default:
		return nil, false
	}
	if i := s.t[tCert].find(key); i >= 0 && s.live(tCert, i) {
		return s.indicator(tCert, i), true
	}
	return nil, false
}

// Merge returns a set with every indicator of sets; the first set listing
// an indicator names its source, family, confidence and expiry. The
// inputs are not changed. The largest input is copied wholesale, the
// others inserted, so merging a small list into a big feed costs a copy.
func Merge(sets ...*Set) *Set {
	out := NewSet()
	big := -1
	for i, s := range sets {
		if s != nil && (big < 0 || s.Len() > sets[big].Len()) {
			big = i
		}
	}
	if big < 0 {
		return out
	}
	b := sets[big]
	for i := range b.t {
		out.t[i] = b.t[i].clone()
	}
	out.portsOnly = b.portsOnly
	out.lens4 = append([]uint8(nil), b.lens4...)
	out.lens6 = append([]uint8(nil), b.lens6...)
	out.metas = append([]meta(nil), b.metas...)
	for i, m := range out.metas {
		out.metaIdx[m] = uint32(i)
	}
	for i, s := range sets {
		if s == nil || i == big {
			continue
		}
		out.mergeFrom(s, i < big)
	}
	return out
}

// mergeFrom inserts every entry of s; override lets s's metadata win over
// an entry already present.
func (out *Set) mergeFrom(s *Set, override bool) {
	for tid := range s.t {
		t := &s.t[tid]
		for i := range t.ents {
			e := t.ents[i]
			m := out.intern(s.metas[e.meta])
			var extra []byte
			if e.flags&flagPortsOnly != 0 {
				extra = t.arena[e.off+uint32(e.n) : e.off+uint32(e.n)+2]
			}
			ot := &out.t[tid]
			j, isNew := ot.insert(t.key(i), m, e.flags, extra...)
			if isNew {
				if e.flags&flagPortsOnly != 0 {
					out.portsOnly++
				}
				if tid == tNet {
					k := t.key(i)
					if len(k) == 5 {
						insertLen(&out.lens4, k[4])
					} else {
						insertLen(&out.lens6, k[16])
					}
				}
				continue
			}
			of := &ot.ents[j]
			// A whole listing beats a partial one (x over *.x, an address
			// over some of its ports).
			if of.flags&flagPortsOnly != 0 && e.flags&flagPortsOnly == 0 {
				out.portsOnly--
				of.meta = m
			} else if override && (e.flags&flagPortsOnly == 0 || of.flags&flagPortsOnly != 0) {
				of.meta = m
			}
			of.flags &= e.flags
		}
	}
}

// All yields a copy of every indicator, expired ones included, in no
// particular order. For tests, tools and exports; it allocates.
func (s *Set) All(yield func(Indicator) bool) {
	if s == nil {
		return
	}
	for tid := range s.t {
		t := &s.t[tid]
		for i := range t.ents {
			if tid == tIP && t.ents[i].flags&flagPortsOnly != 0 {
				continue
			}
			if !yield(*s.build(tid, i)) {
				return
			}
		}
	}
}
