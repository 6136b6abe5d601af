package monitor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/spool"
	"github.com/openutm/utm/telemetry/uplink"
)

// TestStartWithBoxCredentials: a monitor started with NATSAuth stores the
// alerts a listed box sends with its NKEY through the real spool and
// uplink; an unlisted key cannot connect, and a listed box cannot publish
// under another box's subject.
func TestStartWithBoxCredentials(t *testing.T) {
	pubA, seedA := userKey(t)
	_, seedX := userKey(t)
	dir := t.TempDir()
	m, err := Start(Config{DataDir: filepath.Join(dir, "monitor"), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NATSAuth: &NATSAuth{Boxes: []BoxCredential{{"box-a", pubA}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url := m.NATSURL()
	seedFile := filepath.Join(dir, "box-a.nk")
	os.WriteFile(seedFile, []byte(seedA), 0o600)

	sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{BoxID: "box-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up, err := uplink.Start(ctx, uplink.Config{URL: url, BoxID: "box-a", NKeySeedFile: seedFile, Heartbeat: time.Second}, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := sp.Append(&alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: 3,
		Alert: &alert.Alert{Action: alert.ActionBlocked, SignatureID: 2210001, Signature: "test"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the box's alert stored", func() bool { r, _ := m.Alerts(0); return len(r) == 1 })

	// An unlisted key is refused.
	xFile := filepath.Join(dir, "x.nk")
	os.WriteFile(xFile, []byte(seedX), 0o600)
	opt, err := nats.NkeyOptionFromSeed(xFile)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, opt, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an unlisted NKEY connected")
	}
	// Box A cannot publish as box B.
	optA, _ := nats.NkeyOptionFromSeed(seedFile)
	perm := make(chan error, 1)
	nc, err := nats.Connect(url, optA, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case perm <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Publish(alert.AlertSubject("box-b"), []byte(`{"event_type":"alert"}`))
	nc.Flush()
	select {
	case err := <-perm:
		if err == nil {
			t.Fatal("no permission error")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("publishing under box-b's subject raised no permission violation")
	}
	if r, _ := m.Alerts(0); len(r) != 1 {
		t.Fatalf("%d alerts stored; box-a's forged box-b alert must not be", len(r))
	}
}
