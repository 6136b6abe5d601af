package intel

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if st.Domains != 2 || st.IPs != 2 || st.CIDRs != 1 || st.Skipped != 1 || st.Bad != 1 {
		t.Fatalf("stats %+v", st)
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
	if ind, ok := s.LookupDomain([]byte("cnc.utm-lab.test")); !ok || ind.Family != "utm-lab-test" || ind.Source != "test" {
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
`), "nets")
	if st.CIDRs != 4 || st.IPs != 2 || st.Bad != 1 {
		t.Fatalf("stats %+v, want 4 networks (the unmasked /8 is a duplicate), 2 IPs, /0 bad", st)
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
	} {
		ind, ok := s.LookupIP(netip.MustParseAddr(c.ip))
		if ok != (c.family != "") || ok && ind.Family != c.family {
			t.Errorf("LookupIP(%s) = %+v %v, want family %q", c.ip, ind, ok, c.family)
		}
	}
}

func TestMerge(t *testing.T) {
	a, _ := Parse(strings.NewReader("evil.example first\n10.0.0.0/8 a\n"), "a")
	b, _ := Parse(strings.NewReader("evil.example second\nother.example\n10.0.0.0/8 b\n192.0.2.1\n"), "b")
	m := Merge(a, nil, b)
	if m.Len() != 4 {
		t.Fatalf("merged %d indicators, want 4", m.Len())
	}
	if ind, _ := m.LookupDomain([]byte("x.evil.example")); ind.Family != "first" || ind.Source != "a" {
		t.Errorf("first set must name the indicator: %+v", ind)
	}
	if ind, ok := m.LookupIP(netip.MustParseAddr("10.2.3.4")); !ok || ind.Family != "a" {
		t.Errorf("network lost in merge: %+v", ind)
	}
	if _, ok := m.LookupDomain([]byte("other.example")); !ok {
		t.Error("second set's domain lost")
	}
}

func TestMaltrailDir(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "trails", "static", "malware")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "emotet.txt"), []byte("# Copyright (c) 2014-2026 Maltrail developers\n# Reference: x\n\nbad.example\n192.0.2.9:8080\nhttp://x.example/a.php\nbad.example/gate.php\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "trails", "README.md"), []byte("not a trail\n"), 0o644)
	s, st, err := ParseFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Domains != 1 || st.IPs != 1 || st.Skipped != 2 || st.Bad != 0 {
		t.Fatalf("stats %+v", st)
	}
	if ind, ok := s.LookupDomain([]byte("cdn.bad.example")); !ok || ind.Family != "emotet" || ind.Source != "maltrail/malware" {
		t.Fatalf("family/source: %+v", ind)
	}
	if _, _, err := ParseFile(filepath.Join(dir, "absent.tar.gz")); err == nil {
		t.Fatal("a missing tarball must be an error")
	}
}

func TestLookupAllocs(t *testing.T) {
	s, _ := Parse(strings.NewReader(list), "test")
	name := []byte("deep.sub.domain.of.Evil.Example")
	ip := netip.MustParseAddr("198.51.100.8")
	ip6 := netip.MustParseAddr("2001:db8::77")
	if n := testing.AllocsPerRun(200, func() { s.LookupDomain(name); s.LookupIP(ip); s.LookupIP(ip6) }); n != 0 {
		t.Fatalf("lookups allocate %v times; want 0", n)
	}
}

// FuzzParse feeds arbitrary feeds to Parse (seed corpus in
// testdata/fuzz/FuzzParse): no panic, every counted domain is found again
// by lookup of itself.
func FuzzParse(f *testing.F) {
	f.Add(list)
	f.Fuzz(func(t *testing.T, text string) {
		s, st := Parse(strings.NewReader(text), "fuzz")
		if s.Len() > st.Domains+st.IPs+st.CIDRs {
			t.Fatalf("set has %d indicators, stats count %+v", s.Len(), st)
		}
		for _, line := range strings.Split(text, "\n") {
			s.LookupDomain([]byte(line))
			f := strings.Fields(line)
			if len(f) == 0 || strings.Contains(line, "#") {
				continue
			}
			if a, err := netip.ParseAddr(f[0]); err == nil {
				if _, ok := s.LookupIP(a); !ok {
					t.Fatalf("listed address %s not found", a)
				}
			}
		}
		for d := range s.domains {
			if _, ok := s.LookupDomain([]byte(d)); !ok {
				t.Fatalf("listed domain %q not found", d)
			}
		}
	})
}

func TestMaltrail(t *testing.T) {
	const p = "../../../shared/data/maltrail-trails-2026-08.tar.gz"
	s, st, err := ParseFile(p)
	if err != nil {
		if strings.Contains(err.Error(), "no such file") {
			t.Skip("../shared maltrail trails absent; skipping")
		}
		t.Fatal(err)
	}
	t.Logf("maltrail: %+v, set %d", st, s.Len())
	if st.Domains < 100000 {
		t.Fatalf("only %d domains loaded", st.Domains)
	}
}
