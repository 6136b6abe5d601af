package http1

import (
	"fmt"
	"testing"
)

// fields records the header fields the engine's buffers come from.
type fields struct {
	recorder
	got []string
}

func (f *fields) Request(q *Request) {
	f.got = append(f.got, fmt.Sprintf("line=%q proto=%q referer=%q accept=%q ae=%q al=%q conn=%q cl=%q",
		q.Line, q.Proto, q.Referer, q.Accept, q.AcceptEncoding, q.AcceptLanguage, q.Connection, q.ContentLen))
}

func (f *fields) Response(s *Response) {
	f.got = append(f.got, fmt.Sprintf("line=%q proto=%q server=%q location=%q conn=%q cl=%q",
		s.Line, s.Proto, s.Server, s.Location, s.Connection, s.ContentLen))
}

// TestHeaderFields: the request and status lines and the single-header
// fields the rule buffers need, trimmed, case-insensitive names.
func TestHeaderFields(t *testing.T) {
	var f fields
	var p Parser
	p.Init(&f)
	p.Feed(ToServer, []byte("GET /a?b HTTP/1.1\r\nreferer: http://x/ \r\nACCEPT: */*\r\nAccept-Encoding:gzip\r\nAccept-Language: fr\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	p.Feed(ToClient, []byte("HTTP/1.0 301 Moved Permanently\r\nServer: srv\r\nLocation: /b\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	want := []string{
		`line="GET /a?b HTTP/1.1" proto="HTTP/1.1" referer="http://x/" accept="*/*" ae="gzip" al="fr" conn="close" cl="0"`,
		`line="HTTP/1.0 301 Moved Permanently" proto="HTTP/1.0" server="srv" location="/b" conn="close" cl="0"`,
	}
	if fmt.Sprint(f.got) != fmt.Sprint(want) {
		t.Fatalf("got\n%q\nwant\n%q", f.got, want)
	}
}

// TestNextHeader walks a header block as the parser reads it.
func TestNextHeader(t *testing.T) {
	block := []byte("A: 1\r\n folded\r\nbad line\r\nB:  two words \r\n\r\nC: after\r\n")
	var got []string
	for b := block; ; {
		name, value, rest, ok := NextHeader(b)
		if !ok {
			break
		}
		got = append(got, string(name)+"="+string(value))
		b = rest
	}
	if fmt.Sprint(got) != "[A=1 B=two words]" {
		t.Fatalf("got %q, want [A=1 B=two words]", got)
	}
	if n := testing.AllocsPerRun(100, func() { NextHeader(block) }); n != 0 {
		t.Fatalf("NextHeader allocates %v times", n)
	}
}
