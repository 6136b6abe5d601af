package av

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

const eicarRule = `rule eicar { meta: threat = "EICAR-Test-File" strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" condition: $a }`

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

func TestBadRuleFileSkipped(t *testing.T) {
	s, err := New(Options{YaraSources: map[string][]byte{
		"good.yar": []byte(eicarRule),
		"bad.yar":  []byte(`rule broken { condition: $nope }`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LoadErrors) != 1 || s.LoadErrors[0].File != "bad.yar" || s.RuleCount != 1 {
		t.Fatalf("load errors %v, rules %d", s.LoadErrors, s.RuleCount)
	}
	if _, err := New(Options{}); err != ErrNoRules {
		t.Fatalf("empty options: %v, want ErrNoRules", err)
	}
}

// TestReversingLabsNoFalsePositive compiles the public ReversingLabs rules
// and scans benign random data and text without a hit.
func TestReversingLabsNoFalsePositive(t *testing.T) {
	dir := "../../../shared/data/reversinglabs-yara"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("../shared/data/reversinglabs-yara is absent; skipping")
	}
	s, err := New(Options{YaraDirs: []string{dir}})
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
}

func BenchmarkScan1MB(b *testing.B) {
	s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		s.Scan(data)
	}
}
