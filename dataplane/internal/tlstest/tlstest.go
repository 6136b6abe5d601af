// Package tlstest records real TLS handshakes for tests: crypto/tls client
// and server over net.Pipe, with a self-signed certificate made on the
// spot, and the bytes each side wrote.
package tlstest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// Handshake is one real handshake: the bytes each side wrote, in order.
type Handshake struct {
	Client, Server []byte // the client's bytes end with one application data record
	Cert           *x509.Certificate
	Hello          *tls.ClientHelloInfo // what Go's server parsed from the ClientHello
	State          tls.ConnectionState  // the client's view once connected
}

// recConn records what its side writes.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// Subject is the subject and issuer of the certificate, as Suricata
// prints it.
const Subject = "C=US, O=Bad Example Inc, CN=bad.example"

// Serial is the certificate's serial as Suricata prints it (the DER
// integer keeps a leading zero byte).
const Serial = "00:A1:B2:C3:D4:E5:F6:07:18"

// testCert makes a self-signed ECDSA certificate whose serial has its top
// bit set (DER keeps a leading zero byte) and whose names have several
// attributes.
func testCert(t testing.TB) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := new(big.Int).SetString("A1B2C3D4E5F60718", 16)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Country: []string{"US"}, Organization: []string{"Bad Example Inc"}, CommonName: "bad.example"},
		Issuer:       pkix.Name{Country: []string{"US"}, Organization: []string{"Bad Example Inc"}, CommonName: "bad.example"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames:     []string{"bad.example"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, c
}

// SiteCert returns a chain like a public web server's: a leaf for host
// with a 16-byte random serial (public CAs use 16-20 random bytes), issued
// by an intermediate CA, both sent in the handshake; the root that signed
// the intermediate is not.
func SiteCert(t testing.TB, host string) tls.Certificate {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := func() *big.Int {
		b := make([]byte, 16)
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x01 // positive, 16 bytes in DER
		return new(big.Int).SetBytes(b)
	}
	create := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, der
	}
	from, until := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	rootKey, caKey, leafKey := newKey(), newKey(), newKey()
	rootTmpl := &x509.Certificate{SerialNumber: serial(), NotBefore: from, NotAfter: until.AddDate(10, 0, 0),
		Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"Example Trust Services LLC"}, CommonName: "Example Root R1"},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	ca, caDER := create(&x509.Certificate{SerialNumber: serial(), NotBefore: from, NotAfter: until.AddDate(3, 0, 0),
		Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"Example Trust Services LLC"}, CommonName: "Example TLS CA 1D4"},
		IsCA:    true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, rootTmpl, &caKey.PublicKey, rootKey)
	leaf, leafDER := create(&x509.Certificate{SerialNumber: serial(), NotBefore: from, NotAfter: until,
		Subject:  pkix.Name{CommonName: host},
		DNSNames: []string{host, "*." + host}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &leafKey.PublicKey, caKey)
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey, Leaf: leaf}
}

// Record runs crypto/tls client and server over net.Pipe and records
// both sides, ending with a little application data from the client. The
// server presents a self-signed certificate (Subject, Serial).
func Record(t testing.TB, version uint16, sni string) Handshake {
	t.Helper()
	cert, _ := testCert(t)
	return RecordWith(t, version, sni, cert)
}

// RecordWith is Record with the server presenting cert.
func RecordWith(t testing.TB, version uint16, sni string, cert tls.Certificate) Handshake {
	t.Helper()
	leaf := cert.Leaf
	a, b := net.Pipe()
	cc, sc := &recConn{Conn: a}, &recConn{Conn: b}
	var hello *tls.ClientHelloInfo
	srv := tls.Server(sc, &tls.Config{
		Certificates:           []tls.Certificate{cert},
		MinVersion:             version,
		MaxVersion:             version,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hello = h
			return nil, nil
		},
	})
	cli := tls.Client(cc, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			buf := make([]byte, 64)
			_, err = srv.Read(buf)
		}
		b.Close() // not srv.Close: its close_notify would wait 5 s for a reader
		errc <- err
	}()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := cli.ConnectionState()
	a.Close()
	cc.mu.Lock()
	sc.mu.Lock()
	defer cc.mu.Unlock()
	defer sc.mu.Unlock()
	return Handshake{Client: bytes.Clone(cc.buf.Bytes()), Server: bytes.Clone(sc.buf.Bytes()), Cert: leaf, Hello: hello, State: st}
}
