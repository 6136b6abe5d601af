// Package alert defines the record a box emits for every detection and every
// file it extracts: an EVE-compatible JSON event (the format Suricata writes,
// so Filebeat, Wazuh and EveBox ingest it) plus the box's own fields, stars
// and box id.
//
// The contract is metadata only. By construction an Event has no field that
// can hold a payload, a mail body or file contents: addresses, ports, MAC,
// time, URL, host, mail header fields, file name, hashes, sizes and threat
// names are all it carries. Code that builds events must never copy raw
// packet bytes into a string field other than those listed here; the lab
// tests plant canary strings in every payload and check they never appear
// in an event, a log line or the monitor's store.
//
// Events are built off the packet path (once per detection), so this package
// favours clarity over allocation-freedom.
package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SchemaVersion is the version of the Event layout. It is bumped when a
// field changes meaning; adding an optional field does not bump it.
const SchemaVersion = 1

// Event types, as in Suricata's EVE output.
const (
	TypeAlert    = "alert"
	TypeFileInfo = "fileinfo"
)

// Actions for Alert.Action, as in Suricata's EVE output.
const (
	ActionAllowed = "allowed"
	ActionBlocked = "blocked"
)

// Stars rate how urgent an alert is.
//
//	★   (1) informational, worth a look in the portal
//	★★  (2) suspicious or an attack attempt that was stopped
//	★★★ (3) act now: confirmed C&C contact, malware delivered or blocked,
//	        a successful-looking exploit. The office owner is mailed.
type Stars int

// String renders s as a row of stars, "★★★".
func (s Stars) String() string {
	if s < 1 || s > 3 {
		return "?"
	}
	return strings.Repeat("★", int(s))
}

// Timestamp formats like Suricata: 2006-01-02T15:04:05.000000-0700.
type Timestamp time.Time

const eveTime = "2006-01-02T15:04:05.000000-0700"

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).Format(eveTime) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler. It accepts the EVE layout and
// RFC 3339.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, layout := range []string{eveTime, time.RFC3339Nano} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = Timestamp(v)
			return nil
		}
	}
	return fmt.Errorf("alert: timestamp %q is neither EVE nor RFC 3339", s)
}

// Time returns t as a time.Time.
func (t Timestamp) Time() time.Time { return time.Time(t) }

// Event is one line of eve.json and one message to the monitor.
type Event struct {
	Timestamp Timestamp `json:"timestamp"`
	FlowID    uint64    `json:"flow_id,omitempty"`
	EventType string    `json:"event_type"`
	SrcIP     string    `json:"src_ip,omitempty"`
	SrcPort   uint16    `json:"src_port,omitempty"`
	DestIP    string    `json:"dest_ip,omitempty"`
	DestPort  uint16    `json:"dest_port,omitempty"`
	Proto     string    `json:"proto,omitempty"`     // "TCP", "UDP", "ICMP", "IPv6-ICMP"
	AppProto  string    `json:"app_proto,omitempty"` // "http", "dns", "tls", "smtp", ...

	Ether    *Ether    `json:"ether,omitempty"`
	Alert    *Alert    `json:"alert,omitempty"`
	HTTP     *HTTP     `json:"http,omitempty"`
	DNS      *DNS      `json:"dns,omitempty"`
	TLS      *TLS      `json:"tls,omitempty"`
	Email    *Email    `json:"email,omitempty"`
	FileInfo *FileInfo `json:"fileinfo,omitempty"`
	Intel    *Intel    `json:"intel,omitempty"`
	Engine   *Engine   `json:"engine,omitempty"`

	// Box fields, not in Suricata's EVE.
	Stars   Stars  `json:"stars,omitempty"`
	BoxID   string `json:"box_id,omitempty"`
	ID      string `json:"id,omitempty"` // unique per box; the NATS message id
	Schema  int    `json:"schema,omitempty"`
	Summary string `json:"summary,omitempty"` // one human line: what happened and what was done
	// Count is how many alerts this record stands for: the box merges
	// ★ and ★★ alerts of the same signature and flow raised within a few
	// seconds (spool.Options.AggregateWindow) into the first one's record,
	// keeping its time, id and fields. 0 (omitted) means 1. ★★★ alerts are
	// never merged.
	Count int `json:"count,omitempty"`
	// Incident ties an alert to a correlated incident: one host with an
	// AV detection and a C&C signal within an hour (dataplane/incident);
	// the incident's own ★★★ alert carries the same id and the evidence.
	Incident string `json:"incident_id,omitempty"`
}

// Ether holds the MAC addresses of the office-side host, when known.
type Ether struct {
	SrcMAC  string `json:"src_mac,omitempty"`
	DestMAC string `json:"dest_mac,omitempty"`
}

// Alert is the EVE alert object.
type Alert struct {
	Action      string `json:"action"` // ActionAllowed or ActionBlocked
	GID         int    `json:"gid"`
	SignatureID int    `json:"signature_id"`
	Rev         int    `json:"rev"`
	Signature   string `json:"signature"`
	Category    string `json:"category"`
	Severity    int    `json:"severity"` // Suricata priority: 1 high .. 4 low
}

// HTTP is request metadata: host, URL, method and status. Never another
// header value (a User-Agent or any header can carry the exploit itself, so
// none is copied), never a body.
type HTTP struct {
	Hostname string `json:"hostname,omitempty"`
	URL      string `json:"url,omitempty"`
	Method   string `json:"http_method,omitempty"`
	Status   int    `json:"status,omitempty"`
	Length   int64  `json:"length,omitempty"`
}

// DNS is the queried name and type.
type DNS struct {
	Type   string `json:"type,omitempty"` // "query" or "answer"
	RRName string `json:"rrname,omitempty"`
	RRType string `json:"rrtype,omitempty"`
	RCode  string `json:"rcode,omitempty"`
}

// TLS is handshake metadata, as Suricata's EVE "tls" object: the server
// name the client asked for, the server certificate's names, serial and
// fingerprint (TLS <= 1.2 only: 1.3 encrypts it) and the JA3/JA3S client
// and server fingerprints. Never application data.
type TLS struct {
	SNI         string `json:"sni,omitempty"`
	Subject     string `json:"subject,omitempty"`     // "C=US, O=Let's Encrypt, CN=R3"
	IssuerDN    string `json:"issuerdn,omitempty"`    // same form
	Serial      string `json:"serial,omitempty"`      // "00:A1:B2:..."
	Fingerprint string `json:"fingerprint,omitempty"` // SHA-1, "4a:a3:..."
	Version     string `json:"version,omitempty"`     // "TLS 1.2", "TLS 1.3"
	JA3         *JA3   `json:"ja3,omitempty"`
	JA3S        *JA3   `json:"ja3s,omitempty"`
	JA4         string `json:"ja4,omitempty"` // FoxIO JA4 of the ClientHello, "t13d1516h2_8daaf6152771_e5627efa2ab1"
}

// JA3 is a JA3 or JA3S fingerprint: the MD5 (hex) of the string of
// handshake parameters (decimal numbers only).
type JA3 struct {
	Hash   string `json:"hash,omitempty"`
	String string `json:"string,omitempty"`
}

// Email holds the header fields an alert may carry. Never the body.
type Email struct {
	From      string   `json:"from,omitempty"`
	To        []string `json:"to,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
	Date      string   `json:"date,omitempty"`
}

// FileInfo describes an extracted file: name, size, hashes, verdict.
type FileInfo struct {
	Filename string `json:"filename,omitempty"`
	Magic    string `json:"magic,omitempty"`
	Size     int64  `json:"size"`
	MD5      string `json:"md5,omitempty"`
	SHA1     string `json:"sha1,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	State    string `json:"state,omitempty"` // "CLOSED", "TRUNCATED"
	Stored   bool   `json:"stored"`
	Threat   string `json:"threat,omitempty"` // threat name when malicious
	Scanned  bool   `json:"scanned"`
	Verdict  string `json:"verdict,omitempty"` // "clean", "malicious", "unscanned"
}

// Intel names the threat-intel indicator an alert matched, so the SOC sees
// why.
type Intel struct {
	Indicator  string `json:"indicator"`
	Kind       string `json:"kind"` // "domain", "ip", "url", ...
	Source     string `json:"source,omitempty"`
	Family     string `json:"family,omitempty"`
	Confidence int    `json:"confidence,omitempty"` // 0-100, as the feed rates it
}

// Engine describes an event about the box itself (inspection bypassed,
// engine restarted, spool evicted).
type Engine struct {
	Reason   string `json:"reason"`
	Count    uint64 `json:"count,omitempty"`
	Duration string `json:"duration,omitempty"`
	// Queue is the NFQUEUE number of the engine worker the event is
	// about (a hung or stopped worker).
	Queue *int `json:"queue,omitempty"`
	// Steered and Inspected are the packets the kernel's rules sent to
	// the engine's queues and the packets the engine saw, over the
	// interval an inspection-bypassed event covers.
	Steered   uint64 `json:"steered,omitempty"`
	Inspected uint64 `json:"inspected,omitempty"`
}

// Validate reports whether e is well-formed enough to be sent: a type, a
// time, and for alerts a signature and stars in range.
func (e *Event) Validate() error {
	if e.EventType == "" {
		return fmt.Errorf("alert: event has no event_type")
	}
	if time.Time(e.Timestamp).IsZero() {
		return fmt.Errorf("alert: event has no timestamp")
	}
	if e.EventType == TypeAlert {
		if e.Alert == nil || e.Alert.Signature == "" {
			return fmt.Errorf("alert: alert event has no signature")
		}
		if e.Stars < 1 || e.Stars > 3 {
			return fmt.Errorf("alert: stars %d out of range 1..3", e.Stars)
		}
	}
	return nil
}
