package monitor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, dir, natsListen string, offline time.Duration, logs io.Writer) *Monitor {
	t.Helper()
	m, err := Start(Config{DataDir: dir, NATSListen: natsListen, HTTPListen: "127.0.0.1:0",
		OfflineAfter: offline, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if sb, ok := logs.(*syncBuf); ok {
		clients.Store(m.PortalURL(), login(t, m, sb))
	}
	return m
}

// clients holds a logged-in client per portal base URL.
var clients sync.Map

const testPassword = "correct horse battery"

var (
	setupRE = regexp.MustCompile(`setup_url="?([^"\s]+)`)
	csrfRE  = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
)

// login sets the admin password through the one-time setup URL the
// monitor logged (or, when it is set already, logs in) and returns a
// client holding the session cookie.
func login(t *testing.T, m *Monitor, logs *syncBuf) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	base := m.PortalURL()
	form := func(page string) string {
		resp, err := c.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mm := csrfRE.FindSubmatch(b)
		if resp.StatusCode != 200 || mm == nil {
			t.Fatalf("GET %s: %s, no form:\n%s", page, resp.Status, b)
		}
		return string(mm[1])
	}
	post := func(page string, v url.Values) {
		resp, err := c.PostForm(page, v)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
			t.Fatalf("POST %s: %s at %s\n%s", page, resp.Status, resp.Request.URL, b)
		}
	}
	all := setupRE.FindAllStringSubmatch(logs.String(), -1)
	if m.auth.setup != "" && len(all) > 0 {
		setup := all[len(all)-1][1]
		u, _ := url.Parse(setup)
		csrf := form(base + "setup?" + u.RawQuery)
		post(base+"setup", url.Values{"csrf": {csrf}, "token": {u.Query().Get("token")}, "password": {testPassword}, "confirm": {testPassword}})
		return c
	}
	csrf := form(base + "login")
	post(base+"login", url.Values{"csrf": {csrf}, "user": {"admin"}, "password": {testPassword}})
	return c
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.DefaultClient
	clients.Range(func(k, v any) bool {
		if strings.HasPrefix(url, k.(string)) {
			c = v.(*http.Client)
			return false
		}
		return true
	})
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) string {
	t.Helper()
	code, body := fetch(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fn() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// settle waits until every message published to the stream so far has
// been stored (or rejected) and acked.
func settle(t *testing.T, m *Monitor) {
	t.Helper()
	waitFor(t, "the monitor to work off the stream", func() bool {
		n, err := m.Backlog()
		return err == nil && n == 0
	})
}

// apiRecord is /api/alerts' element, decoded strictly.
type apiRecord struct {
	Seq      uint64          `json:"seq"`
	Received string          `json:"received"`
	Event    json.RawMessage `json:"event"`
	Resolved *Resolution     `json:"resolved"`
}

// apiAlerts decodes /api/alerts strictly: an element or an event field
// that the documented shape and alert.Event do not have fails the test.
func apiAlerts(t *testing.T, url string) ([]apiRecord, []alert.Event) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(get(t, url)))
	dec.DisallowUnknownFields()
	var recs []apiRecord
	if err := dec.Decode(&recs); err != nil {
		t.Fatalf("/api/alerts is not the documented shape: %v", err)
	}
	evs := make([]alert.Event, len(recs))
	for i, r := range recs {
		if _, err := time.Parse(time.RFC3339, r.Received); err != nil {
			t.Errorf("received %q is not RFC 3339", r.Received)
		}
		d := json.NewDecoder(bytes.NewReader(r.Event))
		d.DisallowUnknownFields()
		if err := d.Decode(&evs[i]); err != nil {
			t.Fatalf("stored event has a field beyond the alert model: %v\n%s", err, r.Event)
		}
	}
	return recs, evs
}

func publish(t *testing.T, js nats.JetStreamContext, box string, ev any, id string) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(alert.AlertSubject(box), b, nats.MsgId(id)); err != nil {
		t.Fatal(err)
	}
}

func heartbeat(t *testing.T, nc *nats.Conn, box string, counters map[string]uint64) {
	t.Helper()
	hb, _ := json.Marshal(alert.Heartbeat{BoxID: box, Version: "1.0", UptimeS: 7, Time: time.Now(), Counters: counters})
	if err := nc.Publish(alert.HeartbeatSubject(box), hb); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
}

func eicar(box, id string, stars alert.Stars, sig string) *alert.Event {
	return &alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, SrcIP: "198.18.1.2", SrcPort: 40000,
		DestIP: "198.18.2.2", DestPort: 80, Proto: "TCP", AppProto: "http", Stars: stars, ID: id, BoxID: box,
		HTTP:     &alert.HTTP{Hostname: "www.lab.test", URL: "/eicar.com", Method: "GET", Status: 200},
		FileInfo: &alert.FileInfo{Filename: "eicar.com", Threat: "EICAR-Test-File", SHA256: "275a02", Size: 68},
		Alert:    &alert.Alert{Action: alert.ActionBlocked, GID: 1, SignatureID: 2210001, Rev: 1, Signature: sig}}
}

type boxJSON struct {
	BoxID         string           `json:"box_id"`
	LastHeartbeat time.Time        `json:"last_heartbeat"`
	Online        bool             `json:"online"`
	Heartbeat     *alert.Heartbeat `json:"heartbeat"`
	OfflineSeq    uint64           `json:"offline_seq"`
	OfflineSince  time.Time        `json:"offline_since"`
}

func apiBoxes(t *testing.T, url string) map[string]boxJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(get(t, url)))
	dec.DisallowUnknownFields()
	var list []boxJSON
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("/api/boxes is not the documented shape: %v", err)
	}
	out := map[string]boxJSON{}
	for _, b := range list {
		out[b.BoxID] = b
	}
	return out
}

// TestPortalAndHealth: a heartbeat makes a box online, silence makes it
// offline; alerts show in the API (oldest first, ?since), on the page
// (newest first, ★★★ highlighted, escaped) and in the log.
func TestPortalAndHealth(t *testing.T) {
	var logs syncBuf
	m := start(t, t.TempDir(), "127.0.0.1:-1", 2*time.Second, &logs)
	defer m.Close()
	base := m.PortalURL()
	if get(t, base+"healthz") != "ok" {
		t.Fatal("not healthy")
	}
	if b := get(t, base+"api/alerts"); strings.TrimSpace(b) != "[]" {
		t.Fatalf("empty store: /api/alerts = %s, want []", b)
	}
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()

	heartbeat(t, nc, "office-1", map[string]uint64{"packets": 42})
	waitFor(t, "box online", func() bool { return apiBoxes(t, base+"api/boxes")["office-1"].Online })
	b := apiBoxes(t, base+"api/boxes")["office-1"]
	if b.Heartbeat == nil || b.Heartbeat.Version != "1.0" || b.Heartbeat.Counters["packets"] != 42 || time.Since(b.LastHeartbeat) > time.Minute {
		t.Fatalf("box record: %+v", b)
	}

	publish(t, js, "office-1", eicar("office-1", "office-1-a-1", 2, "first alert"), "office-1-a-1")
	publish(t, js, "office-1", eicar("office-1", "office-1-a-2", 3, "UTM AV <script>alert(1)</script> EICAR-Test-File"), "office-1-a-2")
	settle(t, m)

	recs, evs := apiAlerts(t, base+"api/alerts")
	if len(recs) != 2 || evs[0].ID != "office-1-a-1" || evs[1].ID != "office-1-a-2" || recs[0].Seq >= recs[1].Seq {
		t.Fatalf("api/alerts: want both alerts oldest first, got %+v", recs)
	}
	if evs[1].Stars != 3 || evs[1].Alert.SignatureID != 2210001 || evs[1].FileInfo.Threat != "EICAR-Test-File" || evs[1].BoxID != "office-1" {
		t.Fatalf("stored event differs from the one sent: %+v", evs[1])
	}
	since, _ := apiAlerts(t, fmt.Sprintf("%sapi/alerts?since=%d", base, recs[0].Seq))
	if len(since) != 1 || since[0].Seq != recs[1].Seq {
		t.Fatalf("?since=%d returned %+v, want only seq %d", recs[0].Seq, since, recs[1].Seq)
	}
	if code, _ := fetch(t, base+"api/alerts?since=x"); code != http.StatusBadRequest {
		t.Fatalf("?since=x: status %d, want 400", code)
	}

	page := get(t, base)
	for _, want := range []string{"office-1", ">online<", `class="s3"`, "★★★", "EICAR-Test-File", "/eicar.com", `http-equiv="refresh" content="10"`,
		"&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("portal page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("portal page does not escape the signature")
	}
	if i, j := strings.Index(page, "&lt;/script&gt; EICAR-Test-File"), strings.Index(page, "first alert"); i < 0 || j < 0 || i > j {
		t.Errorf("portal page does not list the newest alert first")
	}
	for _, want := range []string{`msg="alert received" box=office-1 stars=3 sid=2210001`, `msg="alert received" box=office-1 stars=2 sid=2210001 signature="first alert"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	waitFor(t, "box offline", func() bool { return !apiBoxes(t, base+"api/boxes")["office-1"].Online })
	// "offline", then " since ..." once the offline alert is raised.
	if !strings.Contains(get(t, base), `class="offline">offline`) {
		t.Error("portal does not show the box offline")
	}
	heartbeat(t, nc, "office-1", nil)
	waitFor(t, "box online again", func() bool { return apiBoxes(t, base+"api/boxes")["office-1"].Online })
}

// TestRestartKeepsEverything: alerts, the box registry (with the last
// heartbeat) and the consumer position survive a restart with the same
// data directory; an alert redelivered after the restart is not doubled.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuf
	m := start(t, dir, "127.0.0.1:-1", time.Minute, &logs)
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := nc.JetStream()
	heartbeat(t, nc, "office-2", map[string]uint64{"packets": 9})
	waitFor(t, "box online", func() bool { return len(m.Boxes()) == 1 && m.Boxes()[0].Online })
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("office-2-x-%d", i)
		publish(t, js, "office-2", eicar("office-2", id, 3, "sig"), id)
	}
	settle(t, m)
	nc.Close()
	url := m.NATSURL()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = start(t, dir, strings.TrimPrefix(url, "nats://"), time.Minute, &logs)
	defer m.Close()
	boxes := m.Boxes()
	if len(boxes) != 1 || boxes[0].BoxID != "office-2" || boxes[0].Heartbeat == nil || boxes[0].Heartbeat.Counters["packets"] != 9 || !boxes[0].Online {
		t.Fatalf("box registry after restart: %+v", boxes)
	}
	nc, err = nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = nc.JetStream()
	// A box retrying an alert after the restart: inside the duplicate
	// window JetStream drops it; with a new message id the store does.
	publish(t, js, "office-2", eicar("office-2", "office-2-x-4", 3, "sig"), "office-2-x-4")
	publish(t, js, "office-2", eicar("office-2", "office-2-x-4", 3, "sig"), "retry-after-window")
	publish(t, js, "office-2", eicar("office-2", "office-2-x-5", 3, "sig"), "office-2-x-5")
	settle(t, m)
	recs, err := m.Alerts(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Fatalf("%d alerts after restart, want 6", len(recs))
	}
	for i, r := range recs {
		if want := fmt.Sprintf("office-2-x-%d", i); r.Event.ID != want {
			t.Fatalf("alert %d is %s, want %s", i, r.Event.ID, want)
		}
	}
}

// TestBadMessages: what is not an alert is counted, logged without its
// content and never stored; an alert is filed under its subject's box.
func TestBadMessages(t *testing.T) {
	var logs syncBuf
	m := start(t, t.TempDir(), "127.0.0.1:-1", time.Minute, &logs)
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	const canary = "CANARY-bad-7f3a"
	js.Publish(alert.AlertSubject("b1"), []byte("not json "+canary))
	noID := eicar("b1", "", 1, canary)
	publish(t, js, "b1", noID, "n1")
	badStars := eicar("b1", "b1-1", 7, canary)
	publish(t, js, "b1", badStars, "n2")
	other := eicar("someone-else", "b1-2", 1, "ok")
	publish(t, js, "b1", other, "n3")
	nc.Publish(alert.HeartbeatSubject("b1"), []byte("{"+canary))
	nc.Flush()
	settle(t, m)
	waitFor(t, "4 rejected messages", func() bool { return m.Rejected() == 4 })
	recs, _ := m.Alerts(0)
	if len(recs) != 1 || recs[0].Event.ID != "b1-2" || recs[0].Event.BoxID != "b1" {
		t.Fatalf("stored %+v, want only b1-2 filed under b1", recs)
	}
	if strings.Contains(logs.String(), canary) {
		t.Fatalf("a rejected message's content reached the log:\n%s", logs.String())
	}
}

// TestNoPayloadReachesMonitor is the metadata-only promise at the monitor.
// The "packet" below carries a canary in its User-Agent, a header and its
// body; the alert's allowed metadata (host, URL) is clean. A buggy or
// hostile box adds the packet anyway, in the fields Suricata uses for it
// (payload, payload_printable, packet, http request body, user agent). The
// canary, raw or base64, must not reach /api/alerts, the page, /api/boxes
// or the log, and a stored event has no field beyond the model.
func TestNoPayloadReachesMonitor(t *testing.T) {
	const canary = "CANARY-payload-91c2e8"
	packet := []byte("GET /eicar.com HTTP/1.1\r\nHost: www.lab.test\r\nUser-Agent: " + canary +
		"\r\nX-Api-Version: ${jndi:ldap://" + canary + "}\r\n\r\nbody " + canary)
	ev := eicar("office-3", "office-3-c-1", 3, "UTM AV malware in HTTP transfer: EICAR-Test-File")
	var doc map[string]any
	b, _ := json.Marshal(ev)
	json.Unmarshal(b, &doc)
	doc["payload"] = base64.StdEncoding.EncodeToString(packet)
	doc["payload_printable"] = string(packet)
	doc["packet"] = base64.StdEncoding.EncodeToString(packet)
	doc["http"].(map[string]any)["http_user_agent"] = canary
	doc["http"].(map[string]any)["http_request_body"] = string(packet)
	doc["alert"].(map[string]any)["metadata"] = map[string]any{"payload": []string{canary}}
	doc["fileinfo"].(map[string]any)["content"] = string(packet)

	var logs syncBuf
	m := start(t, t.TempDir(), "127.0.0.1:-1", time.Minute, &logs)
	defer m.Close()
	base := m.PortalURL()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	publish(t, js, "office-3", doc, "office-3-c-1")
	hb := map[string]any{"box_id": "office-3", "version": "1", "time": time.Now(), "payload": canary,
		"counters": map[string]any{"packets": 1}}
	hbb, _ := json.Marshal(hb)
	nc.Publish(alert.HeartbeatSubject("office-3"), hbb)
	nc.Flush()
	settle(t, m)
	waitFor(t, "box registered", func() bool { return apiBoxes(t, base+"api/boxes")["office-3"].Online })

	_, evs := apiAlerts(t, base+"api/alerts") // strict: no field beyond the model
	if len(evs) != 1 || evs[0].HTTP.URL != "/eicar.com" || evs[0].FileInfo.Threat != "EICAR-Test-File" {
		t.Fatalf("the alert's metadata did not arrive: %+v", evs)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(canary))[:16]
	for what, text := range map[string]string{
		"/api/alerts": get(t, base+"api/alerts"),
		"/api/boxes":  get(t, base+"api/boxes"),
		"the page":    get(t, base),
		"the log":     logs.String(),
	} {
		if strings.Contains(text, canary) || strings.Contains(text, b64) || strings.Contains(text, base64.StdEncoding.EncodeToString(packet)[:24]) {
			t.Errorf("payload canary reached %s:\n%s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "alert received") {
		t.Fatal("the alert was not logged: the log check above proved nothing")
	}
}

// TestExternalNATS: with NATSURL the monitor runs no server of its own and
// sets up the stream on the given one.
func TestExternalNATS(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("test NATS did not start")
	}
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSURL: ns.ClientURL(), HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.NATSURL() != ns.ClientURL() || m.ns != nil {
		t.Fatalf("monitor started its own NATS")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	si, err := js.StreamInfo(alert.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if si.Config.Duplicates != 10*time.Minute || si.Config.Storage != nats.FileStorage || si.Config.Subjects[0] != "utm.alerts.>" {
		t.Fatalf("stream config: %+v", si.Config)
	}
	publish(t, js, "ext-1", eicar("ext-1", "ext-1-a", 1, "x"), "ext-1-a")
	settle(t, m)
	if recs, _ := m.Alerts(0); len(recs) != 1 {
		t.Fatalf("%d alerts stored via the external NATS, want 1", len(recs))
	}
}
