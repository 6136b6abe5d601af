package intel

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const list = `# test list
cnc.utm-lab.test utm-lab-test
evil.example  # trailing comment
198.51.100.7
203.0.113.0/24 scanner-net
198.51.100.9:8443
http://bad.example/path
not a domain!
`

func TestParseAndLookup(t *testing.T) {
	s, st := Parse(strings.NewReader(list), "test")
	if st.Domains != 2 || st.IPs != 1 || st.IPPorts != 1 || st.CIDRs != 1 || st.URLs != 1 || st.Bad != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(st.Problems) != 1 || st.Problems[0].Line != 8 || !strings.Contains(st.Problems[0].Reason, "not a domain") {
		t.Fatalf("problems %v, want line 8 named", st.Problems)
	}
	if s.Len() != 6 {
		t.Fatalf("Len %d, want 6", s.Len())
	}
	for _, c := range []struct {
		name string
		want string
	}{
		{"cnc.utm-lab.test", "cnc.utm-lab.test"},
		{"CNC.UTM-Lab.Test.", "cnc.utm-lab.test"},
		{"a.b.evil.example", "evil.example"},
		{"example", ""},
		{"notevil.example", ""},
	} {
		ind, ok := s.LookupDomain([]byte(c.name))
		if ok != (c.want != "") || ok && ind.Value != c.want {
			t.Errorf("LookupDomain(%q) = %v %v, want %q", c.name, ind, ok, c.want)
		}
	}
	if ind, ok := s.LookupDomain([]byte("cnc.utm-lab.test")); !ok || ind.Family != "utm-lab-test" || ind.Source != "test" || ind.Kind != KindDomain || ind.Confidence != 80 {
		t.Fatalf("family/source lost: %+v", ind)
	}
	for _, c := range []struct {
		ip   string
		want bool
	}{{"198.51.100.7", true}, {"198.51.100.9", true}, {"203.0.113.77", true}, {"198.51.100.8", false}, {"::ffff:198.51.100.7", true}} {
		if _, ok := s.LookupIP(netip.MustParseAddr(c.ip)); ok != c.want {
			t.Errorf("LookupIP(%s) = %v, want %v", c.ip, ok, c.want)
		}
	}
	if ind, ok := s.LookupIP(netip.MustParseAddr("198.51.100.9")); !ok || ind.Kind != KindIPPort || ind.Value != "198.51.100.9:8443" {
		t.Errorf("LookupIP of an address listed with a port: %+v, want the ip-port indicator", ind)
	}
	for _, c := range []struct {
		ip   string
		port uint16
		want string
	}{
		{"198.51.100.9", 8443, "198.51.100.9:8443"},
		{"198.51.100.9", 443, ""},
		{"198.51.100.7", 1, "198.51.100.7"},
		{"203.0.113.5", 53, "203.0.113.0/24"},
		{"198.51.100.8", 8443, ""},
	} {
		ind, ok := s.LookupIPPort(netip.MustParseAddr(c.ip), c.port)
		if ok != (c.want != "") || ok && ind.Value != c.want {
			t.Errorf("LookupIPPort(%s, %d) = %+v %v, want %q", c.ip, c.port, ind, ok, c.want)
		}
	}
}

func TestNetworks(t *testing.T) {
	s, st := Parse(strings.NewReader(`10.0.0.0/8 wide
10.1.0.0/16 narrow
10.1.2.3/8 unmasked-dup
2001:db8::/32 v6net
2001:db8:1::1 v6host
::ffff:192.0.2.0/120 mapped
0.0.0.0/0 everything
fe80::1%eth0 zoned
192.0.2.200/32 single
`), "nets")
	if st.CIDRs != 4 || st.IPs != 3 || st.Bad != 1 || st.Duplicates != 1 {
		t.Fatalf("stats %+v, want 4 networks (the unmasked /8 is a duplicate), 3 IPs (a /32 is one), /0 bad", st)
	}
	for _, c := range []struct{ ip, family string }{
		{"10.1.9.9", "narrow"}, // most specific wins
		{"10.9.9.9", "wide"},
		{"11.0.0.1", ""},
		{"2001:db8:ffff::1", "v6net"},
		{"2001:db8:1::1", "v6host"},
		{"2001:db9::1", ""},
		{"192.0.2.77", "mapped"},
		{"::ffff:192.0.2.77", "mapped"},
		{"fe80::1", "zoned"},
		{"fe80::1%lan0", "zoned"},
		{"192.0.2.200", "single"},
	} {
		ind, ok := s.LookupIP(netip.MustParseAddr(c.ip))
		if ok != (c.family != "") || ok && ind.Family != c.family {
			t.Errorf("LookupIP(%s) = %+v %v, want family %q", c.ip, ind, ok, c.family)
		}
	}
	if ind, _ := s.LookupIP(netip.MustParseAddr("10.1.9.9")); ind.Value != "10.1.0.0/16" || ind.Kind != KindCIDR {
		t.Errorf("network indicator %+v, want 10.1.0.0/16 cidr", ind)
	}
}

func TestWildcardAndExpiry(t *testing.T) {
	s, st := Parse(strings.NewReader(`*.wild.example w
both.example b
*.both.example b2
soon.example s expires=2030-01-01T00:00:00Z
soon2.example s confidence=55 expires=2031-01-01T00:00:00Z
`), "x")
	if st.Domains != 4 || st.Duplicates != 1 || st.Bad != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := s.LookupDomain([]byte("wild.example")); ok {
		t.Error("*.wild.example must not list wild.example itself")
	}
	if ind, ok := s.LookupDomain([]byte("a.b.wild.example")); !ok || ind.Value != "*.wild.example" {
		t.Errorf("subdomain of *.wild.example: %+v %v", ind, ok)
	}
	if _, ok := s.LookupDomain([]byte("both.example")); !ok {
		t.Error("both.example listed plainly must match itself")
	}
	s.Expire(time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC))
	ind, ok := s.LookupDomain([]byte("soon.example"))
	if !ok || !ind.Expiry.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("before expiry: %+v %v", ind, ok)
	}
	if ind, _ := s.LookupDomain([]byte("soon2.example")); ind.Confidence != 55 {
		t.Errorf("confidence %d, want 55", ind.Confidence)
	}
	s.Expire(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, ok := s.LookupDomain([]byte("x.soon.example")); ok {
		t.Error("an expired indicator matched")
	}
	if _, ok := s.LookupDomain([]byte("soon2.example")); !ok {
		t.Error("an unexpired indicator stopped matching")
	}
	// Expired at load: the clock starts at the build time.
	s2, _ := Parse(strings.NewReader("old.example o expires=2001-01-01T00:00:00Z\n"), "x")
	if _, ok := s2.LookupDomain([]byte("old.example")); ok {
		t.Error("an indicator expired before the load matched")
	}
}

func TestURLs(t *testing.T) {
	s, st := Parse(strings.NewReader(`http://Gate.Example:80/a/./b/../panel.php p1
https://gate.example/q.php?id=1&X=%7e p2
gate.example/dir/ p3
/only/path.php p4
http://198.51.100.77 hostonly
HTTP://[2001:db8::1]:8080/v6 p6
http://bad host/x
`), "u")
	if st.URLs != 5 || st.IPs != 1 || st.Bad != 1 {
		t.Fatalf("stats %+v %v", st, st.Problems)
	}
	for _, c := range []struct{ host, target, want string }{
		{"gate.example", "/a/panel.php", "p1"},
		{"GATE.example.:80", "/a/%62/../panel.php", "p1"},
		{"gate.example:443", "/a/c/../panel.php?x=1", "p1"}, // query ignored for a path indicator
		{"gate.example:8080", "/a/panel.php", ""},           // another port is another site
		{"", "http://gate.example/a/panel.php", "p1"},       // absolute-form
		{"other.example", "/a/panel.php", ""},
		{"gate.example", "/q.php?id=1&X=~", "p2"},
		{"gate.example", "/q.php?id=1&X=%7E", "p2"},
		{"gate.example", "/q.php?id=2", ""},
		{"gate.example", "/q.php", ""},
		{"gate.example", "/dir/", "p3"},
		{"gate.example", "/dir", ""},
		{"any.example", "/only/path.php?z", "p4"},
		{"any.example", "/only/%70ath.php", "p4"},
		{"", "/only/path.php", "p4"},
		{"[2001:db8::1]:8080", "/v6", "p6"},
	} {
		ind, ok := s.LookupURL([]byte(c.host), []byte(c.target))
		if ok != (c.want != "") || ok && ind.Family != c.want {
			t.Errorf("LookupURL(%q, %q) = %+v %v, want %q", c.host, c.target, ind, ok, c.want)
		}
	}
	if _, ok := s.LookupIP(netip.MustParseAddr("198.51.100.77")); !ok {
		t.Error("http://address without a path must list the address")
	}
	if ind, _ := s.LookupURL([]byte("gate.example"), []byte("/a/panel.php")); ind.Value != "gate.example/a/panel.php" || ind.Kind != KindURL {
		t.Errorf("URL indicator %+v", ind)
	}
	long := "/only/path.php?" + strings.Repeat("a", 10000)
	if _, ok := s.LookupURL([]byte("x.example"), []byte(long)); !ok {
		t.Error("a long query must not hide a listed path")
	}
}

func TestFingerprintsAndCerts(t *testing.T) {
	s, st := Parse(strings.NewReader(`B386946A5A44D1DDCC843BC75336DFCE dridex
t13d1516h2_8daaf6152771_b0da82dd1658 ja4fam
f0d39c1c5e4e8d1ce7b3e5c3e0e2d41ee7f7a3a1 sha1fam
6f7c0d5e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5 sha256fam
`), "fp")
	if st.JA3 != 1 || st.JA4 != 1 || st.Certs != 2 || st.Bad != 0 {
		t.Fatalf("stats %+v", st)
	}
	if ind, ok := s.LookupJA3([]byte("b386946a5a44d1ddcc843bc75336dfce")); !ok || ind.Family != "dridex" || ind.Value != "b386946a5a44d1ddcc843bc75336dfce" {
		t.Errorf("JA3: %+v %v", ind, ok)
	}
	raw := []byte{0xb3, 0x86, 0x94, 0x6a, 0x5a, 0x44, 0xd1, 0xdd, 0xcc, 0x84, 0x3b, 0xc7, 0x53, 0x36, 0xdf, 0xce}
	if _, ok := s.LookupJA3(raw); !ok {
		t.Error("JA3 as raw bytes")
	}
	if _, ok := s.LookupJA3([]byte("b386946a5a44d1ddcc843bc75336dfcf")); ok {
		t.Error("JA3 one digit off matched")
	}
	if ind, ok := s.LookupJA4([]byte("T13D1516H2_8DAAF6152771_B0DA82DD1658")); !ok || ind.Family != "ja4fam" {
		t.Errorf("JA4: %+v %v", ind, ok)
	}
	if ind, ok := s.LookupCert([]byte("F0D39C1C5E4E8D1CE7B3E5C3E0E2D41EE7F7A3A1")); !ok || ind.Kind != KindCertSHA1 {
		t.Errorf("cert sha1: %+v %v", ind, ok)
	}
	if ind, ok := s.LookupCert([]byte("6f7c0d5e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5")); !ok || ind.Kind != KindCertSHA256 {
		t.Errorf("cert sha256: %+v %v", ind, ok)
	}
	if _, ok := s.LookupCert([]byte("f0d39c1c5e4e8d1ce7b3e5c3e0e2d41ee7f7a3a0")); ok {
		t.Error("cert one digit off matched")
	}
}

func TestAddIndicator(t *testing.T) {
	s := NewSet()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.AddIndicator(Indicator{Value: "c2.example", Source: "api", Family: "f", Confidence: 95, Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddIndicator(Indicator{Value: "c2.example", Kind: KindJA3}); !errors.Is(err, ErrBadIndicator) {
		t.Fatalf("a domain given as JA3: %v, want ErrBadIndicator", err)
	}
	ind, ok := s.LookupDomain([]byte("c2.example"))
	if !ok || ind.Confidence != 95 || !ind.Expiry.Equal(exp) || ind.Source != "api" {
		t.Fatalf("%+v %v", ind, ok)
	}
	if !s.Add("198.51.100.1:80", "a", "b") || s.Add("nonsense", "a", "b") {
		t.Fatal("Add must report whether the value was an indicator")
	}
	// An address listed with a port, then as a whole: every port matches.
	s.Add("198.51.100.1", "a", "whole")
	if ind, ok := s.LookupIPPort(netip.MustParseAddr("198.51.100.1"), 22); !ok || ind.Family != "whole" {
		t.Fatalf("%+v %v", ind, ok)
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
}

func TestMerge(t *testing.T) {
	a, _ := Parse(strings.NewReader("evil.example first\n10.0.0.0/8 a\n"), "a")
	b, _ := Parse(strings.NewReader("evil.example second\nother.example\n10.0.0.0/8 b\n192.0.2.1\n192.0.2.2:53\n2001:db8::/48\nhttp://x.example/y\n"), "b")
	c, _ := Parse(strings.NewReader("other.example third\n192.0.2.2 whole\n"), "c")
	m := Merge(a, nil, b, c)
	if m.Len() != 8 {
		t.Fatalf("merged %d indicators, want 8", m.Len())
	}
	if ind, _ := m.LookupDomain([]byte("x.evil.example")); ind.Family != "first" || ind.Source != "a" {
		t.Errorf("first set must name the indicator: %+v", ind)
	}
	if ind, ok := m.LookupIP(netip.MustParseAddr("10.2.3.4")); !ok || ind.Family != "a" {
		t.Errorf("network lost in merge: %+v", ind)
	}
	if ind, ok := m.LookupDomain([]byte("other.example")); !ok || ind.Source != "b" {
		t.Errorf("second set's domain: %+v %v", ind, ok)
	}
	if ind, ok := m.LookupIPPort(netip.MustParseAddr("192.0.2.2"), 80); !ok || ind.Family != "whole" {
		t.Errorf("a whole address must win over some of its ports: %+v %v", ind, ok)
	}
	if _, ok := m.LookupIP(netip.MustParseAddr("2001:db8::1")); !ok {
		t.Error("v6 network lost")
	}
	if _, ok := m.LookupURL([]byte("x.example"), []byte("/y")); !ok {
		t.Error("URL lost")
	}
	if a.Len() != 2 || b.Len() != 7 {
		t.Error("Merge changed its inputs")
	}
	if Merge().Len() != 0 || Merge(nil).Len() != 0 {
		t.Error("empty merge")
	}
}

func TestMaltrailDir(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "trails", "static", "malware")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "emotet.txt"), []byte("# Copyright (c) 2014-2026 Maltrail developers\n# Reference: x\n\nbad.example\n192.0.2.9:8080\nhttp://x.example/a.php\nbad.example/gate.php\n/cxbk6k0w4cc\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "trails", "static", "mass_scanner.txt"), []byte("198.51.100.250 # scanner\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "trails", "README.md"), []byte("not a trail\n"), 0o644)
	s, st, err := ParseFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Domains != 1 || st.IPPorts != 1 || st.IPs != 1 || st.URLs != 3 || st.Bad != 0 || st.Format != FormatMaltrail {
		t.Fatalf("stats %+v", st)
	}
	if ind, ok := s.LookupDomain([]byte("cdn.bad.example")); !ok || ind.Family != "emotet" || ind.Source != "maltrail/malware" || ind.Confidence != 90 {
		t.Fatalf("family/source: %+v", ind)
	}
	if ind, ok := s.LookupIP(netip.MustParseAddr("198.51.100.250")); !ok || ind.Confidence != 30 || ind.Source != "maltrail/mass_scanner" {
		t.Fatalf("mass scanner: %+v %v", ind, ok)
	}
	if _, ok := s.LookupURL([]byte("whatever.example"), []byte("/cxbk6k0w4cc")); !ok {
		t.Fatal("path-only trail")
	}
	if _, _, err := ParseFile(filepath.Join(dir, "absent.tar.gz")); err == nil {
		t.Fatal("a missing tarball must be an error")
	}
}

func TestLookupAllocs(t *testing.T) {
	s, _ := Parse(strings.NewReader(list+"b386946a5a44d1ddcc843bc75336dfce\nt13d1516h2_8daaf6152771_b0da82dd1658\nf0d39c1c5e4e8d1ce7b3e5c3e0e2d41ee7f7a3a1\n"), "test")
	name := []byte("deep.sub.domain.of.Evil.Example")
	miss := []byte("deep.sub.domain.of.good.example")
	ip := netip.MustParseAddr("198.51.100.8")
	hitIP := netip.MustParseAddr("198.51.100.9")
	ip6 := netip.MustParseAddr("2001:db8::77")
	host, path := []byte("Bad.Example"), []byte("/x/../path?q=1")
	ja3 := []byte("b386946a5a44d1ddcc843bc75336dfce")
	ja4 := []byte("t13d1516h2_8daaf6152771_b0da82dd1658")
	cert := []byte("f0d39c1c5e4e8d1ce7b3e5c3e0e2d41ee7f7a3a1")
	n := testing.AllocsPerRun(200, func() {
		s.LookupDomain(name)
		s.LookupDomain(miss)
		s.LookupIP(ip)
		s.LookupIP(ip6)
		s.LookupIPPort(hitIP, 8443)
		s.LookupIPPort(hitIP, 80)
		s.LookupURL(host, path)
		s.LookupURL(host, []byte("/other"))
		s.LookupJA3(ja3)
		s.LookupJA4(ja4)
		s.LookupCert(cert)
	})
	if n != 0 {
		t.Fatalf("lookups allocate %v times; want 0", n)
	}
	// And the hits were hits (the check above would pass on misses too).
	for _, ok := range []bool{
		ok2(s.LookupDomain(name)), ok2(s.LookupIPPort(hitIP, 8443)), ok2(s.LookupURL(host, path)),
		ok2(s.LookupJA3(ja3)), ok2(s.LookupJA4(ja4)), ok2(s.LookupCert(cert)),
	} {
		if !ok {
			t.Fatal("an expected hit missed")
		}
	}
}

func ok2(_ *Indicator, ok bool) bool { return ok }

func TestMaltrail(t *testing.T) {
	s, st, err := ParseFile(maltrailPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			t.Skip("../shared maltrail trails absent; skipping")
		}
		t.Fatal(err)
	}
	t.Logf("maltrail: %+v, set %d, tables %d MB", st, s.Len(), s.MemBytes()>>20)
	if st.Domains < 1_000_000 || st.IPPorts < 200_000 || st.URLs < 100_000 {
		t.Fatalf("loaded %d domains, %d address:port, %d URLs; the 2026-08 trails have ~1.4M, 285k, 171k", st.Domains, st.IPPorts, st.URLs)
	}
	// Every indicator is found again by the lookup of its own value.
	n := 0
	for ind := range s.All {
		if n++; n%97 != 0 {
			continue
		}
		if !lookupSelf(s, ind) {
			t.Fatalf("listed %s %q not found", ind.Kind, ind.Value)
		}
	}
}

const maltrailPath = "../../../shared/data/maltrail-trails-2026-08.tar.gz"

// lookupSelf looks ind up by its own value.
func lookupSelf(s *Set, ind Indicator) bool {
	v := ind.Value
	switch ind.Kind {
	case KindDomain:
		if strings.HasPrefix(v, "*.") {
			v = "sub" + v[1:]
		}
		return ok2(s.LookupDomain([]byte(v)))
	case KindIP:
		return ok2(s.LookupIP(netip.MustParseAddr(v)))
	case KindIPPort:
		ap := netip.MustParseAddrPort(v)
		return ok2(s.LookupIPPort(ap.Addr(), ap.Port()))
	case KindCIDR:
		return ok2(s.LookupIP(netip.MustParsePrefix(v).Addr()))
	case KindURL:
		host, target := "", v
		if !strings.HasPrefix(v, "/") {
			i := strings.IndexByte(v, '/')
			host, target = v[:i], v[i:]
		}
		return ok2(s.LookupURL([]byte(host), []byte(target)))
	case KindJA3:
		return ok2(s.LookupJA3([]byte(v)))
	case KindJA4:
		return ok2(s.LookupJA4([]byte(v)))
	case KindCertSHA1, KindCertSHA256:
		return ok2(s.LookupCert([]byte(v)))
	}
	return false
}
