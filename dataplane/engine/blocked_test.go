package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
)

// TestResumeOfBlockedFileRefused: after a malicious download is cut, a
// Range resume of the same URL by another client (another worker sharing
// the Blocked table) is reset at its request, before the server sends a
// byte; the same content under another URL is blocked by its hash even on a
// worker without a scanner; an unrelated URL still works.
func TestResumeOfBlockedFileRefused(t *testing.T) {
	file := append(append([]byte(nil), eicar...), bytes.Repeat([]byte{'A'}, 5000)...)
	shared := NewBlocked()
	var rec recorder
	var rs resets
	w1 := New(Config{Sink: &rec, Reset: &rs, Blocked: shared}, defaultBundle(t))

	download := func(e *Engine, client, host, uri string, rangeHdr bool, at time.Time) (reqVerdict Verdict, last Verdict) {
		tr := testpcap.NewTrace(at)
		c := tr.NewTCP(client, "198.18.2.2:80").Handshake()
		req := "GET " + uri + " HTTP/1.1\r\nHost: " + host + "\r\n"
		status, body := "200 OK", file
		if rangeHdr {
			req += "Range: bytes=1000-\r\n"
			status, body = "206 Partial Content", file[1000:]
		}
		c.Client([]byte(req+"\r\n"), 0)
		c.Server([]byte(fmt.Sprintf("HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n", status, len(body))), 0)
		c.Server(body, 1400)
		seen := false
		for _, p := range tr.Sorted() {
			v := e.Process(p.TS, p.Data)
			if !seen && bytes.Contains(p.Data, []byte("GET ")) {
				reqVerdict, seen = v, true
			}
			last = v
		}
		return reqVerdict, last
	}

	if _, last := download(w1, "198.18.1.2:40000", "www.lab.test", "/files/x.bin", false, t0); last == Accept {
		t.Fatal("the malicious download was not cut")
	}
	if shared.Len() != 2 {
		t.Fatalf("Blocked holds %d entries after one neutralised file, want 2 (URL and hash)", shared.Len())
	}

	// Another worker, another client, the same URL (host case and port differ).
	var rec2 recorder
	w2 := New(Config{Sink: &rec2, Reset: &rs, Blocked: shared}, defaultBundle(t))
	if v, _ := download(w2, "198.18.1.3:40001", "WWW.Lab.Test:80", "/files/x.bin", true, t0.Add(time.Minute)); v != Reject {
		t.Fatalf("the resume request got %v, want Reject", v)
	}
	al := rec2.alerts()
	if len(al) != 1 || al[0].Alert.SignatureID != sidAVRetry || al[0].FileInfo == nil || al[0].FileInfo.Threat == "" || al[0].HTTP == nil || al[0].HTTP.URL != "/files/x.bin" {
		t.Fatalf("want one retry alert naming the URL and threat, got %+v", al)
	}

	// The same bytes elsewhere, on a worker with no scanner at all.
	noAV := *defaultBundle(t)
	noAV.AV = nil
	var rec3 recorder
	w3 := New(Config{Sink: &rec3, Reset: &rs, Blocked: shared}, &noAV)
	if _, last := download(w3, "198.18.1.4:40002", "mirror.lab.test", "/other/name.bin", false, t0.Add(2*time.Minute)); last == Accept {
		t.Fatal("the same content under another URL was let through on a worker without a scanner")
	}
	// Control: an unrelated clean URL on the same worker passes.
	file = bytes.Repeat([]byte{'B'}, 3000)
	if v, last := download(w3, "198.18.1.4:40003", "mirror.lab.test", "/clean.bin", false, t0.Add(3*time.Minute)); v != Accept || last != Accept {
		t.Fatalf("a clean download was blocked: request %v, last %v", v, last)
	}
	// Entries expire.
	shared.expire(t0.Add(BlockedTTL + time.Hour))
	if shared.Len() != 0 {
		t.Fatalf("%d entries left after their TTL", shared.Len())
	}
}
