// Package uplink carries the box's spooled alerts to the monitor over NATS
// JetStream and publishes its heartbeats.
//
// Alerts leave in spool order. Each is published to utm.alerts.<box> with
// its spool ID as Nats-Msg-Id and deleted from the spool only after
// JetStream's acknowledgement, so a retry after a lost ack is dropped by
// the stream's duplicate window and, past it, by the monitor's store: every
// alert arrives exactly once. While NATS is unreachable the uplink retries
// with capped backoff; it never makes the box wait.
//
// ★★★ alerts leave the moment they are spooled (the spool's notify wakes
// the sender); the same path carries ★ and ★★ today, and a later issue
// batches those.
package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/spool"
)

// Config configures the uplink.
type Config struct {
	URL        string
	BoxID      string
	Version    string
	Signatures func() string // version of the signatures in use; may be nil
	Heartbeat  time.Duration
	Counters   func() map[string]uint64
	Logger     *slog.Logger
	// NATSOptions are added to the connection's options (credentials, TLS).
	NATSOptions []nats.Option
}

// Uplink is a running sender.
type Uplink struct {
	cfg    Config
	sp     *spool.Spool
	nc     *nats.Conn
	js     nats.JetStreamContext
	log    *slog.Logger
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu                 sync.Mutex
	published, retries uint64
}

// Start connects (in the background if NATS is down) and starts sending.
func Start(ctx context.Context, cfg Config, sp *spool.Spool) (*Uplink, error) {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	opts := append([]nats.Option{
		nats.Name("utmd " + cfg.BoxID),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("lost the connection to the monitor's NATS; alerts stay in the spool until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("connected to the monitor's NATS again", "url", nc.ConnectedUrl())
		}),
	}, cfg.NATSOptions...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("uplink: connect %s: %w", cfg.URL, err)
	}
	js, err := nc.JetStream(nats.MaxWait(3 * time.Second))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("uplink: jetstream: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	u := &Uplink{cfg: cfg, sp: sp, nc: nc, js: js, log: log, start: time.Now(), cancel: cancel}
	u.wg.Add(2)
	go u.sendLoop(ctx)
	go u.heartbeatLoop(ctx)
	return u, nil
}

func (u *Uplink) sendLoop(ctx context.Context) {
	defer u.wg.Done()
	backoff := 100 * time.Millisecond
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		n, err := u.flush()
		switch {
		case err != nil && !errors.Is(err, spool.ErrClosed):
			u.mu.Lock()
			u.retries++
			u.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		case n > 0:
			backoff = 100 * time.Millisecond
			continue // more may be pending
		}
		select {
		case <-ctx.Done():
			return
		case <-u.sp.Notify():
		case <-tick.C:
		}
	}
}

// flush publishes pending alerts in order and deletes the acknowledged
// ones; it stops at the first failure so order is kept.
func (u *Uplink) flush() (int, error) {
	if !u.nc.IsConnected() {
		if u.sp.Len() == 0 {
			return 0, nil
		}
		return 0, nats.ErrConnectionClosed
	}
	pend, err := u.sp.Pending(256)
	if err != nil || len(pend) == 0 {
		return 0, err
	}
	sent := 0
	for _, e := range pend {
		box := u.cfg.BoxID
		if _, err := u.js.Publish(alert.AlertSubject(box), e.Data, nats.MsgId(e.ID), nats.AckWait(3*time.Second)); err != nil {
			if sent == 0 {
				u.log.Debug("alert publish failed; will retry", "id", e.ID, "err", err)
			}
			return sent, err
		}
		if err := u.sp.Delete(e); err != nil {
			return sent, err
		}
		sent++
		u.mu.Lock()
		u.published++
		u.mu.Unlock()
	}
	return sent, nil
}

func (u *Uplink) heartbeatLoop(ctx context.Context) {
	defer u.wg.Done()
	t := time.NewTicker(u.cfg.Heartbeat)
	defer t.Stop()
	for {
		u.heartbeat()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (u *Uplink) heartbeat() {
	if !u.nc.IsConnected() {
		return
	}
	hb := alert.Heartbeat{
		BoxID: u.cfg.BoxID, Version: u.cfg.Version, Time: time.Now().UTC(),
		UptimeS: int64(time.Since(u.start).Seconds()), Spooled: u.sp.Len(),
	}
	if u.cfg.Signatures != nil {
		hb.Signatures = u.cfg.Signatures()
	}
	if u.cfg.Counters != nil {
		hb.Counters = u.cfg.Counters()
	} else {
		hb.Counters = map[string]uint64{}
	}
	u.mu.Lock()
	hb.Counters["uplink_published"] = u.published
	hb.Counters["uplink_retries"] = u.retries
	u.mu.Unlock()
	hb.Counters["spool_evicted"] = u.sp.Evicted()
	b, _ := json.Marshal(hb)
	if err := u.nc.Publish(alert.HeartbeatSubject(u.cfg.BoxID), b); err != nil {
		u.log.Debug("heartbeat not sent", "err", err)
	}
}

// Published returns how many alerts the monitor's stream acknowledged.
func (u *Uplink) Published() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.published
}

// Close stops sending and closes the connection. Unsent alerts stay in the
// spool for the next start.
func (u *Uplink) Close() error {
	u.cancel()
	u.wg.Wait()
	u.nc.Close()
	return nil
}
