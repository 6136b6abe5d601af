//go:build linux

package maillab

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/mail"
)

// testMsg has a dot-stuffed line, a lone "." line inside and a base64
// attachment, about 30 KB so that it spans many TCP segments.
func testMsg(subject string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Alice <a@lab.test>\r\nTo: Bob <b@lab.test>\r\nSubject: %s\r\nMessage-ID: <%s@lab.test>\r\n", subject, strings.ReplaceAll(subject, " ", "."))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n")
	b.WriteString("hello\r\n.leading dot\r\n..two dots\r\n.\r\n\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; b.Len() < 30000; i++ {
		fmt.Fprintf(&b, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo%04dYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=\r\n", i)
	}
	b.WriteString("--XX--\r\n")
	return b.Bytes()
}

const (
	serverSMTP = ServerIP + ":25"
	relaySMTP  = RelayIP + ":25"
)

func TestSMTPThroughRelay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     SendOptions
		bdat     int // >0: send with CHUNKING in this many chunks
		cut      bool
		wantRcpt string
	}{
		{name: "swaks", wantRcpt: "b@lab.test"},
		{name: "swaks pipelining, one recipient refused", opts: SendOptions{Pipeline: true, To: []string{"b@lab.test", "reject@lab.test", "c@lab.test"}}, wantRcpt: "b@lab.test c@lab.test"},
		{name: "BDAT in 3 chunks", bdat: 3, wantRcpt: "b@lab.test"},
		{name: "BDAT cut at LAST", bdat: 3, cut: true, wantRcpt: "b@lab.test"},
		{name: "swaks cut at the end of DATA", cut: true, wantRcpt: "b@lab.test"},
		{name: "swaks pipelining cut", opts: SendOptions{Pipeline: true}, cut: true, wantRcpt: "b@lab.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := NewNS(t)
			srv := StartSMTP(t, ns, serverSMTP)
			relay := StartRelay(t, ns, relaySMTP, serverSMTP, RelayOptions{Proto: mail.SMTP, CutOnEnd: tc.cut,
				OnEnd: func() any { return len(srv.Messages()) }})
			msg := testMsg("smtp " + tc.name)
			var accepted bool
			var transcript string
			if tc.bdat > 0 {
				transcript, accepted = SendBDAT(t, ns, relaySMTP, msg, BDATOptions{Chunks: tc.bdat})
			} else {
				res := SendMail(t, ns, relaySMTP, msg, tc.opts)
				accepted, transcript = res.DataAccepted(), res.Transcript
				if accepted != (res.Exit == 0) && !tc.cut {
					t.Errorf("swaks exit %d but 250 after DATA is %v", res.Exit, accepted)
				}
			}
			relay.Wait()
			if testing.Verbose() {
				t.Logf("client transcript:\n%s", transcript)
			}
			got := srv.Messages()
			taps := relay.Messages()
			if len(taps) != 1 {
				t.Fatalf("parser delivered %d messages, want 1; events %v\n%s", len(taps), relay.Events(), transcript)
			}
			m := taps[0]
			if !m.Complete || m.Dir != mail.ToServer {
				t.Errorf("message complete=%v dir=%v, want complete to the server", m.Complete, m.Dir)
			}
			if !bytes.Equal(m.Data, CRLF(msg)) {
				t.Errorf("parser message (%d bytes, ends %q) differs from the sent message (%d bytes, ends %q)", len(m.Data), tail(m.Data), len(CRLF(msg)), tail(CRLF(msg)))
			}
			if m.AtEnd != 0 {
				t.Errorf("the server had accepted %v messages when MessageEnd fired: it must fire before the end passes", m.AtEnd)
			}
			if want := "DATA"; tc.bdat > 0 {
				want = "BDAT"
				if m.Env.Command != want {
					t.Errorf("command %q, want %q", m.Env.Command, want)
				}
			} else {
				if m.Env.Command != want {
					t.Errorf("command %q, want %q", m.Env.Command, want)
				}
				if !bytes.HasSuffix(m.Held, []byte("\r\n.\r\n")) {
					t.Errorf("held chunk ends %q, want the DATA terminator", tail(m.Held))
				}
			}
			if m.Env.MailFrom != "a@lab.test" || strings.Join(m.Env.RcptTo, " ") != tc.wantRcpt {
				t.Errorf("envelope from %q to %v, want a@lab.test to %s", m.Env.MailFrom, m.Env.RcptTo, tc.wantRcpt)
			}
			if tc.cut {
				if accepted || len(got) != 0 {
					t.Fatalf("cut at the end: client saw 250=%v, server accepted %d messages; want none\n%s", accepted, len(got), transcript)
				}
				return
			}
			if !accepted || len(got) != 1 {
				t.Fatalf("client saw 250=%v, server accepted %d messages, want 1\n%s", accepted, len(got), transcript)
			}
			if !bytes.Equal(got[0].Data, m.Data) {
				t.Errorf("server received %d bytes, parser delivered %d: they differ", len(got[0].Data), len(m.Data))
			}
		})
	}
}

func TestSMTPStartTLS(t *testing.T) {
	ns := NewNS(t)
	srv := StartSMTP(t, ns, serverSMTP)
	relay := StartRelay(t, ns, relaySMTP, serverSMTP, RelayOptions{Proto: mail.SMTP})
	res := SendMail(t, ns, relaySMTP, testMsg("tls"), SendOptions{TLS: true})
	relay.Wait()
	if res.Exit != 0 || len(srv.Messages()) != 1 {
		t.Fatalf("swaks --tls exit %d, server accepted %d messages\n%s", res.Exit, len(srv.Messages()), res.Transcript)
	}
	if n := len(relay.Messages()); n != 0 {
		t.Errorf("parser delivered %d messages from inside TLS", n)
	}
	if ev := strings.Join(relay.Events(), ","); ev != "encrypted" {
		t.Errorf("relay events %q, want encrypted", ev)
	}
}

func TestPOP3AndIMAPThroughRelay(t *testing.T) {
	ns := NewNS(t)
	msgs := [][]byte{testMsg("first"), testMsg("second")}
	dc := StartDovecot(t, ns, ServerIP, msgs...)
	open := func(t *testing.T, proto mail.Proto, target string, cut bool) (*Relay, string) {
		port := "1110"
		if proto == mail.IMAP {
			port = "1143"
		}
		if cut {
			port = "2" + port[1:]
		}
		addr := RelayIP + ":" + port
		return StartRelay(t, ns, addr, target, RelayOptions{Proto: proto, CutOnEnd: cut}), addr
	}
	check := func(t *testing.T, r *Relay, f Fetched, want []byte, command string, cut bool) {
		t.Helper()
		r.Wait()
		taps := r.Messages()
		if len(taps) != 1 {
			t.Fatalf("parser delivered %d messages, want 1; events %v; client: %+v", len(taps), r.Events(), f.Error)
		}
		m := taps[0]
		if !m.Complete || m.Env.Command != command {
			t.Errorf("message complete=%v command=%q, want complete %s", m.Complete, m.Env.Command, command)
		}
		if !bytes.Equal(m.Data, CRLF(want)) {
			t.Errorf("parser message (%d bytes) differs from the mailbox message (%d bytes)", len(m.Data), len(CRLF(want)))
		}
		if cut {
			if f.Complete {
				t.Errorf("client completed the download although the relay cut at the message's end")
			}
			return
		}
		if !f.Complete {
			t.Fatalf("client failed: %s", f.Error)
		}
		if !bytes.Equal(f.Data, m.Data) {
			t.Errorf("client received %d bytes, parser delivered %d: they differ", len(f.Data), len(m.Data))
		}
	}
	t.Run("POP3 RETR", func(t *testing.T) {
		r, addr := open(t, mail.POP3, dc.POP3Addr, false)
		f := dc.POP3Retr(t, ns, addr, 2)
		check(t, r, f, msgs[1], "RETR", false)
		if h := taps(r)[0].Held; !bytes.HasSuffix(h, []byte("\r\n.\r\n")) {
			t.Errorf("held chunk ends %q, want the POP3 terminator", tail(h))
		}
	})
	t.Run("POP3 TOP", func(t *testing.T) {
		r, addr := open(t, mail.POP3, dc.POP3Addr, false)
		f := dc.POP3Top(t, ns, addr, 1, 3)
		hdr, body, _ := bytes.Cut(msgs[0], []byte("\r\n\r\n"))
		lines := bytes.SplitAfter(body, []byte("\r\n"))
		want := append(append(append([]byte(nil), hdr...), "\r\n\r\n"...), bytes.Join(lines[:3], nil)...)
		check(t, r, f, want, "TOP", false)
	})
	t.Run("POP3 RETR cut", func(t *testing.T) {
		r, addr := open(t, mail.POP3, dc.POP3Addr, true)
		check(t, r, dc.POP3Retr(t, ns, addr, 1), msgs[0], "RETR", true)
	})
	t.Run("IMAP FETCH", func(t *testing.T) {
		r, addr := open(t, mail.IMAP, dc.IMAPAddr, false)
		check(t, r, dc.IMAPFetch(t, ns, addr, 1), msgs[0], "FETCH", false)
	})
	t.Run("IMAP FETCH cut", func(t *testing.T) {
		r, addr := open(t, mail.IMAP, dc.IMAPAddr, true)
		check(t, r, dc.IMAPFetch(t, ns, addr, 2), msgs[1], "FETCH", true)
	})
	t.Run("IMAP APPEND", func(t *testing.T) {
		r, addr := open(t, mail.IMAP, dc.IMAPAddr, false)
		up := testMsg("appended")
		f := dc.IMAPAppend(t, ns, addr, up)
		r.Wait()
		taps := r.Messages()
		if !f.Complete || len(taps) != 1 || !taps[0].Complete || taps[0].Env.Command != "APPEND" || taps[0].Dir != mail.ToServer {
			t.Fatalf("append complete=%v (%s), parser messages %d %+v", f.Complete, f.Error, len(taps), r.Events())
		}
		if !bytes.Equal(taps[0].Data, CRLF(up)) {
			t.Errorf("parser message (%d bytes) differs from the appended message (%d bytes)", len(taps[0].Data), len(CRLF(up)))
		}
		found := false
		for _, m := range dc.Inbox(t) {
			found = found || bytes.Equal(CRLF(m), CRLF(up))
		}
		if !found {
			t.Errorf("the appended message is not in the maildir")
		}
	})
}

func taps(r *Relay) []TapMessage { return r.Messages() }

func tail(b []byte) []byte {
	if len(b) > 16 {
		return b[len(b)-16:]
	}
	return b
}
