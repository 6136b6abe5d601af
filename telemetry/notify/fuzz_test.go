package notify

import (
	"strings"
	"testing"

	"github.com/openutm/utm/telemetry/alert"
)

// FuzzCompose: whatever a box puts in the fields a mail shows, the subject
// is one line starting with the stars, and the body is the title, fields
// of the template's labels only (one line each), and the footer: no
// header or line injection.
func FuzzCompose(f *testing.F) {
	f.Add("office-1", "sig", "summary", "/x", "host", "file.exe", "Threat", "ja")
	f.Add("b\r\nBcc: x@evil", "s\nSubject: x", "a\u2028b", "/u\r\n\r\nbody", "h\x00", "f\x85", "t\x1b[0m", "en")
	f.Fuzz(func(t *testing.T, box, sig, summary, url, host, file, threat, lang string) {
		ev := &alert.Event{EventType: alert.TypeAlert, Stars: 3, BoxID: box, Summary: summary,
			Alert: &alert.Alert{Signature: sig}, HTTP: &alert.HTTP{Hostname: host, URL: url},
			FileInfo: &alert.FileInfo{Filename: file, Threat: threat}}
		msg := compose(ev, 1, BoxContact{Mail: []string{"a@b"}, Lang: lang, Name: summary}, "https://p/")
		if strings.ContainsAny(msg.Subject, "\r\n") || !strings.HasPrefix(msg.Subject, "★★★") {
			t.Fatalf("subject %q", msg.Subject)
		}
		head, _, ok := strings.Cut(msg.Body, "\n-- \n")
		if !ok {
			t.Fatalf("no footer: %q", msg.Body)
		}
		lines := strings.Split(head, "\n")
		l := Labels(msg.Lang)
		for _, line := range lines[1:] {
			if line == "" {
				continue
			}
			k, _, ok := strings.Cut(line, ": ")
			if !ok || !contains(l, k) {
				t.Fatalf("line %q is not a template field", line)
			}
		}
	})
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
