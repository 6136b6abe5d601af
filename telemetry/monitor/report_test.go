package monitor

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/internal/webdriver"
)

// TestMonthlyReport: a box's report for November counts only that box's
// November alerts by stars and kind, ranks threats, lists the offline
// period (last heartbeat to back online), and prints to a PDF.
func TestMonthlyReport(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", OfflineAfter: 5 * time.Minute,
		Now: now, Logger: testLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	clients.Store(m.PortalURL(), login(t, m, &logs))
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	n := 0
	add := func(box string, at time.Time, stars alert.Stars, threat string, intel bool) {
		n++
		ev := eicar(box, fmt.Sprint("rp-", n), stars, "sig "+threat)
		ev.Timestamp = alert.Timestamp(at)
		ev.FileInfo.Threat = threat
		if intel {
			ev.FileInfo, ev.Intel = nil, &alert.Intel{Indicator: "c2.example", Kind: "domain", Family: threat}
		}
		if threat == "Mirai" {
			ev.Count = 4 // the box merged four ★ alerts into this record
		}
		publish(t, js, box, ev, ev.ID)
	}
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		add("rb", nov.Add(time.Duration(i)*24*time.Hour), 3, "EICAR-Test-File", false)
	}
	for i := 0; i < 3; i++ {
		add("rb", nov.Add(time.Duration(i+2)*24*time.Hour+time.Hour), 3, "Emotet", true)
	}
	add("rb", nov.Add(10*24*time.Hour), 1, "Mirai", true)
	add("rb", nov.Add(-time.Hour), 3, "October-Threat", false)       // October: not in the report
	add("other", nov.Add(2*time.Hour), 3, "Other-Box-Threat", false) // another box
	settle(t, m)

	// An offline period: heartbeat at 12:00, silent until 12:30.
	heartbeat(t, nc, "rb", nil)
	waitFor(t, "box registered", func() bool { b := m.Boxes(); return len(b) == 2 && !b[1].LastHeartbeat.IsZero() })
	clock.Add(int64(10 * time.Minute))
	m.checkOffline()
	clock.Add(int64(20 * time.Minute))
	heartbeat(t, nc, "rb", nil)
	waitFor(t, "back online", func() bool { return len(byEngine(t, m, ReasonBoxOnline)) == 1 })

	page := get(t, m.PortalURL()+"boxes/rb/report?month=2026-11")
	for _, want := range []string{
		`<td id="total">14</td>`, `<td id="stars3">8</td>`, `<td id="stars2">1</td>`, `<td id="stars1">5</td>`,
		`<td class="kind-av">5</td>`, `<td class="kind-cnc">7</td>`, `<td class="kind-health">2</td>`,
		`<tr><td>EICAR-Test-File</td><td>5</td></tr><tr><td>Mirai</td><td>4</td></tr><tr><td>Emotet</td><td>3</td></tr>`,
		`<td>2026-11-20 12:00:00 UTC</td><td>2026-11-20 12:30:00 UTC</td><td>30m0s</td>`,
		`class="bar s3"`, `id="pdf"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	if list := get(t, m.PortalURL()+"alerts?box=rb"); !strings.Contains(list, `<b class="count" title="4 alerts merged by the box">×4</b>`) {
		t.Errorf("the alert list does not show the merged record's count ×4")
	}
	for _, not := range []string{"October-Threat", "Other-Box-Threat"} {
		if strings.Contains(page, not) {
			t.Errorf("report counts %s from outside the box's month", not)
		}
	}
	if code, _ := fetch(t, m.PortalURL()+"boxes/rb/report?month=11-2026"); code != 400 {
		t.Errorf("bad month: %d, want 400", code)
	}

	if testing.Short() {
		return
	}
	webdriver.Require(t) // chromium prints the PDF
	c, _ := clients.Load(m.PortalURL())
	resp, err := c.(*http.Client).Get(m.PortalURL() + "boxes/rb/report.pdf?month=2026-11")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) || len(pdf) < 2000 ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "utm-report-rb-2026-11.pdf") {
		t.Fatalf("PDF: %s %s %d bytes %q", resp.Status, resp.Header.Get("Content-Type"), len(pdf), pdf[:min(len(pdf), 200)])
	}
}
