package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/smtp"
	"os"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/openutm/utm/hack/lab"
)

// serveSMTP runs the lab's receiving mail server (a real SMTP server,
// go-smtp). It logs one line per accepted message, naming its sender, its
// recipients and its size: never a line of its content.
func serveSMTP(addr string) {
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &smtpSession{}, nil
	}))
	srv.Domain = "mx.lab.test"
	srv.MaxMessageBytes = 32 << 20
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.Addr = addr
	log.Fatal(srv.ListenAndServe())
}

type smtpSession struct {
	from string
	to   []string
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		log.Printf("smtp message from %s not accepted: %v", s.from, err)
		return err
	}
	log.Printf("%s from=%s to=%v bytes=%d", lab.SMTPAcceptedLog, s.from, s.to, n)
	return nil
}

// sendMail is `labhost mail`: the office client sends a message with an
// attachment (EICAR or a clean one) through the box, with net/smtp.
func sendMail(args []string) {
	fs := flag.NewFlagSet("mail", flag.ExitOnError)
	server := fs.String("server", "", "SMTP server host:port")
	eicar := fs.Bool("eicar", false, "attach the EICAR test file (else a clean text file)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after")
	fs.Parse(args)
	var res lab.MailResult
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	conn, err := net.DialTimeout("tcp", *server, *timeout)
	if err != nil {
		res.Error = err.Error()
		return
	}
	conn.SetDeadline(time.Now().Add(*timeout))
	host, _, _ := net.SplitHostPort(*server)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer c.Close()
	msg := lab.MailMessage(*eicar)
	err = errors.Join(c.Hello("pc.office.lab.test"), c.Mail("alice@office.lab.test"), c.Rcpt("bob@partner.lab.test"))
	if err == nil {
		var w io.WriteCloser
		if w, err = c.Data(); err == nil {
			if _, err = io.Copy(w, bytes.NewReader(msg)); err == nil {
				err = w.Close() // the server's answer to the end of DATA
			}
		}
	}
	if err != nil {
		res.Error = err.Error()
		return
	}
	res.Accepted = true
	c.Quit()
}
