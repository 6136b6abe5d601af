package http1

import (
	"fmt"
	"strings"
	"testing"
)

// recorder turns parse events into a readable trace.
type recorder struct{ ev []string }

func (r *recorder) Request(q *Request) {
	r.ev = append(r.ev, fmt.Sprintf("req %s %s host=%s cl=%d chunked=%v", q.Method, q.URI, q.Host, q.ContentLength, q.Chunked))
}
func (r *recorder) Response(s *Response) {
	r.ev = append(r.ev, fmt.Sprintf("resp %d method=%s cl=%d chunked=%v", s.Status, s.Method, s.ContentLength, s.Chunked))
}
func (r *recorder) Body(d Dir, b []byte) {
	if n := len(r.ev); n > 0 && strings.HasPrefix(r.ev[n-1], fmt.Sprintf("body%d ", d)) {
		r.ev[n-1] += string(b)
		return
	}
	r.ev = append(r.ev, fmt.Sprintf("body%d %s", d, b))
}
func (r *recorder) BodyEnd(d Dir, complete bool) {
	r.ev = append(r.ev, fmt.Sprintf("end%d complete=%v", d, complete))
}

type feed struct {
	d Dir
	s string
}

func run(feeds []feed, chunk int, close bool) []string {
	var r recorder
	var p Parser
	p.Init(&r)
	for _, f := range feeds {
		b := []byte(f.s)
		for len(b) > 0 {
			n := chunk
			if n <= 0 || n > len(b) {
				n = len(b)
			}
			p.Feed(f.d, b[:n])
			b = b[n:]
		}
	}
	if close {
		p.Close()
	}
	return r.ev
}

func TestParser(t *testing.T) {
	cases := []struct {
		name  string
		feeds []feed
		close bool
		want  []string
	}{
		{
			name: "get with content-length",
			feeds: []feed{
				{ToServer, "GET /a.txt HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"},
				{ToClient, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
			},
			want: []string{
				"req GET /a.txt host=www.lab.test cl=-1 chunked=false",
				"resp 200 method=GET cl=5 chunked=false",
				"body1 hello",
				"end1 complete=true",
			},
		},
		{
			name: "pipelined HEAD then GET chunked",
			feeds: []feed{
				{ToServer, "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n"},
				{ToClient, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n"},
			},
			want: []string{
				"req HEAD /x host=h cl=-1 chunked=false",
				"req GET /y host=h cl=-1 chunked=false",
				"resp 200 method=HEAD cl=100 chunked=false",
				"resp 200 method=GET cl=-1 chunked=true",
				"body1 abcde",
				"end1 complete=true",
			},
		},
		{
			name: "post body then 204",
			feeds: []feed{
				{ToServer, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"},
				{ToClient, "HTTP/1.1 204 No Content\r\n\r\n"},
			},
			want: []string{
				"req POST /up host=h cl=3 chunked=false",
				"body0 xyz",
				"end0 complete=true",
				"resp 204 method=POST cl=-1 chunked=false",
			},
		},
		{
			name: "close delimited body",
			feeds: []feed{
				{ToServer, "GET / HTTP/1.0\r\n\r\n"},
				{ToClient, "HTTP/1.0 200 OK\r\n\r\nuntil close"},
			},
			close: true,
			want: []string{
				"req GET / host= cl=-1 chunked=false",
				"resp 200 method=GET cl=-1 chunked=false",
				"body1 until close",
				"end1 complete=true",
			},
		},
		{
			name: "cut body is incomplete",
			feeds: []feed{
				{ToServer, "GET / HTTP/1.1\r\n\r\n"},
				{ToClient, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
			},
			close: true,
			want: []string{
				"req GET / host= cl=-1 chunked=false",
				"resp 200 method=GET cl=10 chunked=false",
				"body1 abc",
				"end1 complete=false",
			},
		},
		{
			name:  "not http",
			feeds: []feed{{ToServer, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"}},
			want:  nil,
		},
	}
	for _, c := range cases {
		for _, chunk := range []int{0, 1, 7} {
			got := run(c.feeds, chunk, c.close)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s (chunk %d):\ngot  %q\nwant %q", c.name, chunk, got, c.want)
			}
		}
	}
}

func TestHeaderCap(t *testing.T) {
	var r recorder
	var p Parser
	p.Init(&r)
	p.Feed(ToServer, []byte("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", MaxHeader)))
	if !p.Broken(ToServer) {
		t.Fatal("a header block over MaxHeader must stop parsing")
	}
	if len(r.ev) != 0 {
		t.Fatalf("no events expected, got %q", r.ev)
	}
}

// TestInHeader: InHeader is true from a header's first byte to its end,
// and again at the next message's first byte.
func TestInHeader(t *testing.T) {
	var p Parser
	p.Init(nopHandler{})
	p.Feed(ToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
	steps := []struct {
		feed string
		want bool
	}{
		{"", false},
		{"HTTP/1.1 200 OK\r\nCont", true},
		{"ent-Length: 3\r\n\r\nab", false}, // in the body
		{"c", false},                       // between messages
		{"HTTP/1.1 204 No", true},
		{" Content\r\n\r\n", false},
	}
	for i, s := range steps {
		p.Feed(ToClient, []byte(s.feed))
		if got := p.InHeader(ToClient); got != s.want {
			t.Errorf("step %d (%q): InHeader %v, want %v", i, s.feed, got, s.want)
		}
	}
	if p.InHeader(ToServer) {
		t.Error("InHeader(ToServer) after a complete request")
	}
}

type nopHandler struct{}

func (nopHandler) Request(*Request)   {}
func (nopHandler) Response(*Response) {}
func (nopHandler) Body(Dir, []byte)   {}
func (nopHandler) BodyEnd(Dir, bool)  {}

func TestFeedAllocs(t *testing.T) {
	var p Parser
	h := nopHandler{}
	req := []byte("GET /big.bin HTTP/1.1\r\nHost: www.lab.test\r\nUser-Agent: t\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd")
	p.Init(h)
	p.Feed(ToServer, req)
	p.Feed(ToClient, resp)
	n := testing.AllocsPerRun(100, func() {
		p.Feed(ToServer, req)
		p.Feed(ToClient, resp)
	})
	if n != 0 {
		t.Fatalf("Feed allocates %v times per request/response; want 0", n)
	}
}

func FuzzParser(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"), []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nzz"), uint8(1))
	f.Add([]byte("CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01"), []byte("HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03"), uint8(5))
	f.Fuzz(func(t *testing.T, a, b []byte, chunk uint8) {
		var p Parser
		var r recorder
		p.Init(&r)
		n := int(chunk%16) + 1
		tunnelAt := -1 // events when the connection was tunneled
		feed := func(d Dir, b []byte) {
			rest := p.Feed(d, b)
			if len(rest) > len(b) || len(rest) > 0 && &rest[len(rest)-1] != &b[len(b)-1] {
				t.Fatalf("Feed handed back %q, not a tail of %q", rest, b)
			}
			if p.Tunneled() {
				if tunnelAt < 0 {
					tunnelAt = len(r.ev)
				} else if len(r.ev) != tunnelAt {
					t.Fatalf("events after the tunnel began: %q", r.ev[tunnelAt:])
				}
			}
		}
		for len(a) > 0 || len(b) > 0 {
			k := min(n, len(a))
			feed(ToServer, a[:k])
			a = a[k:]
			k = min(n, len(b))
			feed(ToClient, b[:k])
			b = b[k:]
		}
		p.Close()
		// Bodies always end: every body event is followed by an end.
		open := [2]bool{}
		for _, e := range r.ev {
			switch {
			case strings.HasPrefix(e, "body0"):
				open[0] = true
			case strings.HasPrefix(e, "body1"):
				open[1] = true
			case strings.HasPrefix(e, "end0"):
				open[0] = false
			case strings.HasPrefix(e, "end1"):
				open[1] = false
			}
		}
		if open[0] || open[1] {
			t.Fatalf("body without end after Close: %q", r.ev)
		}
	})
}

// TestTunnel: a 2xx answer to CONNECT and a 101 switch the connection to
// another protocol from the byte after the response's header, whatever
// the segmentation; Feed hands those bytes back and parses no more. A
// refused CONNECT and a response without a length stay HTTP.
func TestTunnel(t *testing.T) {
	hello := "\x16\x03\x01\x00\x05hello"
	cases := []struct {
		name       string
		feeds      []feed
		tunnel     bool
		want       []string
		wantClient string // bytes handed back, by direction
		wantServer string
	}{
		{"connect", []feed{
			{ToServer, "CONNECT bad.example:443 HTTP/1.1\r\nHost: bad.example:443\r\n\r\n"},
			{ToClient, "HTTP/1.1 200 Connection established\r\n\r\n"},
			{ToServer, hello},
			{ToClient, "\x16\x03\x03\x00\x02sh"},
		}, true, []string{"req CONNECT bad.example:443 host=bad.example:443 cl=-1 chunked=false", "resp 200 method=CONNECT cl=-1 chunked=false"},
			hello, "\x16\x03\x03\x00\x02sh"},
		{"connect, the tunnel's first bytes with the answer", []feed{
			{ToServer, "CONNECT 198.18.2.2:8443 HTTP/1.1\r\n\r\n"},
			{ToClient, "HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\nSSH-2.0-x\r\n"},
		}, true, []string{"req CONNECT 198.18.2.2:8443 host=198.18.2.2:8443 cl=-1 chunked=false", "resp 200 method=CONNECT cl=-1 chunked=false"},
			"", "SSH-2.0-x\r\n"},
		{"websocket", []feed{
			{ToServer, "GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
			{ToClient, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi"},
			{ToServer, "\x81\x82abcd\x09\x0b"},
		}, true, []string{"req GET /chat host=a.test cl=-1 chunked=false", "resp 101 method=GET cl=-1 chunked=false"},
			"\x81\x82abcd\x09\x0b", "\x81\x02hi"},
		{"connect refused", []feed{
			{ToServer, "CONNECT bad.example:443 HTTP/1.1\r\n\r\n"},
			{ToClient, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"},
			{ToServer, "GET / HTTP/1.1\r\n\r\n"},
		}, false, []string{"req CONNECT bad.example:443 host=bad.example:443 cl=-1 chunked=false", "resp 407 method=CONNECT cl=2 chunked=false",
			"body1 no", "end1 complete=true", "req GET / host= cl=-1 chunked=false"}, "", ""},
		{"no length is a body, not a tunnel", []feed{
			{ToServer, "GET / HTTP/1.1\r\n\r\n"},
			{ToClient, "HTTP/1.1 200 OK\r\n\r\nabc"},
		}, false, []string{"req GET / host= cl=-1 chunked=false", "resp 200 method=GET cl=-1 chunked=false", "body1 abc"}, "", ""},
	}
	for _, c := range cases {
		for _, chunk := range []int{0, 1, 7} {
			var r recorder
			var p Parser
			p.Init(&r)
			var back [2]string
			for _, f := range c.feeds {
				b := []byte(f.s)
				for len(b) > 0 {
					n := chunk
					if n <= 0 || n > len(b) {
						n = len(b)
					}
					back[f.d] += string(p.Feed(f.d, b[:n]))
					b = b[n:]
				}
			}
			if p.Tunneled() != c.tunnel || strings.Join(r.ev, "|") != strings.Join(c.want, "|") ||
				back[ToServer] != c.wantClient || back[ToClient] != c.wantServer {
				t.Errorf("%s (chunks of %d): tunneled %v, events %q, handed back %q / %q; want %v, %q, %q / %q",
					c.name, chunk, p.Tunneled(), r.ev, back[ToServer], back[ToClient], c.tunnel, c.want, c.wantClient, c.wantServer)
			}
		}
	}
}
