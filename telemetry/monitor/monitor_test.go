package monitor

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fn() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestPortalAndHealth: a heartbeat makes a box online, silence makes it
// offline; alerts show in the API, the page and the log. (That no payload
// reaches an alert is proven end to end by the lab tests in hack/lab.)
func TestPortalAndHealth(t *testing.T) {
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0",
		OfflineAfter: 500 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := m.PortalURL()
	if get(t, base+"healthz") != "ok" {
		t.Fatal("not healthy")
	}
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hb, _ := json.Marshal(alert.Heartbeat{BoxID: "office-1", Version: "1.0", Time: time.Now(), Counters: map[string]uint64{"packets": 42}})
	nc.Publish(alert.HeartbeatSubject("office-1"), hb)
	nc.Flush()
	waitFor(t, "box online", func() bool { return strings.Contains(get(t, base+"api/boxes"), `"online": true`) })

	ev := alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, SrcIP: "198.18.1.2", DestIP: "198.18.2.2",
		Stars: 3, ID: "office-1-a-1", BoxID: "office-1", HTTP: &alert.HTTP{Hostname: "www.lab.test", URL: "/eicar.com"},
		FileInfo: &alert.FileInfo{Filename: "eicar.com", Threat: "EICAR-Test-File", SHA256: "275a02"},
		Alert:    &alert.Alert{Action: alert.ActionBlocked, GID: 1, SignatureID: 2210001, Rev: 1, Signature: "UTM AV malware in HTTP transfer: EICAR-Test-File"}}
	b, _ := json.Marshal(ev)
	js, _ := nc.JetStream()
	if _, err := js.Publish(alert.AlertSubject("office-1"), b, nats.MsgId(ev.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alert stored", func() bool { return strings.Contains(get(t, base+"api/alerts"), "office-1-a-1") })
	page := get(t, base)
	for _, want := range []string{"office-1", "online", "★★★", "EICAR-Test-File", "/eicar.com"} {
		if !strings.Contains(page, want) {
			t.Errorf("portal page lacks %q", want)
		}
	}
	var recs []Record
	json.Unmarshal([]byte(get(t, base+"api/alerts")), &recs)
	if len(recs) != 1 || recs[0].Event.Stars != 3 || recs[0].Event.Alert.SignatureID != 2210001 {
		t.Fatalf("api/alerts: %+v", recs)
	}
	if !strings.Contains(logs.String(), "alert received") {
		t.Error("the monitor did not log the received alert")
	}
	waitFor(t, "box offline", func() bool { return strings.Contains(get(t, base+"api/boxes"), `"online": false`) })
	if !strings.Contains(get(t, base), "offline") {
		t.Error("portal does not show the box offline")
	}
}
