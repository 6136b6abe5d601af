package engine

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// trace is one download of body as name from client port port, starting
// at start.
func trace(start time.Time, port int, name string, body []byte) []testpcap.Packet {
	tr := testpcap.NewTrace(start)
	c := tr.NewTCP(fmt.Sprintf("198.18.1.2:%d", port), "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /"+name+" HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), 0)
	c.Server(body, 1448)
	return tr.Sorted()
}

// run processes pkts through e and returns the strongest verdict and the
// last fileinfo event recorded for name.
func run(t *testing.T, e *Engine, rec *recorder, pkts []testpcap.Packet, name string) (Verdict, *alert.Event) {
	t.Helper()
	worst := Accept
	for _, p := range pkts {
		worst = max(worst, e.Process(p.TS, p.Data))
	}
	e.sendReports(time.Time{}, true, 0) // reports waiting for their SHA-256 (TestDeferredReports)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.ev) - 1; i >= 0; i-- {
		if ev := rec.ev[i]; ev.EventType == alert.TypeFileInfo && ev.FileInfo.Filename == name {
			return worst, ev
		}
	}
	t.Fatalf("no fileinfo for %s", name)
	return 0, nil
}

// serve runs one download through e (trace, then run).
func serve(t *testing.T, e *Engine, rec *recorder, start time.Time, port int, name string, body []byte) (Verdict, *alert.Event) {
	t.Helper()
	return run(t, e, rec, trace(start, port, name, body), name)
}

// TestFileDigests: a file always gets its SHA-256; its MD5 and SHA-1 only
// when the config asks (engine.file_hashes), a rule reads them (filemd5,
// filesha1) or an AV hash list of that kind names files of any size; the
// fileinfo event carries exactly the digests computed, and each is right.
func TestFileDigests(t *testing.T) {
	body := []byte("a file for the digests, listed nowhere but in this test")
	m5, s1, s256 := md5.Sum(body), sha1.Sum(body), sha256.Sum256(body)
	hexMD5, hexSHA1, hexSHA256 := hex.EncodeToString(m5[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:])
	ruleMD5, errs := rules.Parse(strings.NewReader(`alert http any any -> any any (msg:"listed md5"; filemd5:`+hexMD5+`; sid:1;)`), "md5.rules", nil)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	list := filepath.Join(t.TempDir(), "iocs.txt")
	if err := os.WriteFile(list, []byte(hexSHA1+" Listed.By.SHA1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withList, err := bundle.Load(bundle.Options{HashFiles: []string{list}})
	if err != nil {
		t.Fatal(err)
	}
	list256 := filepath.Join(t.TempDir(), "iocs256.txt")
	if err := os.WriteFile(list256, []byte(hexSHA256+" Listed.By.SHA256\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withList256, err := bundle.Load(bundle.Options{HashFiles: []string{list256}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		cfg       Config
		b         func() *bundle.Bundle
		md5, sha1 bool
		sid       int    // a rule alert expected
		threat    string // an AV verdict expected
	}{
		{name: "default", b: func() *bundle.Bundle { return defaultBundle(t) }},
		{name: "config md5+sha1", cfg: Config{FileMD5: true, FileSHA1: true}, b: func() *bundle.Bundle { return defaultBundle(t) }, md5: true, sha1: true},
		{name: "config sha1", cfg: Config{FileSHA1: true}, b: func() *bundle.Bundle { return defaultBundle(t) }, sha1: true},
		{name: "filemd5 rule", b: func() *bundle.Bundle { b := *defaultBundle(t); b.Rules = ruleMD5; return &b }, md5: true, sid: 1},
		{name: "sha1 hash list", b: func() *bundle.Bundle { return withList }, sha1: true, threat: "Listed.By.SHA1"},
		{name: "sha256 hash list", b: func() *bundle.Bundle { return withList256 }, threat: "Listed.By.SHA256"},
	} {
		var rec recorder
		cfg := c.cfg
		cfg.Sink, cfg.Reset = &rec, &resets{}
		e := New(cfg, c.b())
		v, ev := serve(t, e, &rec, t0, 40000, "digests.bin", body)
		fi := ev.FileInfo
		if fi.SHA256 != hexSHA256 {
			t.Errorf("%s: sha256 %q, want %s", c.name, fi.SHA256, hexSHA256)
		}
		if want := map[bool]string{true: hexMD5}[c.md5]; fi.MD5 != want {
			t.Errorf("%s: md5 %q, want %q", c.name, fi.MD5, want)
		}
		if want := map[bool]string{true: hexSHA1}[c.sha1]; fi.SHA1 != want {
			t.Errorf("%s: sha1 %q, want %q", c.name, fi.SHA1, want)
		}
		fired := 0
		for _, a := range rec.alerts() {
			if a.Alert.SignatureID == c.sid {
				fired = c.sid
			}
		}
		if c.sid != 0 && fired != c.sid {
			t.Errorf("%s: rule %d did not fire: %v", c.name, c.sid, rec.alerts())
		}
		if fi.Threat != c.threat || (c.threat != "") != (v == Reject) {
			t.Errorf("%s: threat %q, last verdict %v; want %q", c.name, fi.Threat, v, c.threat)
		}
	}
}

// TestFileBuffersReused: a worker serving one download after another
// keeps the buffer of the last file for the next (no new 1 MB per
// download), a reused buffer holds only the new file (EICAR caught, then a
// clean file of its size clean), the idle buffers are counted in the file
// memory and given back after a quiet minute and at Close.
func TestFileBuffersReused(t *testing.T) {
	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(big)
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
	at := t0
	next := func() time.Time { at = at.Add(31 * time.Second); return at } // the previous flow has expired
	if _, ev := serve(t, e, &rec, next(), 40000, "first.bin", big); ev.FileInfo.Verdict != "clean" {
		t.Fatalf("first download: %+v", ev.FileInfo)
	}
	mem := e.Counters()["file_memory_bytes"]
	if mem < 1<<20 {
		t.Errorf("file memory after a download: %d, want the idle 1 MiB buffer counted", mem)
	}
	pkts := trace(next(), 40001, "second.bin", big)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if _, ev := run(t, e, &rec, pkts, "second.bin"); ev.FileInfo.Verdict != "clean" {
		t.Fatalf("second download: %+v", ev.FileInfo)
	}
	runtime.ReadMemStats(&ms1)
	if n := ms1.TotalAlloc - ms0.TotalAlloc; n > 256<<10 {
		t.Errorf("second 1 MB download allocated %d bytes, want its file buffer reused (< 256 KiB)", n)
	}
	if got := e.Counters()["file_memory_bytes"]; got != mem {
		t.Errorf("file memory after the second download: %d, want %d (one buffer, reused)", got, mem)
	}

	// The reused buffer (1 MiB, dirty) serves small files: only their bytes count.
	if v, ev := serve(t, e, &rec, next(), 40002, "eicar.com", eicar); v != Reject || ev.FileInfo.Verdict != "malicious" {
		t.Errorf("EICAR in a reused buffer: verdict %v, %+v", v, ev.FileInfo)
	}
	clean := []byte(strings.Repeat("c", len(eicar)))
	if v, ev := serve(t, e, &rec, next(), 40003, "clean.txt", clean); v != Accept || ev.FileInfo.Verdict != "clean" {
		t.Errorf("clean file after EICAR in the same buffer: verdict %v, %+v", v, ev.FileInfo)
	}

	// A quiet minute gives the idle buffers back.
	e.Process(at.Add(fileBufIdle+time.Second), nil)
	if got := e.Counters()["file_memory_bytes"]; got != 0 {
		t.Errorf("file memory after a quiet minute: %d, want 0", got)
	}
	serve(t, e, &rec, next().Add(fileBufIdle), 40004, "third.bin", big)
	e.Close()
	if got := e.Counters()["file_memory_bytes"]; got != 0 {
		t.Errorf("file memory after Close: %d, want 0", got)
	}
}

// TestFileMemoryCap: idle buffers count against MaxScanTotal, and an
// engine drops its own when a file needs the room: a file that fits the
// budget is scanned whole, not cut short by the idle buffer of the file
// before. Bytes kept and idle never exceed the cap.
func TestFileMemoryCap(t *testing.T) {
	const total = 4 << 20
	small := make([]byte, 200<<10)
	large := make([]byte, total-100<<10) // its buffer (4 MiB) and the small idle one do not fit together
	var rec recorder
	mem := NewFileMemory()
	e := New(Config{Sink: &rec, MaxScanTotal: total, FileMemory: mem}, defaultBundle(t))
	if _, ev := serve(t, e, &rec, t0, 40000, "small.bin", small); ev.FileInfo.Verdict != "clean" {
		t.Fatalf("small: %+v", ev.FileInfo)
	}
	if mem.Load() == 0 || mem.Load() > total/16 {
		t.Fatalf("file memory with the small file's buffer idle: %d, want 0 < n <= %d", mem.Load(), total/16)
	}
	if _, ev := serve(t, e, &rec, t0.Add(31*time.Second), 40001, "large.bin", large); ev.FileInfo.Verdict != "clean" {
		t.Errorf("large file within the budget: %q, want clean (scanned whole)", ev.FileInfo.Verdict)
	}
	if mem.Load() > total {
		t.Errorf("file memory %d over the cap %d", mem.Load(), total)
	}
	// A second engine sharing the memory while the first one's buffers are
	// idle: the budget still holds.
	e2 := New(Config{Sink: &rec, MaxScanTotal: total, FileMemory: mem}, defaultBundle(t))
	serve(t, e2, &rec, t0.Add(62*time.Second), 40002, "other.bin", large)
	if mem.Load() > total {
		t.Errorf("file memory %d over the cap %d with two engines", mem.Load(), total)
	}
	e.Close()
	e2.Close()
	if mem.Load() != 0 {
		t.Errorf("file memory after both engines closed: %d, want 0", mem.Load())
	}
}

// TestFileBufSize: size classes round up by at most 1/8 and never past
// the scan limit unless asked for more.
func TestFileBufSize(t *testing.T) {
	for _, c := range []struct{ n, limit, want int }{
		{1, 16 << 20, fileBufMin},
		{fileBufMin, 16 << 20, fileBufMin},
		{1 << 20, 16 << 20, 1 << 20},
		{1_000_000, 16 << 20, 1 << 20},
		{(1 << 20) + 1, 16 << 20, (1 << 20) + (1 << 17)},
		{15_000_000, 16 << 20, 15 << 20},
		{16<<20 - 1, 16 << 20, 16 << 20},
		{16<<20 + 5, 16 << 20, 16<<20 + 5},
	} {
		got := fileBufSize(c.n, c.limit)
		if got != c.want {
			t.Errorf("fileBufSize(%d, %d) = %d, want %d", c.n, c.limit, got, c.want)
		}
		if got < c.n || got > c.n+c.n/8+fileBufMin {
			t.Errorf("fileBufSize(%d) = %d: not within 1/8 above", c.n, got)
		}
	}
}

// TestFileSHA256 checks the SHA-256 in every way a file can end: hashed at
// its end (small: inline; larger: beside the scan), caught up when the
// file outgrows MaxScanSize or the box's file memory, grown from an
// unknown size (chunked), and streamed when a SHA-256 list needs it
// before the scan.
func TestFileSHA256(t *testing.T) {
	body := make([]byte, 300<<10)
	rand.New(rand.NewSource(2)).Read(body)
	list := filepath.Join(t.TempDir(), "other.txt")
	if err := os.WriteFile(list, []byte(strings.Repeat("ab", 32)+" Something.Else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	with256, err := bundle.Load(bundle.Options{HashFiles: []string{list}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	listed := filepath.Join(t.TempDir(), "listed.txt")
	if err := os.WriteFile(listed, []byte(hex.EncodeToString(sum[:])+" Big.Listed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withBody, err := bundle.Load(bundle.Options{HashFiles: []string{listed}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		cfg     Config
		b       *bundle.Bundle
		n       int
		chunked bool
		verdict string
	}{
		{name: "small", n: 1000, verdict: "clean"},
		{name: "beside the scan", n: len(body), verdict: "clean"},
		{name: "over MaxScanSize", cfg: Config{MaxScanSize: 100 << 10}, n: len(body), verdict: "partially-scanned"},
		{name: "over the file memory", cfg: Config{MaxScanTotal: 1}, n: len(body), verdict: "partially-scanned"},
		{name: "chunked", n: len(body), chunked: true, verdict: "clean"},
		{name: "chunked over MaxScanSize", cfg: Config{MaxScanSize: 200 << 10}, n: len(body), chunked: true, verdict: "partially-scanned"},
		{name: "sha256 list", b: with256, n: len(body), verdict: "clean"},
		{name: "sha256 list naming it", b: withBody, n: len(body), verdict: "malicious"},
		{name: "sha256 list, chunked", b: withBody, n: len(body), chunked: true, verdict: "malicious"},
		{name: "sha256 list, over MaxScanSize", cfg: Config{MaxScanSize: 100 << 10}, b: withBody, n: len(body), verdict: "partially-scanned"},
	} {
		data := body[:c.n]
		want := sha256.Sum256(data)
		hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(data))
		wire := data
		if c.chunked {
			hdr, wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(data, 5000)
		}
		b := c.b
		if b == nil {
			b = defaultBundle(t)
		}
		var rec recorder
		cfg := c.cfg
		cfg.Sink = &rec
		e := New(cfg, b)
		tr := testpcap.NewTrace(t0)
		conn := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
		conn.Client([]byte("GET /f.bin HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		conn.Server([]byte(hdr), 0)
		conn.Server(wire, 1448)
		_, ev := run(t, e, &rec, tr.Sorted(), "f.bin")
		fi := ev.FileInfo
		if fi.SHA256 != hex.EncodeToString(want[:]) || fi.Size != int64(len(data)) || fi.Verdict != c.verdict {
			t.Errorf("%s: size %d sha256 %s verdict %s; want %d %x %s", c.name, fi.Size, fi.SHA256, fi.Verdict, len(data), want, c.verdict)
		}
	}
}

// TestOverflowHashInterleaved: twelve downloads past MaxScanSize at once
// on one engine, their segments interleaved, so the hashing helper
// switches files at every piece and more files than it has pieces are
// open: every SHA-256 is still the file's.
func TestOverflowHashInterleaved(t *testing.T) {
	const files = 12
	tr := testpcap.NewTrace(t0)
	conns := make([]*testpcap.TCP, files)
	bodies := make([][]byte, files)
	for i := range conns {
		bodies[i] = make([]byte, 200<<10+i*777)
		rand.New(rand.NewSource(int64(i))).Read(bodies[i])
		conns[i] = tr.NewTCP(fmt.Sprintf("198.18.1.2:%d", 41000+i), "198.18.2.2:80").Handshake()
		conns[i].Client([]byte(fmt.Sprintf("GET /f%d.bin HTTP/1.1\r\nHost: www.lab.test\r\n\r\n", i)), 0)
		conns[i].Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(bodies[i]))), 0)
	}
	for off := 0; ; off += 3000 {
		sent := false
		for i, c := range conns {
			if off < len(bodies[i]) {
				c.Server(bodies[i][off:min(off+3000, len(bodies[i]))], 1448)
				sent = true
			}
		}
		if !sent {
			break
		}
	}
	var rec recorder
	e := New(Config{Sink: &rec, MaxScanSize: 50 << 10}, defaultBundle(t))
	for i := range files {
		name := fmt.Sprintf("f%d.bin", i)
		if i == 0 {
			run(t, e, &rec, tr.Sorted(), name)
		}
		var fi *alert.FileInfo
		for _, ev := range rec.ev {
			if ev.EventType == alert.TypeFileInfo && ev.FileInfo.Filename == name {
				fi = ev.FileInfo
			}
		}
		want := sha256.Sum256(bodies[i])
		if fi == nil || fi.SHA256 != hex.EncodeToString(want[:]) || fi.Verdict != "partially-scanned" {
			t.Errorf("%s: %+v, want sha256 %x, partially-scanned", name, fi, want)
		}
	}
	e.Close()
}

// TestFileMemoryConcurrent: five 3 MiB downloads at once under an 8 MiB
// file memory: the two whose buffers fit are kept and scanned whole, the
// others are scanned partially. (Budget checked per append against the
// reserved buffers, all five used to end partially scanned.)
func TestFileMemoryConcurrent(t *testing.T) {
	const files, size = 5, 3 << 20
	tr := testpcap.NewTrace(t0)
	conns := make([]*testpcap.TCP, files)
	body := make([]byte, size)
	rand.New(rand.NewSource(3)).Read(body)
	for i := range conns {
		conns[i] = tr.NewTCP(fmt.Sprintf("198.18.1.2:%d", 41000+i), "198.18.2.2:80").Handshake()
		conns[i].Client([]byte(fmt.Sprintf("GET /f%d.bin HTTP/1.1\r\nHost: www.lab.test\r\n\r\n", i)), 0)
		conns[i].Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)), 0)
	}
	for off := 0; off < size; off += 16 << 10 {
		for _, c := range conns {
			c.Server(body[off:off+16<<10], 1448)
		}
	}
	var rec recorder
	mem := NewFileMemory()
	e := New(Config{Sink: &rec, MaxScanTotal: 8 << 20, FileMemory: mem, StreamDepth: -1}, defaultBundle(t))
	verdicts(e, tr.Sorted())
	e.sendReports(time.Time{}, true, 0)
	got := map[string]int{}
	for _, ev := range rec.ev {
		if ev.EventType == alert.TypeFileInfo {
			got[ev.FileInfo.Verdict]++
		}
	}
	if got["clean"] != 2 || got["partially-scanned"] != 3 {
		t.Errorf("verdicts %v, want 2 clean (kept whole) and 3 partially-scanned", got)
	}
	if mem.Load() > 8<<20 {
		t.Errorf("file memory %d over the 8 MiB cap", mem.Load())
	}
}
