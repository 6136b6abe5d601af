package intel

import (
	"bytes"
	"strings"
	"testing"
)

// fuzzNames are the file names Parse may detect a headerless CSV by.
var fuzzNames = []string{"feed", "ipblocklist.csv", "sslblacklist.csv", "ja3_fingerprints.csv"}

// FuzzParse feeds arbitrary text to every format parser (content
// detection, and name detection for headerless CSVs; seed corpus in
// testdata/fuzz/FuzzParse: one sample of each format): no panic, the set
// holds exactly the indicators Stats counts, every bad line is counted,
// and every indicator is found again by the lookup of its own value.
func FuzzParse(f *testing.F) {
	f.Add(list)
	f.Fuzz(func(t *testing.T, text string) {
		for _, name := range fuzzNames {
			s, st := Parse(strings.NewReader(text), name)
			if s.Len() != st.Indicators() {
				t.Fatalf("%s: set has %d indicators, stats count %d: %+v", name, s.Len(), st.Indicators(), st)
			}
			if len(st.Problems) > st.Bad+st.Skipped || len(st.Problems) < min(st.Bad+st.Skipped, maxProblems) {
				t.Fatalf("%s: %d problems kept for %d bad and %d skipped lines", name, len(st.Problems), st.Bad, st.Skipped)
			}
			for ind := range s.All {
				if !lookupSelf(s, ind) && (ind.Expiry.IsZero() || ind.Expiry.Unix() > s.now.Load()) {
					t.Fatalf("%s: listed %s %q not found", name, ind.Kind, ind.Value)
				}
			}
			for line := range strings.SplitSeq(text, "\n") {
				b := []byte(line)
				s.LookupDomain(b)
				s.LookupJA3(b)
				s.LookupJA4(b)
				s.LookupCert(b)
				s.LookupURL(b, b)
			}
		}
	})
}

// FuzzURL: a URL added as an indicator is found by LookupURL given its
// host and target in any spelling normalisation equates, and lookups of
// arbitrary requests never panic.
func FuzzURL(f *testing.F) {
	for _, seed := range [][2]string{
		{"Gate.Example:80", "/a/./b/../panel.php?id=%7e1"},
		{"", "http://x.example/%2E%2e/y"},
		{"[2001:db8::1]:8080", "/v6/"},
		{"h.example", "/a b/\xff?q#frag"},
		{"h.example.", "//double//slash/.."},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, host, target string) {
		s := NewSet()
		s.LookupURL([]byte(host), []byte(target))
		v := host + target
		if !strings.HasPrefix(target, "/") || strings.TrimSpace(v) != v {
			return
		}
		if err := s.AddIndicator(Indicator{Value: v, Kind: KindURL}); err != nil {
			return
		}
		h, tg := splitAbsolute([]byte(host), []byte(target))
		if bytes.IndexByte(h, '/') >= 0 || bytes.IndexByte(h, '?') >= 0 {
			return // the host swallowed part of the path: another URL
		}
		if _, ok := s.LookupURL([]byte(host), []byte(target)); !ok && urlFits(h, tg) {
			t.Fatalf("URL %q added but LookupURL(%q, %q) misses", v, host, target)
		}
		for ind := range s.All {
			if !lookupSelf(s, ind) {
				t.Fatalf("%q (from %q) not found by its own value", ind.Value, v)
			}
		}
	})
}
