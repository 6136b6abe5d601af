package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests run the utmd binary as an analyst would: Suricata's flags,
// eve.json out, messages on stderr.

var utmd string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "utmd-test")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	utmd = filepath.Join(dir, "utmd")
	if out, err := exec.Command("go", "build", "-o", utmd, ".").CombinedOutput(); err != nil {
		fmt.Printf("building utmd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const pcaps = "../../../dataplane/replay/testdata/"

type event struct {
	EventType string `json:"event_type"`
	Stars     int    `json:"stars"`
	Alert     struct {
		Action      string `json:"action"`
		SignatureID int    `json:"signature_id"`
	} `json:"alert"`
	FileInfo struct {
		SHA256 string `json:"sha256"`
	} `json:"fileinfo"`
}

// execReplay runs utmd -r pcap with extra flags and returns eve.json's events
// and stderr.
func execReplay(t *testing.T, pcap string, extra ...string) ([]event, string) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-r", pcaps + pcap, "-l", dir}, extra...)
	var stderr bytes.Buffer
	cmd := exec.Command(utmd, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("utmd %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	f, err := os.Open(filepath.Join(dir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("eve.json line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs, stderr.String()
}

func sids(evs []event) []int {
	var s []int
	for _, e := range evs {
		if e.EventType == "alert" {
			s = append(s, e.Alert.SignatureID)
		}
	}
	return s
}

func TestReplayDefaultBundle(t *testing.T) {
	evs, _ := execReplay(t, "http-eicar.pcap")
	var file, alert bool
	for _, e := range evs {
		switch {
		case e.EventType == "fileinfo" && e.FileInfo.SHA256 == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f":
			file = true
		case e.EventType == "alert" && e.Alert.SignatureID == 2210001 && e.Stars == 3 && e.Alert.Action == "blocked":
			alert = true
		}
	}
	if !file || !alert {
		t.Fatalf("events %+v: want the EICAR fileinfo and a ★★★ blocked alert sid 2210001", evs)
	}
	if got := sids(mustReplay(t, "http-benign.pcap")); len(got) != 0 {
		t.Fatalf("benign capture raised alerts %v", got)
	}
}

func mustReplay(t *testing.T, pcap string) []event {
	evs, _ := execReplay(t, pcap)
	return evs
}

// -S replaces the default rules; a bad line is reported with file:line
// and skipped, the others load.
func TestReplayRuleFile(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "local.rules")
	os.WriteFile(rules, []byte(`# local rules
alert http any any -> any any (msg:"local jndi"; flow:to_server; http.header; content:"jndi"; nocase; sid:9000001; rev:1;)
alert http any any -> any any (msg:"broken"; content:"x"; no_such_keyword; sid:9000002;)
`), 0o644)
	evs, stderr := execReplay(t, "http-log4shell.pcap", "-S", rules)
	if got := sids(evs); len(got) != 1 || got[0] != 9000001 {
		t.Fatalf("alerts %v, want only the local rule 9000001 (the default 2200001 is replaced)", got)
	}
	if !strings.Contains(stderr, "local.rules:3") || !strings.Contains(stderr, "no_such_keyword") {
		t.Fatalf("stderr does not name the bad line local.rules:3 and its keyword:\n%s", stderr)
	}
	// Without -S the default bundle's rule fires.
	if got := sids(mustReplay(t, "http-log4shell.pcap")); len(got) == 0 || got[0] != 2200001 {
		t.Fatalf("default bundle alerts %v, want 2200001", got)
	}
}

func TestTestRules(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rules, []byte("alert tcp any any -> any any (msg:\"ok\"; content:\"a\"; sid:1;)\nnot a rule\n"), 0o644)
	out, err := exec.Command(utmd, "-T", "-S", rules).CombinedOutput()
	if err != nil {
		t.Fatalf("utmd -T: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "loaded=1 rejected=1") || !strings.Contains(string(out), "r.rules:2") {
		t.Fatalf("utmd -T output:\n%s\nwant loaded=1 rejected=1 and r.rules:2", out)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-r", "/nonexistent.pcap", "-l", t.TempDir()},
		{"-S", "/nonexistent.rules", "-T"},
		{"-c", "/nonexistent.json"},
	} {
		out, err := exec.Command(utmd, args...).CombinedOutput()
		if err == nil {
			t.Errorf("utmd %v succeeded; want an error", args)
			continue
		}
		if !strings.Contains(string(out), "nonexistent") {
			t.Errorf("utmd %v: the message does not name the file:\n%s", args, out)
		}
	}
}

// --inspect=none in replay: decode and track only, so the EICAR download
// raises nothing (the benchmark baseline runs the same path).
func TestReplayInspectNone(t *testing.T) {
	evs, _ := execReplay(t, "http-eicar.pcap", "--inspect=none")
	if len(evs) != 0 {
		t.Fatalf("--inspect=none wrote events %+v; want none", evs)
	}
	if got := sids(mustReplay(t, "http-eicar.pcap")); len(got) == 0 {
		t.Fatal("full inspection of the same capture raised nothing: the check above proves nothing")
	}
}

// --intel adds indicator files to the default bundle's (repeatable, format
// detected): the benign capture's host, listed in a hosts file, raises the
// C&C HTTP host alert; a Feodo-style CSV naming nothing in the capture adds
// nothing; without the flag the capture stays clean.
func TestReplayIntelFlag(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "blocked.hosts")
	os.WriteFile(hosts, []byte("# office blocklist\n0.0.0.0 www.lab.test\n"), 0o644)
	feodo := filepath.Join(dir, "ipblocklist.csv")
	os.WriteFile(feodo, []byte("# abuse.ch Feodo Tracker\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2026-11-01 10:00:00\",\"198.51.100.7\",\"443\",\"online\",\"2026-11-22\",\"Emotet\"\n"), 0o644)
	if got := sids(mustReplay(t, "http-benign.pcap")); len(got) != 0 {
		t.Fatalf("without --intel the benign capture raised %v", got)
	}
	evs, stderr := execReplay(t, "http-benign.pcap", "--intel", hosts, "--intel", feodo)
	got := sids(evs)
	if len(got) == 0 || got[0] != 2220004 {
		t.Fatalf("with --intel listing its host: alerts %v, want 2220004\n%s", got, stderr)
	}
}
