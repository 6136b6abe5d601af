// Package monitor is the central monitor a SOC watches for many boxes: it
// receives every box's alerts and heartbeats over NATS, stores them, and
// serves a web page with each box's health and alerts.
//
// By default it embeds a NATS server with JetStream (data under
// Config.DataDir/jetstream); with Config.NATSURL it uses an external NATS
// instead (a cluster is the way to many boxes). It creates or updates the
// stream UTM_ALERTS (subjects utm.alerts.>, file storage, a 10 minute
// duplicate window keyed on Nats-Msg-Id).
//
// Alerts are read by the durable consumer "monitor" with explicit acks: an
// alert is acked only after it is committed to the bbolt store
// (DataDir/monitor.db), and the store keeps one copy per (box id, alert
// id). A retry inside the duplicate window is dropped by JetStream, one
// after it (or a redelivery after a lost ack) by the store, so restarts of
// a box, of NATS or of the monitor neither lose nor double an alert.
//
// The monitor stores alert.Event values, never the bytes it received:
// every message is decoded into the model and re-encoded, so a field the
// model does not have (a payload a buggy box might add) is dropped before
// it reaches the store, the portal or the log. The log line per alert
// names box, stars, sid and signature only.
//
// Store: records are filed under their event time (the receive time when
// the box's clock is more than 5 minutes ahead or 30 days behind) and
// indexed by time, by box and by stars; every index entry carries the
// record's stars, kind (KindOf: ips, av, cnc, health, file) and box, so
// Query and Histogram filter by stars, box, kind and time range from the
// index alone, walking the narrowest one. Retention (Config.Retention,
// default 6 months): a sweep at start and every 24 h deletes older
// records with their index entries and exactly-once ids.
//
// Heartbeats (core NATS, utm.heartbeat.<box>) keep a box registry: last
// heartbeat time and body, persisted to the same bbolt file in batches. A
// box is online while its last heartbeat is younger than
// Config.OfflineAfter (default 5 minutes).
//
// Box offline: a box silent for OfflineAfter (counted from the monitor's
// start if that is later, so a monitor restart blames nobody) gets one
// stored ★★ alert, event_type "alert", sid SIDBoxOffline, engine reason
// "box offline", the box id, and the last heartbeat time in its summary.
// Its next heartbeat stores a ★ "box back online" event (SIDBoxOnline,
// engine duration = the offline period) and marks the offline record
// Resolved in the same transaction. The open offline alert is kept in the
// box registry, so it survives a monitor restart.
//
// Mail (Config.Mail, package notify): every newly stored ★★★ alert and
// every box offline alert enters a durable outbox in the transaction that
// stores it; a goroutine hands the outbox to the mailer (dedupe, rate
// limit) and removes an entry once the relay took the mail, retrying a
// relay outage for a day and resuming after a restart (mail.go); links
// point at Config.PublicURL.
//
// Portal (html/template, no script, no external resource; works offline):
// GET / boxes with health and counters, a chart of the last 7 days and the
// latest alerts; GET /alerts with filters stars, box, kind, from, to and
// page; GET /alerts/{seq} every stored field of one alert;
// GET /boxes/{box}/report?month=YYYY-MM the monthly report (counts by
// stars and kind, top threats and signatures, alerts per day, offline
// periods) and report.pdf, printed by headless Chromium. JSON:
// GET /api/alerts (?since=N, oldest first) and /api/boxes. All of these
// need a login (see auth.go: no default password, a one-time setup URL is
// logged on stderr, PBKDF2 hashes, SameSite=Strict HttpOnly session
// cookies, CSRF tokens, a failed-login limit). Open without login:
// /login, /setup (with its token), GET /healthz, GET /metrics
// (Prometheus: alerts stored by stars, boxes online/offline, heartbeat
// age per box, consumer lag, mails by outcome).
//
// Alerts are committed by one writer goroutine in batches of what is
// waiting (up to 256 per transaction, one fsync), in arrival order, and
// acked after the commit: BenchmarkEndToEnd stores ~26,000 alerts/s from
// JetStream on the 2-core dev VM, against ~2,700/s with one transaction
// per alert.
//
// Box credentials (Config.NATSAuth, monitor --nats-boxes and
// --nats-tls-cert/--nats-tls-key): each box is an NKEY user allowed to
// publish only utm.alerts.<box> and utm.heartbeat.<box> and to subscribe
// only to its own reply inbox, so a stolen box key cannot forge another
// box's alerts or read anyone's; the monitor connects as its own user,
// made at each start. With TLS every connection must use it. Without
// NATSAuth the embedded server is open: for a lab or a trusted LAN only.
//
// Cost: one bbolt write transaction per batch, three index entries per
// alert; portal queries walk index keys and decode only
// the records shown. The monitor is off every box's packet path.
package monitor
