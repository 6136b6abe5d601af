package engine

import "github.com/openutm/utm/telemetry/alert"

// mailMeta is what an alert may say about a mail message: the envelope and
// the header fields the service terms allow (From, To, Subject,
// Message-ID, Date). Never a body line. Strings are made once per message,
// not per packet.
type mailMeta struct {
	mailFrom  string   // SMTP MAIL FROM
	rcptTo    []string // SMTP RCPT TO
	from      string
	to        []string
	subject   string
	messageID string
	date      string
}

func (m *mailMeta) reset() {
	*m = mailMeta{rcptTo: m.rcptTo[:0], to: m.to[:0]}
}

// email is the alert's email object. To lists the header's recipients, or
// the envelope's when the header names none.
func (m *mailMeta) email() *alert.Email {
	ev := &alert.Email{From: m.from, Subject: m.subject, MessageID: m.messageID, Date: m.date}
	if ev.From == "" {
		ev.From = m.mailFrom
	}
	to := m.to
	if len(to) == 0 {
		to = m.rcptTo
	}
	ev.To = append([]string(nil), to...)
	return ev
}
