package mail

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A transcript is a list of steps, each the bytes one side sent. "§" in a
// step stands just before a message's final byte: MessageEnd(true) must fire
// in the Feed that carries that byte. It is removed before feeding.
type step struct {
	d Dir
	s string
}

const mark = "§"

func C(s string) step { return step{ToServer, s} } // client to server
func S(s string) step { return step{ToClient, s} } // server to client

// rec records events; message data is merged so that splits do not matter.
type rec struct {
	ev      []string
	buf     []byte
	total   int
	open    bool
	fed     [2]int64 // bytes fed so far per direction
	cur     Dir
	curFrom int64      // offset where the current Feed began
	ends    [][3]int64 // dir, feed start, feed end of each MessageEnd(true)
}

func (r *rec) MessageStart(d Dir, env *Envelope) {
	if r.open {
		r.ev = append(r.ev, "BUG: start while open")
	}
	r.open = true
	dn := "C"
	if d == ToServer {
		dn = "S"
	}
	r.ev = append(r.ev, fmt.Sprintf("start %s %s from=%s rcpt=%s", dn, env.Command, env.MailFrom, strings.Join(env.RcptTo, ",")))
}

func (r *rec) MessageData(b []byte) {
	if !r.open {
		r.ev = append(r.ev, "BUG: data while closed")
	}
	if len(b) == 0 {
		r.ev = append(r.ev, "BUG: empty data")
	}
	r.buf = append(r.buf, b...)
	r.total += len(b)
}

func (r *rec) MessageEnd(complete bool) {
	if !r.open {
		r.ev = append(r.ev, "BUG: end while closed")
	}
	r.open = false
	r.ev = append(r.ev, "data "+strconv.Quote(string(r.buf)), fmt.Sprintf("end %v", complete))
	r.buf = r.buf[:0]
	if complete {
		r.ends = append(r.ends, [3]int64{int64(r.cur), r.curFrom, r.fed[r.cur]})
	}
}

func (r *rec) Encrypted()          { r.ev = append(r.ev, "encrypted") }
func (r *rec) Anomaly(what string) { r.ev = append(r.ev, "anomaly "+what) }

func (r *rec) feed(p *Parser, d Dir, b []byte) {
	r.cur, r.curFrom = d, r.fed[d]
	r.fed[d] += int64(len(b))
	p.Feed(d, b)
}

// marks returns the transcript without marks and the offsets of the marks.
func marks(tr []step) ([]step, [][2]int64) {
	var fed [2]int64
	var at [][2]int64
	out := make([]step, len(tr))
	for i, st := range tr {
		parts := strings.Split(st.s, mark)
		for j, part := range parts {
			fed[st.d] += int64(len(part))
			if j < len(parts)-1 {
				at = append(at, [2]int64{int64(st.d), fed[st.d]})
			}
		}
		out[i] = step{st.d, strings.Join(parts, "")}
	}
	return out, at
}

// run feeds the transcript; split(i) gives the cut points of step i.
func run(proto Proto, tr []step, split func(i int, s string) []int) *rec {
	r := &rec{}
	var p Parser
	p.Init(proto, r)
	for i, st := range tr {
		prev := 0
		for _, c := range append(split(i, st.s), len(st.s)) {
			r.feed(&p, st.d, []byte(st.s[prev:c]))
			prev = c
		}
	}
	p.Close()
	if p.Broken() {
		r.ev = append(r.ev, "broken")
	}
	return r
}

func whole(int, string) []int { return nil }

func bytewise(_ int, s string) []int {
	cuts := make([]int, 0, len(s))
	for i := 1; i < len(s); i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

type tcase struct {
	name  string
	proto Proto
	tr    []step
	want  []string
}

// check runs a case whole, byte by byte and split at every point of every
// step, and checks the events and where each MessageEnd(true) fired.
func check(t *testing.T, tc tcase) {
	t.Helper()
	tr, at := marks(tc.tr)
	same := func(how string, r *rec) {
		t.Helper()
		if got, want := strings.Join(r.ev, "\n"), strings.Join(tc.want, "\n"); got != want {
			t.Fatalf("%s: events\n got: %s\nwant: %s", how, strings.ReplaceAll(got, "\n", "\n      "), strings.ReplaceAll(want, "\n", "\n      "))
		}
		if len(r.ends) != len(at) {
			t.Fatalf("%s: %d complete messages, transcript marks %d", how, len(r.ends), len(at))
		}
		for i, e := range r.ends {
			if e[0] != at[i][0] || !(e[1] <= at[i][1] && at[i][1] < e[2]) {
				t.Fatalf("%s: message %d ended in the feed of dir %d bytes [%d,%d), its last byte is at %d of dir %d",
					how, i, e[0], e[1], e[2], at[i][1], at[i][0])
			}
		}
	}
	same("whole", run(tc.proto, tr, whole))
	same("bytewise", run(tc.proto, tr, bytewise))
	for i := range tr {
		for k := 1; k < len(tr[i].s); k++ {
			same(fmt.Sprintf("step %d split at %d", i, k), run(tc.proto, tr, func(j int, _ string) []int {
				if j == i {
					return []int{k}
				}
				return nil
			}))
		}
	}
}

const msg1 = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"

func smtpCases() []tcase {
	hello := []step{S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")}
	return []tcase{
		{"plain", SMTP, append(hello,
			C("MAIL FROM:<a@example.org> SIZE=100\r\n"), S("250 ok\r\n"),
			C("RCPT TO:<b@example.net>\r\n"), S("250 ok\r\n"),
			C("DATA\r\n"), S("354 go\r\n"),
			C("Subject: x\r\n\r\n..dot\r\n..\r\nline\r\n.\r§\n"), S("250 queued\r\n"),
			C("QUIT\r\n"), S("221 bye\r\n")),
			[]string{"start S DATA from=a@example.org rcpt=b@example.net",
				`data "Subject: x\r\n\r\n.dot\r\n.\r\nline\r\n"`, "end true"}},
		{"pipelining rcpt rejected", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nRCPT TO:<d@y>\r\nDATA\r\n"),
			S("250 ok\r\n250 ok\r\n550 no such user\r\n250 ok\r\n354 go\r\n"),
			C(msg1+".\r§\nQUIT\r\n"), S("250 queued\r\n221 bye\r\n")),
			[]string{"start S DATA from=a@x rcpt=b@y,d@y", "data " + strconv.Quote(msg1), "end true"}},
		{"rejected DATA", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@y>\r\n"), S("550 no\r\n"),
			C("DATA\r\n"), S("554 no valid recipients\r\n"),
			C("RSET\r\n"), S("250 ok\r\n"),
			C("MAIL FROM:<e@x>\r\nRCPT TO:<f@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("x\r\n.\r§\n"), S("250 ok\r\n")),
			[]string{"start S DATA from=e@x rcpt=f@y", `data "x\r\n"`, "end true"}},
		{"BDAT chunks", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 10\r\n0123456789BDAT 7 LAST\r\n\r\n.\r\nx§y"),
			S("250 ok\r\n250 ok\r\n250 10 octets\r\n250 queued\r\n"),
			C("MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nBDAT 0 LAST\r§\nQUIT\r\n"),
			S("250 ok\r\n250 ok\r\n250 queued\r\n221 bye\r\n")),
			[]string{"start S BDAT from=a@x rcpt=b@y", `data "0123456789\r\n.\r\nxy"`, "end true",
				"start S BDAT from=c@x rcpt=d@y", `data ""`, "end true"}},
		{"RSET during BDAT, then a second message", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 3\r\nabcRSET\r\n"),
			S("250 ok\r\n250 ok\r\n250 ok\r\n250 reset\r\n"),
			C("MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("m2\r\n.\r§\n"), S("250 ok\r\n"),
			C("MAIL FROM:<g@x>\r\nRCPT TO:<h@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("m3\r\n.\r§\n"), S("250 ok\r\n")),
			[]string{"start S BDAT from=a@x rcpt=b@y", `data "abc"`, "end false",
				"start S DATA from=c@x rcpt=d@y", `data "m2\r\n"`, "end true",
				"start S DATA from=g@x rcpt=h@y", `data "m3\r\n"`, "end true"}},
		{"AUTH LOGIN and PLAIN", SMTP, append(hello,
			C("AUTH LOGIN\r\n"), S("334 VXNlcm5hbWU6\r\n"), C("DATA\r\n"), S("334 UGFzc3dvcmQ6\r\n"),
			C("RATA\r\n"), S("535 bad\r\n"),
			C("AUTH PLAIN AGEAYg==\r\n"), S("235 ok\r\n"),
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("m\r\n.\r§\n"), S("250 ok\r\n")),
			[]string{"start S DATA from=a@x rcpt=b@y", `data "m\r\n"`, "end true"}},
		{"STARTTLS", SMTP, append(hello,
			C("STARTTLS\r\n"), S("220 go ahead\r\n"), C("\x16\x03\x01\x02\x00\x01\x00"), S("\x16\x03\x03garbage")),
			[]string{"encrypted"}},
		{"STARTTLS refused", SMTP, append(hello,
			C("STARTTLS\r\n"), S("454 not now\r\n"),
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("m\r\n.\r§\n"), S("250 ok\r\n")),
			[]string{"start S DATA from=a@x rcpt=b@y", `data "m\r\n"`, "end true"}},
		{"data before 354", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nm\r\n.\r§\n"), S("250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n")),
			[]string{"anomaly " + AnomEarlyData, "start S DATA from=a@x rcpt=b@y", `data "m\r\n"`, "end true"}},
		{"bare LF and lone CR do not end DATA", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("a\n.\nb\r\n.\rc\r\n\r.\r\n.x\r\n.\r§\n"), S("250 ok\r\n")),
			[]string{"start S DATA from=a@x rcpt=b@y", `data "a\n.\nb\r\n\rc\r\n\r.\r\nx\r\n"`, "end true"}},
		{"connection ends in DATA", SMTP, append(hello,
			C("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
			C("partial\r\n")),
			[]string{"start S DATA from=a@x rcpt=b@y", `data "partial\r\n"`, "end false"}},
		{"not SMTP", SMTP, []step{S("HTTP/1.1 200 OK\r\n"), C("MAIL FROM:<a@x>\r\n")},
			[]string{"anomaly " + AnomBadReply, "broken"}},
		{"long command line", SMTP, append(hello,
			C("NOOP "+strings.Repeat("x", MaxLine)+"\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
			S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), C(".\r§\n")),
			[]string{"anomaly " + AnomLineTooLong, "start S DATA from=a@x rcpt=b@y", `data ""`, "end true"}},
	}
}

func TestSMTP(t *testing.T) {
	for _, tc := range smtpCases() {
		t.Run(tc.name, func(t *testing.T) { check(t, tc) })
	}
}

func pop3Cases() []tcase {
	login := []step{S("+OK ready\r\n"), C("USER u\r\n"), S("+OK\r\n"), C("PASS p\r\n"), S("+OK logged in\r\n")}
	return []tcase{
		{"RETR and TOP", POP3, append(login,
			C("CAPA\r\n"), S("+OK\r\nTOP\r\nUIDL\r\n.\r\n"),
			C("LIST\r\n"), S("+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"),
			C("LIST 1\r\n"), S("+OK 1 120\r\n"),
			C("RETR 1\r\n"), S("+OK 120 octets\r\nSubject: a\r\n\r\n..x\r\n.\r§\n"),
			C("TOP 2 0\r\n"), S("+OK\r\nSubject: b\r\n\r\n.\r§\n"),
			C("QUIT\r\n"), S("+OK bye\r\n")),
			[]string{"start C RETR from= rcpt=", `data "Subject: a\r\n\r\n.x\r\n"`, "end true",
				"start C TOP from= rcpt=", `data "Subject: b\r\n\r\n"`, "end true"}},
		{"pipelined RETR, one refused", POP3, append(login,
			C("RETR 1\r\nRETR 9\r\nRETR 2\r\n"),
			S("+OK\r\n"+msg1+".\r§\n-ERR no such message\r\n+OK\r\nm2\r\n.\r§\n")),
			[]string{"start C RETR from= rcpt=", "data " + strconv.Quote(msg1), "end true",
				"start C RETR from= rcpt=", `data "m2\r\n"`, "end true"}},
		{"AUTH PLAIN", POP3, []step{S("+OK ready\r\n"), C("AUTH PLAIN\r\n"), S("+ \r\n"), C("RETR 1\r\n"), S("+OK done\r\n"),
			C("RETR 1\r\n"), S("+OK\r\nx\r\n.\r§\n")},
			[]string{"start C RETR from= rcpt=", `data "x\r\n"`, "end true"}},
		{"STLS", POP3, []step{S("+OK ready\r\n"), C("STLS\r\n"), S("+OK begin TLS\r\n"), C("\x16\x03\x01")},
			[]string{"encrypted"}},
		{"connection ends in RETR", POP3, append(login, C("RETR 1\r\n"), S("+OK\r\nabc")),
			[]string{"start C RETR from= rcpt=", `data "abc"`, "end false"}},
		{"not POP3", POP3, []step{S("220 smtp\r\n")}, []string{"anomaly " + AnomBadReply, "broken"}},
	}
}

func TestPOP3(t *testing.T) {
	for _, tc := range pop3Cases() {
		t.Run(tc.name, func(t *testing.T) { check(t, tc) })
	}
}

func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "}\r\n" }

func imapCases() []tcase {
	login := []step{S("* OK IMAP ready\r\n"), C("a1 LOGIN u p\r\n"), S("a1 OK done\r\n"), C("a2 SELECT INBOX\r\n"),
		S("* 2 EXISTS\r\n* FLAGS (\\Seen)\r\na2 OK [READ-WRITE] done\r\n")}
	hdr := "Subject: hi\r\n\r\n"
	partHdr := "Content-Type: application/zip; name=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n"
	b64 := "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJV\r\nUy1URVNULUZJTEUhJEgrSCo=\r\n"
	return []tcase{
		{"FETCH BODY[] with literals around", IMAP, append(login,
			C("a3 UID FETCH 7 (UID BODY.PEEK[] BODY.PEEK[HEADER])\r\n"),
			S("* 1 FETCH (UID 7 BODY[] "+lit(msg1)+msg1[:len(msg1)-1]+"§"+msg1[len(msg1)-1:]+
				" BODY[HEADER] "+lit(hdr)+hdr+" FLAGS (\\Seen))\r\na3 OK done\r\n")),
			[]string{"start C FETCH from= rcpt=", "data " + strconv.Quote(msg1), "end true"}},
		{"FETCH RFC822, a partial left open, a section", IMAP, append(login,
			C("a3 FETCH 1:2 RFC822\r\n"),
			S("* 1 FETCH (RFC822 {3}\r\nab§c)\r\n* 2 FETCH (BODY[]<0> {2}\r\nxy)\r\n* 2 FETCH (BODY[2] {2}\r\nx§y)\r\na3 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", `data "abc"`, "end true",
				"start C FETCH from= rcpt=", `data "xy"`, "end false",
				"start C FETCH from= rcpt=", "data " + strconv.Quote(string(hdrOctet)+"xy"), "end true"}},
		{"partial chunks up to RFC822.SIZE (Thunderbird)", IMAP, append(login,
			C("a3 UID fetch 7 (UID RFC822.SIZE BODY.PEEK[]<0.40>)\r\n"),
			S("* 1 FETCH (UID 7 RFC822.SIZE "+strconv.Itoa(len(msg1))+" BODY[]<0> "+lit(msg1[:40])+msg1[:40]+")\r\na3 OK\r\n"),
			C("a4 UID fetch 7 (UID RFC822.SIZE BODY.PEEK[]<40.40>)\r\n"),
			S("* 1 FETCH (UID 7 RFC822.SIZE "+strconv.Itoa(len(msg1))+" BODY[]<40> "+lit(msg1[40:])+msg1[40:len(msg1)-1]+"§"+msg1[len(msg1)-1:]+")\r\na4 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", "data " + strconv.Quote(msg1), "end true"}},
		{"partial chunks, the last shorter than asked", IMAP, append(login,
			C("a3 FETCH 1 BODY.PEEK[]<0.40>\r\n"),
			S("* 1 FETCH (BODY[]<0> "+lit(msg1[:40])+msg1[:40]+")\r\na3 OK\r\n"),
			C("a4 FETCH 1 BODY.PEEK[]<40.40>\r\n"),
			S("* 1 FETCH (BODY[]<40> "+lit(msg1[40:])+msg1[40:len(msg1)-1]+"§"+msg1[len(msg1)-1:]+")\r\na4 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", "data " + strconv.Quote(msg1), "end true"}},
		{"partial chunk out of order", IMAP, append(login,
			C("a3 FETCH 1 BODY.PEEK[]<0.4>\r\n"), S("* 1 FETCH (BODY[]<0> {4}\r\nabcd)\r\na3 OK\r\n"),
			C("a4 FETCH 1 BODY.PEEK[]<8.4>\r\n"), S("* 1 FETCH (BODY[]<8> {4}\r\nijkl)\r\na4 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", "anomaly " + AnomPartialFetch, `data "abcd"`, "end false"}},
		{"section with its MIME header, headers skipped", IMAP, append(login,
			C("a3 FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[2.MIME] BODY.PEEK[2])\r\n"),
			S("* 1 FETCH (BODY[HEADER] "+lit(hdr)+hdr+" BODY[2.MIME] "+lit(partHdr)+partHdr+" BODY[2] {8}\r\nUEsDBA=§=)\r\na3 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", "data " + strconv.Quote(partHdr+"\r\nUEsDBA=="), "end true"}},
		{"sections: base64 guessed, text, BINARY", IMAP, append(login,
			C("a3 FETCH 1 (BODY.PEEK[2] BODY.PEEK[1] BINARY.PEEK[3])\r\n"),
			S("* 1 FETCH (BODY[2] "+lit(b64)+b64[:len(b64)-1]+"§"+b64[len(b64)-1:]+" BODY[1] {6}\r\nhello§! BINARY[3] {3}\r\nMZ§\x90 BODY[4] {0}\r§\n)\r\na3 OK\r\n")),
			[]string{"start C FETCH from= rcpt=", "data " + strconv.Quote(string(hdrBase64)+b64), "end true",
				"start C FETCH from= rcpt=", "data " + strconv.Quote(string(hdrOctet)+"hello!"), "end true",
				"start C FETCH from= rcpt=", "data " + strconv.Quote(string(hdrOctet)+"MZ\x90"), "end true",
				"start C FETCH from= rcpt=", "data " + strconv.Quote(string(hdrOctet)), "end true"}},
		{"APPEND synchronizing, LITERAL+, mailbox literal, MULTIAPPEND", IMAP, append(login,
			C("a4 APPEND INBOX (\\Seen) "+lit(msg1)), S("+ Ready\r\n"),
			C(msg1[:len(msg1)-1]+"§"+msg1[len(msg1)-1:]+"\r\n"), S("a4 OK APPEND done\r\n"),
			C("a5 APPEND Sent {3+}\r\nab§c\r\n"), S("a5 OK\r\n"),
			C("a6 APPEND {5}\r\n"), S("+ go\r\n"), C("INBOX {2}\r\n"), S("+ go\r\n"), C("x§y {1+}\r\n§z\r\n"),
			S("a6 OK\r\n")),
			[]string{"start S APPEND from= rcpt=", "data " + strconv.Quote(msg1), "end true",
				"start S APPEND from= rcpt=", `data "abc"`, "end true",
				"start S APPEND from= rcpt=", `data "xy"`, "end true",
				"start S APPEND from= rcpt=", `data "z"`, "end true"}},
		{"APPEND refused", IMAP, append(login,
			C("a4 APPEND Nope {3}\r\n"), S("a4 NO [TRYCREATE] no such mailbox\r\n"),
			C("a5 APPEND INBOX {3}\r\n"), S("+ go\r\n"), C("ab§c\r\n"), S("a5 OK\r\n")),
			[]string{"start S APPEND from= rcpt=", `data "abc"`, "end true"}},
		{"AUTHENTICATE skips SASL lines", IMAP, []step{S("* OK ready\r\n"),
			C("a1 AUTHENTICATE PLAIN\r\n"), S("+ \r\n"), C("x APPEND INBOX {3}\r\n"), S("a1 OK\r\n"),
			C("a2 FETCH 1 BODY[]\r\n"), S("* 1 FETCH (BODY[] {1}\r\n§m)\r\na2 OK\r\n")},
			[]string{"start C FETCH from= rcpt=", `data "m"`, "end true"}},
		{"STARTTLS", IMAP, []step{S("* OK ready\r\n"), C("a1 STARTTLS\r\n"), S("a1 OK begin\r\n"), C("\x16\x03\x01{5}\r\n")},
			[]string{"encrypted"}},
		{"STARTTLS refused", IMAP, []step{S("* OK ready\r\n"), C("a1 STARTTLS\r\n"), S("a1 BAD no\r\n"),
			C("a2 FETCH 1 RFC822\r\n"), S("* 1 FETCH (RFC822 {1}\r\n§m)\r\na2 OK\r\n")},
			[]string{"start C FETCH from= rcpt=", `data "m"`, "end true"}},
		{"connection ends in a literal", IMAP, append(login, C("a3 FETCH 1 BODY[]\r\n"), S("* 1 FETCH (BODY[] {10}\r\nabc")),
			[]string{"start C FETCH from= rcpt=", `data "abc"`, "end false"}},
		{"bad literal", IMAP, []step{S("* OK ready\r\n* 1 FETCH (BODY[] {99999999999999999}\r\n")},
			[]string{"anomaly " + AnomBadLiteral, "broken"}},
	}
}

func TestIMAP(t *testing.T) {
	for _, tc := range imapCases() {
		t.Run(tc.name, func(t *testing.T) { check(t, tc) })
	}
}
