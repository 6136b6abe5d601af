// Package monitor is the central monitor a SOC watches for many boxes: it
// receives every box's alerts and heartbeats over NATS, stores them, and
// serves a web page with each box's health and alerts.
//
// By default it embeds a NATS server with JetStream (data in one
// directory); with Config.NATSURL it uses an external NATS (a cluster is
// the way to many boxes). Alerts are read from the UTM_ALERTS stream by a
// durable consumer with explicit acks: an alert is acked only after it is
// committed to the bbolt store, and the store keeps one copy per (box, id),
// so restarts of the box, of NATS or of the monitor never lose nor double
// an alert.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
)

// Config configures a monitor.
type Config struct {
	DataDir      string        // store and JetStream data
	NATSListen   string        // embedded NATS address, host:port (port -1: random)
	NATSURL      string        // external NATS instead of the embedded one
	HTTPListen   string        // portal address, host:port (port 0: random)
	OfflineAfter time.Duration // a box without heartbeat this long is offline; default 10s
	Logger       *slog.Logger
}

// Monitor is a running monitor.
type Monitor struct {
	cfg   Config
	log   *slog.Logger
	ns    *server.Server
	nc    *nats.Conn
	js    nats.JetStreamContext
	sub   *nats.Subscription
	hbSub *nats.Subscription
	st    *store
	http  *http.Server
	ln    net.Listener

	mu        sync.Mutex
	listeners []chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	Bad       uint64 // messages that were not alerts (terminated)
}

// Start starts NATS (or connects to it), the consumer and the portal.
func Start(cfg Config) (*Monitor, error) {
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:8080"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("monitor: data directory: %w", err)
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger, stop: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	var err error
	m.st, err = openStore(filepath.Join(cfg.DataDir, "monitor.db"))
	if err != nil {
		return nil, err
	}
	url := cfg.NATSURL
	if url == "" {
		if url, err = m.startNATS(); err != nil {
			return nil, err
		}
	}
	m.nc, err = nats.Connect(url, nats.Name("utm monitor"), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, fmt.Errorf("monitor: connect NATS %s: %w", url, err)
	}
	m.js, err = m.nc.JetStream()
	if err != nil {
		return nil, fmt.Errorf("monitor: jetstream: %w", err)
	}
	if err := m.ensureStream(); err != nil {
		return nil, err
	}
	m.sub, err = m.js.Subscribe(alert.AlertSubjects, m.onAlert, nats.Durable("monitor"), nats.ManualAck(),
		nats.AckExplicit(), nats.DeliverAll(), nats.MaxAckPending(1024), nats.AckWait(30*time.Second), nats.BindStream(alert.Stream))
	if err != nil {
		return nil, fmt.Errorf("monitor: alert consumer: %w", err)
	}
	m.hbSub, err = m.nc.Subscribe(alert.HeartbeatSubjects, m.onHeartbeat)
	if err != nil {
		return nil, fmt.Errorf("monitor: heartbeat subscription: %w", err)
	}
	if err := m.startHTTP(); err != nil {
		return nil, err
	}
	m.wg.Add(1)
	go m.persistLoop()
	ok = true
	m.log.Info("monitor ready", "nats", url, "portal", "http://"+m.ln.Addr().String()+"/", "data", cfg.DataDir)
	return m, nil
}

func (m *Monitor) startNATS() (string, error) {
	host, portS, err := net.SplitHostPort(m.cfg.NATSListen)
	if err != nil {
		host, portS = "127.0.0.1", "4222"
		if m.cfg.NATSListen != "" {
			return "", fmt.Errorf("monitor: NATS listen address %q: %w", m.cfg.NATSListen, err)
		}
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return "", fmt.Errorf("monitor: NATS port %q: %w", portS, err)
	}
	opts := &server.Options{
		ServerName: "utm-monitor",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(m.cfg.DataDir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return "", fmt.Errorf("monitor: embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", fmt.Errorf("monitor: embedded NATS did not start on %s (port in use?)", m.cfg.NATSListen)
	}
	m.ns = ns
	return ns.ClientURL(), nil
}

// NATSURL returns the URL boxes connect to.
func (m *Monitor) NATSURL() string {
	if m.ns != nil {
		return m.ns.ClientURL()
	}
	return m.cfg.NATSURL
}

// PortalURL returns the portal's base URL.
func (m *Monitor) PortalURL() string { return "http://" + m.ln.Addr().String() + "/" }

func (m *Monitor) ensureStream() error {
	cfg := &nats.StreamConfig{
		Name:       alert.Stream,
		Subjects:   []string{alert.AlertSubjects},
		Storage:    nats.FileStorage,
		Duplicates: 10 * time.Minute,
		MaxAge:     30 * 24 * time.Hour,
	}
	var err error
	for i := 0; i < 50; i++ {
		if _, err = m.js.StreamInfo(alert.Stream); err == nil {
			_, err = m.js.UpdateStream(cfg)
		} else if errors.Is(err, nats.ErrStreamNotFound) {
			_, err = m.js.AddStream(cfg)
		}
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // JetStream may still be starting
	}
	return fmt.Errorf("monitor: create stream %s: %w", alert.Stream, err)
}

func (m *Monitor) onAlert(msg *nats.Msg) {
	var ev alert.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil || ev.Validate() != nil || ev.ID == "" {
		m.mu.Lock()
		m.Bad++
		m.mu.Unlock()
		m.log.Warn("dropped a message that is not a valid alert", "subject", msg.Subject, "bytes", len(msg.Data))
		msg.Term()
		return
	}
	box := msg.Subject[len("utm.alerts."):]
	if ev.BoxID == "" {
		ev.BoxID = box
	}
	rec, added, err := m.st.add(&ev, time.Now())
	if err != nil {
		m.log.Error("cannot store an alert; it will be redelivered", "box", box, "id", ev.ID, "err", err)
		msg.Nak()
		return
	}
	msg.Ack()
	m.st.seen(ev.BoxID)
	if !added {
		return
	}
	m.log.Info("alert received", "box", ev.BoxID, "stars", int(ev.Stars), "sid", ev.Alert.SignatureID,
		"signature", ev.Alert.Signature, "action", ev.Alert.Action, "seq", rec.Seq)
	m.mu.Lock()
	for _, l := range m.listeners {
		select {
		case l <- struct{}{}:
		default:
		}
	}
	m.mu.Unlock()
}

func (m *Monitor) onHeartbeat(msg *nats.Msg) {
	var hb alert.Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil {
		return
	}
	hb.BoxID = msg.Subject[len("utm.heartbeat."):]
	m.st.heartbeat(&hb, time.Now())
}

func (m *Monitor) persistLoop() {
	defer m.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if err := m.st.persist(); err != nil {
				m.log.Error("cannot save the box registry", "err", err)
			}
		}
	}
}

// Alerts returns stored alerts with seq > since, oldest first.
func (m *Monitor) Alerts(since uint64) ([]Record, error) { return m.st.alerts(since, 10000) }

// Boxes returns the box registry with online state.
func (m *Monitor) Boxes() []Box { return m.st.boxList(time.Now(), m.cfg.OfflineAfter) }

// Close stops everything. It is safe to call on a partly started monitor.
func (m *Monitor) Close() error {
	select {
	case <-m.stop:
		return nil
	default:
		close(m.stop)
	}
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m.http.Shutdown(ctx)
		cancel()
	}
	// The subscription is not unsubscribed: that would delete the durable
	// consumer, and the next start must resume where this one stopped.
	if m.nc != nil {
		m.nc.Close()
	}
	if m.ns != nil {
		m.ns.Shutdown()
		m.ns.WaitForShutdown()
	}
	m.wg.Wait()
	if m.st != nil {
		return m.st.close()
	}
	return nil
}
