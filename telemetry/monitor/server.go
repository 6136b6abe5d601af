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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/notify"
)

// DefaultOfflineAfter is Config.OfflineAfter's default.
const DefaultOfflineAfter = 5 * time.Minute

// DefaultRetention is Config.Retention's default: six months.
const DefaultRetention = 183 * 24 * time.Hour

// Consumer is the name of the monitor's durable JetStream consumer.
const Consumer = "monitor"

// Subject prefixes; the box id is the rest of the subject.
const (
	alertPrefix     = "utm.alerts."
	heartbeatPrefix = "utm.heartbeat."
)

// Errors returned by Start (wrapped, with what to do).
var (
	// ErrNATS: the embedded NATS server did not start, the external one
	// cannot be reached, or the alert stream or consumer cannot be set up.
	ErrNATS = errors.New("monitor: NATS not available")
	// ErrStore: the data directory or the bbolt store cannot be opened
	// (another monitor on the same --data, permissions, a full disk).
	ErrStore = errors.New("monitor: store not available")
	// ErrHTTP: the portal cannot listen on its address.
	ErrHTTP = errors.New("monitor: portal not available")
)

// Config configures a monitor. The zero value of every field but DataDir
// has a default.
type Config struct {
	DataDir      string        // store (monitor.db) and JetStream data (jetstream/)
	NATSListen   string        // embedded NATS address, host:port (port -1: random); default 127.0.0.1:4222
	NATSURL      string        // external NATS instead of the embedded one
	HTTPListen   string        // portal address, host:port (port 0: random); default 127.0.0.1:8080
	OfflineAfter time.Duration // a box without heartbeat this long is offline (★★ alert, mail); default 5m
	Logger       *slog.Logger  // default slog.Default()
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// Mail, when set, mails ★★★ alerts and box offline alerts (see
	// package notify). Its PortalURL defaults to PublicURL, its clock
	// and logger to the monitor's.
	Mail *notify.Config
	// Retention is how long alerts are kept (by event time); a daily
	// sweep deletes older ones. Default 6 months (183 days).
	Retention time.Duration
	// TLSCert and TLSKey, when set, serve the portal over HTTPS (and its
	// cookies Secure).
	TLSCert, TLSKey string
	// ReadToken, when set (at least 32 characters), lets GET requests
	// with "Authorization: Bearer <ReadToken>" read the portal and the
	// JSON API without logging in.
	ReadToken string
	// PublicURL is the portal's address as people reach it (links in
	// mails and reports); default the listening address.
	PublicURL string
	// NATSAuth locks the embedded NATS server to known boxes (NKEYs, each
	// publishing only under its own subjects) and optionally to TLS; nil:
	// open (a lab or a trusted LAN only).
	NATSAuth *NATSAuth
}

// Monitor is a running monitor.
type Monitor struct {
	cfg      Config
	log      *slog.Logger
	ns       *server.Server
	nc       *nats.Conn
	js       nats.JetStreamContext
	sub      *nats.Subscription
	hbSub    *nats.Subscription
	st       *store
	mailer   *notify.Mailer
	mailKick chan struct{} // the outbox grew (mail.go)
	auth     *auth
	stars    [4]atomic.Uint64 // records stored since start, by stars
	http     *http.Server
	ln       net.Listener

	// handling serialises message handlers with Close, so Close never
	// closes the store under a handler.
	handling sync.Mutex
	closing  bool

	started   time.Time
	inbox     chan pending
	stop      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	bad       atomic.Uint64
}

// Run starts a monitor and serves until ctx is done, then shuts it down
// cleanly. It is what the monitor binary calls.
func Run(ctx context.Context, cfg Config) error {
	m, err := Start(cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	m.log.Info("monitor stopping")
	return m.Close()
}

// Start starts NATS (or connects to it), the store, the consumer and the
// portal, and returns once all are ready. Close stops them.
func Start(cfg Config) (*Monitor, error) {
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = DefaultOfflineAfter
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:8080"
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:4222"
	}
	if cfg.ReadToken != "" && len(cfg.ReadToken) < 32 {
		return nil, fmt.Errorf("%w: the read token has %d characters, want at least 32 (e.g. openssl rand -hex 24)", ErrHTTP, len(cfg.ReadToken))
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory given (use --data DIR)", ErrStore)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: data directory: %v (check permissions and free space, or choose another --data)", ErrStore, err)
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), inbox: make(chan pending, maxBatch), mailKick: make(chan struct{}, 1)}
	m.started = m.now()
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	var err error
	m.st, err = openStore(filepath.Join(cfg.DataDir, "monitor.db"), cfg.Mail != nil)
	if err != nil {
		return nil, err
	}
	url := cfg.NATSURL
	if url == "" {
		if url, err = m.startNATS(); err != nil {
			return nil, err
		}
	}
	m.nc, err = nats.Connect(url, append([]nats.Option{nats.Name("utm monitor"), nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				m.log.Warn("monitor lost its NATS connection; reconnecting (alerts wait in the boxes' spools and the stream)", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { m.log.Info("monitor reconnected to NATS", "url", nc.ConnectedUrl()) })},
		cfg.NATSAuth.ClientOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v (check --nats-url)", ErrNATS, url, err)
	}
	m.js, err = m.nc.JetStream(nats.MaxWait(5 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: jetstream: %v", ErrNATS, err)
	}
	if err := m.ensureStream(); err != nil {
		return nil, err
	}
	m.wg.Add(1)
	go m.writeLoop()
	// Push consumer, durable, explicit acks: the consumer survives a
	// monitor restart and resumes after the last acked alert.
	m.sub, err = m.js.Subscribe(alert.AlertSubjects, m.onAlert, nats.Durable(Consumer), nats.ManualAck(),
		nats.AckExplicit(), nats.DeliverAll(), nats.MaxAckPending(1024), nats.AckWait(30*time.Second),
		nats.BindStream(alert.Stream))
	if err != nil {
		return nil, fmt.Errorf("%w: alert consumer %q: %v", ErrNATS, Consumer, err)
	}
	m.hbSub, err = m.nc.Subscribe(alert.HeartbeatSubjects, m.onHeartbeat)
	if err != nil {
		return nil, fmt.Errorf("%w: heartbeat subscription: %v", ErrNATS, err)
	}
	// The server has the subscriptions before Start returns.
	if err := m.nc.FlushTimeout(5 * time.Second); err != nil {
		return nil, fmt.Errorf("%w: flush subscriptions: %v", ErrNATS, err)
	}
	if err := m.startHTTP(); err != nil {
		return nil, err
	}
	if cfg.Mail != nil {
		mc := *cfg.Mail
		if mc.PortalURL == "" {
			mc.PortalURL = m.publicURL()
		}
		if mc.Now == nil {
			mc.Now = m.now
		}
		if mc.Logger == nil {
			mc.Logger = m.log.With("component", "mail")
		}
		if m.mailer, err = notify.New(mc); err != nil {
			return nil, err
		}
	}
	if m.mailer != nil {
		m.wg.Add(1)
		go m.mailLoop()
	}
	m.wg.Add(3)
	go m.persistLoop()
	go m.offlineLoop()
	go m.retentionLoop()
	ok = true
	m.log.Info("monitor ready", "nats", url, "portal", m.PortalURL(), "data", cfg.DataDir)
	m.logSetup()
	return m, nil
}

func (m *Monitor) startNATS() (string, error) {
	host, portS, err := net.SplitHostPort(m.cfg.NATSListen)
	if err != nil {
		return "", fmt.Errorf("%w: NATS listen address %q: %v (use HOST:PORT)", ErrNATS, m.cfg.NATSListen, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return "", fmt.Errorf("%w: NATS port %q is not a number", ErrNATS, portS)
	}
	opts := &server.Options{
		ServerName: "utm-monitor",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(m.cfg.DataDir, "jetstream"),
		NoSigs:     true,
	}
	if m.cfg.NATSAuth != nil {
		if err := m.cfg.NATSAuth.Configure(opts); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNATS, err)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return "", fmt.Errorf("%w: embedded NATS: %v", ErrNATS, err)
	}
	ns.SetLoggerV2(natsLog{m.log.With("component", "nats")}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", fmt.Errorf("%w: embedded NATS did not start on %s (port in use? choose another with --nats-listen)", ErrNATS, m.cfg.NATSListen)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return "", fmt.Errorf("%w: JetStream did not start in %s (check free space and permissions)", ErrNATS, opts.StoreDir)
	}
	m.ns = ns
	return ns.ClientURL(), nil
}

// natsLog passes the embedded server's warnings and errors (a full
// JetStream disk, a client that misbehaves) to slog; its notices are
// debug-level chatter.
type natsLog struct{ l *slog.Logger }

func (n natsLog) Noticef(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n natsLog) Warnf(f string, v ...any)   { n.l.Warn(fmt.Sprintf(f, v...)) }
func (n natsLog) Fatalf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLog) Errorf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLog) Debugf(f string, v ...any)  { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n natsLog) Tracef(f string, v ...any)  {}

// NATSURL returns the URL boxes connect to.
func (m *Monitor) NATSURL() string {
	if m.ns != nil {
		return m.ns.ClientURL()
	}
	return m.cfg.NATSURL
}

// PortalURL returns the portal's base URL, ending in "/".
func (m *Monitor) PortalURL() string {
	if m.cfg.TLSCert != "" {
		return "https://" + m.ln.Addr().String() + "/"
	}
	return "http://" + m.ln.Addr().String() + "/"
}

// publicURL is Config.PublicURL, or PortalURL, ending in "/".
func (m *Monitor) publicURL() string {
	if m.cfg.PublicURL != "" {
		return strings.TrimSuffix(m.cfg.PublicURL, "/") + "/"
	}
	return m.PortalURL()
}

func (m *Monitor) ensureStream() error {
	cfg := &nats.StreamConfig{
		Name:       alert.Stream,
		Subjects:   []string{alert.AlertSubjects},
		Storage:    nats.FileStorage,
		Duplicates: 10 * time.Minute,
		MaxAge:     30 * 24 * time.Hour, // the store keeps alerts; the stream is a buffer
	}
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = m.js.StreamInfo(alert.Stream); err == nil {
			_, err = m.js.UpdateStream(cfg)
		} else if errors.Is(err, nats.ErrStreamNotFound) {
			_, err = m.js.AddStream(cfg)
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // JetStream may still be starting (external server)
	}
	if err != nil {
		return fmt.Errorf("%w: create or update stream %s: %v (is JetStream enabled on the NATS server?)", ErrNATS, alert.Stream, err)
	}
	return nil
}

func (m *Monitor) reject(msg *nats.Msg, box, why string) {
	m.bad.Add(1)
	// Never the message itself: it could carry anything.
	m.log.Warn("dropped a message that is not a valid alert; check the box's firmware version", "box", box, "reason", why, "bytes", len(msg.Data))
	msg.Term()
}

// decodeAlert turns a message body from subject utm.alerts.<box> into the
// event to store, or returns nil and why it is rejected (a reason without
// the message's content). Only fields of alert.Event survive. claimed is
// the box id the body named when it differs from the subject's, which
// wins: the subject is what NATS permissions can bind to a box's
// credentials.
func decodeAlert(box string, data []byte) (ev *alert.Event, claimed, why string) {
	if box == "" || strings.ContainsAny(box, " \t\r\n") {
		return nil, "", "bad subject"
	}
	ev = new(alert.Event)
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, "", "not an alert.Event JSON object"
	}
	if ev.ID == "" {
		return nil, "", "no id"
	}
	if err := ev.Validate(); err != nil {
		return nil, "", err.Error()
	}
	if ev.BoxID != box {
		claimed, ev.BoxID = ev.BoxID, box
	}
	return ev, claimed, ""
}

// pending is a decoded alert waiting for the store writer.
type pending struct {
	msg *nats.Msg
	ev  *alert.Event
}

// maxBatch caps the alerts one store transaction commits.
const maxBatch = 256

// onAlert decodes a message and hands it to the store writer; it is not
// acked until its batch is committed.
func (m *Monitor) onAlert(msg *nats.Msg) {
	box := strings.TrimPrefix(msg.Subject, alertPrefix)
	ev, claimed, why := decodeAlert(box, msg.Data)
	if ev == nil {
		m.reject(msg, box, why)
		return
	}
	if claimed != "" {
		m.log.Warn("alert names another box than its subject; filed under the subject's box", "box", box, "claimed", claimed, "id", ev.ID)
	}
	select {
	case m.inbox <- pending{msg, ev}:
	case <-m.stop: // not acked: redelivered to the next start
	}
}

// writeLoop commits what waits in the inbox, all of it (up to maxBatch)
// in one transaction: one fsync per batch instead of per alert when
// alerts arrive faster than the disk syncs.
func (m *Monitor) writeLoop() {
	defer m.wg.Done()
	batch := make([]pending, 0, maxBatch)
	for {
		select {
		case <-m.stop:
			return
		case p := <-m.inbox:
			batch = append(batch[:0], p)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-m.inbox:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		m.commit(batch)
	}
}

func (m *Monitor) commit(batch []pending) {
	m.handling.Lock()
	defer m.handling.Unlock()
	if m.closing {
		return // not acked: redelivered to the next start
	}
	evs := make([]*alert.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	recs, added, err := m.st.addBatch(evs, m.now())
	if err != nil {
		m.log.Error("cannot store alerts; they stay in the stream and are redelivered (check free disk space for --data)", "alerts", len(batch), "err", err)
		for _, p := range batch {
			p.msg.NakWithDelay(time.Second)
		}
		return
	}
	newBox := false
	for _, ev := range evs {
		newBox = m.st.seen(ev.BoxID) || newBox
	}
	if newBox {
		if err := m.st.persist(); err != nil {
			m.log.Error("cannot save the box registry", "err", err)
		}
	}
	for i, p := range batch {
		if added[i] {
			ev, rec := p.ev, recs[i]
			var sid int
			var sig, action string
			if ev.Alert != nil {
				sid, sig, action = ev.Alert.SignatureID, ev.Alert.Signature, ev.Alert.Action
			}
			m.log.Info("alert received", "box", ev.BoxID, "stars", int(ev.Stars), "sid", sid,
				"signature", sig, "action", action, "type", ev.EventType, "seq", rec.Seq)
			m.stored(rec)
		}
		// Acked after the commit (and the log line): an alert the
		// stream forgets is in the store.
		p.msg.Ack()
	}
}

func (m *Monitor) onHeartbeat(msg *nats.Msg) {
	m.handling.Lock()
	defer m.handling.Unlock()
	if m.closing {
		return
	}
	box := strings.TrimPrefix(msg.Subject, heartbeatPrefix)
	var hb alert.Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil || box == "" {
		m.bad.Add(1)
		m.log.Warn("dropped a heartbeat that is not JSON; check the box's firmware version", "box", box, "bytes", len(msg.Data))
		return
	}
	hb.BoxID = box
	now := m.now()
	first, prev := m.st.heartbeat(&hb, now)
	if prev.OfflineSeq != 0 {
		m.backOnline(prev, now)
		first = true // saved at once
	}
	if first {
		// A new box is saved at once; later heartbeats in batches.
		if err := m.st.persist(); err != nil {
			m.log.Error("cannot save the box registry (check free disk space for --data)", "err", err)
		}
	}
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
				m.log.Error("cannot save the box registry (check free disk space for --data)", "err", err)
			}
		}
	}
}

// Alerts returns stored alerts with seq > since, oldest first, at most
// 10000 (call again with the last seq for more).
func (m *Monitor) Alerts(since uint64) ([]Record, error) { return m.st.alerts(since, maxAlerts) }

// Boxes returns the box registry with online state, sorted by box id.
func (m *Monitor) Boxes() []Box { return m.st.boxList(m.now(), m.cfg.OfflineAfter) }

// Rejected returns how many messages were dropped as not valid alerts or
// heartbeats since Start.
func (m *Monitor) Rejected() uint64 { return m.bad.Load() }

// Backlog returns how many messages of the alert stream the monitor has
// not yet stored and acked (pending delivery plus awaiting ack). Zero
// means every alert published so far is in the store (or rejected).
func (m *Monitor) Backlog() (uint64, error) {
	si, err := m.js.StreamInfo(alert.Stream)
	if err != nil {
		return 0, err
	}
	ci, err := m.js.ConsumerInfo(alert.Stream, Consumer)
	if err != nil {
		return 0, err
	}
	n := ci.NumPending + uint64(ci.NumAckPending)
	if n == 0 && ci.Delivered.Stream < si.State.LastSeq {
		n = si.State.LastSeq - ci.Delivered.Stream // published, not yet counted
	}
	return n, nil
}

// ready reports whether NATS and the store are usable (for /healthz).
func (m *Monitor) ready() error {
	if m.nc == nil || !m.nc.IsConnected() {
		return errors.New("NATS not connected")
	}
	if m.ns != nil && !m.ns.JetStreamEnabled() {
		return errors.New("JetStream not running")
	}
	return m.st.ready()
}

// Close stops the portal, NATS and the store. It is safe to call more than
// once and on a partly started monitor.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		if m.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m.http.Shutdown(ctx)
			cancel()
		}
		// The subscription is not unsubscribed: that would delete the
		// durable consumer, and the next start must resume where this
		// one stopped.
		if m.nc != nil {
			m.nc.Close()
		}
		m.handling.Lock()
		m.closing = true
		m.handling.Unlock()
		if m.ns != nil {
			m.ns.Shutdown()
			m.ns.WaitForShutdown()
		}
		m.wg.Wait()
		if m.mailer != nil {
			m.mailer.Close()
		}
		if m.st != nil {
			m.closeErr = m.st.close()
		}
	})
	return m.closeErr
}
