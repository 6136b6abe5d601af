package notify

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/internal/mailtest"
)

const canary = "CANARY-mail-5d1e"

// crafted is an alert as a box sends it: the allowed metadata, the canary
// in every model field a mail must not carry, and fields beyond the model
// (what a buggy box might add) with the canary too. It is decoded like the
// monitor decodes: into alert.Event.
func crafted(t *testing.T, box, id string, dest string) *alert.Event {
	t.Helper()
	js := `{"timestamp":"2026-11-23T09:00:01.000000+0000","event_type":"alert","src_ip":"198.18.1.2","src_port":40000,
	"dest_ip":"` + dest + `","dest_port":80,"proto":"TCP","app_proto":"http","stars":3,"box_id":"` + box + `","id":"` + id + `",
	"summary":"malware download blocked",
	"ether":{"src_mac":"02:00:00:CA:NA:RY"},
	"alert":{"action":"blocked","gid":1,"signature_id":2210001,"rev":1,"signature":"UTM AV malware in HTTP transfer","category":"` + canary + `-category","severity":1,"metadata":"` + canary + `"},
	"http":{"hostname":"www.lab.test","url":"/eicar.com","http_method":"` + canary + `-method","http_user_agent":"` + canary + `","http_request_body":"` + canary + `"},
	"tls":{"subject":"` + canary + `-subject","ja3":{"hash":"abc","string":"` + canary + `-ja3"}},
	"email":{"from":"` + canary + `@from","subject":"` + canary + `-mailsubject"},
	"fileinfo":{"filename":"eicar.com","magic":"` + canary + `-magic","size":68,"md5":"` + canary + `","sha256":"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f","stored":false,"threat":"EICAR-Test-File","scanned":true,"content":"` + canary + `"},
	"intel":{"indicator":"` + canary + `-indicator","kind":"domain"},
	"payload":"` + canary + `","payload_printable":"` + canary + `","packet":"` + canary + `"}`
	var ev alert.Event
	if err := json.Unmarshal([]byte(js), &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func registry(t *testing.T) *Registry {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boxes.json")
	os.WriteFile(p, []byte(`{"default":{"mail":["soc@example.test"]},
	 "boxes":{"office-1":{"name":"Osaka branch","mail":["owner@example.test","it@example.test"]},
	          "office-2":{"name":"東京本社","mail":["kanri@example.jp"],"lang":"ja"}}}`), 0o600)
	r, err := LoadRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.ns.Store(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func discard() *slog.Logger          { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newMailer(t *testing.T, srv *mailtest.Server, c *clock, perHour int) *Mailer {
	t.Helper()
	cfg := Config{Relay: srv.Addr, From: "utm@monitor.test", Registry: registry(t), PortalURL: "https://portal.test/",
		PerHour: perHour, Now: c.now, Logger: discard(), Timeout: 5 * time.Second}
	if srv.Client != nil {
		cfg.StartTLS, cfg.TLS = StartTLSRequired, srv.Client
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// fields returns the "Label: value" lines of a mail body between its
// title and the "-- " footer.
func fields(t *testing.T, body string) map[string]string {
	t.Helper()
	head, _, ok := strings.Cut(body, "\n-- \n")
	if !ok {
		t.Fatalf("mail has no footer:\n%s", body)
	}
	lines := strings.Split(strings.TrimSpace(head), "\n")
	out := map[string]string{}
	for _, l := range lines[1:] { // lines[0] is the title
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("mail line %q is not a field", l)
		}
		out[k] = v
	}
	return out
}

// TestAlertMail: a ★★★ alert is mailed through a real SMTP server over
// STARTTLS to the box's recipients, with a "★★★" subject (RFC 2047), and
// the body holds exactly the allowed metadata fields: nothing of the
// crafted event's other fields, in or beyond the model.
func TestAlertMail(t *testing.T) {
	srv := mailtest.Start(t, true)
	m := newMailer(t, srv, newClock(), 10)
	if d := m.Mail(crafted(t, "office-1", "a-1", "198.18.2.2"), 42); d != Queued {
		t.Fatalf("decision %v", d)
	}
	got := srv.Wait(t, 1)[0]
	if !got.TLS {
		t.Error("mail was not sent over STARTTLS")
	}
	if !slices.Equal(got.To, []string{"owner@example.test", "it@example.test"}) || got.From != "utm@monitor.test" {
		t.Errorf("envelope from %s to %v", got.From, got.To)
	}
	if !strings.HasPrefix(got.Subject, "★★★") || !strings.Contains(got.Subject, "office-1") || !strings.Contains(got.Subject, "UTM AV malware") {
		t.Errorf("subject %q", got.Subject)
	}
	if raw := got.Header.Get("Subject"); !strings.HasPrefix(raw, "=?UTF-8?b?") {
		t.Errorf("subject header %q is not RFC 2047 encoded", raw)
	}
	if ct := got.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("content type %q", ct)
	}
	want := map[string]string{
		"Time":        "2026-11-23 09:00:01 UTC",
		"Box":         "office-1 (Osaka branch)",
		"Signature":   "UTM AV malware in HTTP transfer (sid 2210001)",
		"Summary":     "malware download blocked",
		"Source":      "198.18.1.2:40000",
		"Destination": "198.18.2.2:80",
		"Host":        "www.lab.test",
		"URL":         "/eicar.com",
		"File name":   "eicar.com",
		"SHA-256":     "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
		"Threat":      "EICAR-Test-File",
		"Portal":      "https://portal.test/alerts/42",
	}
	f := fields(t, got.Body)
	for k, v := range want {
		if f[k] != v {
			t.Errorf("field %s = %q, want %q", k, f[k], v)
		}
	}
	for k := range f {
		if _, ok := want[k]; !ok {
			t.Errorf("mail has field %q beyond the allowed list", k)
		}
	}
	if strings.Contains(got.Raw, canary) || strings.Contains(got.Body, canary) || strings.Contains(got.Subject, canary) {
		t.Errorf("a field a mail must not carry reached it:\n%s", got.Raw)
	}
	if s := waitSent(t, m, 1); s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestJapaneseMail: a box registered with lang "ja" gets the Japanese
// template; the subject is RFC 2047 encoded UTF-8.
func TestJapaneseMail(t *testing.T) {
	srv := mailtest.Start(t, false)
	m := newMailer(t, srv, newClock(), 10)
	m.Mail(crafted(t, "office-2", "j-1", "198.18.2.2"), 7)
	got := srv.Wait(t, 1)[0]
	if !slices.Equal(got.To, []string{"kanri@example.jp"}) {
		t.Errorf("to %v", got.To)
	}
	if !strings.HasPrefix(got.Subject, "★★★ 【至急】office-2") {
		t.Errorf("subject %q", got.Subject)
	}
	if raw := got.Header.Get("Subject"); !strings.HasPrefix(raw, "=?UTF-8?b?") || strings.Contains(raw, "至急") {
		t.Errorf("subject header %q is not RFC 2047 encoded", raw)
	}
	f := fields(t, got.Body)
	if f["機器"] != "office-2 (東京本社)" || f["脅威"] != "EICAR-Test-File" || f["ポータル"] != "https://portal.test/alerts/7" {
		t.Errorf("Japanese fields: %v", f)
	}
	for k := range f {
		if !slices.Contains(Labels("ja"), k) {
			t.Errorf("field %q is not in the Japanese template", k)
		}
	}
	if strings.Contains(got.Raw, canary) {
		t.Error("canary reached the Japanese mail")
	}
}

// TestDedupeAndRateLimit: the same box+sid+src+dest within the window is
// one mail; a box gets PerHour mails an hour, then a digest "N more" when
// the hour ends; other boxes and box offline mails are not held back.
func TestDedupeAndRateLimit(t *testing.T) {
	srv := mailtest.Start(t, false)
	c := newClock()
	m := newMailer(t, srv, c, 3)
	if d := m.Mail(crafted(t, "office-1", "d-1", "198.18.2.2"), 1); d != Queued {
		t.Fatal(d)
	}
	c.add(time.Minute)
	if d := m.Mail(crafted(t, "office-1", "d-2", "198.18.2.2"), 2); d != Deduped {
		t.Fatalf("same box+sid+src+dest: %v, want deduped", d)
	}
	for i, dest := range []string{"198.18.2.3", "198.18.2.4"} {
		if d := m.Mail(crafted(t, "office-1", "r-"+dest, dest), uint64(3+i)); d != Queued {
			t.Fatalf("mail %d: %v", i+2, d)
		}
	}
	for i, dest := range []string{"198.18.2.5", "198.18.2.6", "198.18.2.7", "198.18.2.8", "198.18.2.9"} {
		if d := m.Mail(crafted(t, "office-1", "x-"+dest, dest), uint64(10+i)); d != RateLimited {
			t.Fatalf("mail beyond the budget: %v, want rate-limited", d)
		}
	}
	// Another box has its own budget; an offline mail passes the limit.
	if d := m.Mail(crafted(t, "office-2", "o2", "198.18.2.5"), 20); d != Queued {
		t.Fatalf("other box: %v", d)
	}
	off := &alert.Event{Timestamp: alert.Timestamp(c.now()), EventType: alert.TypeAlert, Stars: 2, BoxID: "office-1",
		Alert:   &alert.Alert{SignatureID: 2900001, Signature: "UTM box offline: no heartbeat"},
		Engine:  &alert.Engine{Reason: "box offline"},
		Summary: "Box office-1 sent no heartbeat since 2026-11-23T08:55:00Z"}
	if !Wanted(off) || d(m.Mail(off, 21)) != Queued {
		t.Fatal("box offline mail held back")
	}
	mails := srv.Wait(t, 5)
	var offline *mailtest.Mail
	for i := range mails {
		if strings.HasPrefix(mails[i].Subject, "★★ Box office-1 is offline") {
			offline = &mails[i]
		}
	}
	if offline == nil {
		t.Fatalf("no offline mail among %v", subjects(mails))
	}
	if f := fields(t, offline.Body); f["Summary"] == "" || f["Box"] != "office-1 (Osaka branch)" || f["Portal"] != "https://portal.test/alerts/21" {
		t.Errorf("offline mail fields %v", f)
	}

	// Before the hour is over nothing is flushed; after it, one digest.
	c.add(30 * time.Minute)
	m.Flush()
	c.add(30 * time.Minute)
	m.Flush()
	mails = srv.Wait(t, 6)
	dg := mails[5]
	if !strings.HasPrefix(dg.Subject, "★★★ Box office-1: 5 more alerts") || !strings.Contains(dg.Body, "5 more ★★★ alerts") ||
		!slices.Equal(dg.To, []string{"owner@example.test", "it@example.test"}) {
		t.Errorf("digest: %q %v\n%s", dg.Subject, dg.To, dg.Body)
	}
	m.Flush()
	if s := waitSent(t, m, 6); s.Deduped != 1 || s.RateLimited != 5 {
		t.Errorf("stats %+v", s)
	}
	// A new hour: the budget is back, the dedupe window (1 h) is over.
	if d := m.Mail(crafted(t, "office-1", "d-3", "198.18.2.2"), 30); d != Queued {
		t.Fatalf("after the hour: %v", d)
	}
	srv.Wait(t, 7)
	if len(srv.Mails()) != 7 {
		t.Fatalf("%d mails, want 7 (one digest only)", len(srv.Mails()))
	}
}

func d(x Decision) Decision { return x }

// waitSent polls until the mailer counted n mails sent (the server has a
// mail before the client's QUIT returns).
func waitSent(t *testing.T, m *Mailer, n uint64) Stats {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s := m.Stats(); s.Sent >= n {
			if s.Sent > n {
				t.Fatalf("stats %+v, want %d sent", s, n)
			}
			return s
		}
	}
	t.Fatalf("stats %+v, want %d sent", m.Stats(), n)
	return Stats{}
}

func subjects(ms []mailtest.Mail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Subject)
	}
	return out
}

// TestStartTLSRequired: a relay without STARTTLS is refused when TLS is
// required, and no mail is sent in clear.
func TestStartTLSRequired(t *testing.T) {
	srv := mailtest.Start(t, false)
	m, err := New(Config{Relay: srv.Addr, From: "utm@monitor.test", StartTLS: StartTLSRequired, Registry: registry(t), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Send(Message{To: []string{"a@example.test"}, Subject: "x", Body: "y"})
	if !errors.Is(err, ErrRelay) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err %v", err)
	}
	if len(srv.Mails()) != 0 {
		t.Fatal("mail sent in clear")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{}, {Relay: "nohost"}, {Relay: "h:25"}, {Relay: "h:25", From: "a@b", StartTLS: "maybe"}} {
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	dir := t.TempDir()
	for _, body := range []string{`{`, `{"boxes":{"x":{"mail":["not-an-address"]}}}`, `{"boxes":{"x":{"mail":["a@b"],"lang":"fr"}}}`, `{"extra":1}`} {
		p := filepath.Join(dir, "r.json")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadRegistry(p); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", body, err)
		}
	}
}
