package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
)

// Canaries are planted in every payload the lab sends: request headers and
// bodies, response headers and bodies. None may ever appear in an alert,
// eve.json, a log line or the monitor's store.
var Canaries = []string{
	CanaryRequestHeader, CanaryResponseHeader, CanaryPage, CanaryBig, CanaryEICARPage, CanaryExploit,
	CanaryMailBody, CanaryMailAttachment,
}

// The canaries, one per place they are planted.
const (
	CanaryRequestHeader  = "CANARY-reqhdr-4f1a9c"
	CanaryResponseHeader = "CANARY-resphdr-77b0e2"
	CanaryPage           = "CANARY-page-1d6e3f"
	CanaryBig            = "CANARY-bigbody-9a2c55"
	CanaryEICARPage      = "CANARY-eicar-5b8d10"
	CanaryExploit        = "CANARY-exploit-c3e7a4"
	CanaryMailBody       = "CANARY-mailbody-e81f07"
	CanaryMailAttachment = "CANARY-mailattach-2c94b6"
)

// SMTPAcceptedLog starts the lab mail server's log line for each message it
// accepted (the demo checks a malicious one never gets one).
const SMTPAcceptedLog = "smtp accepted"

// MailMessage is the message the office client mails in the demo: a text
// body and an attachment, EICAR or a clean text file, both in base64, with
// canaries in the body and next to the attachment.
func MailMessage(eicar bool) []byte {
	name, att := "notes.txt", []byte("meeting notes "+CanaryMailAttachment+"\r\n")
	if eicar {
		name, att = "invoice.com", EICAR
	}
	enc := base64.StdEncoding.EncodeToString(att)
	return []byte("From: Alice <alice@office.lab.test>\r\nTo: bob@partner.lab.test\r\n" +
		"Subject: Invoice November\r\nMessage-ID: <demo-1@office.lab.test>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"demo\"\r\n\r\n" +
		"--demo\r\nContent-Type: text/plain\r\n\r\nHello Bob, " + CanaryMailBody + "\r\n" +
		"--demo\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n" + enc + "\r\n--demo--\r\n")
}

// EICAR is the anti-malware test file, assembled so this source is not
// itself flagged by scanners.
var EICAR = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// BigBody returns size deterministic pseudo-random bytes with CanaryBig
// planted every 64 KiB: what the lab web server sends for /big.bin.
func BigBody(size int) []byte {
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(b)
	for off := 0; off+len(CanaryBig) <= size; off += 64 << 10 {
		copy(b[off:], CanaryBig)
	}
	return b
}

// SHA256 returns the hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Page is the benign page the lab web server sends for /index.html.
func Page() []byte {
	return []byte("<!doctype html><html><head><title>Lab office intranet</title></head><body><h1>Welcome</h1><p>Nothing to see here " +
		CanaryPage + "</p></body></html>\n")
}

// Leak is a canary found where only metadata may be.
type Leak struct {
	Where  string // file path or portal URL
	Canary string
}

// Forbidden is every string that must never leave the packet path: the
// canaries, the EICAR body and the exploit's payload.
func Forbidden() []string {
	return append(append([]string(nil), Canaries...), string(EICAR[:20]), "${jndi:", "jndi:ldap")
}

// ScanLeaks looks for Forbidden strings in everything the product wrote
// under the lab's directory (utmd's and the monitor's logs, eve.json, the
// box's bbolt spool, the monitor's store and JetStream files) and in what
// the portal serves. labhost's own log is the internet's, not ours, and
// is skipped.
func (l *Lab) ScanLeaks() ([]Leak, error) {
	var leaks []Leak
	check := func(where string, b []byte) {
		for _, s := range Forbidden() {
			if bytes.Contains(b, []byte(s)) {
				leaks = append(leaks, Leak{where, s})
			}
		}
	}
	err := filepath.WalkDir(l.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), "labhost") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check(path, b)
		return nil
	})
	if err != nil {
		return leaks, err
	}
	for _, u := range []string{PortalURL, PortalURL + "api/alerts", PortalURL + "api/boxes"} {
		b, err := Get(u)
		if err != nil {
			return leaks, err
		}
		check(u, b)
	}
	return leaks, nil
}
