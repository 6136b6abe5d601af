//go:build linux

package maillab

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Accepted is a message the SMTP server accepted (answered 250 to the end
// of DATA or to BDAT LAST).
type Accepted struct {
	From string
	To   []string
	Data []byte // as received: dot-unstuffed, CRLF line ends
}

// SMTPServer is a real receiving SMTP server (go-smtp) listening inside a
// namespace. It advertises PIPELINING, CHUNKING and STARTTLS (with a
// self-signed certificate for "mx.lab.test").
type SMTPServer struct {
	Addr string
	log  testLogger

	mu       sync.Mutex
	msgs     []Accepted
	sessions int
	active   int           // sessions not yet logged out
	idle     chan struct{} // closed when active drops to 0; nil while idle
}

// StartSMTP starts a server on addr ("198.18.30.2:25") inside namespace ns;
// it stops at cleanup.
func StartSMTP(t testing.TB, ns, addr string) *SMTPServer {
	t.Helper()
	s := &SMTPServer{Addr: addr, log: testLogger{t}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.active++
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		s.mu.Unlock()
		nc := c.Conn()
		if tc, ok := nc.(*tls.Conn); ok {
			nc = tc.NetConn() // EHLO again after STARTTLS
		}
		ec, _ := nc.(*endConn)
		return &session{s: s, conn: ec}, nil
	}))
	srv.Domain = "mx.lab.test"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "mx.lab.test")}}
	srv.ErrorLog = testLogger{t}
	l := endListener{Listen(t, ns, addr)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("smtp server on %s: %v", addr, err)
		}
	}()
	t.Cleanup(func() {
		// go-smtp v0.21.3's Server.Close closes each connection while its
		// handler may still be reading it (a data race in handleBdat): stop
		// accepting, let the sessions end (clients are gone by now), then
		// close.
		l.Close()
		s.WaitIdle(5 * time.Second)
		srv.Close()
		<-done
	})
	return s
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp server: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp server:"}, v...)...) }

// Messages returns the messages accepted so far.
func (s *SMTPServer) Messages() []Accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Accepted(nil), s.msgs...)
}

// WaitIdle waits up to d until no session is open (every connection has
// ended and its message, if any, was accepted or refused); it reports
// whether that happened.
func (s *SMTPServer) WaitIdle(d time.Duration) bool {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle == nil {
		return true
	}
	select {
	case <-idle:
		return true
	case <-time.After(d):
		return false
	}
}

// Sessions returns how many SMTP sessions the server has seen.
func (s *SMTPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

type session struct {
	out  sync.Once // Logout counted once
	s    *SMTPServer
	conn *endConn
	from string
	to   []string
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }
func (ss *session) Logout() error {
	ss.out.Do(func() {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		if ss.s.active--; ss.s.active == 0 && ss.s.idle != nil {
			close(ss.s.idle)
			ss.s.idle = nil
		}
	})
	return nil
}
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err // the end of the message never came: not accepted
	}
	if ss.conn != nil && ss.conn.ended.Load() {
		// go-smtp v0.21.3 ends a BDAT chunk at the connection's end of
		// file as if it were complete: after a reset whose error a write
		// consumed, Linux reads the rest of the connection as EOF, and
		// the cut message would be "accepted". A real MTA (Postfix: "lost
		// connection after BDAT") discards it, and so does this one.
		ss.s.log.Printf("discarded a %d-byte message from %s: the connection ended before its last chunk did", len(b), ss.from)
		return errors.New("maillab: connection lost in the middle of the message; discarded")
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, Accepted{From: ss.from, To: append([]string(nil), ss.to...), Data: b})
	ss.s.mu.Unlock()
	return nil
}

// selfSigned makes a throwaway ECDSA certificate for name.
func selfSigned(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SendOptions configure SendMail. Zero values: from a@lab.test to
// b@lab.test, no pipelining, no TLS.
type SendOptions struct {
	From     string
	To       []string
	Pipeline bool // --pipeline
	TLS      bool // --tls (STARTTLS)
}

// SendResult is what swaks did.
type SendResult struct {
	Exit       int    // swaks's exit status (0: the message was accepted)
	Transcript string // swaks's session transcript
}

// DataAccepted reports whether the transcript shows the server answering
// 250 after the end of the message.
func (r SendResult) DataAccepted() bool {
	lines := strings.Split(r.Transcript, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "-> ." {
			continue
		}
		for _, m := range lines[i+1:] {
			m = strings.TrimSpace(m)
			if strings.HasPrefix(m, "<-") || strings.HasPrefix(m, "<**") {
				return strings.HasPrefix(m, "<-  250")
			}
		}
	}
	return false
}

// SendMail sends msg (an RFC 5322 message ending with a line end; line ends
// are sent as CRLF, and the server receives exactly CRLF(msg)) with Debian's
// swaks from namespace ns to server ("198.18.30.2:25").
func SendMail(t testing.TB, ns, server string, msg []byte, o SendOptions) SendResult {
	t.Helper()
	RequireTool(t, "swaks", "swaks")
	host, port := hostPort(server)
	if o.From == "" {
		o.From = "a@lab.test"
	}
	if len(o.To) == 0 {
		o.To = []string{"b@lab.test"}
	}
	f := filepath.Join(t.TempDir(), "msg.eml")
	// swaks ends DATA with "\r\n.\r\n" after the file's bytes: the
	// message's own last CRLF is that one.
	if err := os.WriteFile(f, bytes.TrimSuffix(CRLF(msg), []byte("\r\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"swaks", "--server", host, "--port", port, "--helo", "client.lab.test",
		"--from", o.From, "--to", strings.Join(o.To, ","), "--data", "@" + f, "--timeout", "20"}
	if o.Pipeline {
		args = append(args, "--pipeline")
	}
	if o.TLS {
		args = append(args, "--tls")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, args...).CombinedOutput()
	res := SendResult{Transcript: string(out)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Exit = ee.ExitCode()
	default:
		t.Fatalf("run swaks: %v: %s", err, out)
	}
	return res
}

// BDATOptions configure SendBDAT.
type BDATOptions struct {
	From   string
	To     []string
	Chunks int // the message is sent in this many BDAT chunks (≥1)
}

// SendBDAT sends msg with CHUNKING from namespace ns, pipelining every
// command (swaks has no BDAT), and returns the transcript of replies and
// whether the server accepted the message (250 to BDAT LAST). The client is
// a plain Go TCP client.
func SendBDAT(t testing.TB, ns, server string, msg []byte, o BDATOptions) (replies string, accepted bool) {
	t.Helper()
	if o.From == "" {
		o.From = "a@lab.test"
	}
	if len(o.To) == 0 {
		o.To = []string{"b@lab.test"}
	}
	if o.Chunks < 1 {
		o.Chunks = 1
	}
	c, err := Dial(handle(t, ns), server)
	if err != nil {
		t.Fatalf("connect to %s: %v", server, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var in strings.Builder
	buf := make([]byte, 4096)
	readReply := func() (string, error) { // one complete (multi-line) reply
		for {
			s := in.String()
			for i := 0; i < len(s); {
				j := strings.Index(s[i:], "\r\n")
				if j < 0 {
					break
				}
				line := s[i : i+j]
				if len(line) >= 4 && line[3] == ' ' || len(line) == 3 {
					rest := s[i+j+2:]
					in.Reset()
					in.WriteString(rest)
					return s[:i+j+2], nil
				}
				i += j + 2
			}
			n, err := c.Read(buf)
			if n == 0 && err != nil {
				return "", err
			}
			in.Write(buf[:n])
		}
	}
	var tr strings.Builder
	expect := func(n int) bool {
		ok := true
		for range n {
			r, err := readReply()
			tr.WriteString(r)
			if err != nil {
				tr.WriteString("<** " + err.Error() + "\n")
				return false
			}
			if !strings.HasPrefix(r, "2") {
				ok = false
			}
		}
		return ok
	}
	expect(1) // greeting
	io.WriteString(c, "EHLO client.lab.test\r\n")
	expect(1)
	var cmds strings.Builder
	cmds.WriteString("MAIL FROM:<" + o.From + ">\r\n")
	for _, r := range o.To {
		cmds.WriteString("RCPT TO:<" + r + ">\r\n")
	}
	data := CRLF(msg)
	step := (len(data) + o.Chunks - 1) / o.Chunks
	var out []byte
	out = append(out, cmds.String()...)
	n := 0
	for i := 0; i < len(data) || n == 0; i += step {
		j := min(i+step, len(data))
		last := j >= len(data)
		out = append(out, "BDAT "+strconv.Itoa(j-i)...)
		if last {
			out = append(out, " LAST"...)
		}
		out = append(out, "\r\n"...)
		out = append(out, data[i:j]...)
		n++
		if last {
			break
		}
	}
	if _, err := c.Write(out); err != nil {
		return tr.String() + "<** write: " + err.Error(), false
	}
	if !expect(1 + len(o.To)) {
		return tr.String(), false
	}
	accepted = expect(n)
	io.WriteString(c, "QUIT\r\n")
	expect(1)
	return tr.String(), accepted
}

// endListener hands out connections that note when the peer went away, so a
// message cut short by it is not taken for a complete one.
type endListener struct{ net.Listener }

func (l endListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &endConn{Conn: c}, nil
}

// endConn is a server connection; ended is set by the first read that
// returns EOF or an error.
type endConn struct {
	net.Conn
	ended atomic.Bool
}

func (c *endConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.ended.Store(true)
	}
	return n, err
}

func (c *endConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.ended.Store(true) // a reset the write saw: the reads that follow get EOF
	}
	return n, err
}
