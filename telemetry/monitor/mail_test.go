package monitor

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/internal/mailtest"
	"github.com/openutm/utm/telemetry/notify"
)

// TestMonitorMails: with a relay configured the monitor mails a stored
// ★★★ alert (linking its portal page) and a box going offline, and not a
// ★★ alert nor a redelivered ★★★ one.
func TestMonitorMails(t *testing.T) {
	srv := mailtest.Start(t, false)
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", OfflineAfter: 300 * time.Millisecond,
		Logger: testLogger(&logs), PublicURL: "https://soc.example.test",
		Mail: &notify.Config{Relay: srv.Addr, From: "utm@soc.example.test", StartTLS: notify.StartTLSOff,
			Registry: &notify.Registry{Default: notify.BoxContact{Mail: []string{"soc@example.test"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	publish(t, js, "office-5", eicar("office-5", "m-1", 2, "two stars"), "m-1")
	publish(t, js, "office-5", eicar("office-5", "m-2", 3, "three stars"), "m-2")
	publish(t, js, "office-5", eicar("office-5", "m-2", 3, "three stars"), "m-2-retry")
	settle(t, m)
	recs, _ := m.Alerts(0)
	mails := srv.Wait(t, 1)
	if len(mails) != 1 || !strings.HasPrefix(mails[0].Subject, "★★★") || !strings.Contains(mails[0].Subject, "three stars") ||
		!strings.Contains(mails[0].Body, "https://soc.example.test/alerts/"+strconv.FormatUint(recs[1].Seq, 10)) {
		t.Fatalf("mails: %+v", mails)
	}
	heartbeat(t, nc, "office-5", nil)
	mails = srv.Wait(t, 2)
	if !strings.HasPrefix(mails[1].Subject, "★★ Box office-5 is offline") {
		t.Fatalf("second mail %q, want the box offline mail", mails[1].Subject)
	}
	if n := len(srv.Mails()); n != 2 {
		t.Fatalf("%d mails, want 2", n)
	}

	// /metrics (no login) counts what happened.
	want := []string{`utm_monitor_alerts_stored_total{stars="3"} 1`, `utm_monitor_alerts_stored_total{stars="2"} 2`,
		`utm_monitor_alerts_stored_total{stars="1"} 0`, `utm_monitor_boxes{state="offline"} 1`, `utm_monitor_boxes{state="online"} 0`,
		`utm_monitor_consumer_lag 0`, `utm_monitor_mails_total{result="sent"} 2`, `utm_monitor_mails_total{result="deduped"} 0`,
		`utm_monitor_box_heartbeat_age_seconds{box="office-5"} `, "# TYPE utm_monitor_alerts_stored_total counter"}
	var body string
	waitFor(t, "metrics", func() bool {
		_, body = fetch(t, m.PortalURL()+"metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
}

// TestMonitorMailSurvivesRestart: a ★★★ alert stored while the relay is
// down is not lost when the monitor stops before the relay comes back:
// the next monitor on the same data directory mails it, once.
func TestMonitorMailSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay := ln.Addr().String()
	ln.Close() // nobody listens: the relay is down
	dir := t.TempDir()
	var logs syncBuf
	cfg := Config{DataDir: dir, NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", Logger: testLogger(&logs),
		Mail: &notify.Config{Relay: relay, From: "utm@soc.example.test", StartTLS: notify.StartTLSOff, Timeout: 2 * time.Second,
			Registry: &notify.Registry{Default: notify.BoxContact{Mail: []string{"soc@example.test"}}}}}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := nc.JetStream()
	publish(t, js, "office-7", eicar("office-7", "r-1", 3, "while the relay is down"), "r-1")
	settle(t, m)
	waitFor(t, "a failed send", func() bool { return strings.Contains(logs.String(), "mail not sent; it stays in the outbox") })
	nc.Close()
	m.Close()

	srv := mailtest.StartAt(t, relay, false)
	cfg.NATSListen = "127.0.0.1:-1"
	m, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mails := srv.Wait(t, 1)
	if !strings.Contains(mails[0].Subject, "while the relay is down") {
		t.Fatalf("mail %q, want the alert stored while the relay was down", mails[0].Subject)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(srv.Mails()); n != 1 {
		t.Fatalf("%d mails after the restart, want exactly 1", n)
	}
	if seqs, _ := m.st.outbox(10); len(seqs) != 0 {
		t.Fatalf("outbox still holds %v after the mail was sent", seqs)
	}
}

// TestMonitorMailRefusedDoesNotBlock: a mail the relay refuses for good
// (550 for a wrong address in the registry) is logged and counted as lost
// at once, and the mail behind it goes out instead of waiting a day of
// retries.
func TestMonitorMailRefusedDoesNotBlock(t *testing.T) {
	srv := mailtest.Start(t, false)
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", Logger: testLogger(&logs),
		Mail: &notify.Config{Relay: srv.Addr, From: "utm@soc.example.test", StartTLS: notify.StartTLSOff,
			Registry: &notify.Registry{Default: notify.BoxContact{Mail: []string{"soc@example.test"}},
				Boxes: map[string]notify.BoxContact{"office-8": {Mail: []string{"typo-reject@example.test"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	publish(t, js, "office-8", eicar("office-8", "x-1", 3, "to a wrong address"), "x-1")
	publish(t, js, "office-9", eicar("office-9", "x-2", 3, "behind it"), "x-2")
	mails := srv.Wait(t, 1)
	if !strings.Contains(mails[0].Subject, "behind it") {
		t.Fatalf("mail %q, want office-9's", mails[0].Subject)
	}
	waitFor(t, "the refused mail counted as lost", func() bool { return m.mailer.Stats().Failed == 1 })
	// The relay has the mail before the monitor hears its 250 and clears
	// the outbox entry: wait for that, as for the count.
	waitFor(t, "an empty outbox", func() bool { seqs, _ := m.st.outbox(10); return len(seqs) == 0 })
	if !strings.Contains(logs.String(), "mail lost") {
		t.Errorf("no log line says the mail was lost:\n%s", logs.String())
	}
}
