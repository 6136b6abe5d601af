package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

func (m *Monitor) startHTTP() error {
	ln, err := net.Listen("tcp", m.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("%w: listen %s: %v (port in use? choose another with --http)", ErrHTTP, m.cfg.HTTPListen, err)
	}
	m.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", m.handleIndex)
	mux.HandleFunc("GET /api/alerts", m.handleAlerts)
	mux.HandleFunc("GET /api/boxes", m.handleBoxes)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	m.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go m.http.Serve(ln)
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func (m *Monitor) handleAlerts(w http.ResponseWriter, r *http.Request) {
	var since uint64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			http.Error(w, "since must be an alert seq number (0 or more)", http.StatusBadRequest)
			return
		}
	}
	recs, err := m.st.alerts(since, maxAlerts)
	if err != nil {
		m.log.Error("cannot read the alert store", "err", err)
		http.Error(w, "cannot read the alert store", http.StatusInternalServerError)
		return
	}
	if recs == nil {
		recs = []Record{}
	}
	writeJSON(w, recs)
}

func (m *Monitor) handleBoxes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, m.Boxes())
}

// pageAlerts is how many of the newest alerts the page shows.
const pageAlerts = 200

type pageData struct {
	Now    time.Time
	Boxes  []Box
	Alerts []Record
}

func (m *Monitor) handleIndex(w http.ResponseWriter, r *http.Request) {
	recs, err := m.st.latest(pageAlerts)
	if err != nil {
		m.log.Error("cannot read the alert store", "err", err)
		http.Error(w, "cannot read the alert store", http.StatusInternalServerError)
		return
	}
	boxes := m.Boxes()
	var buf bytes.Buffer
	if err := page.Execute(&buf, pageData{Now: time.Now(), Boxes: boxes, Alerts: recs}); err != nil {
		m.log.Error("cannot render the portal page", "err", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"stars": func(s alert.Stars) string { return s.String() },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"ts": func(t alert.Timestamp) string { return t.Time().Local().Format("2006-01-02 15:04:05") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>UTM monitor</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;font-size:.92em}
th{background:#f4f4f4}
.online{color:#18794e;font-weight:600}.offline{color:#b42318;font-weight:600}
.s3{background:#fde8e8}.s3 .stars{color:#b42318;font-weight:700}.s2 .stars{color:#b54708}.s1 .stars{color:#667085}
.blocked{font-weight:600}
</style></head><body>
<h1>UTM monitor</h1>
<h2>Boxes</h2>
<table id="boxes"><tr><th>Box</th><th>State</th><th>Last heartbeat</th><th>Version</th><th>Up</th><th>Packets</th><th>Alerts</th><th>Waiting in spool</th></tr>
{{range .Boxes}}<tr><td>{{.BoxID}}</td><td class="{{if .Online}}online{{else}}offline{{end}}">{{if .Online}}online{{else}}offline{{end}}</td>
<td>{{ago .LastHeartbeat}}</td><td>{{with .Heartbeat}}{{.Version}}{{end}}</td>
<td>{{with .Heartbeat}}{{.UptimeS}} s{{end}}</td>
<td>{{with .Heartbeat}}{{index .Counters "packets"}}{{end}}</td><td>{{with .Heartbeat}}{{index .Counters "alerts"}}{{end}}</td><td>{{with .Heartbeat}}{{.Spooled}}{{end}}</td></tr>
{{else}}<tr><td colspan="8">No box has reported yet.</td></tr>{{end}}
</table>
<h2>Alerts</h2>
<table id="alerts"><tr><th>Time</th><th>Stars</th><th>Box</th><th>Signature</th><th>Action</th><th>Source</th><th>Destination</th><th>Detail</th></tr>
{{range .Alerts}}{{with .Event}}<tr class="s{{printf "%d" .Stars}}"><td>{{ts .Timestamp}}</td><td class="stars">{{stars .Stars}}</td><td>{{.BoxID}}</td>
{{with .Alert}}<td>{{.Signature}} <small>(sid {{.SignatureID}})</small></td><td class="{{.Action}}">{{.Action}}</td>{{else}}<td>{{.EventType}}: {{.Summary}}</td><td></td>{{end}}
<td>{{.SrcIP}}{{if .SrcPort}}:{{.SrcPort}}{{end}}</td><td>{{.DestIP}}{{if .DestPort}}:{{.DestPort}}{{end}}</td>
<td>{{with .HTTP}}{{.Hostname}}{{.URL}} {{end}}{{with .DNS}}{{.RRName}} {{end}}{{with .FileInfo}}{{.Filename}} {{.Threat}} sha256:{{.SHA256}} {{end}}{{with .Intel}}indicator {{.Indicator}} ({{.Family}}) {{end}}{{with .Engine}}{{.Reason}} {{.Duration}} {{end}}{{with .Summary}}<br><small>{{.}}</small>{{end}}</td></tr>{{end}}
{{else}}<tr><td colspan="8">No alerts.</td></tr>{{end}}
</table>
<p><small>Page generated {{.Now.Format "15:04:05"}}; refreshes every 2 s. JSON: <a href="/api/alerts">/api/alerts</a>, <a href="/api/boxes">/api/boxes</a>.</small></p>
</body></html>`))
