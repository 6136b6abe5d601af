package engine

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

const bufReq = "POST /dl/a/%2e%2e/x.exe?q=%41 HTTP/1.1\r\n" +
	"Host: www.lab.test\r\n" +
	"User-Agent: tester/1.0\r\n" +
	"Cookie: c=1\r\n" +
	"Referer:  http://r.test/  \r\n" +
	"Accept: */*\r\n" +
	"Accept-Encoding: gzip\r\n" +
	"Accept-Language: en-GB\r\n" +
	"Connection: keep-alive\r\n" +
	"Content-Type: text/plain\r\n" +
	"Content-Length: 4\r\n" +
	"\r\n" +
	"body"

const bufResp = "HTTP/1.1 302 Found\r\n" +
	"Server: nginx/1.2\r\n" +
	"Location: /next\r\n" +
	"Set-Cookie: s=2\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Disposition: attachment; filename=\"payload.bin\"\r\n" +
	"Content-Length: 5\r\n" +
	"\r\n" +
	"hello"

// TestHTTPHeaderScratch: the derived header buffers hold exactly what
// Suricata's do.
func TestHTTPHeaderScratch(t *testing.T) {
	var s httpScratch
	var in rules.Input
	line := []byte("GET / HTTP/1.1")
	block := []byte("Host:  a.test \r\nCookie: c=1\r\nX-Y: z\r\n\r\n")
	s.headers(&in, line, block, "cookie", rules.BufHTTPRequestHeader)
	want := map[rules.Buffer]string{
		rules.BufHTTPHeader:        "Host: a.test\r\nX-Y: z\r\n",
		rules.BufHTTPRawHeader:     string(block),
		rules.BufHTTPHeaderNames:   "\r\nHost\r\nCookie\r\nX-Y\r\n\r\n",
		rules.BufHTTPStart:         "GET / HTTP/1.1\r\nHost: a.test\r\nCookie: c=1\r\nX-Y: z\r\n\r\n",
		rules.BufHTTPRequestHeader: "Host: a.test\r\nCookie: c=1\r\nX-Y: z\r\n",
	}
	for b, w := range want {
		if got := string(in.Buf[b]); got != w {
			t.Errorf("buffer %d = %q, want %q", b, got, w)
		}
	}
	// A block with only the cookie: http.header is absent, not empty.
	in = rules.Input{}
	s.headers(&in, line, []byte("Cookie: c=1\r\n\r\n"), "cookie", rules.BufHTTPRequestHeader)
	if in.Buf[rules.BufHTTPHeader] != nil || in.Buf[rules.BufHTTPHeaderNames] == nil {
		t.Fatalf("cookie-only block: header %q (want absent), names %q", in.Buf[rules.BufHTTPHeader], in.Buf[rules.BufHTTPHeaderNames])
	}
}

// TestHTTPBuffers: each HTTP buffer keyword matches what Suricata puts in
// that buffer, and does not match what it leaves out.
func TestHTTPBuffers(t *testing.T) {
	cases := []struct {
		opts string // buffer and content options
		hit  bool
	}{
		{`http.uri; content:"/dl/x.exe?q=A"; depth:13;`, true}, // decoded, dots resolved
		{`http.uri.raw; content:"/dl/a/%2e%2e/x.exe?q=%41"; depth:24;`, true},
		{`http.method; content:"POST"; depth:4;`, true},
		{`http.request_line; content:"POST /dl/a/%2e%2e/x.exe?q=%41 HTTP/1.1"; depth:38;`, true},
		{`http.request_line; content:"|0d 0a|";`, false},
		{`http.protocol; content:"HTTP/1.1"; depth:8; flow:to_server;`, true},
		{`http.protocol; content:"HTTP/1.1"; depth:8; flow:to_client;`, true},
		{`http.host; content:"www.lab.test"; depth:12;`, true},
		{`http.user_agent; content:"tester/1.0"; depth:10;`, true},
		{`http.cookie; content:"c=1"; depth:3;`, true},
		{`http.referer; content:"http://r.test/"; depth:14;`, true}, // trimmed
		{`http.accept; content:"*/*"; depth:3;`, true},
		{`http.accept_enc; content:"gzip"; depth:4;`, true},
		{`http.accept_lang; content:"en-GB"; depth:5;`, true},
		{`http.connection; content:"keep-alive"; depth:10;`, true},
		{`http.content_type; content:"text/plain"; depth:10;`, true},
		{`http.content_type; content:"application/octet-stream"; depth:24;`, true},
		{`http.content_len; content:"4"; depth:1; flow:to_server;`, true},
		{`http.content_len; content:"5"; depth:1; flow:to_client;`, true},
		{`http.header; content:"Host: www.lab.test|0d 0a|User-Agent: tester/1.0|0d 0a|Referer: http://r.test/|0d 0a|"; depth:71;`, true},
		{`http.header; content:"Cookie";`, false},     // http.cookie has it
		{`http.header; content:"Set-Cookie";`, false}, // idem in responses
		{`http.header; content:"POST";`, false},       // no start line
		{`http.header.raw; content:"Referer:  http://r.test/  |0d 0a|";`, true},
		{`http.header.raw; content:"Cookie: c=1";`, true},
		{`http.header_names; content:"|0d 0a|Host|0d 0a|User-Agent|0d 0a|Cookie|0d 0a|"; depth:28;`, true},
		{`http.header_names; content:"Content-Length|0d 0a 0d 0a|";`, true},
		{`http.start; content:"POST /dl/a/%2e%2e/x.exe?q=%41 HTTP/1.1|0d 0a|Host: www.lab.test|0d 0a|"; depth:60;`, true},
		{`http.start; content:"Content-Length: 4|0d 0a 0d 0a|";`, true},
		{`http.request_header; content:"Cookie: c=1|0d 0a|";`, true},
		{`http.response_header; content:"Set-Cookie: s=2|0d 0a|";`, true},
		{`http.stat_code; content:"302"; depth:3;`, true},
		{`http.stat_msg; content:"Found"; depth:5;`, true},
		{`http.response_line; content:"HTTP/1.1 302 Found"; depth:18;`, true},
		{`http.server; content:"nginx/1.2"; depth:9;`, true},
		{`http.location; content:"/next"; depth:5;`, true},
		{`file.name; content:"payload.bin"; depth:11;`, true}, // Content-Disposition
		{`file.name; content:"x.exe"; depth:5;`, true},        // the upload: last URI segment
		{`http.server; content:"tester";`, false},
	}
	text := ""
	for i, c := range cases {
		text += fmt.Sprintf("alert http any any -> any any (msg:\"case %d\"; %s sid:%d; rev:1;)\n", i, c.opts, 9200000+i)
	}
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte(bufReq), 0)
	c.Server([]byte(bufResp), 0)
	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, text))
	for _, p := range tr.Sorted() {
		e.Process(p.TS, p.Data)
	}
	var fired []int
	for _, a := range rec.alerts() {
		fired = append(fired, a.Alert.SignatureID-9200000)
	}
	for i, c := range cases {
		if got := slices.Contains(fired, i); got != c.hit {
			t.Errorf("case %d %s: fired %v, want %v", i, c.opts, got, c.hit)
		}
	}
}

// TestHTTPBuffersAllocs: filling the HTTP buffers of a request and a
// response on a kept connection does not allocate (bodiless messages: a
// file costs allocations of its own, per file).
func TestHTTPBuffersAllocs(t *testing.T) {
	const n = 300
	req := strings.Replace(strings.TrimSuffix(bufReq, "body"), "Content-Length: 4", "X-A: b", 1)
	resp := strings.Replace(strings.TrimSuffix(bufResp, "hello"), "Content-Length: 5", "Content-Length: 0", 1)
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	for i := 0; i < n; i++ {
		c.Client([]byte(req), 0)
		c.Server([]byte(resp), 0)
	}
	pkts := tr.Sorted()
	e := New(Config{}, ruleBundle(t, `alert http any any -> any any (msg:"never"; http.header_names; content:"|0d 0a|Nope|0d 0a|"; sid:9200999; rev:1;)`+"\n"))
	for _, p := range pkts[:40] {
		e.Process(p.TS, p.Data)
	}
	i := 40
	allocs := testing.AllocsPerRun(len(pkts)-80, func() {
		e.Process(pkts[i].TS, pkts[i].Data)
		i++
	})
	if allocs != 0 {
		t.Fatalf("HTTP inspection allocates %v times per packet; want 0", allocs)
	}
	if got := e.Counters()["http_requests"]; got < n/2 {
		t.Fatalf("only %d requests parsed; the test did not exercise the HTTP path", got)
	}
}

// ruleAlerts runs pkts through an engine with the rules text, closes it,
// and returns the alerts.
func ruleAlerts(t *testing.T, text string, pkts []testpcap.Packet) []*alert.Event {
	t.Helper()
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, ruleBundle(t, text))
	verdicts(e, pkts)
	e.Close()
	return rec.alerts()
}

// TestHTTPMetaNotInherited: an alert on a response packet that comes
// before the response header is complete names the request it answers,
// not one of an earlier connection whose pooled HTTP state the flow took.
func TestHTTPMetaNotInherited(t *testing.T) {
	ta := testpcap.NewTrace(t0)
	a := ta.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	a.Client([]byte("GET /secret-a HTTP/1.1\r\nHost: a.test\r\n\r\n"), 0)
	a.Server([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)
	tb := testpcap.NewTrace(t0.Add(time.Hour)) // a's flow has timed out: b takes its state
	b := tb.NewTCP("198.18.1.2:40001", "198.18.2.2:80").Handshake()
	b.Client([]byte("GET /b HTTP/1.1\r\nHost: b.test\r\n\r\n"), 0)
	b.Server([]byte("HTTP/1.1 200 OK\r\nServ"), 0) // the header ends in the next segment
	b.Server([]byte("er: x\r\nContent-Length: 0\r\n\r\n"), 0)
	al := ruleAlerts(t, `alert tcp any 80 -> any any (msg:"status line"; flow:to_client; content:"HTTP/1.1 200 OK"; depth:15; sid:9300001; rev:1;)`,
		append(ta.Sorted(), tb.Sorted()...))
	if len(al) != 1 {
		t.Fatalf("%d alerts, want 1 (the second connection's status line)", len(al))
	}
	if h := al[0].HTTP; h == nil || h.URL != "/b" || h.Hostname != "b.test" || h.Method != "GET" {
		t.Errorf("the alert on the second connection names %+v, want its own request GET b.test /b", h)
	}
}

// TestHTTPMetaRequestInProgress: an alert on a client packet that carries
// the start of a request header names no earlier request of the
// connection: the request being sent is not known yet.
func TestHTTPMetaRequestInProgress(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /one HTTP/1.1\r\nHost: one.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)
	c.Client([]byte("GET /two HTTP/1.1\r\nHo"), 0) // the header ends in the next segment
	c.Client([]byte("st: two.test\r\n\r\n"), 0)
	al := ruleAlerts(t, `alert tcp any any -> any 80 (msg:"second request line"; flow:to_server; content:"GET /two"; depth:8; sid:9300002; rev:1;)`, tr.Sorted())
	if len(al) != 1 {
		t.Fatalf("%d alerts, want 1 (the second request's first segment)", len(al))
	}
	if h := al[0].HTTP; h != nil {
		t.Errorf("the alert on the second request's first segment names %+v, want no request", *h)
	}
}

// TestHTTPMetaInterimResponse: a "100 Continue" answers the request that
// waits for it; alerts on it, by its status or by its packet's bytes,
// name that request, not the connection's previous one.
func TestHTTPMetaInterimResponse(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /first HTTP/1.1\r\nHost: up.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)
	c.Client([]byte("PUT /up/x.txt HTTP/1.1\r\nHost: up.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 100 Continue\r\n\r\n"), 0)
	c.Client([]byte("hello"), 0)
	c.Server([]byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), 0)
	al := ruleAlerts(t, `alert http any any -> any any (msg:"interim status"; flow:to_client; http.stat_code; content:"100"; sid:9300003; rev:1;)
alert tcp any 80 -> any any (msg:"interim bytes"; flow:to_client; content:"100 Continue"; sid:9300004; rev:1;)`, tr.Sorted())
	if len(al) != 2 {
		t.Fatalf("%d alerts, want 2 (the interim response's status and bytes)", len(al))
	}
	for _, a := range al {
		if h := a.HTTP; h == nil || h.Method != "PUT" || h.URL != "/up/x.txt" || h.Status != 100 {
			t.Errorf("%s names %+v, want the request it answers, PUT /up/x.txt, status 100", a.Alert.Signature, h)
		}
	}
}

// connectTrace opens a CONNECT tunnel to target through a proxy at
// 198.18.2.2:3128, then carries the client's and the server's flights
// through it in turn.
func connectTrace(target string, flights ...[]byte) []testpcap.Packet {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:3128").Handshake()
	c.Client([]byte("CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 200 Connection established\r\n\r\n"), 0)
	for i, f := range flights {
		if i%2 == 0 {
			c.Client(f, 0)
		} else {
			c.Server(f, 0)
		}
	}
	c.Close()
	return tr.Sorted()
}

// TestHTTPConnectTunnel: what a client sends through a proxy's CONNECT
// tunnel is inspected as what it is, not as the body of the proxy's "200
// Connection established": the TLS inside is followed (its SNI matched by
// rules and by threat intel, the flow bypassed once both sides encrypt)
// and no file is made of it; plain HTTP inside is parsed as HTTP.
func TestHTTPConnectTunnel(t *testing.T) {
	h := tlstest.Record(t, tls.VersionTLS12, "c2.tls.example")
	ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
	sf := beforeRecord(h.Server, 20)
	tlsIn := connectTrace("198.18.2.9:443", h.Client[:ch], h.Server[:sf], h.Client[ch:], h.Server[sf:])

	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, `alert tls any any -> any any (msg:"sni"; tls.sni; content:"c2.tls.example"; sid:1;)`))
	vs := verdicts(e, tlsIn)
	e.Close()
	al := rec.alerts()
	if len(al) != 1 || al[0].AppProto != "tls" || al[0].TLS == nil || al[0].TLS.SNI != "c2.tls.example" {
		t.Fatalf("want the SNI rule's alert with the tunnel's TLS metadata, got %d alerts: %+v", len(al), al)
	}
	if fi := rec.fileinfos(); len(fi) != 0 {
		t.Errorf("the tunnel was reported as a file: %+v", fi[0].FileInfo)
	}
	s := e.Stats()
	if s.HTTPTunnels.Load() != 1 || s.Stream.BypassTLS.Load() != 1 || vs[len(vs)-1] != Bypass {
		t.Errorf("tunnels %d, TLS bypasses %d, last verdict %v; want 1, 1, bypass", s.HTTPTunnels.Load(), s.Stream.BypassTLS.Load(), vs[len(vs)-1])
	}

	rec = recorder{}
	e = New(Config{Sink: &rec, Reset: &resets{}}, intelBundle(t, "c2.tls.example\n"))
	vs = verdicts(e, tlsIn)
	e.Close()
	if al := rec.alerts(); len(al) != 1 || al[0].Alert.SignatureID != sidCNCTLSSNI || al[0].Stars != 3 {
		t.Fatalf("a C&C name in a tunnel's SNI: want one ★★★ sid %d alert, got %+v", sidCNCTLSSNI, al)
	}
	if vs[len(vs)-1] == Accept {
		t.Error("the C&C connection through the proxy was not blocked")
	}

	al = ruleAlerts(t, `alert http any any -> any any (msg:"inner uri"; http.uri; content:"/gate.php"; sid:2;)`,
		connectTrace("198.18.2.9:80", []byte("GET /gate.php?id=1 HTTP/1.1\r\nHost: inner.test\r\n\r\n"),
			[]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")))
	if len(al) != 1 || al[0].HTTP == nil || al[0].HTTP.Hostname != "inner.test" || al[0].HTTP.URL != "/gate.php?id=1" {
		t.Fatalf("plain HTTP in a tunnel: want the inner request's alert, got %+v", al)
	}
}

// proxyExchange is one request to a proxy at 198.18.2.2:3128 and a short
// "200 OK".
func proxyExchange(req string) []testpcap.Packet {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:3128").Handshake()
	c.Client([]byte(req), 0)
	c.Server([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0)
	return tr.Sorted()
}

// TestHTTPProxyRequest: a request to a proxy names its target in full
// ("GET http://host/path"); http.uri holds the path and query, as for the
// same request sent to the server, so ET's rules anchored at the path
// ("^/gate.php", startswith) still match it. The alert's URL is the target
// as sent.
func TestHTTPProxyRequest(t *testing.T) {
	req := "GET http://www.lab.test/dir/../gate.php?id=1 HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"
	al := ruleAlerts(t, `alert http any any -> any any (msg:"path"; http.uri; content:"/gate.php?"; startswith; sid:1;)
alert http any any -> any any (msg:"pcre"; pcre:"/^\/gate\.php\?id=\d$/U"; urilen:14; sid:2;)
alert http any any -> any any (msg:"raw"; http.uri.raw; content:"http://www.lab.test/dir/"; startswith; sid:3;)`, proxyExchange(req))
	if len(al) != 3 {
		t.Fatalf("%d alerts, want 3 (http.uri from the path, with pcre and urilen; http.uri.raw as sent)", len(al))
	}
	for _, a := range al {
		if h := a.HTTP; h == nil || h.URL != "http://www.lab.test/dir/../gate.php?id=1" || h.Hostname != "www.lab.test" {
			t.Errorf("%s: HTTP %+v, want the target as sent and host www.lab.test", a.Alert.Signature, h)
		}
	}
}

// TestHTTPProxyHostFromTarget: a proxy goes to the server its request's
// target names, whatever the Host header says, so a C&C name in the target
// (of a GET to a proxy, of a CONNECT) is caught behind a harmless Host
// header.
func TestHTTPProxyHostFromTarget(t *testing.T) {
	for _, req := range []string{
		"GET http://c2.lab.test:8080/gate.php HTTP/1.1\r\nHost: www.lab.test\r\n\r\n",
		"CONNECT c2.lab.test:443 HTTP/1.1\r\nHost: www.lab.test\r\n\r\n",
	} {
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}}, intelBundle(t, "c2.lab.test\n"))
		vs := verdicts(e, proxyExchange(req))
		e.Close()
		al := rec.alerts()
		if len(al) != 1 || al[0].Alert.SignatureID != sidCNCHTTPHost || al[0].HTTP == nil || al[0].HTTP.Hostname != "c2.lab.test" {
			t.Fatalf("%q: want one sid %d alert naming c2.lab.test, got %+v", req, sidCNCHTTPHost, al)
		}
		if vs[len(vs)-1] == Accept {
			t.Errorf("%q: the request for the C&C server was not blocked", req)
		}
	}
}
