//go:build linux

package inline

// Helpers of the antivirus lab tests (av_lab_test.go): a utmd -q with the
// ClamAV test program's hash list, an HTTP server of the test's own in the
// server namespace, EVE alerts decoded as the monitor would, and mail
// messages with attachments in the encodings mail clients use.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/telemetry/alert"
)

// clamHDB is the one-line ClamAV hash list for clam.exe, the 544-byte test
// program of Debian's clamav-testfiles.
const clamHDB = "aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n"

const clamDir = "/usr/share/clamav-testfiles"

// avPort is where the test's own HTTP server listens (newLab's serves 80).
const avPort = "8080"

// startAV runs utmd -q 0:1 with the ClamAV test program's hash list
// (signatures.hash_files in a -c config), full inspection unless extra
// says otherwise, writing eve.json into a fresh directory it returns.
func (l *lab) startAV(t *testing.T, extra ...string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	hdb := filepath.Join(dir, "clamtest.hdb")
	if err := os.WriteFile(hdb, []byte(clamHDB), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "utmd.json")
	if err := os.WriteFile(cfg, []byte(`{"signatures": {"hash_files": ["`+hdb+`"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "0:1", "-l", dir, "-c", cfg, "--metrics", "127.0.0.1:0"}, extra...)
	return l.startUTMD(t, nil, args...), dir
}

// stop ends utmd with SIGTERM and waits for it.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// eveIn decodes dir/eve.json.
func eveIn(t *testing.T, dir string) []alert.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "eve.json"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []alert.Event
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e alert.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("eve.json line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// alertsIn returns the alert events of dir/eve.json.
func alertsIn(t *testing.T, dir string) []alert.Event {
	t.Helper()
	var out []alert.Event
	for _, e := range eveIn(t, dir) {
		if e.EventType == "alert" && e.Alert != nil {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent polls dir/eve.json for up to 5 s until match finds an event.
func waitEvent(t *testing.T, dir string, match func(alert.Event) bool) (alert.Event, bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, e := range eveIn(t, dir) {
			if match(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return alert.Event{}, false
		}
	}
}

// avServer is an HTTP server in the server namespace on avPort.
type avServer struct {
	mux *http.ServeMux

	mu      sync.Mutex
	uploads map[string][]byte // complete multipart files received, by form file name
}

func (l *lab) serveAV(t *testing.T) *avServer {
	t.Helper()
	s := &avServer{mux: http.NewServeMux(), uploads: map[string][]byte{}}
	s.mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, fhs := range r.MultipartForm.File {
			for _, fh := range fhs {
				f, err := fh.Open()
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(f)
				f.Close()
				s.mu.Lock()
				s.uploads[fh.Filename] = b
				s.mu.Unlock()
			}
		}
		io.WriteString(w, "stored\n")
	})
	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(nslab.ServerAddr.String(), avPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// upload returns what the server stored for a file name, if the whole
// multipart body arrived.
func (s *avServer) upload(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.uploads[name]
	return b, ok
}

// rawClient is l.client without transparent gzip decoding: the test sees
// the bytes on the wire.
func (l *lab) rawClient() *http.Client {
	c := l.client()
	c.Transport.(*http.Transport).DisableCompression = true
	c.Timeout = 6 * time.Second
	return c
}

func avURL(path string) string {
	return "http://" + net.JoinHostPort(nslab.ServerAddr.String(), avPort) + path
}

// fetch GETs path from the test's server; err is set when the transfer did
// not complete.
func (l *lab) fetch(path string, hdr ...string) ([]byte, *http.Response, error) {
	req, _ := http.NewRequestWithContext(context.Background(), "GET", avURL(path), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := l.rawClient().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp, err
}

// attachment is one MIME part of a test message.
type attachment struct {
	Name string
	Data []byte
	// Enc: "base64", "quoted-printable", "rfc822" (Data is a whole
	// message, attached as message/rfc822), "zip" (Data zipped as
	// Name+".zip", base64).
	Enc string
}

// mailMessage builds a multipart/mixed message from Alice to Bob with a
// text part and the attachments; Message-ID is <id@lab.test>.
func mailMessage(subject, id string, atts ...attachment) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Alice <alice@lab.test>\r\nTo: Bob <bob@lab.test>\r\nSubject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMessage-ID: <%s@lab.test>\r\n", id)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=-lab-boundary\"\r\n\r\n")
	b.WriteString("--=-lab-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the file attached.\r\n")
	for _, a := range atts {
		b.WriteString("\r\n--=-lab-boundary\r\n")
		switch a.Enc {
		case "quoted-printable":
			fmt.Fprintf(&b, "Content-Type: application/octet-stream; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", a.Name, a.Name)
			w := quotedprintable.NewWriter(&b)
			w.Write(a.Data)
			w.Close()
			b.WriteString("\r\n")
		case "rfc822":
			fmt.Fprintf(&b, "Content-Type: message/rfc822; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\n", a.Name, a.Name)
			b.Write(a.Data)
		default:
			data, name := a.Data, a.Name
			if a.Enc == "zip" {
				data, name = zipOf(map[string][]byte{a.Name: a.Data}), a.Name+".zip"
			}
			fmt.Fprintf(&b, "Content-Type: application/octet-stream; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", name, name)
			b.WriteString(base64Lines(data))
		}
	}
	b.WriteString("\r\n--=-lab-boundary--\r\n")
	return b.Bytes()
}

// base64Lines encodes b in 76-column lines ending CRLF.
func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// zipOf makes a deflate zip of the files (in name order).
func zipOf(files map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write(files[n])
	}
	zw.Close()
	return buf.Bytes()
}

// serverSMTP is where the lab's SMTP server listens, and dovecot's address.
var (
	labMailIP   = nslab.ServerAddr.String()
	labSMTPAddr = net.JoinHostPort(labMailIP, "25")
)
