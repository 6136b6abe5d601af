package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// fileinfos returns the fileinfo events recorded so far.
func (r *recorder) fileinfos() []*alert.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*alert.Event
	for _, ev := range r.ev {
		if ev.EventType == alert.TypeFileInfo {
			out = append(out, ev)
		}
	}
	return out
}

func randomBody(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tick is an unrelated datagram (no flow of the downloads), to move the
// engine's clock.
func tick() []byte {
	u := &layers.UDP{SrcPort: 5000, DstPort: 5001}
	return testpcap.IP(netip.MustParseAddr("198.18.1.9"), netip.MustParseAddr("198.18.2.9"), layers.IPProtocolUDP, u, []byte("tick"))
}

// fileEnd returns when the download in pkts (trace) ended: the server's
// last data segment, before the client's ACK.
func fileEnd(pkts []testpcap.Packet) time.Time { return pkts[len(pkts)-2].TS }

// retime moves pkts to start after from, step apart.
func retime(pkts []testpcap.Packet, from time.Time, step time.Duration) []testpcap.Packet {
	for i := range pkts {
		pkts[i].TS = from.Add(time.Duration(i+1) * step)
	}
	return pkts
}

// TestDeferredReports: the packet completing a clean 300 KB download (its
// SHA-256 runs on the helper) is released without waiting for the digest;
// the fileinfo event follows, with the right digest, at the first packet
// reportDelay after the file's end (or when Idle is called then), never
// earlier: packet times decide, so replays stay reproducible.
func TestDeferredReports(t *testing.T) {
	body := randomBody(300<<10, 1)
	var rec recorder
	e := New(Config{Sink: &rec}, defaultBundle(t))
	defer e.Close()
	pkts := trace(t0, 40000, "big.bin", body)
	for _, p := range pkts {
		e.Process(p.TS, p.Data)
	}
	end := fileEnd(pkts)
	if got := rec.fileinfos(); len(got) != 0 {
		t.Fatalf("fileinfo sent at the file's end (%+v); want it deferred", got[0].FileInfo)
	}
	if n := e.stats.FileReportsDeferred.Load(); n != 1 {
		t.Fatalf("file_reports_deferred = %d, want 1", n)
	}
	if d := e.Idle(end.Add(time.Millisecond)); d != reportDelay-time.Millisecond {
		t.Errorf("Idle 1 ms after the end asks to be called in %v, want %v", d, reportDelay-time.Millisecond)
	}
	e.Process(end.Add(reportDelay-time.Microsecond), tick())
	if got := rec.fileinfos(); len(got) != 0 {
		t.Fatal("fileinfo sent before it was due")
	}
	e.Process(end.Add(reportDelay), tick())
	got := rec.fileinfos()
	if len(got) != 1 {
		t.Fatalf("%d fileinfo events at the due packet, want 1", len(got))
	}
	fi := got[0].FileInfo
	if fi.Filename != "big.bin" || fi.SHA256 != sha256Hex(body) || fi.Size != int64(len(body)) || fi.Verdict != "clean" {
		t.Errorf("fileinfo %+v, want big.bin, %d bytes, clean, sha256 %s", fi, len(body), sha256Hex(body))
	}
	if !got[0].Timestamp.Time().Equal(end) {
		t.Errorf("fileinfo timestamp %v, want the file's end %v", got[0].Timestamp.Time(), end)
	}
	if d := e.Idle(end.Add(time.Second)); d != 0 {
		t.Errorf("Idle with nothing waiting asks to be called in %v, want 0", d)
	}

	// Idle sends a due report when no packet comes.
	pkts = trace(end.Add(time.Second), 40001, "second.bin", randomBody(300<<10, 2))
	for _, p := range pkts {
		e.Process(p.TS, p.Data)
	}
	if d := e.Idle(fileEnd(pkts).Add(reportDelay)); d != 0 || len(rec.fileinfos()) != 2 {
		t.Errorf("Idle at the due time: %d fileinfo events, asks again in %v; want 2 and 0", len(rec.fileinfos()), d)
	}
}

// TestReportsNotDeferred: the digest is waited for, and the fileinfo sent
// at the file's end, when something deciding the verdict reads it: a
// filesha256 rule, a neutralised file remembered by its hash, or the file
// is malicious (its alert and the Blocked table carry the SHA-256).
func TestReportsNotDeferred(t *testing.T) {
	body := randomBody(300<<10, 3)
	malware := append(append([]byte(nil), eicar...), body...)
	other := strings.Repeat("ab", 32)
	ruleSet, errs := rules.Parse(strings.NewReader(`alert http any any -> any any (msg:"listed file"; filesha256:`+other+`; sid:1;)`), "sha.rules", nil)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		setup   func(*Config) // nil: none
		rules   *rules.Set
		verdict string
	}{
		{name: "filesha256 rule", body: body, rules: ruleSet, verdict: "clean"},
		{name: "blocked table", body: body, verdict: "clean", setup: func(c *Config) {
			c.Blocked = NewBlocked()
			c.Blocked.add(blockedEntry{threat: "x", sha256: other, expires: t0.Add(time.Hour)}, "sha256:"+other)
		}},
		{name: "malicious", body: malware, verdict: "malicious"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			cfg := Config{Sink: &rec}
			if tc.setup != nil {
				tc.setup(&cfg)
			}
			b := *defaultBundle(t)
			if tc.rules != nil {
				b.Rules = tc.rules
			}
			e := New(cfg, &b)
			defer e.Close()
			pkts := trace(t0, 40000, "f.bin", tc.body)
			for _, p := range pkts {
				e.Process(p.TS, p.Data)
			}
			got := rec.fileinfos()
			if len(got) != 1 {
				t.Fatalf("%d fileinfo events at the file's end, want 1 (not deferred)", len(got))
			}
			if fi := got[0].FileInfo; fi.SHA256 != sha256Hex(tc.body) || fi.Verdict != tc.verdict {
				t.Errorf("fileinfo %+v, want %s with sha256 %s", fi, tc.verdict, sha256Hex(tc.body))
			}
			if n := e.stats.FileReportsDeferred.Load(); n != 0 {
				t.Errorf("file_reports_deferred = %d, want 0", n)
			}
		})
	}
}

// TestDeferredReportsInOrder: a small file ending while a large one's
// report waits is reported after it; a burst of downloads ending faster
// than reportDelay (more than maxReports waiting) gets every report, in
// the order the files ended, each with its own digest, and the file
// memory is all given back at Close.
func TestDeferredReportsInOrder(t *testing.T) {
	var rec recorder
	mem := NewFileMemory()
	e := New(Config{Sink: &rec, FileMemory: mem}, defaultBundle(t))
	var want []string
	var names []string
	now := t0
	for i := range 12 {
		size := 200 << 10
		if i%3 == 1 {
			size = 700 // hashed at once, but queued behind the reports before it
		}
		body := randomBody(size, int64(10+i))
		name := fmt.Sprintf("f%d.bin", i)
		pkts := retime(trace(now, 41000+i, name, body), now, time.Microsecond)
		for _, p := range pkts {
			e.Process(p.TS, p.Data)
		}
		now = pkts[len(pkts)-1].TS
		want = append(want, sha256Hex(body))
		names = append(names, name)
	}
	if n := len(rec.fileinfos()); n > len(want)-1 || n == 0 {
		t.Errorf("%d of %d fileinfo events before the last reports were due; want some sent (over maxReports) and the last waiting", n, len(want))
	}
	e.Close()
	got := rec.fileinfos()
	if len(got) != len(want) {
		t.Fatalf("%d fileinfo events, want %d", len(got), len(want))
	}
	for i, ev := range got {
		if ev.FileInfo.Filename != names[i] || ev.FileInfo.SHA256 != want[i] {
			t.Errorf("report %d: %s %s, want %s %s", i, ev.FileInfo.Filename, ev.FileInfo.SHA256, names[i], want[i])
		}
	}
	if mem.Load() != 0 {
		t.Errorf("file memory %d after Close, want 0", mem.Load())
	}
}

// TestDeferredReportsUnderMemoryCap: reports waiting for their digest hold
// their files' buffers; when the file memory runs short they are sent so
// the next file is still kept and scanned whole (without that, the fourth
// of these downloads would be scanned only partially).
func TestDeferredReportsUnderMemoryCap(t *testing.T) {
	var rec recorder
	e := New(Config{Sink: &rec, MaxScanTotal: 1 << 20}, defaultBundle(t))
	defer e.Close()
	now := t0
	for i := range 6 {
		pkts := retime(trace(now, 42000+i, fmt.Sprintf("g%d.bin", i), randomBody(300<<10, int64(30+i))), now, time.Microsecond)
		for _, p := range pkts {
			e.Process(p.TS, p.Data)
		}
		now = pkts[len(pkts)-1].TS
	}
	e.sendReports(time.Time{}, true, 0)
	got := rec.fileinfos()
	if len(got) != 6 {
		t.Fatalf("%d fileinfo events, want 6", len(got))
	}
	for _, ev := range got {
		if ev.FileInfo.Verdict != "clean" {
			t.Errorf("%s: %s, want clean (kept whole under the 1 MiB file memory)", ev.FileInfo.Filename, ev.FileInfo.Verdict)
		}
	}
	if got[0].FileInfo.Filename != "g0.bin" {
		t.Errorf("first report %s, want g0.bin", got[0].FileInfo.Filename)
	}
}

// niceThreads returns the ids of this process's threads at nice 19.
func niceThreads(t *testing.T) map[string]bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip("no /proc/self/task:", err)
	}
	ids := map[string]bool{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command (in parentheses): state is field 3,
		// nice field 19.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 16 && f[16] == "19" {
			ids[task.Name()] = true
		}
	}
	return ids
}

// TestHashHelperLowPriority: the SHA-256 helper runs on a thread of its
// own at the lowest priority (nice 19), so hashing gets the CPU time the
// traffic leaves; the thread ends when the engine closes.
func TestHashHelperLowPriority(t *testing.T) {
	before := niceThreads(t) // helpers of engines closed earlier may still be ending
	var rec recorder
	e := New(Config{Sink: &rec}, defaultBundle(t))
	body := randomBody(300<<10, 7)
	if _, ev := serve(t, e, &rec, t0, 40000, "n.bin", body); ev.FileInfo.SHA256 != sha256Hex(body) {
		t.Fatalf("sha256 %s, want %s", ev.FileInfo.SHA256, sha256Hex(body))
	}
	var helper []string
	for id := range niceThreads(t) {
		if !before[id] {
			helper = append(helper, id)
		}
	}
	if len(helper) != 1 {
		t.Fatalf("new threads at nice 19 with the helper running: %v, want exactly one", helper)
	}
	e.Close()
	deadline := time.Now().Add(2 * time.Second)
	for niceThreads(t)[helper[0]] && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if niceThreads(t)[helper[0]] {
		t.Errorf("the helper's thread %s outlived Close", helper[0])
	}
}
