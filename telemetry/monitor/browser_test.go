package monitor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/internal/webdriver"
)

// TestPortalInChromium drives the portal in headless Chromium as a SOC
// user would: set the password through the one-time setup URL, log out,
// log in, list alerts, filter by ★★★, open a detail and read its
// evidence, see the chart's bars, log out.
func TestPortalInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	b := webdriver.Start(t)
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", Logger: testLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := m.PortalURL()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	heartbeat(t, nc, "office-7", map[string]uint64{"packets": 1234})
	for i := 0; i < 9; i++ {
		ev := eicar("office-7", fmt.Sprint("w-", i), alert.Stars(1+i%3), fmt.Sprintf("signature %d", i))
		ev.Timestamp = alert.Timestamp(time.Now().Add(-time.Duration(i) * 7 * time.Hour))
		if i%3 != 2 {
			ev.FileInfo = nil
		}
		publish(t, js, "office-7", ev, ev.ID)
	}
	settle(t, m)

	mm := setupRE.FindStringSubmatch(logs.String())
	if mm == nil {
		t.Fatalf("no setup URL on the log:\n%s", logs.String())
	}
	b.Go(mm[1])
	b.Type(b.Find("#password"), testPassword)
	b.Type(b.Find("#confirm"), testPassword)
	b.Click(b.Find("#setup"))
	b.WaitURL("the dashboard after setup", func(u string) bool { return u == base })
	b.Click(b.Find("#logout"))
	b.WaitURL("the login page after logout", func(u string) bool { return strings.HasPrefix(u, base+"login") })
	b.Go(base + "alerts")
	if u := b.URL(); !strings.HasPrefix(u, base+"login") {
		t.Fatalf("alerts without a session at %s, want the login page", u)
	}
	b.Type(b.Find("#password"), "wrong password!")
	b.Click(b.Find("#login"))
	b.WaitURL("the login POST's answer", func(u string) bool { return u == base+"login" })
	if !strings.Contains(b.Text(b.Find("#login-error")), "Wrong user or password") {
		t.Fatal("no error for a wrong password")
	}
	b.Type(b.Find("#password"), testPassword)
	b.Click(b.Find("#login"))
	b.WaitURL("back at the alerts after login", func(u string) bool { return u == base+"alerts" })

	// The dashboard: the box with its health.
	b.Go(base)
	boxes := b.Text(b.Find("#boxes"))
	for _, want := range []string{"office-7", "online", "packets=1234"} {
		if !strings.Contains(boxes, want) {
			t.Errorf("boxes table lacks %q:\n%s", want, boxes)
		}
	}

	b.Go(base + "alerts")
	if rows := b.FindAll("#alerts tr.s1, #alerts tr.s2, #alerts tr.s3"); len(rows) != 9 {
		t.Fatalf("%d alert rows, want 9", len(rows))
	}
	bars := b.FindAll("svg.chart rect.bar")
	if len(bars) == 0 {
		t.Fatal("the chart has no bars")
	}
	if len(b.FindAll("svg.chart rect.bar.s3")) == 0 {
		t.Error("the chart has no ★★★ bars")
	}
	b.Click(b.Find(`#f-stars option[value="3"]`))
	b.Click(b.Find("#filter"))
	b.WaitURL("the filtered list", func(u string) bool { return strings.Contains(u, "stars=3") })
	rows := b.FindAll("#alerts tr.s1, #alerts tr.s2, #alerts tr.s3")
	if len(rows) != 3 || len(b.FindAll("#alerts tr.s3")) != 3 {
		t.Fatalf("★★★ filter shows %d rows, want the 3 ★★★ alerts", len(rows))
	}
	for _, bar := range b.FindAll("svg.chart rect.bar") {
		if !strings.Contains(b.Attr(bar, "class"), "s3") {
			t.Fatal("the ★★★ chart has a bar of another rating")
		}
	}
	b.Click(b.Find("#alerts a.detail"))
	b.WaitURL("an alert's detail", func(u string) bool { return strings.HasPrefix(u, base+"alerts/") })
	fields := b.Text(b.Find("#fields"))
	for _, want := range []string{"alert.signature", "signature 2", "id", "w-2", "fileinfo.threat", "EICAR-Test-File", "http.url", "/eicar.com", "src_ip", "198.18.1.2", "box_id", "office-7"} {
		if !strings.Contains(fields, want) {
			t.Errorf("detail lacks %q:\n%s", want, fields)
		}
	}
	b.Click(b.Find("#logout"))
	b.WaitURL("the login page after logout", func(u string) bool { return strings.HasPrefix(u, base+"login") })
	b.Go(base + "alerts")
	if u := b.URL(); !strings.HasPrefix(u, base+"login") {
		t.Fatalf("after logout the alerts are at reach: %s", u)
	}
}
