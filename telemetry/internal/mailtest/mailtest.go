// Package mailtest runs a real SMTP server (github.com/emersion/go-smtp)
// on a loopback port for tests, with optional STARTTLS under a throwaway
// CA, and keeps every message it receives. Test-only: never imported by
// a binary.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"
)

// Mail is one received message.
type Mail struct {
	From    string
	To      []string // envelope recipients
	Raw     string   // as received (headers and encoded body)
	Subject string   // decoded (RFC 2047)
	Body    string   // decoded (quoted-printable), \r\n turned to \n
	Header  mail.Header
	TLS     bool // the session had switched to TLS
}

// Server is a running SMTP server.
type Server struct {
	Addr   string
	Client *tls.Config // trusts the server's certificate (with TLS)

	srv   *smtp.Server
	mu    sync.Mutex
	mails []Mail
}

// Start runs a server on 127.0.0.1 until the test ends; withTLS offers
// STARTTLS.
func Start(t testing.TB, withTLS bool) *Server {
	t.Helper()
	return StartAt(t, "127.0.0.1:0", withTLS)
}

// StartAt is Start on a given address (a relay that comes up late).
func StartAt(t testing.TB, addr string, withTLS bool) *Server {
	t.Helper()
	s := &Server{}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if withTLS {
		srv.TLSConfig, s.Client = certs(t)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr, s.srv = ln.Addr().String(), srv
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Mails returns the messages received so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Wait polls until n messages arrived (or fails the test after 15 s) and
// returns them.
func (s *Server) Wait(t testing.TB, n int) []Mail {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := s.Mails(); len(m) >= n {
			return m
		}
	}
	t.Fatalf("SMTP server got %d mails, want %d", len(s.Mails()), n)
	return nil
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{s: b.s, c: c}, nil }

type session struct {
	s    *Server
	c    *smtp.Conn
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

// Rcpt refuses for good (550) an address containing "reject".
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.Contains(to, "reject") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Mail{From: x.from, To: x.to, Raw: string(raw)}
	_, m.TLS = x.c.TLSConnectionState()
	if msg, err := mail.ReadMessage(strings.NewReader(m.Raw)); err == nil {
		m.Header = msg.Header
		dec := new(mime.WordDecoder)
		m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
		var body io.Reader = msg.Body
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(msg.Body)
		}
		b, _ := io.ReadAll(body)
		m.Body = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, m)
	x.s.mu.Unlock()
	return nil
}

// certs makes a CA-less self-signed certificate for 127.0.0.1 and a client
// config that trusts it.
func certs(t testing.TB) (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}
