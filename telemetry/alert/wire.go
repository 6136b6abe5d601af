package alert

import "time"

// NATS names shared by the box and the monitor.
const (
	// Stream is the JetStream stream holding alerts until the monitor
	// has stored them.
	Stream = "UTM_ALERTS"
	// AlertSubjects is the stream's subject filter.
	AlertSubjects = "utm.alerts.>"
	// HeartbeatSubjects matches every box's heartbeat.
	HeartbeatSubjects = "utm.heartbeat.>"
)

// AlertSubject is where box publishes its alerts.
func AlertSubject(box string) string { return "utm.alerts." + box }

// HeartbeatSubject is where box publishes its heartbeats.
func HeartbeatSubject(box string) string { return "utm.heartbeat." + box }

// Heartbeat is what a box says about itself every few seconds: counters
// and versions, never traffic.
type Heartbeat struct {
	BoxID      string            `json:"box_id"`
	Version    string            `json:"version"`
	Signatures string            `json:"signatures,omitempty"`
	UptimeS    int64             `json:"uptime_s"`
	Time       time.Time         `json:"time"`
	Spooled    int               `json:"spooled"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
}

// InboxPrefix is the reply-subject prefix box uses (nats.CustomInboxPrefix)
// so that its credential may subscribe to its own replies only, never to
// another box's.
func InboxPrefix(box string) string { return "_INBOX_" + box }
