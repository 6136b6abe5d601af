package engine

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testfiles"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/telemetry/alert"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func zipOf(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := zip.NewWriter(&out)
	f, _ := w.Create(name)
	f.Write(b)
	w.Close()
	return out.Bytes()
}

func chunked(b []byte, n int) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		k := min(n, len(b))
		fmt.Fprintf(&out, "%x\r\n", k)
		out.Write(b[:k])
		out.WriteString("\r\n")
		b = b[k:]
	}
	out.WriteString("0\r\n\r\n")
	return out.Bytes()
}

// download runs one HTTP exchange through a fresh engine and returns the
// verdicts, alerts and fileinfo events.
func download(t *testing.T, cfg Config, req, respHeader string, body []byte) ([]Verdict, []*alert.Event, []*alert.Event) {
	t.Helper()
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte(req), 1000)
	if respHeader != "" {
		c.Server([]byte(respHeader), 0)
		c.Server(body, 1400)
	}
	var rec recorder
	cfg.Sink, cfg.Reset = &rec, &resets{}
	e := New(cfg, defaultBundle(t))
	vs := verdicts(e, tr.Sorted())
	var files []*alert.Event
	for _, ev := range rec.ev {
		if ev.EventType == alert.TypeFileInfo {
			files = append(files, ev)
		}
	}
	return vs, rec.alerts(), files
}

func blocked(vs []Verdict) bool { return vs[len(vs)-1] != Accept }

// TestHTTPFilesDecoded: EICAR is found through gzip Content-Encoding, gzip
// over chunked, and inside a zip or a RAR; fileinfo hashes are of the decoded file;
// clean bodies in the same shapes pass.
func TestHTTPFilesDecoded(t *testing.T) {
	payload := append(append([]byte(nil), eicar...), bytes.Repeat([]byte(" padding"), 3000)...)
	clean := bytes.Repeat([]byte("nothing to see "), 2000)
	get := "GET /dl/file.bin HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"
	for _, c := range []struct {
		name   string
		header func(body []byte) string
		body   func([]byte) []byte
		threat string
	}{
		{"gzip", func(b []byte) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(b))
		}, func(p []byte) []byte { return gz(t, p) }, "EICAR"},
		{"gzip chunked", func([]byte) string {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
		}, func(p []byte) []byte { return chunked(gz(t, p), 700) }, "EICAR"},
		{"zip", func(b []byte) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: %d\r\n\r\n", len(b))
		}, func(p []byte) []byte { return zipOf(t, "inner/readme.com", p) }, "in inner/readme.com"},
		{"gzip of a zip", func(b []byte) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(b))
		}, func(p []byte) []byte { return gz(t, zipOf(t, "x.com", p)) }, "in x.com"},
		{"rar", func(b []byte) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.rar\r\nContent-Length: %d\r\n\r\n", len(b))
		}, func(p []byte) []byte {
			// Stored, so the file goes in gzipped: only a walk of the RAR
			// reaches it.
			return testfiles.RAR5(testfiles.RARMember{Name: "invoice", Dir: true}, testfiles.RARMember{Name: "invoice/scan.com.gz", Data: gz(t, p)})
		}, "in invoice/scan.com"},
	} {
		for _, bad := range []bool{true, false} {
			p := clean
			if bad {
				p = payload
			}
			body := c.body(p)
			vs, al, files := download(t, Config{}, get, c.header(body), body)
			if bad != blocked(vs) {
				t.Fatalf("%s (malicious %v): blocked %v", c.name, bad, blocked(vs))
			}
			if !bad {
				if len(al) != 0 || len(files) != 1 {
					t.Fatalf("%s clean: alerts %+v, %d fileinfo", c.name, al, len(files))
				}
				if c.name == "gzip" && files[0].FileInfo.Size != int64(len(clean)) {
					t.Fatalf("%s clean: fileinfo size %d, want the decoded %d", c.name, files[0].FileInfo.Size, len(clean))
				}
				continue
			}
			if len(al) != 1 || al[0].Stars != 3 || !strings.Contains(al[0].FileInfo.Threat, c.threat) {
				t.Fatalf("%s: %d alerts, the first %+v", c.name, len(al), *al[0].FileInfo)
			}
		}
	}
}

// TestHTTPDecompressionBomb: a gzip body that inflates past the ratio is
// stopped and reported ★★ unscannable, let through by default and blocked
// with BlockUnscannable; so is a zip bomb member.
func TestHTTPDecompressionBomb(t *testing.T) {
	zeros := make([]byte, 64<<20)
	bomb := gz(t, zeros)
	zbomb := zipOf(t, "zeros.bin", zeros)
	get := "GET /bomb HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"
	for _, c := range []struct {
		name, header string
		body         []byte
	}{
		{"gzip encoding", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(bomb)), bomb},
		{"zip member", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(zbomb)), zbomb},
	} {
		for _, block := range []bool{false, true} {
			vs, al, _ := download(t, Config{BlockUnscannable: block}, get, c.header, c.body)
			if len(al) != 1 || al[0].Alert.SignatureID != sidAVUnscan || al[0].Stars != 2 || al[0].FileInfo.Verdict != "unscannable" {
				t.Fatalf("%s block=%v: alerts %+v", c.name, block, al)
			}
			if blocked(vs) != block || (al[0].Alert.Action == alert.ActionBlocked) != block {
				t.Fatalf("%s block=%v: blocked %v, action %s", c.name, block, blocked(vs), al[0].Alert.Action)
			}
		}
	}
}

// TestHTTPUploads: EICAR in a multipart form upload is cut before the
// upload completes, named by the form's file name; a PUT body too; a clean
// form passes with one fileinfo for its file (not for plain fields).
func TestHTTPUploads(t *testing.T) {
	form := func(content []byte) (string, []byte) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		w.WriteField("comment", "see attached")
		f, _ := w.CreateFormFile("upload", "report.com")
		f.Write(content)
		w.Close()
		return w.FormDataContentType(), b.Bytes()
	}
	for _, bad := range []bool{true, false} {
		content := bytes.Repeat([]byte("form file bytes "), 300)
		if bad {
			content = append(append([]byte(nil), eicar...), content...)
		}
		ct, body := form(content)
		req := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: www.lab.test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", ct, len(body), body)
		vs, al, files := download(t, Config{}, req, "", nil)
		if blocked(vs) != bad {
			t.Fatalf("multipart malicious=%v: blocked %v", bad, blocked(vs))
		}
		if bad && (len(al) != 1 || al[0].FileInfo.Filename != "report.com" || !strings.Contains(al[0].Summary, "upload")) {
			t.Fatalf("multipart: alerts %+v", al)
		}
		if !bad && (len(al) != 0 || len(files) != 1 || files[0].FileInfo.Filename != "report.com") {
			t.Fatalf("clean multipart: alerts %+v, files %d", al, len(files))
		}
	}
	put := fmt.Sprintf("PUT /files/x.com HTTP/1.1\r\nHost: www.lab.test\r\nContent-Length: %d\r\n\r\n%s", len(eicar), eicar)
	if vs, al, _ := download(t, Config{}, put, "", nil); !blocked(vs) || len(al) != 1 {
		t.Fatalf("PUT of EICAR: blocked %v, alerts %+v", blocked(vs), al)
	}
}

// TestHTTPRangeResponse: a 206 response is extracted as a piece of a file
// (TRUNCATED, partially scanned) and still scanned: EICAR inside the
// range is found.
func TestHTTPRangeResponse(t *testing.T) {
	piece := append(bytes.Repeat([]byte("x"), 100), eicar...)
	hdr := fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1000-%d/99999\r\nContent-Length: %d\r\n\r\n", 1000+len(piece)-1, len(piece))
	vs, al, _ := download(t, Config{}, "GET /big.iso HTTP/1.1\r\nHost: www.lab.test\r\nRange: bytes=1000-\r\n\r\n", hdr, piece)
	if !blocked(vs) || len(al) != 1 || al[0].FileInfo.State != "TRUNCATED" {
		t.Fatalf("range with EICAR: blocked %v, alerts %+v", blocked(vs), al)
	}
	clean := bytes.Repeat([]byte("y"), 3000)
	hdr = fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 500-3499/99999\r\nContent-Length: %d\r\n\r\n", len(clean))
	_, _, files := download(t, Config{}, "GET /big.iso HTTP/1.1\r\nHost: www.lab.test\r\n\r\n", hdr, clean)
	if len(files) != 1 || files[0].FileInfo.State != "TRUNCATED" || files[0].FileInfo.Verdict != "partially-scanned" {
		t.Fatalf("clean range: %+v", files)
	}
}

// TestHTTPUploadAnsweredEarly: a server may answer an upload before it has
// all of it (413, 401); the upload's alert still names the upload's
// request, not the one the connection sent before it.
func TestHTTPUploadAnsweredEarly(t *testing.T) {
	body := append(append([]byte(nil), eicar...), bytes.Repeat([]byte("x"), 3000)...)
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /first HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)
	c.Client([]byte(fmt.Sprintf("PUT /files/x.com HTTP/1.1\r\nHost: www.lab.test\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:1000])), 0)
	c.Server([]byte("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"), 0)
	c.Client(body[1000:], 0)
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
	vs := verdicts(e, tr.Sorted())
	al := rec.alerts()
	if !blocked(vs) || len(al) != 1 {
		t.Fatalf("PUT of EICAR answered early: blocked %v, %d alerts", blocked(vs), len(al))
	}
	if h := al[0].HTTP; h == nil || h.URL != "/files/x.com" || h.Method != "PUT" {
		t.Errorf("the upload's alert names %+v, want PUT /files/x.com", h)
	}
}

// TestFileEndedByTimeout: a download whose connection goes quiet before
// its end (a body delimited by the close, no FIN) is scanned when the flow
// times out, which happens while the engine handles another flow's packet
// (here a DNS datagram). The alert and the fileinfo event name the
// download's connection, not that packet's, and the alert does not claim
// a block: every packet of the download has passed.
func TestFileEndedByTimeout(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /files/x.com HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), 0)
	c.Server(eicar, 0)
	tr.UDP("198.18.1.3:5353", "198.18.2.53:53", []byte("not quite dns"))
	later := testpcap.NewTrace(t0.Add(2 * time.Hour)) // the download's flow has timed out
	later.UDP("198.18.1.3:5353", "198.18.2.53:53", []byte("not quite dns"))
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
	verdicts(e, append(tr.Sorted(), later.Sorted()...))
	var got []*alert.Event
	for _, ev := range rec.ev {
		if ev.FileInfo != nil {
			got = append(got, ev)
		}
	}
	if len(got) == 0 {
		t.Fatal("no alert or fileinfo event for the download ended by its timeout")
	}
	al := rec.alerts()
	if len(al) != 1 || al[0].Stars != 3 || al[0].Alert.Action != alert.ActionAllowed || strings.HasPrefix(al[0].Summary, "Blocked") {
		t.Errorf("alerts %+v, want one ★★★ malware alert, action allowed, not saying it blocked", al)
	}
	for _, ev := range got {
		if ev.Proto != "TCP" || ev.SrcIP != "198.18.2.2" || ev.SrcPort != 80 || ev.DestIP != "198.18.1.2" || ev.DestPort != 40000 {
			t.Errorf("%s event names %s %s:%d -> %s:%d, want TCP 198.18.2.2:80 -> 198.18.1.2:40000",
				ev.EventType, ev.Proto, ev.SrcIP, ev.SrcPort, ev.DestIP, ev.DestPort)
		}
	}
}

// TestBodyRulesAtTimeout: the body and file rules still see a download
// ended by its flow's timeout with the download's addresses, ports and
// protocol, not those of the packet that happened to trigger the timeout.
func TestBodyRulesAtTimeout(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /page HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello, a page that never ends"), 0)
	tr.UDP("198.18.1.3:5353", "198.18.2.53:53", []byte("not quite dns"))
	later := testpcap.NewTrace(t0.Add(2 * time.Hour))
	later.UDP("198.18.1.3:5353", "198.18.2.53:53", []byte("not quite dns"))
	al := ruleAlerts(t, `alert http 198.18.2.2 80 -> 198.18.1.2 40000 (msg:"page body"; flow:established,to_client; file_data; content:"never ends"; sid:9300004; rev:1;)`,
		append(tr.Sorted(), later.Sorted()...))
	if len(al) != 1 || al[0].Alert.SignatureID != 9300004 || al[0].Proto != "TCP" {
		t.Fatalf("alerts %+v, want one for sid 9300004 on the TCP download", al)
	}
}
