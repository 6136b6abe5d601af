package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
)

// TestPayloadRulesStopAtStreamDepth: on a keep-alive HTTP connection
// carrying a 2 MB download, a payload rule sees the body's first bytes but
// not what lies past the stream depth (1 MiB), while the next request on
// the same connection still has its URI matched, and the download is still
// scanned to its end by the antivirus.
func TestPayloadRulesStopAtStreamDepth(t *testing.T) {
	const rules = `alert tcp any any -> any any (msg:"early mark"; flow:to_client; content:"RAWMARK-EARLY"; sid:9400001; rev:1;)
alert tcp any any -> any any (msg:"late mark"; flow:to_client; content:"RAWMARK-LATE"; sid:9400002; rev:1;)
alert http any any -> any any (msg:"second request"; http.uri; content:"/second-request"; sid:9400003; rev:1;)
`
	body := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16)
	copy(body[100<<10:], "RAWMARK-EARLY")
	copy(body[3<<19:], "RAWMARK-LATE") // at 1.5 MiB
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40001", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /big.bin HTTP/1.1\r\nHost: lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), 0)
	c.Server(body, 1448)
	c.Client([]byte("GET /second-request HTTP/1.1\r\nHost: lab.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0)
	c.Close()
	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, rules))
	for _, p := range tr.Sorted() {
		e.Process(p.TS, p.Data)
	}
	e.Close()
	got := map[int]bool{}
	for _, a := range rec.alerts() {
		got[a.Alert.SignatureID] = true
	}
	if !got[9400001] || got[9400002] || !got[9400003] {
		t.Errorf("alerts %v: want the early payload mark (9400001) and the second request's URI (9400003), not the mark past the depth (9400002)", got)
	}
	if n := e.Stats().Stream.PayloadPastDepth.Load(); n < 500 {
		t.Errorf("payload_past_depth %d: want the ~700 packets past 1 MiB counted", n)
	}
	files := 0
	for _, ev := range rec.ev {
		if ev.FileInfo != nil && ev.FileInfo.Size == int64(len(body)) {
			files++
		}
	}
	if files != 1 {
		t.Errorf("%d fileinfo events for the whole 2 MB download, want 1 (the file is still followed to its end)", files)
	}
}
