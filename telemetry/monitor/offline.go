package monitor

import (
	"fmt"
	"strconv"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/notify"
)

// Signature ids of the events the monitor itself raises about boxes.
const (
	SIDBoxOffline = 2900001 // ★★ no heartbeat for Config.OfflineAfter
	SIDBoxOnline  = 2900002 // ★ heartbeats again; resolves the offline alert
)

// Engine reasons of the monitor's own events (alert.Engine.Reason).
const (
	ReasonBoxOffline = "box offline"
	ReasonBoxOnline  = "box back online"
)

func (m *Monitor) now() time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return time.Now()
}

// offlineTick is how often the monitor looks for silent boxes: a fifth of
// OfflineAfter, between 10 ms and 10 s, so an offline box is noticed
// within OfflineAfter plus 20%.
func offlineTick(after time.Duration) time.Duration {
	return min(max(after/5, 10*time.Millisecond), 10*time.Second)
}

func (m *Monitor) offlineLoop() {
	defer m.wg.Done()
	t := time.NewTicker(offlineTick(m.cfg.OfflineAfter))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.checkOffline()
		}
	}
}

// checkOffline raises a ★★ "box offline" alert for every box whose last
// heartbeat (or the monitor's start, if later: a monitor that was down
// itself does not blame the boxes) is older than OfflineAfter and that has
// no open offline alert.
func (m *Monitor) checkOffline() {
	m.handling.Lock()
	defer m.handling.Unlock()
	if m.closing {
		return
	}
	now := m.now()
	for _, b := range m.st.silent(now, m.started, m.cfg.OfflineAfter) {
		ev := &alert.Event{
			Timestamp: alert.Timestamp(now), EventType: alert.TypeAlert, Stars: 2, BoxID: b.BoxID, Schema: alert.SchemaVersion,
			ID: "monitor-offline-" + strconv.FormatInt(now.UnixNano(), 36),
			Alert: &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: SIDBoxOffline, Rev: 1,
				Signature: "UTM box offline: no heartbeat", Category: "Box health", Severity: 2},
			Engine: &alert.Engine{Reason: ReasonBoxOffline, Duration: roundDur(now.Sub(b.LastHeartbeat)).String()},
			Summary: fmt.Sprintf("Box %s sent no heartbeat since %s (%s); it is down or cut off from the monitor. Check its power and uplink.",
				b.BoxID, b.LastHeartbeat.UTC().Format(time.RFC3339), roundDur(now.Sub(b.LastHeartbeat))),
		}
		rec, _, err := m.st.add(ev, now)
		if err != nil {
			m.log.Error("cannot store the box offline alert; will retry (check free disk space for --data)", "box", b.BoxID, "err", err)
			continue
		}
		m.st.markOffline(b.BoxID, rec.Seq, b.LastHeartbeat)
		m.log.Warn("box offline", "box", b.BoxID, "last_heartbeat", b.LastHeartbeat.UTC().Format(time.RFC3339), "seq", rec.Seq)
		m.stored(rec)
	}
	if err := m.st.persist(); err != nil {
		m.log.Error("cannot save the box registry (check free disk space for --data)", "err", err)
	}
}

// backOnline stores the "box back online" event for box b, whose open
// offline alert is b.OfflineSeq, and marks that alert resolved. Called
// with m.handling held.
func (m *Monitor) backOnline(b Box, now time.Time) {
	down := roundDur(now.Sub(b.OfflineSince))
	ev := &alert.Event{
		Timestamp: alert.Timestamp(now), EventType: alert.TypeAlert, Stars: 1, BoxID: b.BoxID, Schema: alert.SchemaVersion,
		ID: "monitor-online-" + strconv.FormatInt(now.UnixNano(), 36),
		Alert: &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: SIDBoxOnline, Rev: 1,
			Signature: "UTM box back online", Category: "Box health", Severity: 3},
		Engine: &alert.Engine{Reason: ReasonBoxOnline, Duration: down.String()},
		Summary: fmt.Sprintf("Box %s heartbeats again after %s without (last heartbeat before: %s).",
			b.BoxID, down, b.OfflineSince.UTC().Format(time.RFC3339)),
	}
	rec, _, err := m.st.addResolving(ev, now, b.OfflineSeq)
	if err != nil {
		m.log.Error("cannot store the box back online event (check free disk space for --data)", "box", b.BoxID, "err", err)
		return
	}
	m.st.markOnline(b.BoxID)
	m.log.Info("box back online", "box", b.BoxID, "offline_for", down.String(), "seq", rec.Seq)
	m.stored(rec)
}

// stored is called once for every record newly in the store, with
// m.handling held: it feeds the mailer and the metrics.
func (m *Monitor) stored(rec Record) {
	if s := rec.Event.Stars; s >= 1 && s <= 3 {
		m.stars[s].Add(1)
	}
	if m.mailer != nil && notify.Wanted(rec.Event) {
		m.kickMail() // the record is in the outbox (mail.go)
	}
}

// roundDur rounds d for people: to the second, or the millisecond below 10 s.
func roundDur(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
