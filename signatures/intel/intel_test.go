package intel

import (
	"net/netip"
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

func TestLookupAllocs(t *testing.T) {
	s, _ := Parse(strings.NewReader(list), "test")
	name := []byte("deep.sub.domain.of.Evil.Example")
	ip := netip.MustParseAddr("198.51.100.8")
	if n := testing.AllocsPerRun(200, func() { s.LookupDomain(name); s.LookupIP(ip) }); n != 0 {
		t.Fatalf("lookups allocate %v times; want 0", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(list)
	f.Fuzz(func(t *testing.T, text string) {
		s, _ := Parse(strings.NewReader(text), "fuzz")
		s.LookupDomain([]byte(text))
		s.LookupIP(netip.MustParseAddr("198.18.0.1"))
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
