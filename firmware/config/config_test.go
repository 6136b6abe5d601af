package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Board != "lab" || time.Duration(c.Heartbeat) != 2*time.Second {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadOverridesAndRejectsTypos(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"box_id":"office-7","heartbeat":"5s"}`), 0o600)
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.BoxID != "office-7" || time.Duration(c.Heartbeat) != 5*time.Second || c.Board != "lab" {
		t.Fatalf("override failed: %+v", c)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"box_idd":"x"}`), 0o600)
	if _, err := Load(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("typo: err = %v, want ErrInvalid", err)
	}
	zero := filepath.Join(dir, "zero.json")
	os.WriteFile(zero, []byte(`{"heartbeat":"1ms"}`), 0o600)
	if _, err := Load(zero); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tiny heartbeat: err = %v, want ErrInvalid", err)
	}
}

// TestStars: per-sid star overrides read as a JSON object keyed by sid;
// out-of-range ratings and non-numeric sids are rejected at load.
func TestStars(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		json string
		want map[int]int
		ok   bool
	}{
		{`{"stars":{"2019401":3,"2210001":1}}`, map[int]int{2019401: 3, 2210001: 1}, true},
		{`{"stars":{"2019401":4}}`, nil, false},
		{`{"stars":{"2019401":0}}`, nil, false},
		{`{"stars":{"-5":2}}`, nil, false},
		{`{"stars":{"et-1":2}}`, nil, false},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		got, err := Load(p)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("case %d %s: err %v, want ok=%v (ErrInvalid otherwise)", i, c.json, err, c.ok)
			continue
		}
		if c.ok && fmt.Sprint(got.Stars) != fmt.Sprint(c.want) {
			t.Errorf("case %d: stars %v, want %v", i, got.Stars, c.want)
		}
	}
}

func TestDNSBlock(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		json, policy, sink4, sink6 string
	}{
		{`{}`, "alert", "invalid IP", "invalid IP"},
		{`{"engine":{"dns_block":"nxdomain"}}`, "nxdomain", "invalid IP", "invalid IP"},
		{`{"engine":{"dns_block":"sinkhole","sinkhole4":"198.18.99.1"}}`, "sinkhole", "198.18.99.1", "invalid IP"},
		{`{"engine":{"dns_block":"sinkhole","sinkhole4":"198.18.99.1","sinkhole6":"2001:db8::1"}}`, "sinkhole", "198.18.99.1", "2001:db8::1"},
		{`{"engine":{"dns_block":"sinkhole"}}`, "", "", ""},
		{`{"engine":{"dns_block":"sinkhole","sinkhole4":"2001:db8::1"}}`, "", "", ""},
		{`{"engine":{"dns_block":"sinkhole","sinkhole6":"198.18.99.1"}}`, "", "", ""},
		{`{"engine":{"dns_block":"drop"}}`, "", "", ""},
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		got, err := Load(p)
		if c.policy == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("case %d %s: err %v, want ErrInvalid", i, c.json, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("case %d %s: %v", i, c.json, err)
			continue
		}
		pol, s4, s6, _ := got.Engine.DNSPolicy()
		if pol != c.policy || s4.String() != c.sink4 || s6.String() != c.sink6 {
			t.Errorf("case %d: %s %v %v, want %s %s %s", i, pol, s4, s6, c.policy, c.sink4, c.sink6)
		}
	}
}

func TestFileHashes(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		json      string
		md5, sha1 bool
		ok        bool
	}{
		{`{}`, false, false, true},
		{`{"engine":{"file_hashes":["sha256"]}}`, false, false, true},
		{`{"engine":{"file_hashes":["md5","sha1","sha256"]}}`, true, true, true},
		{`{"engine":{"file_hashes":["sha1"]}}`, false, true, true},
		{`{"engine":{"file_hashes":["MD5"]}}`, false, false, false},
		{`{"engine":{"file_hashes":["crc32"]}}`, false, false, false},
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		got, err := Load(p)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d %s: err %v, want ok=%v (ErrInvalid otherwise)", i, c.json, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		md5, sha1, _ := got.Engine.FileDigests()
		if md5 != c.md5 || sha1 != c.sha1 {
			t.Errorf("case %d %s: md5 %v sha1 %v, want %v %v", i, c.json, md5, sha1, c.md5, c.sha1)
		}
	}
}

// TestMaxScanTotal: the box-wide file memory is optional (0: the engine's
// 256 MiB) and may not be smaller than one file.
func TestMaxScanTotal(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		json string
		want int64
		ok   bool
	}{
		{`{}`, 0, true},
		{`{"engine":{"max_scan_size":1048576,"max_scan_total":134217728}}`, 128 << 20, true},
		{`{"engine":{"max_scan_size":16777216,"max_scan_total":1048576}}`, 0, false},
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		got, err := Load(p)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d %s: err %v, want ok=%v (ErrInvalid otherwise)", i, c.json, err, c.ok)
			continue
		}
		if c.ok && got.Engine.MaxScanTotal != c.want {
			t.Errorf("case %d %s: max_scan_total %d, want %d", i, c.json, got.Engine.MaxScanTotal, c.want)
		}
	}
}

// TestBeaconIgnore: absent means the engine's default (nil), an empty list
// ignores nothing, entries parse, a bad one is refused.
func TestBeaconIgnore(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		json string
		n    int // -1: nil (default)
		ok   bool
	}{
		{`{}`, -1, true},
		{`{"engine":{"beacon_ignore":[]}}`, 0, true},
		{`{"engine":{"beacon_ignore":["10.0.0.0/8", ":993", "203.0.113.7:443"]}}`, 3, true},
		{`{"engine":{"beacon_ignore":["mail.example.com"]}}`, 0, false},
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		got, err := Load(p)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d %s: err %v, want ok=%v (ErrInvalid otherwise)", i, c.json, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		ig, _ := got.Engine.BeaconIgnores()
		if c.n < 0 && ig != nil || c.n >= 0 && (ig == nil || len(ig) != c.n) {
			t.Errorf("case %d %s: %v, want %d entries (-1: nil)", i, c.json, ig, c.n)
		}
	}
}
