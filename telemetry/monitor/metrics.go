package monitor

import (
	"fmt"
	"net/http"
	"strings"
)

// handleMetrics serves Prometheus metrics (text format 0.0.4). They hold
// counts and box ids only, so the endpoint needs no login; put the portal
// behind a firewall or proxy if box ids are confidential.
func (m *Monitor) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("utm_monitor_alerts_stored_total", "counter", "Alerts newly stored since the monitor started, by stars.")
	for s := 1; s <= 3; s++ {
		fmt.Fprintf(&b, "utm_monitor_alerts_stored_total{stars=\"%d\"} %d\n", s, m.stars[s].Load())
	}
	boxes := m.Boxes()
	online := 0
	for _, bx := range boxes {
		if bx.Online {
			online++
		}
	}
	metric("utm_monitor_boxes", "gauge", "Boxes known to the monitor, by state.")
	fmt.Fprintf(&b, "utm_monitor_boxes{state=\"online\"} %d\nutm_monitor_boxes{state=\"offline\"} %d\n", online, len(boxes)-online)
	metric("utm_monitor_box_heartbeat_age_seconds", "gauge", "Seconds since each box's last heartbeat (boxes that ever sent one).")
	now := m.now()
	for _, bx := range boxes {
		if !bx.LastHeartbeat.IsZero() {
			fmt.Fprintf(&b, "utm_monitor_box_heartbeat_age_seconds{box=\"%s\"} %.3f\n", labelEscape(bx.BoxID), now.Sub(bx.LastHeartbeat).Seconds())
		}
	}
	metric("utm_monitor_consumer_lag", "gauge", "Alert stream messages not yet stored and acked (-1: NATS unavailable).")
	if lag, err := m.Backlog(); err == nil {
		fmt.Fprintf(&b, "utm_monitor_consumer_lag %d\n", lag)
	} else {
		fmt.Fprintf(&b, "utm_monitor_consumer_lag -1\n")
	}
	metric("utm_monitor_rejected_messages_total", "counter", "Messages dropped as not valid alerts or heartbeats.")
	fmt.Fprintf(&b, "utm_monitor_rejected_messages_total %d\n", m.Rejected())
	if m.mailer != nil {
		st := m.mailer.Stats()
		metric("utm_monitor_mails_total", "counter", "Alert mails by outcome: sent, or suppressed (deduped, rate_limited), or not sent (no_recipient, dropped, failed).")
		for _, kv := range []struct {
			k string
			v uint64
		}{{"sent", st.Sent}, {"deduped", st.Deduped}, {"rate_limited", st.RateLimited}, {"no_recipient", st.NoRecipient}, {"dropped", st.Dropped}, {"failed", st.Failed}} {
			fmt.Fprintf(&b, "utm_monitor_mails_total{result=\"%s\"} %d\n", kv.k, kv.v)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

func labelEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
