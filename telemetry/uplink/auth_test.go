package uplink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/monitor"
	"github.com/openutm/utm/telemetry/spool"
)

// testCA makes a self-signed CA and a server certificate for 127.0.0.1
// signed by it; it writes the CA's PEM to dir/ca.pem.
func testCA(t *testing.T, dir string) (serverTLS *tls.Config, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "utm test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "utm monitor"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion: tls.VersionTLS12}, caFile
}

// boxKey makes a box's NKEY and writes its seed file.
func boxKey(t *testing.T, dir, box string) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ = kp.PublicKey()
	seedFile = filepath.Join(dir, box+".nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}

// errs collects a connection's asynchronous errors (permission violations).
type errs struct {
	mu  sync.Mutex
	all []string
}

func (e *errs) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	e.mu.Lock()
	e.all = append(e.all, err.Error())
	e.mu.Unlock()
}

func (e *errs) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.all {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// TestBoxCredentials runs a real nats-server configured by
// monitor.NATSAuth with TLS from a CA made here: box A's own uplink
// delivers its alerts and heartbeats; with A's credential nothing can be
// published under box B's subjects, no other box's subject nor the
// JetStream API can be subscribed to or called; plaintext, unknown keys
// and no credentials are refused.
func TestBoxCredentials(t *testing.T) {
	dir := t.TempDir()
	serverTLS, caFile := testCA(t, dir)
	pubA, seedA := boxKey(t, dir, "box-a")
	pubB, seedB := boxKey(t, dir, "box-b")
	_, seedX := boxKey(t, dir, "box-x") // not registered
	auth := &monitor.NATSAuth{TLS: serverTLS, Boxes: []monitor.BoxCredential{{BoxID: "box-a", NKeyPublic: pubA}, {BoxID: "box-b", NKeyPublic: pubB}}}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoSigs: true, NoLog: true}
	if err := auth.Configure(opts); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := ns.ClientURL()

	// The monitor's own connection may do everything.
	mon, err := nats.Connect(url, auth.ClientOptions()...)
	if err != nil {
		t.Fatalf("monitor connection: %v", err)
	}
	defer mon.Close()
	mjs, _ := mon.JetStream()
	if _, err := mjs.AddStream(&nats.StreamConfig{Name: alert.Stream, Subjects: []string{alert.AlertSubjects}, Duplicates: time.Minute}); err != nil {
		t.Fatalf("monitor creates the stream: %v", err)
	}
	hbs, err := mon.SubscribeSync(alert.HeartbeatSubjects)
	if err != nil {
		t.Fatal(err)
	}
	mon.Flush()
	subjectMsgs := func(subj string) uint64 {
		si, err := mjs.StreamInfo(alert.Stream, &nats.StreamInfoRequest{SubjectsFilter: subj})
		if err != nil {
			t.Fatal(err)
		}
		return si.State.Subjects[subj]
	}

	// Box A's own uplink works over TLS with its NKEY.
	sp := openSpool(t, filepath.Join(dir, "a.db"))
	up, err := Start(context.Background(), Config{URL: url, BoxID: "box-a", Version: "t", Heartbeat: 100 * time.Millisecond,
		NKeySeedFile: seedA, CAFile: caFile, Logger: quiet}, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	for i := range 5 {
		e := newAlert(i)
		e.BoxID = "box-a"
		if err := sp.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "box A's 5 alerts in the stream", func() bool { return sp.Len() == 0 && subjectMsgs("utm.alerts.box-a") == 5 })
	m, err := hbs.NextMsg(5 * time.Second)
	if err != nil || m.Subject != "utm.heartbeat.box-a" {
		t.Fatalf("box A's heartbeat: %v %v", m, err)
	}
	var hb alert.Heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.BoxID != "box-a" {
		t.Fatalf("heartbeat %s: %v", m.Data, err)
	}

	// Box A's credential, used as a rogue client would.
	var ae errs
	a, err := nats.Connect(url, nats.ErrorHandler(ae.handler), nats.CustomInboxPrefix(alert.InboxPrefix("box-a")),
		nats.RootCAs(caFile), nkeyOpt(t, seedA))
	if err != nil {
		t.Fatalf("box A connects: %v", err)
	}
	defer a.Close()
	ajs, _ := a.JetStream(nats.MaxWait(time.Second))
	if _, err := ajs.Publish("utm.alerts.box-b", []byte(`{"event_type":"alert"}`), nats.AckWait(time.Second)); err == nil {
		t.Fatal("box A published an alert under box B's subject and got an ack")
	}
	a.Publish("utm.heartbeat.box-b", []byte(`{"box_id":"box-b"}`))
	a.Flush()
	waitFor(t, "the publish permission violations", func() bool {
		return ae.has(`Permissions Violation for Publish to "utm.alerts.box-b"`) &&
			ae.has(`Permissions Violation for Publish to "utm.heartbeat.box-b"`)
	})
	if n := subjectMsgs("utm.alerts.box-b"); n != 0 {
		t.Fatalf("%d messages under box B's subject from box A", n)
	}

	// Reading other boxes' alerts and heartbeats, other inboxes, the API.
	var subs []*nats.Subscription
	for _, subj := range []string{alert.AlertSubjects, "utm.alerts.box-b", alert.HeartbeatSubjects, "_INBOX.>", alert.InboxPrefix("box-b") + ".>", ">"} {
		s, err := a.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	a.Flush()
	waitFor(t, "the subscribe permission violations", func() bool {
		return ae.has(`Permissions Violation for Subscription to "utm.alerts.>"`) &&
			ae.has(`Permissions Violation for Subscription to "utm.alerts.box-b"`) &&
			ae.has(`Permissions Violation for Subscription to "utm.heartbeat.>"`) &&
			ae.has(`Permissions Violation for Subscription to "_INBOX.>"`) &&
			ae.has(`Permissions Violation for Subscription to "_INBOX_box-b.>"`)
	})
	if _, err := ajs.StreamInfo(alert.Stream); err == nil {
		t.Fatal("box A called the JetStream API")
	}
	// Box B publishes; nothing reaches box A.
	b, err := nats.Connect(url, nats.CustomInboxPrefix(alert.InboxPrefix("box-b")), nats.RootCAs(caFile), nkeyOpt(t, seedB))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bjs, _ := b.JetStream()
	if _, err := bjs.Publish("utm.alerts.box-b", []byte(`{"event_type":"alert"}`)); err != nil {
		t.Fatalf("box B publishes its own alert: %v", err)
	}
	b.Publish("utm.heartbeat.box-b", []byte(`{"box_id":"box-b"}`))
	b.Flush()
	if n := subjectMsgs("utm.alerts.box-b"); n != 1 {
		t.Fatalf("box B's own alert: %d in the stream, want 1", n)
	}
	for _, s := range subs {
		if m, err := s.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("box A read %s on %s", m.Data, m.Subject)
		}
	}

	// Refused: plaintext, a key the monitor does not know, no key.
	if reply, err := plaintext(t, url, seedA); strings.Contains(reply, "PONG") || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a plaintext client got %q (%v), want the server to hang up on it", reply, err)
	}
	if c, err := nats.Connect(url, nats.RootCAs(caFile), nkeyOpt(t, seedX)); err == nil {
		c.Close()
		t.Fatal("an unknown box key was accepted")
	}
	if c, err := nats.Connect(url, nats.RootCAs(caFile)); err == nil {
		c.Close()
		t.Fatal("a connection without credentials was accepted")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("no credentials refused with %v, want an authorization violation", err)
	}
	// A wrong CA: the box does not talk to an impostor.
	_, otherCA := testCA(t, t.TempDir())
	if c, err := nats.Connect(url, nats.RootCAs(otherCA), nkeyOpt(t, seedA)); err == nil {
		c.Close()
		t.Fatal("the box accepted a server certificate its CA did not sign")
	}
}

// plaintext speaks the NATS protocol without TLS, signing the server's
// nonce with the box's key as a client would, and returns what the server
// answers to CONNECT and PING until it hangs up.
func plaintext(t *testing.T, url, seedFile string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", url[strings.Index(url, "://")+3:])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf) // INFO {...}
	var info struct {
		TLS   bool   `json:"tls_required"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(string(buf[:n])), "INFO ")), &info); err != nil || !info.TLS {
		t.Fatalf("the server's INFO does not require TLS (%v): %s", err, buf[:n])
	}
	seed, _ := os.ReadFile(seedFile)
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	sig, _ := kp.Sign([]byte(info.Nonce))
	connect, _ := json.Marshal(map[string]any{"verbose": false, "pedantic": false, "nkey": pub, "sig": base64.RawURLEncoding.EncodeToString(sig)})
	c.Write([]byte("CONNECT " + string(connect) + "\r\nPING\r\n"))
	var out []byte
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out), err
		}
	}
}

func nkeyOpt(t *testing.T, seedFile string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestAuthConfigErrors: bad credential settings fail Start with ErrConfig.
func TestAuthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, filepath.Join(dir, "s.db"))
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a seed or a certificate"), 0o600)
	_, seed := boxKey(t, dir, "box-1")
	for name, cfg := range map[string]Config{
		"missing seed":   {NKeySeedFile: filepath.Join(dir, "none")},
		"garbage seed":   {NKeySeedFile: bad},
		"seed and creds": {NKeySeedFile: seed, CredsFile: seed},
		"missing creds":  {CredsFile: filepath.Join(dir, "none")},
		"missing CA":     {CAFile: filepath.Join(dir, "none")},
		"garbage CA":     {CAFile: bad},
	} {
		cfg.URL, cfg.BoxID, cfg.Logger = "nats://127.0.0.1:1", "box-1", quiet
		if up, err := Start(context.Background(), cfg, sp); err == nil {
			up.Close()
			t.Errorf("%s: Start accepted it", name)
		} else if !strings.Contains(err.Error(), ErrConfig.Error()) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	_ = spool.ErrClosed
}
