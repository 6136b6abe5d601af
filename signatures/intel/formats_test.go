package intel

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// dump renders stats and indicators for a golden file.
func dump(s *Set, st Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format=%s domains=%d ips=%d ipports=%d cidrs=%d urls=%d ja3=%d ja4=%d certs=%d dup=%d skipped=%d bad=%d\n",
		st.Format, st.Domains, st.IPs, st.IPPorts, st.CIDRs, st.URLs, st.JA3, st.JA4, st.Certs, st.Duplicates, st.Skipped, st.Bad)
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "problem %s:%d %s\n", filepath.Base(p.File), p.Line, p.Reason)
	}
	var lines []string
	for ind := range s.All {
		exp := ""
		if !ind.Expiry.IsZero() {
			exp = " expires=" + ind.Expiry.Format("2006-01-02T15:04:05Z")
		}
		lines = append(lines, fmt.Sprintf("%s %s source=%s family=%q confidence=%d%s", ind.Kind, ind.Value, ind.Source, ind.Family, ind.Confidence, exp))
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n")
	return b.String()
}

// TestFormatsGolden parses every sample feed in testdata and compares
// what was read with testdata/<file>.golden (refresh with -update).
func TestFormatsGolden(t *testing.T) {
	for _, name := range []string{"plain.list", "hosts", "ipblocklist.csv", "sslblacklist.csv", "ja3_fingerprints.csv", "urlhaus.csv", "threatfox.csv"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join("testdata", name)
			s, st, err := ParseFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := dump(s, st)
			golden := p + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s read differently:\n--- got\n%s--- want\n%s", name, got, want)
			}
			for ind := range s.All {
				if !lookupSelf(s, ind) && (ind.Expiry.IsZero() || ind.Expiry.Unix() > s.now.Load()) {
					t.Errorf("%s %q is listed but its lookup misses", ind.Kind, ind.Value)
				}
			}
		})
	}
}

// TestFormats checks what an operator relies on in each feed.
func TestFormats(t *testing.T) {
	load := func(name string) (*Set, Stats) {
		s, st, err := ParseFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return s, st
	}
	a := netip.MustParseAddr

	s, st := load("ipblocklist.csv")
	if st.Format != FormatFeodo || st.IPPorts != 3 || st.Bad != 2 {
		t.Errorf("feodo: %+v", st)
	}
	if ind, ok := s.LookupIPPort(a("198.51.100.32"), 4643); !ok || ind.Family != "Dridex" || ind.Confidence != 100 || ind.Source != "feodotracker" {
		t.Errorf("feodo online C2: %+v %v", ind, ok)
	}
	if ind, _ := s.LookupIPPort(a("198.51.100.40"), 443); ind == nil || ind.Confidence != 75 {
		t.Errorf("feodo offline C2 confidence: %+v", ind)
	}
	if _, ok := s.LookupIPPort(a("2001:db8:feed::7"), 8080); !ok {
		t.Error("feodo IPv6")
	}
	if _, ok := s.LookupIPPort(a("198.51.100.32"), 80); ok {
		t.Error("feodo: another port matched")
	}

	s, st = load("sslblacklist.csv")
	if st.Format != FormatSSLBL || st.Certs != 2 || st.Bad != 1 {
		t.Errorf("sslbl: %+v", st)
	}
	if ind, ok := s.LookupCert([]byte("6a2f1b0c3d4e5f60718293a4b5c6d7e8f9012345")); !ok || ind.Family != "Vidar" {
		t.Errorf("sslbl: %+v %v", ind, ok)
	}

	s, st = load("ja3_fingerprints.csv")
	if st.Format != FormatJA3 || st.JA3 != 3 || st.Bad != 1 {
		t.Errorf("ja3: %+v", st)
	}
	if ind, ok := s.LookupJA3([]byte("8916410db85077a5460817142dcbc8de")); !ok || ind.Family != "Tofsee" || ind.Confidence != 75 {
		t.Errorf("ja3: %+v %v", ind, ok)
	}

	s, st = load("urlhaus.csv")
	if st.Format != FormatURLhaus || st.URLs != 3 || st.Bad != 1 {
		t.Errorf("urlhaus: %+v %v", st, st.Problems)
	}
	if ind, ok := s.LookupURL([]byte("dl.bad-host.example"), []byte("/files/~user/x/%2e%2e/Invoice.exe?id=7&src=mail")); !ok || ind.Family != "exe,Formbook" {
		t.Errorf("urlhaus normalised URL: %+v %v", ind, ok)
	}
	if _, ok := s.LookupURL([]byte("198.51.100.102:53305"), []byte("/i")); !ok {
		t.Error("urlhaus URL with a port")
	}
	if _, ok := s.LookupURL([]byte("cdn.bad-host.example"), []byte("/a%20b/payload.ps1")); !ok {
		t.Error("urlhaus URL with a space")
	}

	s, st = load("threatfox.csv")
	if st.Format != FormatThreatFox || st.IPPorts != 1 || st.Domains != 1 || st.URLs != 1 || st.Skipped != 1 || st.Bad != 1 {
		t.Errorf("threatfox: %+v %v", st, st.Problems)
	}
	if ind, ok := s.LookupDomain([]byte("x.panel.c2-threatfox.example")); !ok || ind.Family != "Cobalt Strike" || ind.Confidence != 75 {
		t.Errorf("threatfox domain: %+v %v", ind, ok)
	}
	if ind, ok := s.LookupURL([]byte("gate.c2-threatfox.example"), []byte("/api/v1/check")); !ok || ind.Confidence != 50 {
		t.Errorf("threatfox url: %+v %v", ind, ok)
	}

	s, st = load("hosts")
	if st.Format != FormatHosts || st.Domains != 4 || st.Bad != 1 {
		t.Errorf("hosts: %+v %v", st, st.Problems)
	}
	if _, ok := s.LookupDomain([]byte("localhost")); ok {
		t.Error("hosts: localhost listed")
	}
	if _, ok := s.LookupDomain([]byte("mixed.case.hosts-list.example")); !ok {
		t.Error("hosts: tab-separated line")
	}

	s, st = load("plain.list")
	if st.Format != FormatPlain || st.Bad != 2 || st.Indicators() != 14 {
		t.Errorf("plain: %+v %v", st, st.Problems)
	}
	if _, ok := s.LookupDomain([]byte("expired.utm-lab.test")); ok {
		t.Error("plain: expired indicator matched")
	}
}

// TestParseDetectsWithoutHeaderOrFromGzip: a feed whose comment header
// was cut still parses by its file name, and a gzipped feed by content.
func TestParseDetectsWithoutHeaderOrFromGzip(t *testing.T) {
	s, st := Parse(strings.NewReader("b386946a5a44d1ddcc843bc75336dfce,2017-07-14 18:08:14,2019-07-27 20:42:54,Dridex\n"), "feeds/ja3_fingerprints.csv")
	if st.Format != FormatJA3 || st.JA3 != 1 {
		t.Fatalf("%+v", st)
	}
	if ind, _ := s.LookupJA3([]byte("b386946a5a44d1ddcc843bc75336dfce")); ind.Family != "Dridex" {
		t.Fatalf("%+v", ind)
	}
	raw, _ := os.ReadFile("testdata/urlhaus.csv")
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw)
	w.Close()
	if _, st := Parse(&gz, "urlhaus.csv.gz"); st.Format != FormatURLhaus || st.URLs != 3 {
		t.Fatalf("gzipped: %+v", st)
	}
}
