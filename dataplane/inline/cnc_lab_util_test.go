//go:build linux

package inline

// Helpers of the C&C lab tests (cnc_lab_test.go): a real dnsmasq in the
// server namespace, a DNS client whose sockets live in the client
// namespace (one socket per lookup, from a chosen office address, as a
// stub resolver does), TCP and TLS servers that record what reached them,
// and a utmd -q with threat-intel files passed by --intel.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/telemetry/alert"
)

// Lab addresses of the C&C tests, all in the server namespace (s0).
var (
	cncDNS    = netip.MustParseAddr("198.18.101.53") // dnsmasq
	cncC2     = netip.MustParseAddr("198.18.101.66") // what c2.lab.test resolves to
	cncBenign = netip.MustParseAddr("198.18.101.67") // what www.lab.test resolves to
	cncSink   = netip.MustParseAddr("198.18.101.99") // the sinkhole utmd answers with
)

// officeHost is the office client address n (198.18.100.10+n, added by
// newLab for n < clientAddrs).
func officeHost(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 100, byte(10 + n)}) }

// addServerAddrs gives the server namespace the C&C lab's extra addresses.
func (l *lab) addServerAddrs(t *testing.T) {
	t.Helper()
	for _, a := range []netip.Addr{cncDNS, cncC2, cncBenign} {
		nslab.Run(t, "ip", "-n", l.ServerName(), "addr", "add", a.String()+"/24", "dev", "s0")
	}
}

// dnsmasq is a running dnsmasq and its query log.
type dnsmasq struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startDNSMasq runs Debian's dnsmasq in the server namespace on cncDNS:53,
// answering only from its --address lines (no upstream, no hosts file),
// logging every query it receives. It skips the test when dnsmasq is not
// installed.
func (l *lab) startDNSMasq(t *testing.T, addresses ...string) *dnsmasq {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("needs dnsmasq (apt-get install -y dnsmasq-base): the lab's real DNS server")
		}
		bin = "/usr/sbin/dnsmasq"
	}
	dir := t.TempDir()
	d := &dnsmasq{log: filepath.Join(dir, "dnsmasq.log"), done: make(chan struct{})}
	args := []string{"netns", "exec", l.ServerName(), bin, "--no-daemon", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=" + cncDNS.String(),
		"--port=53", "--user=root", "--group=root", "--log-queries", "--log-facility=" + d.log,
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"), "--cache-size=0"}
	for _, a := range addresses {
		args = append(args, "--address="+a)
	}
	d.cmd = exec.Command("ip", args...)
	var out syncBuf
	d.cmd.Stdout, d.cmd.Stderr = &out, &out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("dnsmasq output:\n%s\ndnsmasq log:\n%s", out.String(), b)
		}
	})
	// Ready when it answers.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r, err := l.lookup(nslab.ClientAddr, "ready.lab.test", layers.DNSTypeA); err == nil && r.rcode >= 0 {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("dnsmasq exited at start: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer on %s:53 within 5 s: %s", cncDNS, out.String())
		}
	}
}

// queried reports whether dnsmasq's log shows a query for name.
func (d *dnsmasq) queried(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "query[") && strings.Contains(line, " "+name+" from ") {
			return true
		}
	}
	return false
}

// dnsReply is what a lookup got.
type dnsReply struct {
	rcode layers.DNSResponseCode
	addrs []netip.Addr
}

// lookup asks cncDNS for name from the office address src, on a fresh UDP
// socket made in the client namespace (so a new flow, as a stub resolver's
// query is), and waits 3 s for the answer.
func (l *lab) lookup(src netip.Addr, name string, qtype layers.DNSType) (dnsReply, error) {
	var c *net.UDPConn
	if err := nslab.Do(l.Client, func() (err error) {
		c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(cncDNS, 53)))
		return err
	}); err != nil {
		return dnsReply{}, err
	}
	defer c.Close()
	q, err := dnsQueryBytes(name, qtype)
	if err != nil {
		return dnsReply{}, err
	}
	if _, err := c.Write(q); err != nil {
		return dnsReply{}, err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 1500)
	for {
		n, err := c.Read(b)
		if err != nil {
			return dnsReply{}, fmt.Errorf("lookup %s from %s: %w", name, src, err)
		}
		if r, ok := dnsAnswerTo(q, b[:n]); ok {
			return r, nil
		}
	}
}

// lookupTCP asks cncDNS for name over TCP (a new connection from src, the
// message after its 2-byte length, as a resolver retrying a truncated
// answer does) and waits 3 s for the answer.
func (l *lab) lookupTCP(src netip.Addr, name string, qtype layers.DNSType) (dnsReply, error) {
	c, err := l.dialFrom(src, netip.AddrPortFrom(cncDNS, 53), 3*time.Second)
	if err != nil {
		return dnsReply{}, err
	}
	defer c.Close()
	q, err := dnsQueryBytes(name, qtype)
	if err != nil {
		return dnsReply{}, err
	}
	if _, err := c.Write(append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)); err != nil {
		return dnsReply{}, err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return dnsReply{}, fmt.Errorf("lookup %s over TCP from %s: %w", name, src, err)
	}
	b := make([]byte, int(n[0])<<8|int(n[1]))
	if _, err := io.ReadFull(c, b); err != nil {
		return dnsReply{}, fmt.Errorf("lookup %s over TCP from %s: %w", name, src, err)
	}
	r, ok := dnsAnswerTo(q, b)
	if !ok {
		return dnsReply{}, fmt.Errorf("lookup %s over TCP from %s: not an answer to the query", name, src)
	}
	return r, nil
}

// dnsQueryBytes is a recursive query for name with a random ID.
func dnsQueryBytes(name string, qtype layers.DNSType) ([]byte, error) {
	var id [2]byte
	rand.Read(id[:])
	q := &layers.DNS{ID: uint16(id[0])<<8 | uint16(id[1]), RD: true,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: qtype, Class: layers.DNSClassIN}}}
	buf := gopacket.NewSerializeBuffer()
	if err := q.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dnsAnswerTo decodes b as the answer to query q: its rcode and addresses.
func dnsAnswerTo(q, b []byte) (dnsReply, bool) {
	var r layers.DNS
	if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || !r.QR || len(q) < 2 || r.ID != uint16(q[0])<<8|uint16(q[1]) {
		return dnsReply{}, false
	}
	out := dnsReply{rcode: r.ResponseCode}
	for _, a := range r.Answers {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && (a.Type == layers.DNSTypeA || a.Type == layers.DNSTypeAAAA) {
			out.addrs = append(out.addrs, ip.Unmap())
		}
	}
	return out, true
}

// dialFrom connects from the office address src to dst (in the client
// namespace).
func (l *lab) dialFrom(src netip.Addr, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := nslab.Do(l.Client, func() (err error) {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("tcp4", dst.String())
		return err
	})
	return c, err
}

// clientFrom is an HTTP client whose connections start at the office
// address src, one connection per request. TLS connections name the
// request's host (SNI) and accept the lab's self-signed certificates.
func (l *lab) clientFrom(src netip.Addr) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, err
				}
				return l.dialFrom(src, ap, 3*time.Second)
			},
		},
	}
}

// acceptLog is a TCP server in the server namespace that counts the
// connections it accepted and answers each with one line.
type acceptLog struct {
	mu sync.Mutex
	n  int
}

func (a *acceptLog) count() int { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

func (l *lab) serveTCP(t *testing.T, at netip.AddrPort) *acceptLog {
	t.Helper()
	ln := l.listen(t, at)
	a := &acceptLog{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.n++
			a.mu.Unlock()
			io.WriteString(c, "hello from "+at.String()+"\n")
			c.Close()
		}
	}()
	return a
}

// requestLog is an HTTP(S) server in the server namespace that records the
// requests it answered as "host path" (TLS: "tls:SNI host path").
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (r *requestLog) has(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		if strings.Contains(s, substr) {
			return true
		}
	}
	return false
}

func (r *requestLog) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := req.Host + " " + req.URL.Path
	if req.TLS != nil {
		s = "tls:" + req.TLS.ServerName + " " + s
	}
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
	if req.URL.Path == "/eicar" {
		io.WriteString(w, eicar)
		return
	}
	io.WriteString(w, "page "+req.URL.Path+"\n")
}

// serveHTTP serves rl at at; with cert, over TLS 1.2 (so the certificate
// travels in the clear, as on most C&C servers the SSLBL lists).
func (l *lab) serveHTTP(t *testing.T, at netip.AddrPort, rl *requestLog, cert *tls.Certificate) {
	t.Helper()
	ln := l.listen(t, at)
	srv := &http.Server{Handler: rl, ErrorLog: nil}
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MaxVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// selfSigned makes a certificate for cn and returns it with its SHA-1
// fingerprint (hex), as SSLBL lists it.
func selfSigned(t *testing.T, cn string) (*tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, hex.EncodeToString(sum[:])
}

// tlsHandshake connects from src to dst and runs a TLS 1.2 handshake with
// the given SNI; it returns how long the attempt took and its error.
func (l *lab) tlsHandshake(src netip.Addr, dst netip.AddrPort, sni string) (time.Duration, error) {
	return l.tlsVia(src, netip.AddrPort{}, dst, sni)
}

// tlsVia is tlsHandshake through the HTTP proxy at proxy (CONNECT dst),
// or straight to dst when proxy is the zero AddrPort.
func (l *lab) tlsVia(src netip.Addr, proxy, dst netip.AddrPort, sni string) (time.Duration, error) {
	start := time.Now()
	first := dst
	if proxy.IsValid() {
		first = proxy
	}
	c, err := l.dialFrom(src, first, 3*time.Second)
	if err != nil {
		return time.Since(start), err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if proxy.IsValid() {
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dst, dst)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != http.StatusOK {
			return time.Since(start), fmt.Errorf("CONNECT %s through %s: %v %v", dst, proxy, resp, err)
		}
	}
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	err = tc.Handshake()
	if err == nil {
		fmt.Fprintf(tc, "GET /after-handshake HTTP/1.0\r\nHost: %s\r\n\r\n", sni)
		_, err = io.ReadAll(tc)
	}
	return time.Since(start), err
}

// listen listens on at in the server namespace until the test ends.
func (l *lab) listen(t *testing.T, at netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) { ln, err = net.Listen("tcp4", at.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveProxy runs an HTTP proxy that serves CONNECT only, at at in the
// server namespace.
func (l *lab) serveProxy(t *testing.T, at netip.AddrPort) {
	t.Helper()
	ln := l.listen(t, at)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				var up net.Conn
				if err := nslab.Do(l.Server, func() (err error) { up, err = net.DialTimeout("tcp4", req.Host, 3*time.Second); return err }); err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}()
		}
	}()
}

// startIntel runs utmd -q 0:1 with the config JSON cfg (may be "") and the
// intel files (name -> content) each passed by --intel, writing eve.json
// into a fresh directory it returns.
func (l *lab) startIntel(t *testing.T, cfg string, files map[string]string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-q", "0:1", "-l", dir}
	if cfg != "" {
		p := filepath.Join(dir, "utmd.json")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-c", p)
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--intel", p)
	}
	return l.startUTMD(t, nil, args...), dir
}

// sidAlerts returns dir's alerts with signature id sid.
func sidAlerts(t *testing.T, dir string, sid int) []alert.Event {
	t.Helper()
	var out []alert.Event
	for _, e := range alertsIn(t, dir) {
		if e.Alert.SignatureID == sid {
			out = append(out, e)
		}
	}
	return out
}

// waitSID polls dir/eve.json up to 5 s for an alert with sid and returns
// them all.
func waitSID(t *testing.T, dir string, sid int) []alert.Event {
	t.Helper()
	waitEvent(t, dir, func(e alert.Event) bool { return e.Alert != nil && e.Alert.SignatureID == sid })
	return sidAlerts(t, dir, sid)
}

// wantCNC checks dir holds exactly one alert with sid, rated stars, with
// the action and the indicator named, and returns it.
func wantCNC(t *testing.T, dir string, sid int, stars alert.Stars, action, indicator string) alert.Event {
	t.Helper()
	got := waitSID(t, dir, sid)
	if len(got) != 1 {
		t.Fatalf("%d alerts with sid %d, want 1: %+v\nall alerts: %s", len(got), sid, got, alertSummary(t, dir))
	}
	e := got[0]
	if e.Stars != stars || e.Alert.Action != action || e.Intel == nil || e.Intel.Indicator != indicator {
		t.Fatalf("sid %d alert: %s %s, intel %+v; want %s %s naming indicator %q\n%s", sid, e.Stars, e.Alert.Action, e.Intel, stars, action, indicator, alertSummary(t, dir))
	}
	return e
}

// alertSummary lists dir's alerts one per line for failure messages.
func alertSummary(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	for _, e := range alertsIn(t, dir) {
		fmt.Fprintf(&b, "  %d %s %s %s:%d -> %s:%d %q\n", e.Alert.SignatureID, e.Stars, e.Alert.Action, e.SrcIP, e.SrcPort, e.DestIP, e.DestPort, e.Summary)
	}
	return b.String()
}

// isReset reports whether err is a connection reset or refusal (a TCP RST
// from the box), as opposed to a timeout.
func isReset(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED))
}
