package av

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

const eicarRule = `rule eicar { meta: threat = "EICAR-Test-File" strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" condition: $a }`

// rlDir is the ReversingLabs rule set shared by the team.
const rlDir = "../../../shared/data/reversinglabs-yara"

func needRL(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(rlDir); err != nil {
		tb.Skip("../shared/data/reversinglabs-yara is absent (a checkout without /work/shared); skipping the ReversingLabs test")
	}
}

func TestYaraAndHashes(t *testing.T) {
	dir := t.TempDir()
	benignBad := []byte("a file the hash list names")
	sum := md5.Sum(benignBad)
	hdb := filepath.Join(dir, "local.hdb")
	os.WriteFile(hdb, []byte(hex.EncodeToString(sum[:])+":26:Local.Test.Hash\n"), 0o644)
	s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}, HashFiles: []string{hdb}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		data   []byte
		threat string
	}{
		{eicar, "EICAR-Test-File"},
		{append(bytes.Repeat([]byte("x"), 5000), eicar...), "EICAR-Test-File"},
		{benignBad, "Local.Test.Hash"},
		{[]byte("hello, benign world"), ""},
	} {
		r, err := s.Scan(c.data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Malicious != (c.threat != "") || r.Threat != c.threat {
			t.Errorf("scan of %.20q: %+v, want threat %q", c.data, r, c.threat)
		}
	}
}

func TestHashListFormats(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"a": []byte("first listed file"), "b": []byte("second listed file"),
		"c": []byte("third listed file"), "d": []byte("fourth listed file"), "e": []byte("fifth listed file"),
	}
	md5a, sha256b := md5.Sum(files["a"]), sha256.Sum256(files["b"])
	sha1c, sha256d, md5e := sha1.Sum(files["c"]), sha256.Sum256(files["d"]), md5.Sum(files["e"])
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hdb := write("local.hdb", "# ClamAV md5\n"+hex.EncodeToString(md5a[:])+":17:Test.A\n"+
		hex.EncodeToString(md5e[:])+":999:Test.E.WrongSize\n"+
		"zz:17:Bad.Digest\n"+hex.EncodeToString(md5a[:])+":x:Bad.Size\n")
	hsb := write("local.hsb", strings.ToUpper(hex.EncodeToString(sha256b[:]))+":*:Test.B:73\n")
	plain := write("ioc-sha.txt", hex.EncodeToString(sha1c[:])+"\n"+hex.EncodeToString(sha256d[:])+" *dropper.exe\nnot-a-hash\n")
	s, err := New(Options{HashFiles: []string{hdb, hsb, plain}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.HashCount != 5 || len(s.LoadErrors) != 3 {
		t.Fatalf("hashes %d, load errors %v; want 5 and 3", s.HashCount, s.LoadErrors)
	}
	for _, e := range s.LoadErrors {
		if e.Line == 0 || !strings.HasPrefix(e.Error(), e.File+":") {
			t.Errorf("load error %q lacks file:line", e.Error())
		}
	}
	for name, want := range map[string]string{"a": "Test.A", "b": "Test.B", "c": "ioc-sha.txt", "d": "dropper.exe", "e": ""} {
		r, err := s.Scan(files[name])
		if err != nil {
			t.Fatal(err)
		}
		if r.Malicious != (want != "") || r.Threat != want || want != "" && r.Engine != "hash" {
			t.Errorf("file %s: %+v, want threat %q", name, r, want)
		}
	}
}

// TestSums: the hash lists use the digests the caller passes instead of
// hashing again (a wrong sum given on purpose decides the verdict), and
// HashKinds names the kinds listed for any size.
func TestSums(t *testing.T) {
	dir := t.TempDir()
	bad := []byte("a file the lists name")
	m, s1, s256 := md5.Sum(bad), sha1.Sum(bad), sha256.Sum256(bad)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hdb := write("sized.hdb", hex.EncodeToString(m[:])+fmt.Sprintf(":%d:Sized.MD5\n", len(bad)))
	plain := write("any.txt", hex.EncodeToString(s1[:])+" Any.SHA1\n"+hex.EncodeToString(s256[:])+" Any.SHA256\n")
	for _, c := range []struct {
		name              string
		files             []string
		md5, sha1, sha256 bool
		sums              Sums
		listed            string
	}{
		{name: "sized md5", files: []string{hdb}, sums: Sums{MD5: new([16]byte)}, listed: "Sized.MD5"},
		{name: "any sha1, sha256", files: []string{plain}, sha1: true, sha256: true, sums: Sums{SHA1: new([20]byte), SHA256: new([32]byte)}, listed: "Any.SHA1"},
		{name: "sha256 given", files: []string{plain}, sha1: true, sha256: true, sums: Sums{SHA256: &s256}, listed: "Any.SHA1"},
	} {
		s, err := New(Options{HashFiles: c.files})
		if err != nil {
			t.Fatal(err)
		}
		md5k, sha1k, sha256k := s.HashKinds()
		if md5k != c.md5 || sha1k != c.sha1 || sha256k != c.sha256 {
			t.Errorf("%s: HashKinds %v %v %v, want %v %v %v", c.name, md5k, sha1k, sha256k, c.md5, c.sha1, c.sha256)
		}
		// Without sums the scan hashes the data itself.
		if r, err := s.Scan(bad); err != nil || r.Threat != c.listed {
			t.Errorf("%s: scan without sums: %+v %v, want %s", c.name, r, err, c.listed)
		}
		// With sums it trusts them: zero digests name no listed file.
		r, err := s.ScanWith(bad, ScanMeta{Sums: c.sums})
		want := ""
		if c.sums.SHA256 == &s256 {
			want = c.listed // SHA-1 not given: hashed here, listed
		}
		if err != nil || r.Threat != want {
			t.Errorf("%s: scan with sums: %+v %v, want threat %q", c.name, r, err, want)
		}
		s.Close()
	}
}

// TestConcurrentScans shares one Scanner between goroutines (run with
// -race), then closes it.
func TestConcurrentScans(t *testing.T) {
	s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				data, want := []byte("benign"), false
				if (g+i)%2 == 0 {
					data, want = eicar, true
				}
				r, err := s.Scan(data)
				if err != nil || r.Malicious != want {
					errs <- fmt.Sprintf("goroutine %d scan %d: %+v %v", g, i, r, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	s.Close()
	s.Close()
	if _, err := s.Scan(eicar); !errors.Is(err, ErrClosed) {
		t.Fatalf("scan after Close: %v, want ErrClosed", err)
	}
}

func TestBadRuleFileSkipped(t *testing.T) {
	s, err := New(Options{YaraSources: map[string][]byte{
		"good.yar": []byte(eicarRule),
		"bad.yar":  []byte(`rule broken { condition: $nope }`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LoadErrors) != 1 || s.LoadErrors[0].File != "bad.yar" || s.LoadErrors[0].Line != 1 || s.RuleCount != 2 {
		t.Fatalf("load errors %v, rules %d", s.LoadErrors, s.RuleCount)
	}
	if _, err := New(Options{}); err != ErrNoRules {
		t.Fatalf("empty options: %v, want ErrNoRules", err)
	}
}

// TestReversingLabsNoFalsePositive compiles the public ReversingLabs rules
// and scans benign random data and text without a hit.
func TestReversingLabsNoFalsePositive(t *testing.T) {
	needRL(t)
	s, err := New(Options{YaraDirs: []string{rlDir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ReversingLabs: %d rules, %d files skipped", s.RuleCount, len(s.LoadErrors))
	if s.RuleCount < 1000 {
		t.Fatalf("only %d rules compiled", s.RuleCount)
	}
	data := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(data)
	copy(data, bytes.Repeat([]byte("benign text file content\n"), 10000))
	r, err := s.Scan(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Malicious {
		t.Fatalf("false positive on benign data: %+v", r)
	}
	// Real benign executables of this machine, when present.
	goBin, _ := exec.LookPath("go")
	for _, p := range []string{"/usr/bin/ls", "/bin/sh", goBin} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		r, err := s.Scan(data)
		if err != nil {
			t.Fatalf("scan %s: %v", p, err)
		}
		if r.Malicious {
			t.Errorf("false positive on %s (%d bytes): %+v", p, len(data), r)
		}
	}
}

// FuzzHashList feeds arbitrary hash lists to the parser (seed corpus in
// testdata/fuzz/FuzzHashList): no panic, and every accepted digest is a
// lowercase MD5, SHA-1 or SHA-256.
func FuzzHashList(f *testing.F) {
	f.Add("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n")
	f.Fuzz(func(t *testing.T, text string) {
		h := newHashSet()
		errs := h.read(strings.NewReader(text), "fuzz.hdb")
		for d := range h.m {
			if !isHex(d) || len(d) != 32 && len(d) != 40 && len(d) != 64 {
				t.Fatalf("accepted digest %q", d)
			}
		}
		for _, e := range errs {
			if e.Line < 1 {
				t.Fatalf("error without a line: %v", e)
			}
		}
		if r, ok := h.scan([]byte(text), Sums{}); ok && (r.Verdict != VerdictMalicious || !strings.HasPrefix(r.Rule, "fuzz.hdb:")) {
			t.Fatalf("hit %+v lacks its verdict or list:line", r)
		}
	})
}

// BenchmarkScan1MB is the baseline: one YARA rule over 1 MB.
func BenchmarkScan1MB(b *testing.B) {
	s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := s.Scan(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan1MBReversingLabs scans 1 MB with the ~1200 ReversingLabs
// rules; read it as a ratio to BenchmarkScan1MB.
func BenchmarkScan1MBReversingLabs(b *testing.B) {
	needRL(b)
	s, err := New(Options{YaraDirs: []string{rlDir}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Scan(data); err != nil {
			b.Fatal(err)
		}
	}
}
