package engine

import (
	"bytes"
	"strings"

	"github.com/openutm/utm/telemetry/alert"

	"github.com/openutm/utm/dataplane/mail"
	"github.com/openutm/utm/dataplane/mime"
)

// Mail flows (SMTP, POP3, IMAP): the protocol parser (dataplane/mail)
// delivers each message's bytes, the MIME parser (dataplane/mime) its
// header fields and decoded parts; every leaf part is a file (attachments
// reported in fileinfo, text bodies only when malicious) scanned when it
// ends. Both parsers call back synchronously inside the Feed of the packet
// carrying the bytes, so a part's verdict comes while the packet that ends
// it is held: a malicious attachment is cut before the end of DATA (the
// SMTP server never answers 250) or before the last byte of a POP3/IMAP
// download.

// mailRecv receives the protocol parser's events (mail.Handler).
type mailRecv struct{ st *flowState }

// mimeRecv receives the MIME parser's events (mime.Handler).
type mimeRecv struct{ st *flowState }

var (
	smtpBanner  = []byte("220")
	pop3Banner  = []byte("+OK")
	imapBanner  = []byte("* OK")
	imapPreauth = []byte("* PREAUTH")
)

// mailProto recognises a mail server's greeting (the server speaks first).
func mailProto(b []byte, serverPort uint16) (appProto, mail.Proto, bool) {
	switch {
	case bytes.HasPrefix(b, smtpBanner) && !bytes.Contains(b, []byte("FTP")) &&
		(serverPort == 25 || serverPort == 587 || serverPort == 2525 || bytes.Contains(b, []byte("SMTP"))):
		return appSMTP, mail.SMTP, true
	case bytes.HasPrefix(b, pop3Banner):
		return appPOP3, mail.POP3, true
	case bytes.HasPrefix(b, imapBanner) || bytes.HasPrefix(b, imapPreauth):
		return appIMAP, mail.IMAP, true
	}
	return appUnknown, 0, false
}

func (r *mailRecv) MessageStart(d mail.Dir, env *mail.Envelope) {
	st := r.st
	st.mailDir = int(d)
	st.mailOn = true
	m := st.msg
	m.hdr.reset()
	if env != nil {
		m.hdr.mailFrom = env.MailFrom
		m.hdr.rcptTo = append(m.hdr.rcptTo, env.RcptTo...)
	}
	m.mime.Init(&m.mimeR, mime.Limits{})
	st.e.stats.Mail.Messages.Add(1)
}

func (r *mailRecv) MessageData(b []byte) { r.st.msg.mime.Write(b) }

func (r *mailRecv) MessageEnd(complete bool) {
	st := r.st
	if !complete {
		st.e.stats.Mail.Truncated.Add(1)
	}
	st.endMail(complete)
}

// Encrypted: STARTTLS/STLS was accepted, the rest of the session is TLS
// and no attachment in it can be scanned: counted (mail_starttls) and
// reported in an EVE smtp/pop3/imap event (not an alert: STARTTLS is how
// mail is normally sent).
func (r *mailRecv) Encrypted() {
	st := r.st
	st.e.stats.Mail.StartTLS.Add(1)
	st.mailTLS = true
	ev := st.e.event(st, 0, st.app.String(), nil) // EVE "smtp" / "pop3" / "imap"
	ev.Engine = &alert.Engine{Reason: "mail-starttls"}
	ev.Summary = "A " + strings.ToUpper(st.app.String()) + " session switched to TLS (STARTTLS): its messages cannot be scanned"
	st.e.emit(ev)
}

// endMail ends a message in transfer (the connection ended, a gap, broken
// parsing): the part being received is scanned as it is.
func (st *flowState) endMail(complete bool) {
	if !st.mailOn {
		return
	}
	st.msg.mime.Close() // an open part ends and is scanned now
	if f := &st.msg.file; f.active {
		st.e.endFile(st, st.mailDir, f, complete)
	}
	st.mailOn = false
}

func (r *mailRecv) Anomaly(what string) { r.st.e.stats.Mail.Anomalies.Add(1) }

func (r *mimeRecv) Message(depth int, h *mime.Header) {
	if depth != 0 {
		return
	}
	m := &r.st.msg.hdr
	m.from, m.subject, m.messageID, m.date = h.From, h.Subject, h.MessageID, h.Date
	m.to = m.to[:0]
	for a := range strings.SplitSeq(h.To, ",") {
		if a = strings.TrimSpace(a); a != "" {
			m.to = append(m.to, a)
		}
	}
}

func (r *mimeRecv) PartStart(p *mime.Part) {
	st := r.st
	f := &st.msg.file
	if f.active {
		st.e.endFile(st, st.mailDir, f, false)
	}
	f.name = append(f.name[:0], p.Filename...)
	if st.app == appHTTP {
		// A multipart upload's form part: a file when it has a name.
		st.e.startFile(f, st.lastRequest())
		f.quiet = p.Filename == ""
		return
	}
	st.e.startFile(f, nil)
	f.mail = &st.msg.hdr
	f.quiet = p.Filename == "" && p.Disposition != "attachment" &&
		(p.ContentType == "" || strings.HasPrefix(p.ContentType, "text/"))
}

func (r *mimeRecv) PartData(b []byte) {
	if f := &r.st.msg.file; f.active {
		r.st.e.fileData(f, b)
	}
}

func (r *mimeRecv) PartEnd(complete bool) {
	st := r.st
	if f := &st.msg.file; f.active {
		st.e.endFile(st, st.mailDir, f, complete)
	}
}

func (r *mimeRecv) Anomaly(what string) { r.st.e.stats.Mail.MIMEAnomalies.Add(1) }
