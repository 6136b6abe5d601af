package mail

import (
	"bytes"
	"testing"
)

type nop struct{ n int }

func (h *nop) MessageStart(Dir, *Envelope) {}
func (h *nop) MessageData(b []byte)        { h.n += len(b) }
func (h *nop) MessageEnd(bool)             {}
func (h *nop) Encrypted()                  {}
func (h *nop) Anomaly(string)              {}

// body is dot-stuffed message text, 64 KiB.
var body = func() []byte {
	var b bytes.Buffer
	for b.Len() < 64<<10 {
		b.WriteString("..a line of a mail message that is dot-stuffed, then base64 QUFBQUFBQUFBQUFBQUFB\r\n")
	}
	return b.Bytes()[:64<<10]
}()

func feedAll(p *Parser, tr []step) {
	for _, st := range tr {
		p.Feed(st.d, []byte(st.s))
	}
}

func smtpInData(h Handler) *Parser {
	p := new(Parser)
	p.Init(SMTP, h)
	feedAll(p, []step{S("220 mx\r\n"), C("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n")})
	return p
}

func popInRetr(h Handler) *Parser {
	p := new(Parser)
	p.Init(POP3, h)
	feedAll(p, []step{S("+OK ready\r\n"), C("RETR 1\r\n"), S("+OK\r\n")})
	return p
}

func imapInLiteral(h Handler) *Parser {
	p := new(Parser)
	p.Init(IMAP, h)
	feedAll(p, []step{S("* OK ready\r\n"), C("a FETCH 1 BODY[]\r\n"), S("* 1 FETCH (BODY[] {999999999999}\r\n")})
	return p
}

func TestFeedAllocs(t *testing.T) {
	chunk := body[:1460]
	for name, p := range map[string]struct {
		p *Parser
		d Dir
	}{
		"smtp DATA":  {smtpInData(&nop{}), ToServer},
		"pop3 RETR":  {popInRetr(&nop{}), ToClient},
		"imap FETCH": {imapInLiteral(&nop{}), ToClient},
	} {
		if !p.p.InMessage() {
			t.Fatalf("%s: not in a message", name)
		}
		if n := testing.AllocsPerRun(200, func() { p.p.Feed(p.d, chunk) }); n != 0 {
			t.Errorf("%s: %v allocations per Feed, want 0", name, n)
		}
	}
	// A whole SMTP transaction allocates only its envelope strings.
	p := new(Parser)
	p.Init(SMTP, &nop{})
	feedAll(p, []step{S("220 mx\r\n")})
	tr := []step{C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
		C("Subject: x\r\n\r\nbody\r\n.\r\n"), S("250 ok\r\n")}
	raw := make([][]byte, len(tr))
	for i, st := range tr {
		raw[i] = []byte(st.s)
	}
	again := func() {
		for i, st := range tr {
			p.Feed(st.d, raw[i])
		}
	}
	again()
	if p.InMessage() || p.Broken() {
		t.Fatal("the transaction did not end")
	}
	if n := testing.AllocsPerRun(100, again); n > 2 {
		t.Errorf("an SMTP transaction allocates %v times, want at most 2 (MAIL FROM and RCPT TO strings)", n)
	}
}

func bench(b *testing.B, mk func(Handler) *Parser, d Dir) {
	h := &nop{}
	p := mk(h)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p.Feed(d, body)
	}
	if h.n == 0 {
		b.Fatal("no message bytes delivered")
	}
}

// Throughput of message bytes: dot-unstuffing (SMTP DATA, POP3 RETR) vs a
// counted literal (IMAP), the ratio is what to compare.
func BenchmarkSMTPData(b *testing.B)    { bench(b, smtpInData, ToServer) }
func BenchmarkPOP3Retr(b *testing.B)    { bench(b, popInRetr, ToClient) }
func BenchmarkIMAPLiteral(b *testing.B) { bench(b, imapInLiteral, ToClient) }
