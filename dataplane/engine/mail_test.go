package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/telemetry/alert"
)

// Canaries planted in the mail body and the attachment's neighbour text:
// no event may carry them (the service terms: metadata only).
const (
	mailBodyCanary = "CANARY-MAIL-BODY-7f3a"
	attachCanary   = "CANARY-ATTACHMENT-BYTES-91c2"
)

// mimeMessage builds a message with a text body and one base64 attachment.
func mimeMessage(name string, attachment []byte) []byte {
	var b strings.Builder
	b.WriteString("From: Alice <alice@lab.test>\r\nTo: bob@lab.test, carol@lab.test\r\n")
	b.WriteString("Subject: =?UTF-8?Q?Rechnung_=E2=82=AC?=\r\nMessage-ID: <m1@lab.test>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain\r\n\r\nHello Bob, " + mailBodyCanary + "\r\n")
	b.WriteString("--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(attachment)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return []byte(b.String())
}

// smtpToData opens an SMTP session in tr up to the server's 354: the
// client's next bytes are the message.
func smtpToData(tr *testpcap.Trace) *testpcap.TCP {
	c := tr.NewTCP("198.18.1.2:40025", "198.18.2.25:25").Handshake()
	c.Server([]byte("220 mx.lab.test ESMTP ready\r\n"), 0)
	c.Client([]byte("EHLO pc.lab.test\r\n"), 0)
	c.Server([]byte("250-mx.lab.test\r\n250 PIPELINING\r\n"), 0)
	c.Client([]byte("MAIL FROM:<alice@lab.test>\r\nRCPT TO:<bob@lab.test>\r\nDATA\r\n"), 0)
	c.Server([]byte("250 OK\r\n250 OK\r\n354 go ahead\r\n"), 0)
	return c
}

// smtpSession sends msg over SMTP with the server's replies and ends the
// session.
func smtpSession(msg []byte) *testpcap.Trace {
	tr := testpcap.NewTrace(t0)
	c := smtpToData(tr)
	c.Client(append(msg, ".\r\n"...), 600)
	c.Server([]byte("250 2.0.0 queued\r\n"), 0)
	c.Client([]byte("QUIT\r\n"), 0)
	return tr
}

// TestSMTPAttachmentNeutralised: an EICAR attachment is detected when its
// MIME part ends, so the packet carrying the end of DATA is never
// forwarded (the server never answers 250): the client's packet that ends
// the part is rejected, everything after is dropped. The alert is ★★★,
// carries the envelope/header fields and the file name, and no event holds
// a byte of the body or the attachment. A clean message passes whole.
func TestSMTPAttachmentNeutralised(t *testing.T) {
	for _, bad := range []bool{true, false} {
		content := append([]byte(attachCanary+"\r\n"), bytes.Repeat([]byte("clean bytes "), 200)...)
		if bad {
			content = append(append([]byte(nil), eicar...), content...)
		}
		msg := mimeMessage("invoice.com", content)
		tr := smtpSession(msg)
		var rec recorder
		var rs resets
		e := New(Config{Sink: &rec, Reset: &rs}, defaultBundle(t))
		pkts := tr.Sorted()
		vs := verdicts(e, pkts)
		termIdx, rejectIdx := -1, -1
		for i, p := range pkts {
			if bytes.Contains(p.Data, []byte("\r\n.\r\n")) {
				termIdx = i
			}
			if vs[i] == Reject && rejectIdx < 0 {
				rejectIdx = i
			}
		}
		if termIdx < 0 {
			t.Fatal("the trace has no DATA terminator")
		}
		if !bad {
			for i, v := range vs {
				if v != Accept {
					t.Fatalf("clean message: packet %d got %v", i, v)
				}
			}
			if len(rec.alerts()) != 0 {
				t.Fatalf("clean message raised %+v", rec.alerts())
			}
			var files int
			for _, ev := range rec.ev {
				if ev.EventType == alert.TypeFileInfo {
					files++
					if ev.FileInfo.Filename != "invoice.com" || ev.Email == nil || ev.Email.Subject != "Rechnung €" {
						t.Fatalf("fileinfo %+v %+v", ev.FileInfo, ev.Email)
					}
				}
			}
			if files != 1 || e.Stats().Mail.Messages.Load() != 1 || e.Stats().Mail.Sessions.Load() != 1 {
				t.Fatalf("clean message: %d fileinfo events (want 1: the text body is quiet), %d messages, %d sessions", files, e.Stats().Mail.Messages.Load(), e.Stats().Mail.Sessions.Load())
			}
			continue
		}
		if rejectIdx < 0 || rejectIdx > termIdx || vs[termIdx] == Accept {
			t.Fatalf("malicious attachment: first reject at packet %d, terminator at %d with %v (verdicts %v)", rejectIdx, termIdx, vs[termIdx], vs)
		}
		for i := rejectIdx + 1; i < len(vs); i++ {
			if vs[i] == Accept {
				t.Fatalf("packet %d after the reject was accepted", i)
			}
		}
		al := rec.alerts()
		if len(al) != 1 {
			t.Fatalf("want one alert, got %d: %+v", len(al), al)
		}
		a := al[0]
		if a.Stars != 3 || a.Alert.SignatureID != sidAVMail || a.Alert.Action != alert.ActionBlocked || a.AppProto != "smtp" ||
			a.FileInfo == nil || a.FileInfo.Filename != "invoice.com" || a.FileInfo.Threat == "" {
			t.Fatalf("alert %+v %+v", a.Alert, a.FileInfo)
		}
		if a.Email == nil || a.Email.From != "Alice <alice@lab.test>" || a.Email.Subject != "Rechnung €" || a.Email.MessageID != "<m1@lab.test>" ||
			fmt.Sprint(a.Email.To) != "[bob@lab.test carol@lab.test]" || a.Email.Date == "" {
			t.Fatalf("alert email %+v", a.Email)
		}
		if !strings.Contains(a.Summary, "never accepted") || len(rs.calls) != 1 {
			t.Fatalf("summary %q, resets %d", a.Summary, len(rs.calls))
		}
		for _, ev := range rec.ev {
			j, _ := json.Marshal(ev)
			for _, c := range []string{mailBodyCanary, attachCanary, "Hello Bob", "EICAR-STANDARD"} {
				if bytes.Contains(j, []byte(c)) {
					t.Fatalf("an event carries message content %q: %s", c, j)
				}
			}
		}
	}
}

// TestPOP3AndIMAPDownloadsCut: the same attachment fetched with POP3 RETR
// and IMAP FETCH BODY[] is detected before the message's last byte reaches
// the client.
func TestPOP3AndIMAPDownloadsCut(t *testing.T) {
	msg := mimeMessage("x.com", append(append([]byte(nil), eicar...), bytes.Repeat([]byte("pad "), 500)...))
	for _, c := range []struct {
		proto, banner string
		port          int
		cmd           string
		reply         func([]byte) []byte
	}{
		{"pop3", "+OK POP3 ready\r\n", 110, "RETR 1\r\n", func(m []byte) []byte {
			return append(append([]byte("+OK message follows\r\n"), m...), ".\r\n"...)
		}},
		{"imap", "* OK IMAP4rev1 ready\r\n", 143, "a1 FETCH 1 (BODY[])\r\n", func(m []byte) []byte {
			return append(append([]byte(fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", len(m))), m...), ")\r\na1 OK FETCH completed\r\n"...)
		}},
	} {
		tr := testpcap.NewTrace(t0)
		conn := tr.NewTCP("198.18.1.2:40110", fmt.Sprintf("198.18.2.25:%d", c.port)).Handshake()
		conn.Server([]byte(c.banner), 0)
		if c.proto == "imap" {
			conn.Client([]byte("a0 LOGIN bob secret\r\n"), 0)
			conn.Server([]byte("a0 OK logged in\r\n"), 0)
			conn.Client([]byte("s1 SELECT INBOX\r\n"), 0)
			conn.Server([]byte("* 1 EXISTS\r\ns1 OK [READ-WRITE] SELECT completed\r\n"), 0)
		} else {
			conn.Client([]byte("USER bob\r\n"), 0)
			conn.Server([]byte("+OK\r\n"), 0)
			conn.Client([]byte("PASS secret\r\n"), 0)
			conn.Server([]byte("+OK logged in\r\n"), 0)
		}
		conn.Client([]byte(c.cmd), 0)
		reply := c.reply(msg)
		conn.Server(reply, 700)
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
		pkts := tr.Sorted()
		vs := verdicts(e, pkts)
		lastData := -1
		for i, p := range pkts {
			if bytes.HasSuffix(p.Data, reply[len(reply)-20:]) {
				lastData = i
			}
		}
		if lastData < 0 || vs[lastData] == Accept {
			t.Fatalf("%s: the packet completing the message got %v (index %d; verdicts %v)", c.proto, vs[max(lastData, 0)], lastData, vs)
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].AppProto != c.proto || al[0].Alert.SignatureID != sidAVMail || al[0].Email == nil || al[0].Email.Subject != "Rechnung €" {
			t.Fatalf("%s: alerts %+v", c.proto, al)
		}
	}
}

// TestIMAPSectionAndPartialFetchCut: the ways Thunderbird fetches big
// messages are inspected like a whole FETCH: an attachment fetched alone
// (BODY[2], base64 without its MIME header; and with BODY[2.MIME]) and a
// message fetched in chunks (BODY[]<origin>) are detected, and the packet
// that would complete the attachment or the message is not accepted.
func TestIMAPSectionAndPartialFetchCut(t *testing.T) {
	att := append(append([]byte(nil), eicar...), bytes.Repeat([]byte("pad "), 500)...)
	var b64 bytes.Buffer
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc + "\r\n")
	part := b64.Bytes()
	msg := mimeMessage("x.com", att)
	mimeHdr := "Content-Type: application/octet-stream; name=\"x.com\"\r\nContent-Disposition: attachment; filename=\"x.com\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	chunks := func(size int) [][]byte {
		var out [][]byte
		for o := 0; o < len(msg); o += size {
			c := msg[o:min(len(msg), o+size)]
			out = append(out, append(append([]byte(fmt.Sprintf("* 1 FETCH (UID 9 RFC822.SIZE %d BODY[]<%d> {%d}\r\n", len(msg), o, len(c))), c...), ")\r\na1 OK done\r\n"...))
		}
		return out
	}
	for _, c := range []struct {
		name    string
		replies [][]byte
		subject string // "" when the message's header was not fetched
		file    string
	}{
		{"section base64", [][]byte{append(append([]byte(fmt.Sprintf("* 1 FETCH (BODY[2] {%d}\r\n", len(part))), part...), ")\r\na1 OK done\r\n"...)}, "", ""},
		{"section with MIME header", [][]byte{append(append([]byte(fmt.Sprintf("* 1 FETCH (BODY[2.MIME] {%d}\r\n%s BODY[2] {%d}\r\n", len(mimeHdr), mimeHdr, len(part))), part...), ")\r\na1 OK done\r\n"...)}, "", "x.com"},
		{"partial chunks", chunks(1000), "Rechnung €", "x.com"},
	} {
		tr := testpcap.NewTrace(t0)
		conn := tr.NewTCP("198.18.1.2:40143", "198.18.2.25:143").Handshake()
		conn.Server([]byte("* OK IMAP4rev1 ready\r\n"), 0)
		conn.Client([]byte("a0 LOGIN bob secret\r\n"), 0)
		conn.Server([]byte("a0 OK logged in\r\n"), 0)
		conn.Client([]byte("s1 SELECT INBOX\r\n"), 0)
		conn.Server([]byte("* 1 EXISTS\r\ns1 OK [READ-WRITE] SELECT completed\r\n"), 0)
		for i, r := range c.replies {
			conn.Client([]byte(fmt.Sprintf("a1 UID FETCH 9 (UID RFC822.SIZE BODY.PEEK[]<%d.1000>)\r\n", i*1000)), 0)
			conn.Server(r, 700)
		}
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
		pkts := tr.Sorted()
		vs := verdicts(e, pkts)
		last := c.replies[len(c.replies)-1]
		end := -1 // the packet with the attachment's or the message's last bytes
		for i, p := range pkts {
			if bytes.Contains(p.Data, last[len(last)-len(")\r\na1 OK done\r\n")-8:len(last)-len(")\r\na1 OK done\r\n")]) {
				end = i
			}
		}
		if end < 0 || vs[end] == Accept {
			t.Fatalf("%s: the packet completing the transfer got %v (index %d; verdicts %v)", c.name, vs[max(end, 0)], end, vs)
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].AppProto != "imap" || al[0].Alert.SignatureID != sidAVMail || al[0].FileInfo == nil {
			t.Fatalf("%s: alerts %+v", c.name, al)
		}
		if got := al[0].FileInfo.Filename; got != c.file {
			t.Errorf("%s: file name %q, want %q", c.name, got, c.file)
		}
		if c.subject != "" && (al[0].Email == nil || al[0].Email.Subject != c.subject) {
			t.Errorf("%s: email %+v, want subject %q", c.name, al[0].Email, c.subject)
		}
	}
}

// TestSMTPMessageCutShortAtTimeout: a message whose connection goes quiet
// in the middle of its attachment is scanned when the flow times out.
// Every packet has passed by then, so the alert says allowed, not
// blocked, and what it says of the message is still true: the server never
// got the end of DATA.
func TestSMTPMessageCutShortAtTimeout(t *testing.T) {
	msg := mimeMessage("invoice.com", append(append([]byte(nil), eicar...), bytes.Repeat([]byte("clean bytes "), 200)...))
	cut := bytes.Index(msg, []byte("--b1--")) - 200 // inside the attachment's base64, after EICAR
	tr := testpcap.NewTrace(t0)
	smtpToData(tr).Client(msg[:cut], 600)
	later := testpcap.NewTrace(t0.Add(2 * time.Hour))
	later.UDP("198.18.1.3:5353", "198.18.2.53:53", []byte("not quite dns"))
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &resets{}}, defaultBundle(t))
	verdicts(e, append(tr.Sorted(), later.Sorted()...))
	al := rec.alerts()
	if len(al) != 1 || al[0].Stars != 3 || al[0].Alert.SignatureID != sidAVMail {
		t.Fatalf("alerts %+v, want one ★★★ mail malware alert", al)
	}
	a := al[0]
	if a.Alert.Action != alert.ActionAllowed || !strings.HasPrefix(a.Summary, "Found") ||
		!strings.Contains(a.Summary, "never accepted the message") || a.Proto != "TCP" || a.Email == nil {
		t.Errorf("alert %q action %s proto %s email %+v; want allowed, found, never accepted, TCP, the message's fields",
			a.Summary, a.Alert.Action, a.Proto, a.Email)
	}
}
