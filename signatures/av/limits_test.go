package av

import (
	"bytes"
	"crypto/md5"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRuleDirs loads a directory tree with a broken file: the broken file
// is reported with file:line, every other file loads, and a match names
// its rule as namespace:rule with the rule's meta.
func TestRuleDirs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "local-rules")
	writeFile(t, filepath.Join(dir, "a.yar"), `rule Dropper_A { meta: description = "dropper A" score = 7 strings: $a = "dropper-a-marker" condition: $a }`)
	bad := writeFile(t, filepath.Join(dir, "sub", "broken.yara"), "rule Broken\n{\n  condition: $missing }\n")
	writeFile(t, filepath.Join(dir, "sub", "deeper", "c.yara"), `rule Dropper_C { meta: threat = "Trojan.C" strings: $c = "dropper-c-marker" condition: $c }`)
	writeFile(t, filepath.Join(dir, "notes.txt"), "rule NotLoaded { condition: true }")
	s, err := New(Options{YaraDirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.LoadErrors) != 1 || s.LoadErrors[0].File != bad || s.LoadErrors[0].Line != 3 || !strings.Contains(s.LoadErrors[0].Reason, "missing") {
		t.Fatalf("load errors %v: want %s:3 about $missing", s.LoadErrors, bad)
	}
	if !strings.HasPrefix(s.LoadErrors[0].Error(), bad+":3: ") {
		t.Errorf("load error text %q lacks file:line", s.LoadErrors[0].Error())
	}
	if s.RuleCount != 3 { // two loaded files + builtin EICAR
		t.Fatalf("%d rules, want 3: %v", s.RuleCount, s.Rules())
	}
	r, err := s.Scan([]byte("xx dropper-a-marker xx"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Meta{{"description", "dropper A"}, {"score", "7"}}
	if !r.Malicious || r.Engine != "yara" || r.Rule != "local-rules/a.yar:Dropper_A" || r.Threat != "Dropper_A" || r.Verdict != VerdictMalicious ||
		len(r.Meta) != 2 || r.Meta[0] != want[0] || r.Meta[1] != want[1] {
		t.Errorf("result %+v", r)
	}
	r, _ = s.Scan([]byte("dropper-c-marker"))
	if r.Rule != "local-rules/sub/deeper/c.yara:Dropper_C" || r.Threat != "Trojan.C" {
		t.Errorf("nested file result %+v", r)
	}
}

// TestClamAVTestFile finds Debian's clamav-testfiles program (544 bytes)
// with a one-line .hdb, as the box's users will.
func TestClamAVTestFile(t *testing.T) {
	data, err := os.ReadFile("/usr/share/clamav-testfiles/clam.exe")
	if err != nil {
		t.Skip("clamav-testfiles is not installed (apt-get install clamav-testfiles); skipping")
	}
	hdb := writeFile(t, filepath.Join(t.TempDir(), "clamav-test.hdb"), "aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File.UTM\n")
	s, err := New(Options{HashFiles: []string{hdb}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.ScanWith(data, ScanMeta{Name: "clam.exe"})
	if err != nil || !r.Malicious || r.Threat != "ClamAV-Test-File.UTM" || r.Engine != "hash" || r.Rule != "clamav-test.hdb:1" {
		t.Fatalf("clam.exe: %+v %v", r, err)
	}
	// Same bytes plus one: another size, so the MD5 is not even computed.
	r, err = s.Scan(append(data[:len(data):len(data)], 0))
	if err != nil || r.Malicious {
		t.Fatalf("clam.exe plus a byte: %+v %v", r, err)
	}
}

// TestEICARBuiltin: EICAR is found by hash and by the built-in rule
// without any configured signature for it; a text quoting the string is
// not flagged.
func TestEICARBuiltin(t *testing.T) {
	hdb := writeFile(t, filepath.Join(t.TempDir(), "other.hdb"), "00112233445566778899aabbccddeeff:10:Other\n")
	s, err := New(Options{HashFiles: []string{hdb}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.HashCount != 1 {
		t.Errorf("HashCount %d counts the built-in digest", s.HashCount)
	}
	for _, c := range []struct {
		data []byte
		rule string
	}{
		{eicar, "builtin"},
		{append(append([]byte{}, eicar...), "\r\n"...), "builtin:EICAR_Test_File"},
		{append([]byte("The EICAR test string is "), eicar...), ""},
	} {
		r, err := s.Scan(c.data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rule != c.rule || r.Malicious != (c.rule != "") || r.Malicious && r.Threat != "EICAR-Test-File" {
			t.Errorf("scan of %q: %+v, want rule %q", c.data, r, c.rule)
		}
	}
}

// TestExternals: rules may test filename, filepath, extension and
// filetype, set per scan from ScanMeta.
func TestExternals(t *testing.T) {
	s, err := New(Options{YaraSources: map[string][]byte{"ext.yar": []byte(`
rule Exe_Named_Invoice { condition: filetype == "pe" and extension == "exe" and filename matches /^invoice/ }
rule Path_Rule { condition: filepath contains "attachments/" and filetype == "text" }`)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pe := append([]byte("MZ"), make([]byte, 200)...)
	for _, c := range []struct {
		data []byte
		m    ScanMeta
		rule string
	}{
		{pe, ScanMeta{Name: `C:\mail\invoice.EXE`}, "ext.yar:Exe_Named_Invoice"},
		{pe, ScanMeta{Name: "invoice.pdf"}, ""},
		{pe, ScanMeta{Name: "invoice.exe", Type: "zip"}, ""},
		{[]byte("plain words"), ScanMeta{Name: "msg/attachments/a.txt"}, "ext.yar:Path_Rule"},
		{[]byte("plain words"), ScanMeta{}, ""},
	} {
		r, err := s.ScanWith(c.data, c.m)
		if err != nil || r.Rule != c.rule {
			t.Errorf("%+v: %+v %v, want rule %q", c.m, r, err, c.rule)
		}
	}
}

// TestLimits covers MaxFileSize (partially scanned), MaxDepth, the
// timeout and the unscannable policy, with their counters.
func TestLimits(t *testing.T) {
	slow := `rule Slow { condition: uint8(0) == 0x01 and for all i in (0..filesize) : ( for all j in (0..filesize) : ( for all k in (0..filesize) : ( uint8(i) != 0xff or uint8(j) != 0xfe or uint8(k) != 0xfd ) ) ) }`
	s, err := New(Options{
		YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule), "slow.yar": []byte(slow)},
		MaxFileSize: 4096, MaxDepth: 2, Timeout: time.Second, Unscannable: PolicyBlock,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pad := func(n int) []byte { return bytes.Repeat([]byte{0xfe}, n) }
	r, err := s.Scan(append(pad(100), eicar...))
	if err != nil || r.Verdict != VerdictMalicious {
		t.Fatalf("EICAR inside the limit: %+v %v", r, err)
	}
	r, err = s.Scan(append(pad(5000), eicar...))
	if err != nil || r.Malicious || r.Verdict != VerdictPartial || r.Scanned != 4096 || r.Block(PolicyBlock) {
		t.Fatalf("EICAR past the limit: %+v %v, want partially-scanned, not blocked", r, err)
	}
	deep := ScanMeta{Name: "a.zip/b.zip/c.zip/x.com", Depth: 3}
	r, err = s.ScanWith(append(pad(10), eicar...), deep)
	if !errors.Is(err, ErrTooDeep) || r.Verdict != VerdictUnscanned || !r.Block(PolicyBlock) || r.Block(PolicyAllow) {
		t.Fatalf("depth 3 of 2: %+v %v", r, err)
	}
	// The hash lists still see a file too deep for YARA.
	if r, err = s.ScanWith(eicar, deep); err != nil || r.Rule != "builtin" {
		t.Fatalf("EICAR at depth 3: %+v %v, want the built-in hash", r, err)
	}
	// The slow rule needs filesize³ steps (7e10): libyara gives up after 1 s.
	r, err = s.Scan(append([]byte{0x01}, pad(4000)...))
	if !errors.Is(err, ErrTimeout) || r.Verdict != VerdictUnscanned || !r.Block(s.Unscannable()) {
		t.Fatalf("slow rule: %+v %v, want ErrTimeout, unscanned, blocked", r, err)
	}
	st := s.Stats()
	if st.Scans != 5 || st.Malicious != 2 || st.Partial != 1 || st.Unscanned != 2 || st.Timeouts != 1 {
		t.Errorf("stats %+v", st)
	}
	for in, want := range map[string]Policy{"allow": PolicyAllow, "Block": PolicyBlock, "": PolicyAllow} {
		if p, err := ParsePolicy(in); err != nil || p != want {
			t.Errorf("ParsePolicy(%q) = %v %v", in, p, err)
		}
	}
	if _, err := ParsePolicy("drop"); err == nil {
		t.Error("ParsePolicy(drop) accepted")
	}
}

func TestDisableRules(t *testing.T) {
	s, err := New(Options{
		YaraSources:  map[string][]byte{"eicar.yar": []byte(eicarRule), "b.yar": []byte(`rule b { strings: $b = "bbbb" condition: $b }`)},
		DisableRules: []string{"eicar.yar:eicar", "b", "nope.yar:x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.LoadErrors) != 1 || !strings.Contains(s.LoadErrors[0].Reason, "nope.yar:x") {
		t.Errorf("load errors %v, want one for nope.yar:x", s.LoadErrors)
	}
	for _, d := range [][]byte{[]byte("xx EICAR-STANDARD-ANTIVIRUS-TEST-FILE xx"), []byte("bbbb")} {
		if r, _ := s.Scan(d); r.Malicious {
			t.Errorf("disabled rule reported: %+v", r)
		}
	}
	if r, _ := s.Scan(eicar); !r.Malicious { // the built-in ones still work
		t.Error("EICAR missed")
	}
}

// TestScanAllocs counts allocations of a clean scan: the hash path
// allocates nothing; libyara's part allocates only in go-yara's callback
// registration (per-scan handle and container), a fixed count.
func TestScanAllocs(t *testing.T) {
	data := bytes.Repeat([]byte("clean data "), 10000)
	// A size-less entry: every scan computes the MD5.
	hdb := writeFile(t, filepath.Join(t.TempDir(), "x.hdb"), "00112233445566778899aabbccddeeff:*:Any.Size\n")
	s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}, HashFiles: []string{hdb}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.hashes
	if n := testing.AllocsPerRun(100, func() { h.scan(data, Sums{}) }); n != 0 {
		t.Errorf("hash lookup: %v allocs per scan, want 0", n)
	}
	sum := md5.Sum(data)
	if n := testing.AllocsPerRun(100, func() { h.scan(data, Sums{MD5: &sum}) }); n != 0 {
		t.Errorf("hash lookup with the caller's MD5: %v allocs per scan, want 0", n)
	}
	scan := func() {
		if r, err := s.Scan(data); err != nil || r.Malicious {
			t.Fatal(r, err)
		}
	}
	if n := testing.AllocsPerRun(100, scan); n != 0 || s.Stats().Gated == 0 {
		t.Errorf("clean Scan through the literal gate: %v allocs (gated %d), want 0", n, s.Stats().Gated)
	}
	s.gate = nil // libyara for every scan
	n := testing.AllocsPerRun(100, scan)
	t.Logf("clean Scan through libyara: %v allocs", n)
	// go-yara per scan: the callback container, its runtime/cgo handle
	// (a sync.Map entry, sometimes one more for the map's growth) and the
	// scan-finished callback's context.
	want := 4.0
	if n > want {
		t.Errorf("clean Scan: %v allocs, want at most go-yara's fixed %v", n, want)
	}
}

// TestReversingLabsLoad loads the whole ReversingLabs set (274 files,
// ~1,200 rules; all compile with libyara 4.2) and reports the compile
// time and resident memory it costs.
func TestReversingLabsLoad(t *testing.T) {
	needRL(t)
	rss0 := rssBytes(t)
	t0 := time.Now()
	s, err := New(Options{YaraDirs: []string{rlDir}})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	rss1 := rssBytes(t)
	defer s.Close()
	files := 0
	filepath.WalkDir(rlDir, func(p string, d os.DirEntry, _ error) error {
		if strings.HasSuffix(p, ".yara") || strings.HasSuffix(p, ".yar") {
			files++
		}
		return nil
	})
	if len(s.LoadErrors) != 0 || files < 274 || s.RuleCount < 1200 {
		t.Fatalf("%d files: %d rules, load errors %v", files, s.RuleCount, s.LoadErrors)
	}
	for _, r := range s.Rules() {
		if !strings.HasPrefix(r, "builtin:") && !strings.HasPrefix(r, "reversinglabs-yara/yara/") {
			t.Fatalf("rule %q outside the set's namespaces", r)
		}
	}
	runtime.GC()
	t.Logf("ReversingLabs: %d files, %d rules in %v, RSS +%d MB", files, s.RuleCount, took.Round(time.Millisecond), (rss1-rss0)>>20)
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
