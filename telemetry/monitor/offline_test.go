package monitor

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
)

// byEngine returns the stored records whose engine reason is reason.
func byEngine(t *testing.T, m *Monitor, reason string) []Record {
	t.Helper()
	recs, err := m.Alerts(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, r := range recs {
		if r.Event.Engine != nil && r.Event.Engine.Reason == reason {
			out = append(out, r)
		}
	}
	return out
}

// TestBoxOffline: a box that stops heartbeating gets one stored ★★ "box
// offline" alert naming it and its last heartbeat; when it heartbeats again
// a "box back online" event resolves it; a second silence is a second
// offline period. Real NATS, OfflineAfter 300 ms.
func TestBoxOffline(t *testing.T) {
	var logs syncBuf
	const after = 300 * time.Millisecond
	m := start(t, t.TempDir(), "127.0.0.1:-1", after, &logs)
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A box that only sent an alert, never a heartbeat, is never offline.
	js, _ := nc.JetStream()
	publish(t, js, "quiet", eicar("quiet", "q-1", 1, "x"), "q-1")

	heartbeat(t, nc, "office-9", nil)
	waitFor(t, "box online", func() bool { b := m.Boxes(); return len(b) == 2 && b[0].Online })
	last := m.Boxes()[0].LastHeartbeat
	waitFor(t, "box offline alert", func() bool { return len(byEngine(t, m, ReasonBoxOffline)) == 1 })
	off := byEngine(t, m, ReasonBoxOffline)[0]
	ev := off.Event
	if ev.EventType != alert.TypeAlert || ev.Stars != 2 || ev.BoxID != "office-9" || ev.Alert.SignatureID != SIDBoxOffline ||
		!strings.Contains(ev.Summary, last.Format(time.RFC3339)) || ev.Validate() != nil || off.Resolved != nil {
		t.Fatalf("offline alert: %+v %+v %+v", off, ev.Alert, ev.Engine)
	}
	if d, err := time.ParseDuration(ev.Engine.Duration); err != nil || d < after {
		t.Fatalf("offline alert says the box was silent %q, want >= %v", ev.Engine.Duration, after)
	}
	b := m.Boxes()[0]
	if b.Online || b.OfflineSeq != off.Seq || !b.OfflineSince.Equal(last) {
		t.Fatalf("box after offline: %+v", b)
	}
	// Further checks while it stays silent raise nothing new.
	for i := 0; i < 3; i++ {
		m.checkOffline()
	}
	if n := len(byEngine(t, m, ReasonBoxOffline)); n != 1 {
		t.Fatalf("%d offline alerts for one offline period", n)
	}
	if !strings.Contains(logs.String(), `msg="box offline" box=office-9`) {
		t.Errorf("no log line for the offline box:\n%s", logs.String())
	}

	heartbeat(t, nc, "office-9", nil)
	waitFor(t, "back online event", func() bool { return len(byEngine(t, m, ReasonBoxOnline)) == 1 })
	on := byEngine(t, m, ReasonBoxOnline)[0]
	off = byEngine(t, m, ReasonBoxOffline)[0]
	if on.Event.BoxID != "office-9" || on.Event.Alert.SignatureID != SIDBoxOnline || on.Event.Validate() != nil {
		t.Fatalf("online event: %+v", on.Event)
	}
	if off.Resolved == nil || off.Resolved.Seq != on.Seq {
		t.Fatalf("offline alert not resolved by seq %d: %+v", on.Seq, off.Resolved)
	}
	if b := m.Boxes()[0]; !b.Online || b.OfflineSeq != 0 {
		t.Fatalf("box after back online: %+v", b)
	}

	waitFor(t, "second offline period", func() bool { return len(byEngine(t, m, ReasonBoxOffline)) == 2 })
	if recs := byEngine(t, m, ReasonBoxOffline); recs[1].Resolved != nil || recs[0].Resolved == nil {
		t.Fatalf("second period: %+v", recs)
	}
}

// TestBoxOfflineAcrossRestart: the open offline alert survives a monitor
// restart and is resolved by the first heartbeat after it; a monitor that
// was down itself gives boxes OfflineAfter from its start before blaming
// them.
func TestBoxOfflineAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuf
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	cfg := func(nats string) Config {
		c := Config{DataDir: dir, NATSListen: nats, HTTPListen: "127.0.0.1:0", OfflineAfter: time.Hour, Now: now, Logger: testLogger(&logs)}
		return c
	}
	m, err := Start(cfg("127.0.0.1:-1"))
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := nats.Connect(m.NATSURL())
	heartbeat(t, nc, "a", nil)
	heartbeat(t, nc, "b", nil)
	waitFor(t, "boxes", func() bool { return len(m.Boxes()) == 2 })
	nc.Close()
	clock.Add(int64(2 * time.Hour))
	m.checkOffline()
	if n := len(byEngine(t, m, ReasonBoxOffline)); n != 2 {
		t.Fatalf("%d offline alerts, want 2", n)
	}
	url := m.NATSURL()
	m.Close()

	m, err = Start(cfg(strings.TrimPrefix(url, "nats://")))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nc, _ = nats.Connect(m.NATSURL())
	defer nc.Close()
	heartbeat(t, nc, "a", nil)
	waitFor(t, "a back online", func() bool { return len(byEngine(t, m, ReasonBoxOnline)) == 1 })
	if r := byEngine(t, m, ReasonBoxOffline); r[0].Resolved == nil || r[1].Resolved != nil || r[0].Event.BoxID != "a" {
		t.Fatalf("after restart: %+v %+v", r[0], r[1])
	}
	// Box "a" heartbeat at this start: offline one OfflineAfter later.
	clock.Add(int64(30 * time.Minute))
	m.checkOffline()
	if n := len(byEngine(t, m, ReasonBoxOffline)); n != 2 {
		t.Fatalf("%d offline alerts half an hour after the start, want still 2", n)
	}
	clock.Add(int64(31 * time.Minute))
	m.checkOffline()
	if n := len(byEngine(t, m, ReasonBoxOffline)); n != 3 {
		t.Fatalf("%d offline alerts an hour after the start, want 3", n)
	}
}

func testLogger(w *syncBuf) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
