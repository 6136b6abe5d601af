//go:build linux

package inline

// C&C detection through a real utmd -q in a throwaway nslab, with real
// software on both sides (helpers in cnc_lab_util_test.go): Debian's
// dnsmasq answers the office's lookups, Go's TLS and HTTP stacks are the
// clients and servers, and threat intel comes in files passed by --intel in
// the formats the feeds publish. Each test has a control that must pass:
// the same traffic without the indicator goes through, so a block is the
// box's doing and the detection is precise.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/dataplane/internal/quictest"
	"github.com/openutm/utm/dataplane/quic"
	"github.com/openutm/utm/telemetry/alert"
)

// cncList is the lab's plain threat-intel list.
const cncList = "# lab C2 domains\nc2.lab.test lab-rat\n"

// TestCNCLabDNS: a listed domain looked up through dnsmasq, under each
// engine.dns_block policy. alert: the lookup is answered (★★ 2220001) and
// the connection to the answered address is refused at its SYN (★★★
// 2220003) for that host only. nxdomain: the box answers NXDOMAIN itself,
// dnsmasq never sees the query (★★★ blocked). sinkhole: the box answers
// the sinkhole address. A benign name resolves and connects, unalerted.
func TestCNCLabDNS(t *testing.T) {
	l := newLab(t)
	l.addServerAddrs(t)
	dm := l.startDNSMasq(t, "/c2.lab.test/"+cncC2.String(), "/www.lab.test/"+cncBenign.String())
	c2 := l.serveTCP(t, netip.AddrPortFrom(cncC2, 443))
	benign := l.serveTCP(t, netip.AddrPortFrom(cncBenign, 443))
	host, other := officeHost(1), officeHost(2)

	connect := func(src, dst netip.Addr) error {
		c, err := l.dialFrom(src, netip.AddrPortFrom(dst, 443), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = io.ReadAll(c)
		return err
	}
	resolve := func(src netip.Addr, name string) dnsReply {
		t.Helper()
		r, err := l.lookup(src, name, layers.DNSTypeA)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Control without utmd: the C&C name resolves and its server answers.
	if r := resolve(host, "c2.lab.test"); r.rcode != layers.DNSResponseCodeNoErr || !slices.Equal(r.addrs, []netip.Addr{cncC2}) {
		t.Fatalf("dnsmasq answered c2.lab.test with %v %v; want %v", r.rcode, r.addrs, cncC2)
	}
	if err := connect(host, cncC2); err != nil || c2.count() != 1 {
		t.Fatalf("control: connection to %s without utmd: %v (accepted %d)", cncC2, err, c2.count())
	}

	t.Run("alert", func(t *testing.T) {
		p, dir := l.startIntel(t, "", map[string]string{"lab-c2.list": cncList})
		defer p.stop()
		if r := resolve(host, "www.lab.test"); !slices.Equal(r.addrs, []netip.Addr{cncBenign}) {
			t.Fatalf("www.lab.test resolved to %v %v through utmd; want %v", r.rcode, r.addrs, cncBenign)
		}
		if err := connect(host, cncBenign); err != nil {
			t.Fatalf("benign connection: %v", err)
		}
		r := resolve(host, "c2.lab.test")
		if r.rcode != layers.DNSResponseCodeNoErr || !slices.Equal(r.addrs, []netip.Addr{cncC2}) {
			t.Fatalf("dns_block=alert: c2.lab.test answered %v %v; want the real answer %v", r.rcode, r.addrs, cncC2)
		}
		wantCNC(t, dir, 2220001, 2, alert.ActionAllowed, "c2.lab.test")
		before := c2.count()
		start := time.Now()
		err := connect(host, cncC2)
		if took := time.Since(start); !isReset(err) || took > time.Second {
			t.Fatalf("connection to the answered address: %v after %v; want refused at the SYN (ECONNREFUSED within 1 s)", err, took)
		}
		if c2.count() != before {
			t.Fatal("the C&C server accepted the connection utmd refused")
		}
		e := wantCNC(t, dir, 2220003, 3, alert.ActionBlocked, "c2.lab.test")
		if e.SrcIP != host.String() || e.DestIP != cncC2.String() || e.DestPort != 443 {
			t.Fatalf("2220003 names %s -> %s:%d; want %s -> %s:443", e.SrcIP, e.DestIP, e.DestPort, host, cncC2)
		}
		// Learned per client: a host that never resolved the name is not
		// blocked by this host's lookup.
		if err := connect(other, cncC2); err != nil {
			t.Fatalf("a host that never looked c2.lab.test up: %v; want it to connect", err)
		}
		if n := len(alertsIn(t, dir)); n != 2 {
			t.Fatalf("%d alerts, want 2 (the lookup and the refused connection):\n%s", n, alertSummary(t, dir))
		}
	})

	t.Run("nxdomain", func(t *testing.T) {
		p, dir := l.startIntel(t, `{"engine": {"dns_block": "nxdomain"}}`, map[string]string{"lab-c2.list": cncList})
		defer p.stop()
		if r := resolve(host, "img.www.lab.test"); !slices.Equal(r.addrs, []netip.Addr{cncBenign}) || !dm.queried(t, "img.www.lab.test") {
			t.Fatalf("benign name: %v %v, reached dnsmasq %v; want %v from dnsmasq", r.rcode, r.addrs, dm.queried(t, "img.www.lab.test"), cncBenign)
		}
		r := resolve(host, "api.c2.lab.test")
		if r.rcode != layers.DNSResponseCodeNXDomain || len(r.addrs) != 0 {
			t.Fatalf("dns_block=nxdomain: api.c2.lab.test answered %v %v; want NXDOMAIN", r.rcode, r.addrs)
		}
		if dm.queried(t, "api.c2.lab.test") {
			t.Fatal("dnsmasq received the blocked query: utmd answered but let the query through")
		}
		e := wantCNC(t, dir, 2220001, 3, alert.ActionBlocked, "c2.lab.test")
		if e.DNS == nil || e.DNS.RRName != "api.c2.lab.test" || !strings.Contains(e.Summary, "NXDOMAIN") {
			t.Fatalf("alert DNS %+v, summary %q: want the name and what the box answered", e.DNS, e.Summary)
		}
		if n := len(alertsIn(t, dir)); n != 1 {
			t.Fatalf("%d alerts, want 1:\n%s", n, alertSummary(t, dir))
		}

		// Over TCP: dnsmasq answers a benign name; a listed one never
		// reaches it, the connection is reset.
		if r, err := l.lookupTCP(host, "tcp.www.lab.test", layers.DNSTypeA); err != nil || !slices.Equal(r.addrs, []netip.Addr{cncBenign}) {
			t.Fatalf("benign name over TCP: %v %v (%v); want %v from dnsmasq", r.rcode, r.addrs, err, cncBenign)
		}
		if r, err := l.lookupTCP(host, "tcp.c2.lab.test", layers.DNSTypeA); !isReset(err) && !errors.Is(err, io.EOF) {
			t.Fatalf("dns_block=nxdomain, over TCP: tcp.c2.lab.test answered %v %v (%v); want the connection reset", r.rcode, r.addrs, err)
		}
		if dm.queried(t, "tcp.c2.lab.test") {
			t.Fatal("dnsmasq received the blocked query over TCP")
		}
		e, _ = waitEvent(t, dir, func(e alert.Event) bool { return e.DNS != nil && e.DNS.RRName == "tcp.c2.lab.test" })
		if e.Alert == nil || e.Alert.SignatureID != 2220001 || e.Proto != "TCP" || e.Stars != 3 || e.Alert.Action != alert.ActionBlocked ||
			!strings.Contains(e.Summary, "reset") {
			t.Fatalf("want a ★★★ blocked 2220001 for the lookup over TCP saying the connection was reset:\n%s", alertSummary(t, dir))
		}
	})

	t.Run("sinkhole", func(t *testing.T) {
		p, dir := l.startIntel(t, `{"engine": {"dns_block": "sinkhole", "sinkhole4": "`+cncSink.String()+`"}}`,
			map[string]string{"lab-c2.list": cncList})
		defer p.stop()
		r := resolve(host, "cdn.c2.lab.test")
		if r.rcode != layers.DNSResponseCodeNoErr || !slices.Equal(r.addrs, []netip.Addr{cncSink}) {
			t.Fatalf("dns_block=sinkhole: cdn.c2.lab.test answered %v %v; want the sinkhole %v", r.rcode, r.addrs, cncSink)
		}
		if dm.queried(t, "cdn.c2.lab.test") {
			t.Fatal("dnsmasq received the sinkholed query")
		}
		wantCNC(t, dir, 2220001, 3, alert.ActionBlocked, "c2.lab.test")
		if r := resolve(host, "cdn.www.lab.test"); !slices.Equal(r.addrs, []netip.Addr{cncBenign}) {
			t.Fatalf("benign name under the sinkhole policy: %v %v; want %v", r.rcode, r.addrs, cncBenign)
		}
		if n := len(alertsIn(t, dir)); n != 1 {
			t.Fatalf("%d alerts, want 1:\n%s", n, alertSummary(t, dir))
		}
	})
	if benign.count() < 1 {
		t.Fatal("the benign server was never reached")
	}
}

// TestCNCLabTLS: Go TLS 1.2 clients and servers. A ClientHello naming a
// listed domain is reset before the handshake completes (★★★ 2220005),
// also inside an HTTP proxy's CONNECT tunnel; a
// server presenting a certificate whose SHA-1 is listed is cut before the
// client gets it (★★★ 2220007); a benign SNI to the same server completes
// and exchanges a request.
func TestCNCLabTLS(t *testing.T) {
	l := newLab(t)
	goodCert, _ := selfSigned(t, "www.lab.test")
	badCert, badSHA1 := selfSigned(t, "panel.lab.test")
	rl := &requestLog{}
	good := netip.AddrPortFrom(nslab.ServerAddr, 443)
	bad := netip.AddrPortFrom(nslab.ServerAddr, 8443)
	l.serveHTTP(t, good, rl, goodCert)
	l.serveHTTP(t, bad, rl, badCert)
	host := officeHost(3)

	// Control without utmd: the listed certificate's server answers.
	if _, err := l.tlsHandshake(host, bad, "files.lab.test"); err != nil || !rl.has("tls:files.lab.test ") {
		t.Fatalf("control: TLS to the listed-certificate server without utmd: %v", err)
	}
	list := "c2-sni.lab.test lab-rat\n" + badSHA1 + " lab-rat-cert\n"
	_, dir := l.startIntel(t, "", map[string]string{"lab-tls.list": list})

	if _, err := l.tlsHandshake(host, good, "www.lab.test"); err != nil || !rl.has("tls:www.lab.test ") {
		t.Fatalf("benign TLS: %v (server saw %v); want a completed handshake and request", err, rl.seen)
	}
	took, err := l.tlsHandshake(host, good, "c2-sni.lab.test")
	if !isReset(err) || took > time.Second {
		t.Fatalf("TLS with a listed SNI: %v after %v; want a reset within 1 s", err, took)
	}
	if rl.has("tls:c2-sni.lab.test") {
		t.Fatal("the server completed a handshake with the listed SNI")
	}
	e := wantCNC(t, dir, 2220005, 3, alert.ActionBlocked, "c2-sni.lab.test")
	if e.TLS == nil || e.TLS.SNI != "c2-sni.lab.test" {
		t.Fatalf("2220005 TLS metadata %+v; want the SNI", e.TLS)
	}

	// The same through an HTTP proxy's CONNECT tunnel: the TLS inside is
	// inspected as TLS.
	proxy := netip.AddrPortFrom(nslab.ServerAddr, 3128)
	l.serveProxy(t, proxy)
	if _, err := l.tlsVia(host, proxy, good, "proxied.lab.test"); err != nil || !rl.has("tls:proxied.lab.test ") {
		t.Fatalf("benign TLS through the proxy: %v (server saw %v); want a completed handshake and request", err, rl.seen)
	}
	took, err = l.tlsVia(host, proxy, good, "c2-sni.lab.test")
	if !isReset(err) || took > time.Second {
		t.Fatalf("TLS with a listed SNI through the proxy: %v after %v; want a reset within 1 s", err, took)
	}
	e, _ = waitEvent(t, dir, func(e alert.Event) bool { return e.Alert != nil && e.DestPort == proxy.Port() })
	if e.Alert == nil || e.Alert.SignatureID != 2220005 || e.Stars != 3 || e.TLS == nil || e.TLS.SNI != "c2-sni.lab.test" {
		t.Fatalf("want a ★★★ 2220005 for the SNI inside the tunnel:\n%s", alertSummary(t, dir))
	}

	took, err = l.tlsHandshake(host, bad, "files2.lab.test")
	if !isReset(err) || took > time.Second {
		t.Fatalf("TLS to a server with a listed certificate: %v after %v; want a reset within 1 s", err, took)
	}
	if rl.has("tls:files2.lab.test") {
		t.Fatal("the handshake with the listed certificate completed")
	}
	e = wantCNC(t, dir, 2220007, 3, alert.ActionBlocked, badSHA1)
	if e.TLS == nil || strings.ReplaceAll(e.TLS.Fingerprint, ":", "") != badSHA1 {
		t.Fatalf("2220007 TLS metadata %+v; want the certificate fingerprint %s", e.TLS, badSHA1)
	}
	if n := len(alertsIn(t, dir)); n != 3 {
		t.Fatalf("%d alerts, want 3:\n%s", n, alertSummary(t, dir))
	}
}

// urlhausCSV is a URLhaus export (header commented, as abuse.ch ships it)
// listing one download URL.
const urlhausCSV = `################################################################
# abuse.ch URLhaus Database Dump (CSV)                         #
################################################################
#
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
"3700001","2026-08-14 09:56:04","http://dl.lab.test/files/invoice.exe","online","2026-08-14 09:56:04","malware_download","exe,Formbook","https://urlhaus.abuse.ch/url/3700001/","lab"
`

// feodoCSV is a Feodo Tracker ipblocklist.csv listing the lab server on
// port 4443.
const feodoCSV = `################################################################
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #
################################################################
"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"
"2026-08-01 07:44:46","198.18.101.2","4443","online","2026-08-14","Dridex"
`

// TestCNCLabHTTP: HTTP requests to a listed host (plain list) and for a
// listed URL (URLhaus CSV) are reset and never reach the server (★★★
// 2220004, 2220008), while another URL on the same host is answered; a
// Feodo IP:port refuses the SYN to that port (★★★ 2220002) while another
// port of the same address passes.
func TestCNCLabHTTP(t *testing.T) {
	l := newLab(t)
	rl := &requestLog{}
	web := netip.AddrPortFrom(nslab.ServerAddr, 8080)
	l.serveHTTP(t, web, rl, nil)
	listedPort := l.serveTCP(t, netip.AddrPortFrom(nslab.ServerAddr, 4443))
	otherPort := l.serveTCP(t, netip.AddrPortFrom(nslab.ServerAddr, 4444))
	_, dir := l.startIntel(t, "", map[string]string{
		"lab-hosts.list":  "c2-http.lab.test lab-bot\n",
		"urlhaus.csv":     urlhausCSV,
		"ipblocklist.csv": feodoCSV,
	})
	host := officeHost(4)
	get := func(hostHdr, path string) (string, error) {
		req, _ := http.NewRequest("GET", "http://"+web.String()+path, nil)
		req.Host = hostHdr
		resp, err := l.clientFrom(host).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	if b, err := get("dl.lab.test", "/files/readme.txt"); err != nil || b != "page /files/readme.txt\n" {
		t.Fatalf("control: an unlisted URL on the same host: %q, %v", b, err)
	}
	if b, err := get("dl.lab.test", "/files/invoice.exe"); !isReset(err) {
		t.Fatalf("listed URL: %q, %v; want the connection reset", b, err)
	}
	if rl.has("/files/invoice.exe") {
		t.Fatal("the server answered the listed URL")
	}
	e := waitSID(t, dir, 2220008)
	if len(e) != 1 || e[0].Stars != 3 || e[0].Alert.Action != alert.ActionBlocked || e[0].Intel == nil ||
		e[0].Intel.Kind != "url" || !strings.Contains(e[0].Intel.Indicator, "dl.lab.test/files/invoice.exe") ||
		e[0].Intel.Source != "urlhaus" || e[0].HTTP == nil || e[0].HTTP.URL != "/files/invoice.exe" {
		t.Fatalf("listed URL alerts %+v; want one ★★★ blocked 2220008 naming the urlhaus indicator and the URL\n%s", e, alertSummary(t, dir))
	}

	if b, err := get("c2-http.lab.test", "/gate.php?id=1"); !isReset(err) {
		t.Fatalf("listed host: %q, %v; want the connection reset", b, err)
	}
	if rl.has("c2-http.lab.test") {
		t.Fatal("the server answered a request to the listed host")
	}
	wantCNC(t, dir, 2220004, 3, alert.ActionBlocked, "c2-http.lab.test")

	start := time.Now()
	c, err := l.dialFrom(host, netip.AddrPortFrom(nslab.ServerAddr, 4443), 3*time.Second)
	if err == nil {
		c.Close()
	}
	if took := time.Since(start); !isReset(err) || took > time.Second || listedPort.count() != 0 {
		t.Fatalf("connection to the Feodo-listed port: %v after %v, server accepted %d; want refused at the SYN", err, took, listedPort.count())
	}
	ind := wantCNC(t, dir, 2220002, 3, alert.ActionBlocked, "198.18.101.2:4443")
	if ind.Intel.Source != "feodotracker" || ind.Intel.Family != "Dridex" {
		t.Fatalf("2220002 intel %+v; want source feodotracker, family Dridex", ind.Intel)
	}
	c, err = l.dialFrom(host, netip.AddrPortFrom(nslab.ServerAddr, 4444), 3*time.Second)
	if err != nil {
		t.Fatalf("another port of the listed address: %v; want it to connect", err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if b, err := io.ReadAll(c); err != nil || !strings.HasPrefix(string(b), "hello") || otherPort.count() != 1 {
		t.Fatalf("another port: %q, %v", b, err)
	}
	c.Close()
	if n := len(alertsIn(t, dir)); n != 3 {
		t.Fatalf("%d alerts, want 3:\n%s", n, alertSummary(t, dir))
	}
}

// TestCNCLabBeacon: one office host connects to a server every 800 ms with
// ±10 % jitter, 40 times (the detector's window is 24 h, so only the shape
// matters: the brief's 2 s period would take 80 s); another host connects
// to another port as often but at random (exponential) intervals. The
// beacon raises one ★★ 2220010 naming host and destination; the random
// one nothing.
func TestCNCLabBeacon(t *testing.T) {
	l := newLab(t)
	beaconDst := netip.AddrPortFrom(nslab.ServerAddr, 9443)
	randomDst := netip.AddrPortFrom(nslab.ServerAddr, 9444)
	l.serveTCP(t, beaconDst)
	l.serveTCP(t, randomDst)
	_, dir := l.startIntel(t, "", nil)
	beaconHost, randomHost := officeHost(5), officeHost(6)
	const n, period = 40, 800 * time.Millisecond
	run := func(src netip.Addr, dst netip.AddrPort, next func() time.Duration) error {
		for i := 0; i < n; i++ {
			c, err := l.dialFrom(src, dst, 3*time.Second)
			if err != nil {
				return fmt.Errorf("connection %d from %s: %w", i, src, err)
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			io.ReadAll(c)
			c.Close()
			time.Sleep(next())
		}
		return nil
	}
	rnd := rand.New(rand.NewPCG(7, 11))
	var mu sync.Mutex
	jitter := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(float64(period) * (0.9 + 0.2*rnd.Float64()))
	}
	random := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(float64(period) * rnd.ExpFloat64())
	}
	var wg sync.WaitGroup
	var randomErr error
	wg.Add(1)
	go func() { defer wg.Done(); randomErr = run(randomHost, randomDst, random) }()
	if err := run(beaconHost, beaconDst, jitter); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if randomErr != nil {
		t.Fatal(randomErr)
	}
	got := waitSID(t, dir, 2220010)
	if len(got) != 1 || got[0].SrcIP != beaconHost.String() || got[0].DestIP != beaconDst.Addr().String() ||
		got[0].DestPort != beaconDst.Port() || got[0].Stars != 2 || got[0].Alert.Action != alert.ActionAllowed {
		t.Fatalf("beacon alerts %+v; want one ★★ allowed 2220010 from %s to %s\n%s", got, beaconHost, beaconDst, alertSummary(t, dir))
	}
	t.Logf("beacon alert: %s", got[0].Summary)
	if n := len(alertsIn(t, dir)); n != 1 {
		t.Fatalf("%d alerts, want only the beacon (the random host is the control):\n%s", n, alertSummary(t, dir))
	}
}

// dgaName is a random 15-letter .net name.
func dgaName(rnd *rand.Rand) string {
	b := make([]byte, 15)
	for i := range b {
		b[i] = byte('a' + rnd.IntN(26))
	}
	return string(b) + ".net"
}

// humanNames are 30 names that do not exist but read like a person's
// typos and stale bookmarks: the DGA control.
var humanNames = func() []string {
	a := []string{"office", "printer", "intranet", "backup", "mail", "portal"}
	b := []string{"server", "login", "old", "test", "files"}
	var out []string
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+"-"+y+".net")
		}
	}
	return out
}()

// TestCNCLabDGA: a host whose 30 lookups of random 15-letter names get
// NXDOMAIN from dnsmasq within a minute raises one ★★ 2220011; a host
// with as many failed lookups of readable names raises nothing. The DGA
// host then downloads EICAR: the AV alert joins the DGA signal in one ★★★
// incident 2220020, whose id the AV alert carries.
func TestCNCLabDGA(t *testing.T) {
	l := newLab(t)
	l.addServerAddrs(t)
	l.startDNSMasq(t, "/net/") // every .net name: NXDOMAIN
	_, dir := l.startIntel(t, "", nil)
	dgaHost, humanHost := officeHost(7), officeHost(0)

	for _, name := range humanNames {
		if r, err := l.lookup(humanHost, name, layers.DNSTypeA); err != nil || r.rcode != layers.DNSResponseCodeNXDomain {
			t.Fatalf("%s: %v %v; want NXDOMAIN from dnsmasq", name, r.rcode, err)
		}
	}
	rnd := rand.New(rand.NewPCG(2026, 8))
	for i := 0; i < 30; i++ {
		name := dgaName(rnd)
		if r, err := l.lookup(dgaHost, name, layers.DNSTypeA); err != nil || r.rcode != layers.DNSResponseCodeNXDomain {
			t.Fatalf("%s: %v %v; want NXDOMAIN from dnsmasq", name, r.rcode, err)
		}
	}
	got := waitSID(t, dir, 2220011)
	if len(got) != 1 || got[0].Stars != 2 || got[0].DestIP != dgaHost.String() && got[0].SrcIP != dgaHost.String() {
		t.Fatalf("DGA alerts %+v; want one ★★ 2220011 for %s\n%s", got, dgaHost, alertSummary(t, dir))
	}
	t.Logf("DGA alert: %s", got[0].Summary)
	if !strings.Contains(got[0].Summary, dgaHost.String()) {
		t.Fatalf("DGA summary %q does not name the host %s", got[0].Summary, dgaHost)
	}

	// The same host downloads EICAR (newLab's server, port 80).
	resp, err := l.clientFrom(dgaHost).Get("http://" + nslab.ServerAddr.String() + "/eicar")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "EICAR-STANDARD") {
			t.Fatal("EICAR reached the client")
		}
	}
	inc := waitSID(t, dir, 2220020)
	av := waitSID(t, dir, 2210001)
	if len(inc) != 1 || inc[0].Stars != 3 || inc[0].Incident == "" || len(av) != 1 || av[0].Incident != inc[0].Incident {
		t.Fatalf("incident %+v, AV alert %+v; want one ★★★ 2220020 whose incident_id the AV alert carries\n%s", inc, av, alertSummary(t, dir))
	}
	t.Logf("incident: %s", inc[0].Summary)
	if !strings.Contains(inc[0].Summary, dgaHost.String()) {
		t.Fatalf("incident summary %q does not name the host %s", inc[0].Summary, dgaHost)
	}
	if n := len(alertsIn(t, dir)); n != 3 {
		t.Fatalf("%d alerts, want 3 (DGA, AV, incident):\n%s", n, alertSummary(t, dir))
	}
}

// popularNames are 50 popular-looking names the benign run browses.
var popularNames = strings.Fields(`google.com youtube.com facebook.com wikipedia.org amazon.com
	instagram.com linkedin.com microsoft.com apple.com netflix.com yahoo.com bing.com office.com
	live.com twitter.com x.com reddit.com whatsapp.com zoom.us github.com stackoverflow.com
	dropbox.com adobe.com paypal.com ebay.com spotify.com twitch.tv cloudflare.com mozilla.org
	debian.org golang.org python.org nytimes.com bbc.co.uk cnn.com theguardian.com weather.com
	booking.com airbnb.com imdb.com pinterest.com tumblr.com wordpress.com salesforce.com
	slack.com atlassian.com gitlab.com ubuntu.com openai.com duckduckgo.com`)

// maltrailTrails is the full maltrail trails snapshot, if present.
const maltrailTrails = "/work/shared/data/maltrail-trails-2026-08.tar.gz"

// TestCNCLabBenign: one host resolves 50 popular-looking names through
// dnsmasq and fetches each over HTTP and HTTPS (SNI the name), with a
// person's irregular pauses, through utmd with the lab list and, when the
// snapshot is on the machine, the full maltrail trails: nothing is raised
// and every fetch is answered.
func TestCNCLabBenign(t *testing.T) {
	if len(popularNames) != 50 {
		t.Fatalf("%d names", len(popularNames))
	}
	l := newLab(t)
	l.addServerAddrs(t)
	var addrs []string
	for _, n := range popularNames {
		addrs = append(addrs, "/"+n+"/"+nslab.ServerAddr.String())
	}
	l.startDNSMasq(t, addrs...)
	cert, _ := selfSigned(t, "www.lab.test")
	rl := &requestLog{}
	l.serveHTTP(t, netip.AddrPortFrom(nslab.ServerAddr, 443), rl, cert)
	l.serveHTTP(t, netip.AddrPortFrom(nslab.ServerAddr, 8080), rl, nil)
	files := map[string]string{"lab-c2.list": cncList}
	if b, err := os.ReadFile(maltrailTrails); err == nil {
		files["maltrail-trails.tar.gz"] = string(b)
	} else {
		t.Logf("without the maltrail trails (%v): the lab list only", err)
	}
	p, dir := l.startIntel(t, "", files)
	t.Logf("intel: %s", grepLine(p.log.String(), "signatures loaded"))
	host := officeHost(0)
	resolved := map[string]netip.Addr{}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			h, port, _ := net.SplitHostPort(addr)
			a, ok := resolved[h]
			if !ok {
				return nil, errors.New("not resolved: " + h)
			}
			return l.dialFrom(host, netip.AddrPortFrom(a, uint16(must(strconv.Atoi(port)))), 3*time.Second)
		},
	}}
	rnd := rand.New(rand.NewPCG(50, 50))
	for _, name := range popularNames {
		r, err := l.lookup(host, name, layers.DNSTypeA)
		if err != nil || len(r.addrs) != 1 {
			t.Fatalf("%s: %v %v", name, r, err)
		}
		resolved[name] = r.addrs[0]
		for _, u := range []string{"http://" + name + ":8080/", "https://" + name + "/"} {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatalf("GET %s: %v\n%s", u, err, alertSummary(t, dir))
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			time.Sleep(time.Duration(rnd.IntN(200)) * time.Millisecond)
		}
	}
	if !rl.has("tls:duckduckgo.com duckduckgo.com /") || !rl.has("google.com:8080 /") {
		t.Fatalf("the server did not see the fetches: %v", rl.seen[:min(4, len(rl.seen))])
	}
	time.Sleep(300 * time.Millisecond)
	if a := alertsIn(t, dir); len(a) != 0 {
		t.Fatalf("the benign run raised %d alerts:\n%s", len(a), alertSummary(t, dir))
	}
}

func grepLine(s, substr string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCNCLabQUIC: an HTTP/3 client's first flight (two Initial packets, its
// ClientHello scattered across them as Chrome sends it) through the box to
// a UDP server: a benign name reaches the server whole, with what follows;
// a listed name is stopped at the datagram that completes the hello (the
// server gets only the first, the client an ICMP port unreachable) with
// ★★★ 2220005 naming QUIC.
func TestCNCLabQUIC(t *testing.T) {
	l := newLab(t)
	at := netip.AddrPortFrom(nslab.ServerAddr, 443)
	var pc net.PacketConn
	if err := nslab.Do(l.Server, func() (err error) { pc, err = net.ListenPacket("udp4", at.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	got := map[string]int{} // datagrams by client address
	go func() {
		b := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			mu.Lock()
			got[from.String()]++
			mu.Unlock()
		}
	}()
	_, dir := l.startIntel(t, "", map[string]string{"lab-quic.list": "c2-quic.lab.test lab-rat\n"})
	// send returns the client's address and whether the box answered
	// with an ICMP port unreachable (a rejected UDP flow: the socket's
	// next write fails with ECONNREFUSED).
	send := func(src netip.Addr, name string) (string, bool) {
		t.Helper()
		var c *net.UDPConn
		if err := nslab.Do(l.Client, func() (err error) {
			c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(at))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fl := quictest.Flight(t, quic.Version1, []byte{0xc2, 0x5e, 0x11, 0x0a, 1, 2, 3, byte(src.As4()[3])}, name)
		refused := false
		for _, d := range [][]byte{fl[0], fl[1], {0x40, 1, 2, 3}, {0x40, 4, 5, 6}} {
			if _, err := c.Write(d); errors.Is(err, syscall.ECONNREFUSED) {
				refused = true
				break
			} else if err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		return c.LocalAddr().String(), refused
	}
	benign, benignRefused := send(officeHost(4), "www.lab.test")
	listed, listedRefused := send(officeHost(5), "c2-quic.lab.test")
	mu.Lock()
	nb, nl := got[benign], got[listed]
	mu.Unlock()
	if nb != 4 || benignRefused || nl != 1 || !listedRefused {
		t.Fatalf("the server received %d datagrams of the benign flight (refused %v) and %d of the listed one (refused %v); want 4 (no), 1 (yes)",
			nb, benignRefused, nl, listedRefused)
	}
	e := wantCNC(t, dir, 2220005, 3, alert.ActionBlocked, "c2-quic.lab.test")
	if e.AppProto != "quic" || !strings.Contains(e.Alert.Signature, "QUIC") || e.TLS == nil || e.TLS.SNI != "c2-quic.lab.test" {
		t.Fatalf("2220005: app %q, signature %q, TLS %+v; want QUIC with the SNI", e.AppProto, e.Alert.Signature, e.TLS)
	}
}
