// Package notify mails the people who look after a box when something
// needs them now: a ★★★ alert, or the box going offline.
//
// Mail goes through one configurable SMTP relay (Config.Relay, STARTTLS
// used when offered, or required with StartTLS "required"), to the
// recipients the box registry file names for the box (Registry), in the
// box's language: English ("en", default) or Japanese ("ja"). Mails are
// text/plain UTF-8 (quoted-printable); the subject starts with the stars
// ("★★★ ...") and is RFC 2047 encoded.
//
// Metadata only: a mail is built from a fixed list of fields of the
// alert.Event (box, time, signature, summary, source and destination
// addresses, host, URL, file name, SHA-256, threat) and a portal link,
// never from the event as a whole, so nothing else a box sends can reach a
// mailbox. Control and format characters (line breaks, bidi overrides) in
// those fields are replaced by spaces: no header injection, no spoofed
// file names.
//
// Flood control: the same box, signature id, source and destination
// within Config.DedupeWindow (default 1 hour) is mailed once; a box gets
// at most Config.PerHour mails (default 10) per hour window, after which
// its alerts are counted and one digest mail, "N more", is sent when the
// window ends. Box offline mails are never deduplicated or limited.
//
// Mail() decides at once and queues the send in memory; one goroutine
// talks to the relay, retrying a failed send three times (1 s, 5 s, 25 s
// apart) before it logs the loss and counts it in Stats.Failed. A caller
// that must not lose a mail across restarts (the monitor) keeps its own
// durable outbox and uses Compose (the same decision) and Deliver (one
// send). Cost: a map lookup per call; the monitor calls it only for ★★★
// alerts and offline boxes.
package notify

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openutm/utm/telemetry/alert"
)

// Errors.
var (
	// ErrConfig: the mail configuration or the box registry file is not
	// usable; the message says which field and what to write.
	ErrConfig = errors.New("notify: bad configuration")
	// ErrRelay: the relay refused or could not be reached (returned by
	// Send, logged by the queue).
	ErrRelay = errors.New("notify: SMTP relay failed")
	// ErrRefused: the relay refused this mail for good (a 5xx reply to
	// MAIL FROM, RCPT TO or the message): sending it again cannot help;
	// fix the address in the box registry. Wrapped with ErrRelay.
	ErrRefused = errors.New("notify: the relay refused the mail for good")
)

// StartTLS modes.
const (
	StartTLSOpportunistic = "opportunistic" // use STARTTLS when the relay offers it (default)
	StartTLSRequired      = "required"      // fail unless the relay offers it
	StartTLSOff           = "off"           // never (a relay on loopback)
)

// Config configures a Mailer.
type Config struct {
	Relay     string      // SMTP relay host:port
	From      string      // envelope and header sender
	StartTLS  string      // StartTLS* mode; default opportunistic
	TLS       *tls.Config // for STARTTLS; default verifies the relay's name
	Username  string      // AUTH PLAIN, only over TLS or to a loopback relay
	Password  string
	Registry  *Registry     // recipients and language per box
	PortalURL string        // base URL of the portal, ending in "/", for links
	Dedupe    time.Duration // dedupe window; default 1h
	PerHour   int           // mails per box per hour; default 10
	Timeout   time.Duration // one SMTP conversation; default 30s
	Now       func() time.Time
	Logger    *slog.Logger
}

// Registry is the box registry file: who is mailed for which box, in
// which language.
//
//	{"default": {"mail": ["soc@example.com"]},
//	 "boxes": {"office-1": {"name": "Tokyo office", "mail": ["it@example.jp"], "lang": "ja"}}}
type Registry struct {
	Default BoxContact            `json:"default"`
	Boxes   map[string]BoxContact `json:"boxes"`
}

// BoxContact is one box's entry in the registry.
type BoxContact struct {
	Name string   `json:"name,omitempty"` // shown next to the box id
	Mail []string `json:"mail"`
	Lang string   `json:"lang,omitempty"` // "en" (default) or "ja"
}

// LoadRegistry reads and checks a box registry file.
func LoadRegistry(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: box registry: %v", ErrConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Registry
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: box registry %s: %v (see the example in the notify package doc)", ErrConfig, path, err)
	}
	check := func(who string, c BoxContact) error {
		if c.Lang != "" && c.Lang != "en" && c.Lang != "ja" {
			return fmt.Errorf("%w: box registry %s: %s: lang %q (use \"en\" or \"ja\")", ErrConfig, path, who, c.Lang)
		}
		for _, a := range c.Mail {
			if strings.ContainsAny(a, "\r\n<> ,") || !strings.Contains(a, "@") {
				return fmt.Errorf("%w: box registry %s: %s: %q is not a plain mail address (user@domain)", ErrConfig, path, who, a)
			}
		}
		return nil
	}
	if err := check("default", r.Default); err != nil {
		return nil, err
	}
	for k, c := range r.Boxes {
		if err := check("box "+k, c); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// Contact returns box's entry, falling back to the default's recipients
// and language.
func (r *Registry) Contact(box string) BoxContact {
	if r == nil {
		return BoxContact{}
	}
	c, ok := r.Boxes[box]
	if !ok || len(c.Mail) == 0 {
		c.Mail = r.Default.Mail
	}
	if c.Lang == "" {
		c.Lang = r.Default.Lang
	}
	return c
}

// Decision is what Mail did with an event.
type Decision int

const (
	Queued      Decision = iota // a mail is on its way
	Deduped                     // same box+sid+src+dest mailed within the window
	RateLimited                 // the box's hourly budget is spent; counted for the digest
	NoRecipient                 // the registry names nobody for the box
	Dropped                     // the send queue is full (the relay is down for long)
)

func (d Decision) String() string {
	return [...]string{"queued", "deduped", "rate-limited", "no recipient", "dropped"}[d]
}

// Stats counts what the mailer did since New.
type Stats struct {
	Sent, Deduped, RateLimited, NoRecipient, Dropped, Failed uint64
}

// Message is one mail, as sent.
type Message struct {
	To      []string
	Subject string // decoded
	Body    string // decoded
	Lang    string
}

// Mailer sends alert mails. Its methods are safe for concurrent use.
type Mailer struct {
	cfg   Config
	log   *slog.Logger
	queue chan Message

	mu    sync.Mutex
	seen  map[string]time.Time // dedupe key -> last mailed
	boxes map[string]*budget

	sent, deduped, limited, norcpt, dropped, failed atomic.Uint64

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type budget struct {
	start time.Time // window start
	sent  int
	more  int // suppressed in this window
}

// New checks cfg and starts the send queue. Close stops it.
func New(cfg Config) (*Mailer, error) {
	if cfg.Relay == "" {
		return nil, fmt.Errorf("%w: no SMTP relay (use --smtp host:port)", ErrConfig)
	}
	if _, _, err := net.SplitHostPort(cfg.Relay); err != nil {
		return nil, fmt.Errorf("%w: SMTP relay %q: %v (use host:port, e.g. mail.example.com:587)", ErrConfig, cfg.Relay, err)
	}
	if cfg.From == "" || !strings.Contains(cfg.From, "@") || strings.ContainsAny(cfg.From, "\r\n<> ") {
		return nil, fmt.Errorf("%w: sender %q is not a plain mail address (use --mail-from user@domain)", ErrConfig, cfg.From)
	}
	switch cfg.StartTLS {
	case "":
		cfg.StartTLS = StartTLSOpportunistic
	case StartTLSOpportunistic, StartTLSRequired, StartTLSOff:
	default:
		return nil, fmt.Errorf("%w: STARTTLS mode %q (use opportunistic, required or off)", ErrConfig, cfg.StartTLS)
	}
	if cfg.Dedupe <= 0 {
		cfg.Dedupe = time.Hour
	}
	if cfg.PerHour <= 0 {
		cfg.PerHour = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mailer{cfg: cfg, log: cfg.Logger, queue: make(chan Message, 1000),
		seen: map[string]time.Time{}, boxes: map[string]*budget{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m, nil
}

// Stats returns the counters.
func (m *Mailer) Stats() Stats {
	return Stats{Sent: m.sent.Load(), Deduped: m.deduped.Load(), RateLimited: m.limited.Load(),
		NoRecipient: m.norcpt.Load(), Dropped: m.dropped.Load(), Failed: m.failed.Load()}
}

// Offline reports whether ev is the monitor's box offline alert.
func Offline(ev *alert.Event) bool {
	return ev.Engine != nil && ev.Engine.Reason == "box offline" && ev.Alert != nil
}

// Wanted reports whether ev is mailed at all: a ★★★ alert or a box
// offline alert.
func Wanted(ev *alert.Event) bool {
	return ev.EventType == alert.TypeAlert && (ev.Stars >= 3 || Offline(ev))
}

// Mail decides whether ev (stored as seq) is mailed, and queues the mail
// in memory (lost if the process ends first; the monitor uses Compose and
// Deliver from its durable outbox instead).
func (m *Mailer) Mail(ev *alert.Event, seq uint64) Decision {
	msg, d := m.Compose(ev, seq)
	if d != Queued {
		return d
	}
	return m.enqueue(msg)
}

// Compose decides whether ev (stored as seq) is mailed: dedupe and the
// box's hourly budget are applied and counted, as by Mail. It returns the
// mail and Queued, or why there is none. The caller delivers it (Deliver)
// and keeps it until delivered: calling Compose again for the same event
// within the dedupe window returns Deduped.
func (m *Mailer) Compose(ev *alert.Event, seq uint64) (Message, Decision) {
	c := m.cfg.Registry.Contact(ev.BoxID)
	if len(c.Mail) == 0 {
		m.norcpt.Add(1)
		m.log.Warn("no mail recipient for this box; add it (or a default) to the box registry file", "box", ev.BoxID, "seq", seq)
		return Message{}, NoRecipient
	}
	now := m.cfg.Now()
	if !Offline(ev) {
		m.mu.Lock()
		d := m.admit(ev, now)
		m.mu.Unlock()
		switch d {
		case Deduped:
			m.deduped.Add(1)
			return Message{}, d
		case RateLimited:
			m.limited.Add(1)
			return Message{}, d
		}
	}
	return compose(ev, seq, c, m.cfg.PortalURL), Queued
}

// Deliver sends msg through the relay once; a success is counted (Sent)
// and logged. The caller retries a failure as it sees fit and calls Lost
// when it gives up.
func (m *Mailer) Deliver(msg Message) error {
	if err := m.Send(msg); err != nil {
		return err
	}
	m.sent.Add(1)
	m.log.Info("mail sent", "to", strings.Join(msg.To, ","), "subject", msg.Subject)
	return nil
}

// Lost counts and logs a mail its caller gave up on.
func (m *Mailer) Lost(msg Message, err error) {
	m.failed.Add(1)
	m.log.Error("mail lost; check the relay (--smtp) and its logs", "to", strings.Join(msg.To, ","), "subject", msg.Subject, "err", err)
}

func (m *Mailer) enqueue(msg Message) Decision {
	select {
	case m.queue <- msg:
		return Queued
	default:
		m.dropped.Add(1)
		m.log.Error("mail queue full: the relay has been failing for long; mail dropped (check --smtp)", "to", strings.Join(msg.To, ","))
		return Dropped
	}
}

// admit applies dedupe and the hourly budget; m.mu held.
func (m *Mailer) admit(ev *alert.Event, now time.Time) Decision {
	var sid int
	if ev.Alert != nil {
		sid = ev.Alert.SignatureID
	}
	key := ev.BoxID + "\x00" + strconv.Itoa(sid) + "\x00" + ev.SrcIP + "\x00" + ev.DestIP
	if t, ok := m.seen[key]; ok && now.Sub(t) < m.cfg.Dedupe {
		return Deduped
	}
	b := m.boxes[ev.BoxID]
	if b == nil {
		b = &budget{start: now}
		m.boxes[ev.BoxID] = b
	}
	m.rollLocked(ev.BoxID, b, now)
	if b.sent >= m.cfg.PerHour {
		b.more++
		return RateLimited
	}
	b.sent++
	m.seen[key] = now
	if len(m.seen) > 10000 { // forget expired keys now and then
		for k, t := range m.seen {
			if now.Sub(t) >= m.cfg.Dedupe {
				delete(m.seen, k)
			}
		}
	}
	return Queued
}

// rollLocked starts a new hour window for box when the current one is
// over, queueing the digest of what the old one suppressed.
func (m *Mailer) rollLocked(box string, b *budget, now time.Time) {
	if now.Sub(b.start) < time.Hour {
		return
	}
	if b.more > 0 {
		c := m.cfg.Registry.Contact(box)
		if len(c.Mail) > 0 {
			m.enqueue(composeDigest(box, b.more, b.start, c, m.cfg.PortalURL))
		}
	}
	*b = budget{start: now}
}

// Flush sends the digest of every box whose hour window is over. The
// queue goroutine calls it every minute; tests call it after moving the
// clock.
func (m *Mailer) Flush() {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for box, b := range m.boxes {
		m.rollLocked(box, b, now)
	}
}

// Close stops the queue after sending what it holds (each send still
// bounded by Timeout and its retries).
func (m *Mailer) Close() {
	m.once.Do(func() { close(m.stop) })
	<-m.done
}

func (m *Mailer) run() {
	defer close(m.done)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case msg := <-m.queue:
			m.deliver(msg)
		case <-tick.C:
			m.Flush()
		case <-m.stop:
			for {
				select {
				case msg := <-m.queue:
					m.deliver(msg)
				default:
					return
				}
			}
		}
	}
}

// retryWaits are the pauses between the tries of one mail.
var retryWaits = []time.Duration{time.Second, 5 * time.Second, 25 * time.Second}

func (m *Mailer) deliver(msg Message) {
	to := strings.Join(msg.To, ",")
	var err error
	for i := 0; ; i++ {
		if err = m.Send(msg); err == nil {
			m.sent.Add(1)
			m.log.Info("mail sent", "to", to, "subject", msg.Subject)
			return
		}
		if i == len(retryWaits) {
			break
		}
		m.log.Warn("mail not sent; retrying", "to", to, "err", err, "retry_in", retryWaits[i].String())
		select {
		case <-time.After(retryWaits[i]):
			continue
		case <-m.stop:
		}
		break
	}
	m.failed.Add(1)
	m.log.Error("mail lost; check the relay (--smtp) and its logs", "to", to, "subject", msg.Subject, "err", err)
}

// Send delivers msg through the relay now, once.
func (m *Mailer) Send(msg Message) error {
	host, _, _ := net.SplitHostPort(m.cfg.Relay)
	conn, err := net.DialTimeout("tcp", m.cfg.Relay, m.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("%w: connect %s: %v", ErrRelay, m.cfg.Relay, err)
	}
	conn.SetDeadline(time.Now().Add(m.cfg.Timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: %s greeting: %v", ErrRelay, m.cfg.Relay, err)
	}
	defer c.Close()
	if err := c.Hello("utm-monitor"); err != nil {
		return fmt.Errorf("%w: EHLO: %v", ErrRelay, err)
	}
	tlsOn := false
	if ok, _ := c.Extension("STARTTLS"); ok && m.cfg.StartTLS != StartTLSOff {
		tc := m.cfg.TLS
		if tc == nil {
			tc = &tls.Config{}
		}
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("%w: STARTTLS: %v (fix the relay's certificate, or set STARTTLS off for a loopback relay)", ErrRelay, err)
		}
		tlsOn = true
	} else if m.cfg.StartTLS == StartTLSRequired {
		return fmt.Errorf("%w: %s does not offer STARTTLS and it is required", ErrRelay, m.cfg.Relay)
	}
	if m.cfg.Username != "" {
		// net/smtp's PlainAuth itself refuses a non-TLS, non-loopback relay.
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, host)); err != nil {
			return fmt.Errorf("%w: AUTH (tls=%v): %v", ErrRelay, tlsOn, err)
		}
	}
	if err := c.Mail(m.cfg.From); err != nil {
		return replyErr("MAIL FROM", err)
	}
	for _, to := range msg.To {
		if err := c.Rcpt(to); err != nil {
			return replyErr("RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("%w: DATA: %v", ErrRelay, err)
	}
	if _, err := w.Write(m.render(msg)); err != nil {
		return fmt.Errorf("%w: DATA: %v", ErrRelay, err)
	}
	if err := w.Close(); err != nil {
		return replyErr("message", err)
	}
	return c.Quit()
}

// replyErr wraps the relay's answer to step; a 5xx reply is ErrRefused
// too.
func replyErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return fmt.Errorf("%w: %w: %s: %v", ErrRelay, ErrRefused, step, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrRelay, step, err)
}

// render makes the RFC 5322 message.
func (m *Mailer) render(msg Message) []byte {
	var b bytes.Buffer
	id := make([]byte, 12)
	rand.Read(id)
	_, domain, _ := strings.Cut(m.cfg.From, "@")
	fmt.Fprintf(&b, "From: %s\r\n", m.cfg.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(msg.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("UTF-8", msg.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", m.cfg.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(msg.Body, "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}

// clean makes s one line of at most n runes without control characters.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-1]) + "…"
	}
	return s
}

// Field labels: the only lines an alert mail has besides its title and
// the footer. Tests hold mails to exactly these.
var labels = map[string][]string{
	//      0       1      2            3          4         5              6       7      8            9          10        11
	"en": {"Time", "Box", "Signature", "Summary", "Source", "Destination", "Host", "URL", "File name", "SHA-256", "Threat", "Portal"},
	"ja": {"日時", "機器", "シグネチャ", "概要", "送信元", "宛先", "ホスト", "URL", "ファイル名", "SHA-256", "脅威", "ポータル"},
}

// Labels returns the field labels of lang's template ("en" or "ja").
func Labels(lang string) []string {
	if l, ok := labels[lang]; ok {
		return append([]string(nil), l...)
	}
	return append([]string(nil), labels["en"]...)
}

func addr(ip string, port uint16) string {
	if ip == "" {
		return ""
	}
	if port == 0 {
		return ip
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

func compose(ev *alert.Event, seq uint64, c BoxContact, portal string) Message {
	lang := c.Lang
	if lang != "ja" {
		lang = "en"
	}
	l := labels[lang]
	box := clean(ev.BoxID, 64)
	boxName := box
	if c.Name != "" {
		boxName = box + " (" + clean(c.Name, 64) + ")"
	}
	var sig string
	var sid int
	if ev.Alert != nil {
		sig, sid = clean(ev.Alert.Signature, 200), ev.Alert.SignatureID
	}
	var host, url, file, hash, threat string
	switch {
	case ev.HTTP != nil && ev.HTTP.Hostname != "":
		host = ev.HTTP.Hostname
	case ev.TLS != nil && ev.TLS.SNI != "":
		host = ev.TLS.SNI
	case ev.DNS != nil && ev.DNS.RRName != "":
		host = ev.DNS.RRName
	}
	if ev.HTTP != nil {
		url = ev.HTTP.URL
	}
	if f := ev.FileInfo; f != nil {
		file, hash, threat = f.Filename, f.SHA256, f.Threat
	}
	if threat == "" && ev.Intel != nil {
		threat = ev.Intel.Family
	}
	t := ev.Timestamp.Time().UTC()
	fields := []struct{ k, v string }{
		{l[0], t.Format("2006-01-02 15:04:05 UTC")},
		{l[1], boxName},
		{l[2], sig + " (sid " + strconv.Itoa(sid) + ")"},
		{l[3], clean(ev.Summary, 500)},
		{l[4], clean(addr(ev.SrcIP, ev.SrcPort), 64)},
		{l[5], clean(addr(ev.DestIP, ev.DestPort), 64)},
		{l[6], clean(host, 255)},
		{l[7], clean(url, 500)},
		{l[8], clean(file, 255)},
		{l[9], clean(hash, 64)},
		{l[10], clean(threat, 200)},
		{l[11], portalLink(portal, seq)},
	}
	var subject, title, footer string
	offline := Offline(ev)
	switch {
	case offline && lang == "ja":
		subject = fmt.Sprintf("%s 機器 %s がオフラインです", ev.Stars, box)
		title = fmt.Sprintf("機器 %s から一定時間ハートビートがありません。電源と回線を確認してください。", boxName)
	case offline:
		subject = fmt.Sprintf("%s Box %s is offline", ev.Stars, box)
		title = fmt.Sprintf("Box %s stopped sending heartbeats. Check its power and uplink.", boxName)
	case lang == "ja":
		subject = fmt.Sprintf("%s 【至急】%s: %s", ev.Stars, box, clean(sig, 100))
		title = fmt.Sprintf("機器 %s で直ちに対応が必要な警告 (%s) が発生しました。", boxName, ev.Stars)
	default:
		subject = fmt.Sprintf("%s Act now: %s: %s", ev.Stars, box, clean(sig, 100))
		title = fmt.Sprintf("Box %s raised an alert that needs action now (%s).", boxName, ev.Stars)
	}
	if lang == "ja" {
		footer = "このメールはUTMモニタが自動送信しました。通信内容やファイルの中身は含まれません (メタデータのみ)。"
	} else {
		footer = "Sent by the UTM monitor. Metadata only: no traffic, mail or file contents are ever included."
	}
	var b strings.Builder
	b.WriteString(title + "\n\n")
	for _, f := range fields {
		if f.v == "" || (offline && f.k != l[0] && f.k != l[1] && f.k != l[2] && f.k != l[3] && f.k != l[11]) {
			continue
		}
		b.WriteString(f.k + ": " + f.v + "\n")
	}
	b.WriteString("\n-- \n" + footer + "\n")
	return Message{To: append([]string(nil), c.Mail...), Subject: clean(subject, 180), Body: b.String(), Lang: lang}
}

func portalLink(portal string, seq uint64) string {
	if portal == "" || seq == 0 {
		return ""
	}
	return strings.TrimSuffix(portal, "/") + "/alerts/" + strconv.FormatUint(seq, 10)
}

func composeDigest(box string, n int, since time.Time, c BoxContact, portal string) Message {
	box = clean(box, 64)
	list := ""
	if portal != "" {
		list = strings.TrimSuffix(portal, "/") + "/alerts?stars=3&box=" + box
	}
	var subject, body string
	if c.Lang == "ja" {
		subject = fmt.Sprintf("★★★ 機器 %s: 他 %d 件の警告 (送信数制限)", box, n)
		body = fmt.Sprintf("%s 以降の1時間に、機器 %s でさらに %d 件の★★★警告がありました (1時間あたりの送信数制限のためメールは省略)。\n\nポータル: %s\n", since.UTC().Format("2006-01-02 15:04 UTC"), box, n, list)
	} else {
		subject = fmt.Sprintf("★★★ Box %s: %d more alerts (mail rate limit)", box, n)
		body = fmt.Sprintf("%d more ★★★ alerts on box %s in the hour from %s were not mailed one by one (mail rate limit).\n\nPortal: %s\n", n, box, since.UTC().Format("2006-01-02 15:04 UTC"), list)
	}
	return Message{To: append([]string(nil), c.Mail...), Subject: subject, Body: body, Lang: c.Lang}
}
