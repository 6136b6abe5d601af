package uplink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/monitor"
	"github.com/openutm/utm/telemetry/spool"
)

// syncBuf collects log output for the canary check.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startMonitor(t *testing.T, dir, natsListen string, logs *syncBuf) *monitor.Monitor {
	t.Helper()
	m, err := monitor.Start(monitor.Config{DataDir: dir, NATSListen: natsListen, HTTPListen: "127.0.0.1:0",
		OfflineAfter: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newAlert(i int) *alert.Event {
	return &alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: 3,
		SrcIP: "198.18.1.2", DestIP: "198.18.2.2", Proto: "TCP",
		Alert: &alert.Alert{Action: alert.ActionBlocked, GID: 1, SignatureID: 2210001, Rev: 1, Signature: fmt.Sprintf("test alert %d", i)}}
}

// waitFor polls fn until it is true or 20 s pass.
func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fn() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func countByID(t *testing.T, m *monitor.Monitor) (int, map[string]int) {
	recs, err := m.Alerts(0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range recs {
		ids[r.Event.ID]++
	}
	return len(recs), ids
}

// TestSpoolSurvivesNATSOutage: alerts raised while the monitor's NATS is
// down stay in the spool and arrive exactly once when it is back.
func TestSpoolSurvivesNATSOutage(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuf
	m := startMonitor(t, filepath.Join(dir, "monitor"), "127.0.0.1:-1", &logs)
	u0, _ := url.Parse(m.NATSURL())
	listen := u0.Host

	sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{BoxID: "box-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	up, err := Start(context.Background(), Config{URL: m.NATSURL(), BoxID: "box-1", Version: "test", Heartbeat: 100 * time.Millisecond}, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()

	var want []string
	raise := func(n int) {
		for i := 0; i < n; i++ {
			ev := newAlert(len(want))
			if err := sp.Append(ev); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev.ID)
		}
	}
	raise(50)
	waitFor(t, "the first 50 alerts", func() bool { n, _ := countByID(t, m); return n == 50 })
	waitFor(t, "box online", func() bool { b := m.Boxes(); return len(b) == 1 && b[0].Online })

	m.Close() // NATS and monitor down
	raise(100)
	time.Sleep(300 * time.Millisecond) // the uplink tries and fails meanwhile
	if sp.Len() < 100 {
		t.Fatalf("only %d alerts spooled while NATS was down", sp.Len())
	}
	m = startMonitor(t, filepath.Join(dir, "monitor"), listen, &logs)
	defer m.Close()
	waitFor(t, "all 150 alerts after the outage", func() bool { n, _ := countByID(t, m); return n >= 150 })
	time.Sleep(300 * time.Millisecond) // a late duplicate would show now
	n, ids := countByID(t, m)
	if n != 150 {
		t.Fatalf("stored %d alerts, want exactly 150", n)
	}
	for _, id := range want {
		if ids[id] != 1 {
			t.Fatalf("alert %s stored %d times", id, ids[id])
		}
	}
	if sp.Len() != 0 {
		t.Fatalf("%d alerts left in the spool", sp.Len())
	}
}

// TestRetryIsNotDuplicated publishes the same alert twice, as a box does
// when an ack is lost, and the monitor keeps one.
func TestRetryIsNotDuplicated(t *testing.T) {
	var logs syncBuf
	m := startMonitor(t, t.TempDir(), "127.0.0.1:-1", &logs)
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	data := []byte(`{"timestamp":"2026-11-23T09:00:00.000000+0000","event_type":"alert","alert":{"action":"blocked","gid":1,"signature_id":1,"rev":1,"signature":"dup","category":"","severity":1},"stars":2,"id":"box-2-x-1","box_id":"box-2"}`)
	for i := 0; i < 2; i++ {
		if _, err := js.Publish(alert.AlertSubject("box-2"), data, nats.MsgId("box-2-x-1")); err != nil {
			t.Fatal(err)
		}
	}
	// Past the stream's duplicate window the store dedupes: publish with
	// another message id but the same alert id.
	if _, err := js.Publish(alert.AlertSubject("box-2"), data, nats.MsgId("other")); err != nil {
		t.Fatal(err)
	}
	js.Publish(alert.AlertSubject("box-2"), []byte("not json"))
	waitFor(t, "the alert", func() bool { n, _ := countByID(t, m); return n >= 1 })
	time.Sleep(300 * time.Millisecond)
	if n, _ := countByID(t, m); n != 1 {
		t.Fatalf("stored %d copies, want 1", n)
	}
}
