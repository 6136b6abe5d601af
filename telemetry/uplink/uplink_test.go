package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/monitor"
	"github.com/openutm/utm/telemetry/spool"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startMonitor(t testing.TB, dir, natsListen string) *monitor.Monitor {
	t.Helper()
	m, err := monitor.Start(monitor.Config{DataDir: dir, NATSListen: natsListen, HTTPListen: "127.0.0.1:0",
		OfflineAfter: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func openSpool(t *testing.T, path string) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(path, spool.Options{BoxID: "box-1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func startUplink(t *testing.T, url string, sp *spool.Spool, counters func() map[string]uint64) *Uplink {
	t.Helper()
	up, err := Start(context.Background(), Config{URL: url, BoxID: "box-1", Version: "test-1",
		Heartbeat: 100 * time.Millisecond, Counters: counters, Logger: quiet}, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return up
}

func newAlert(i int) *alert.Event {
	return &alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: alert.Stars(1 + i%3),
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

// delivered waits until the spool is empty and then the monitor has
// worked off its stream, and returns the stored alert ids in store order.
// The order matters: an empty spool means every alert is in the stream
// (the uplink deletes on JetStream's ack), so a backlog of 0 read after it
// covers them all; read before it, the backlog may predate the last
// publishes.
func delivered(t *testing.T, m *monitor.Monitor, sp *spool.Spool) []string {
	t.Helper()
	waitFor(t, "the spool to empty and the monitor to store everything", func() bool {
		if sp.Len() != 0 {
			return false
		}
		n, err := m.Backlog()
		return err == nil && n == 0
	})
	recs, err := m.Alerts(0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Event.ID
	}
	return ids
}

// exactlyOnce fails unless got holds each of want exactly once, in order.
func exactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("alert %s stored %d times", id, count[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d alerts, want exactly %d", len(got), len(want))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("alerts stored out of order")
	}
}

func raise(t *testing.T, sp *spool.Spool, want *[]string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ev := newAlert(len(*want))
		if err := sp.Append(ev); err != nil {
			t.Fatal(err)
		}
		*want = append(*want, ev.ID)
	}
}

func streamMsgs(t *testing.T, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	si, err := js.StreamInfo(alert.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return si.State.Msgs
}

// TestExactlyOnceAndHeartbeat: alerts raised from several goroutines all
// arrive once; heartbeats make the box online and carry its counters.
func TestExactlyOnceAndHeartbeat(t *testing.T) {
	dir := t.TempDir()
	m := startMonitor(t, filepath.Join(dir, "monitor"), "127.0.0.1:-1")
	defer m.Close()
	sp := openSpool(t, filepath.Join(dir, "spool.db"))
	shared := map[string]uint64{"packets": 5}
	up := startUplink(t, m.NATSURL(), sp, func() map[string]uint64 { return shared })

	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ev := newAlert(i)
				if err := sp.Append(ev); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, ev.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := delivered(t, m, sp)
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("alert %s stored %d times", id, count[id])
		}
	}
	if len(got) != 200 || up.Published() != 200 {
		t.Fatalf("stored %d, published %d; want 200", len(got), up.Published())
	}
	waitFor(t, "a heartbeat with the published count", func() bool {
		b := m.Boxes()
		return len(b) == 1 && b[0].Online && b[0].Heartbeat != nil && b[0].Heartbeat.Counters["uplink_published"] == 200
	})
	hb := m.Boxes()[0].Heartbeat
	if hb.BoxID != "box-1" || hb.Version != "test-1" || hb.Counters["packets"] != 5 || hb.Time.IsZero() {
		t.Fatalf("heartbeat: %+v", hb)
	}
	if len(shared) != 1 {
		t.Fatalf("the uplink wrote into the caller's counters map: %v", shared)
	}
}

// TestSpoolSurvivesNATSOutage is the spool test from the issue: alerts
// raised while the monitor and its NATS are down stay in the spool and
// arrive exactly once, in order, when the monitor is back on the same
// data directory and port.
func TestSpoolSurvivesNATSOutage(t *testing.T) {
	dir := t.TempDir()
	m := startMonitor(t, filepath.Join(dir, "monitor"), "127.0.0.1:-1")
	listen := strings.TrimPrefix(m.NATSURL(), "nats://")
	sp := openSpool(t, filepath.Join(dir, "spool.db"))
	up := startUplink(t, m.NATSURL(), sp, nil)

	var want []string
	raise(t, sp, &want, 50)
	exactlyOnce(t, delivered(t, m, sp), want)

	if err := m.Close(); err != nil { // NATS and monitor down
		t.Fatal(err)
	}
	retries := up.Retries()
	raise(t, sp, &want, 100)
	waitFor(t, "the uplink to try and fail twice", func() bool { return up.Retries() >= retries+2 })
	if sp.Len() != 100 {
		t.Fatalf("%d alerts in the spool while NATS is down, want 100", sp.Len())
	}
	m = startMonitor(t, filepath.Join(dir, "monitor"), listen)
	defer m.Close()
	exactlyOnce(t, delivered(t, m, sp), want)
}

// TestStartWhileNATSDown: Start does not fail when nothing listens yet;
// alerts wait in the spool and leave once the monitor starts.
func TestStartWhileNATSDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	sp := openSpool(t, filepath.Join(dir, "spool.db"))
	up := startUplink(t, "nats://"+listen, sp, nil)
	var want []string
	raise(t, sp, &want, 10)
	waitFor(t, "a failed send", func() bool { return up.Retries() >= 1 })
	m := startMonitor(t, filepath.Join(dir, "monitor"), listen)
	defer m.Close()
	exactlyOnce(t, delivered(t, m, sp), want)
	waitFor(t, "heartbeats", func() bool { b := m.Boxes(); return len(b) == 1 && b[0].Online && b[0].Heartbeat != nil })
}

// TestLostAck: a box whose publish reached the stream but whose ack was
// lost still has the alert in its spool and sends it again. JetStream's
// duplicate window drops the second copy (same Nats-Msg-Id); past the
// window (another message id, same alert id) the monitor's store does.
func TestLostAck(t *testing.T) {
	dir := t.TempDir()
	m := startMonitor(t, filepath.Join(dir, "monitor"), "127.0.0.1:-1")
	defer m.Close()
	sp := openSpool(t, filepath.Join(dir, "spool.db"))
	ev := newAlert(1)
	if err := sp.Append(ev); err != nil {
		t.Fatal(err)
	}
	pend, _ := sp.Pending(1)
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	// The "first attempt": it lands in the stream; its ack goes nowhere.
	ack, err := js.Publish(alert.AlertSubject("box-1"), pend[0].Data, nats.MsgId(ev.ID))
	if err != nil || ack.Duplicate {
		t.Fatalf("first publish: %v %+v", err, ack)
	}
	// The uplink's retry.
	startUplink(t, m.NATSURL(), sp, nil)
	got := delivered(t, m, sp)
	if n := streamMsgs(t, m.NATSURL()); n != 1 {
		t.Fatalf("stream holds %d messages, want 1 (duplicate window)", n)
	}
	ack, err = js.Publish(alert.AlertSubject("box-1"), pend[0].Data, nats.MsgId(ev.ID))
	if err != nil || !ack.Duplicate {
		t.Fatalf("a third publish with the same id was not reported duplicate: %v %+v", err, ack)
	}
	// Past the window: the stream takes it, the store does not.
	if _, err := js.Publish(alert.AlertSubject("box-1"), pend[0].Data, nats.MsgId(ev.ID+"-after-window")); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, m.NATSURL()); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
	got = delivered(t, m, sp)
	exactlyOnce(t, got, []string{ev.ID})
	var stored alert.Event
	recs, _ := m.Alerts(0)
	b, _ := json.Marshal(recs[0].Event)
	json.Unmarshal(b, &stored)
	if stored.Alert.Signature != ev.Alert.Signature || stored.BoxID != "box-1" {
		t.Fatalf("stored %+v", stored)
	}
}

func TestConfigErrors(t *testing.T) {
	sp := openSpool(t, filepath.Join(t.TempDir(), "spool.db"))
	for _, box := range []string{"", "a.b", "a b", "a>"} {
		if _, err := Start(context.Background(), Config{URL: "nats://127.0.0.1:1", BoxID: box}, sp); err == nil {
			t.Errorf("box id %q accepted", box)
		}
	}
}
