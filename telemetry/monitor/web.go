package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

func (m *Monitor) startHTTP() error {
	ln, err := net.Listen("tcp", m.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("%w: listen %s: %v (port in use? choose another with --http)", ErrHTTP, m.cfg.HTTPListen, err)
	}
	m.ln = ln
	if err := m.initAuth(); err != nil {
		ln.Close()
		return fmt.Errorf("%w: read the portal credentials: %v", ErrStore, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", m.requireLogin(false, m.handleIndex))
	mux.HandleFunc("GET /alerts", m.requireLogin(false, m.handleAlertList))
	mux.HandleFunc("GET /alerts/{seq}", m.requireLogin(false, m.handleAlertDetail))
	mux.HandleFunc("GET /boxes/{box}/report", m.requireLogin(false, m.handleReport))
	mux.HandleFunc("GET /boxes/{box}/report.pdf", m.requireLogin(false, m.handleReportPDF))
	mux.HandleFunc("GET /api/alerts", m.requireLogin(true, m.handleAlerts))
	mux.HandleFunc("GET /api/boxes", m.requireLogin(true, m.handleBoxes))
	mux.HandleFunc("GET /login", m.handleLoginForm)
	mux.HandleFunc("POST /login", m.handleLogin)
	mux.HandleFunc("POST /logout", m.handleLogout)
	mux.HandleFunc("GET /setup", m.handleSetupForm)
	mux.HandleFunc("POST /setup", m.handleSetup)
	mux.HandleFunc("GET /metrics", m.handleMetrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	m.http = &http.Server{Handler: securityHeaders(mux), ReadHeaderTimeout: 5 * time.Second}
	if m.cfg.TLSCert != "" {
		go m.http.ServeTLS(ln, m.cfg.TLSCert, m.cfg.TLSKey)
	} else {
		go m.http.Serve(ln)
	}
	return nil
}

// securityHeaders: no framing, no scripts, nothing from elsewhere (the
// portal works offline and needs none).
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func (m *Monitor) handleAlerts(w http.ResponseWriter, r *http.Request, _ session) {
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

func (m *Monitor) handleBoxes(w http.ResponseWriter, r *http.Request, _ session) {
	writeJSON(w, m.Boxes())
}

// pageSize is how many alerts a list page shows.
const pageSize = 50

type field struct{ Key, Value string }

type pageData struct {
	Title     string
	CSRF      string
	LoggedIn  bool
	NeedSetup bool
	Next      string
	Token     string
	Error     string
	Now       time.Time
	Refresh   int

	Boxes  []Box
	Alerts []Record
	Chart  template.HTML

	// alert list
	F              listForm
	Kinds          []string
	BoxIDs         []string
	Page           int
	PrevURL        string
	NextURL        string
	Rec            Record
	Fields         []field
	ResolvedByLink string

	Report *Report
}

type listForm struct {
	Stars, Box, Kind, From, To string
}

func (m *Monitor) render(w http.ResponseWriter, name string, d pageData) {
	if d.Now.IsZero() {
		d.Now = m.now()
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		m.log.Error("cannot render a portal page", "page", name, "err", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func (m *Monitor) handleIndex(w http.ResponseWriter, r *http.Request, s session) {
	recs, _, err := m.st.query(Filter{}, 0, 20)
	if err != nil {
		m.log.Error("cannot read the alert store", "err", err)
		http.Error(w, "cannot read the alert store", http.StatusInternalServerError)
		return
	}
	now := m.now()
	to := now.Truncate(time.Hour).Add(time.Hour)
	f := Filter{From: to.Add(-7 * 24 * time.Hour), To: to}
	bins, _ := m.st.histogram(f, 28)
	m.render(w, "index", pageData{Title: "Boxes", CSRF: s.csrf, LoggedIn: true, Refresh: 10, Boxes: m.Boxes(), Alerts: recs,
		Chart: chartSVG(bins, f.To.Sub(f.From)/28)})
}

// parseWhen accepts a date, a datetime-local value or RFC 3339.
func parseWhen(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: use YYYY-MM-DD, YYYY-MM-DDTHH:MM or RFC 3339", s)
}

func (m *Monitor) parseFilter(q url.Values) (Filter, listForm, error) {
	lf := listForm{Stars: q.Get("stars"), Box: q.Get("box"), Kind: q.Get("kind"), From: q.Get("from"), To: q.Get("to")}
	f := Filter{Box: lf.Box, Kind: lf.Kind}
	var err error
	if lf.Stars != "" {
		if f.Stars, err = strconv.Atoi(lf.Stars); err != nil || f.Stars < 1 || f.Stars > 3 {
			return f, lf, fmt.Errorf("stars must be 1, 2 or 3")
		}
	}
	if lf.Kind != "" && !contains(Kinds, lf.Kind) {
		return f, lf, fmt.Errorf("kind must be one of %s", strings.Join(Kinds, ", "))
	}
	if lf.From != "" {
		if f.From, err = parseWhen(lf.From); err != nil {
			return f, lf, err
		}
	}
	if lf.To != "" {
		if f.To, err = parseWhen(lf.To); err != nil {
			return f, lf, err
		}
		if len(lf.To) == len("2006-01-02") {
			f.To = f.To.Add(24 * time.Hour) // the whole day
		}
	}
	return f, lf, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (m *Monitor) handleAlertList(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	f, lf, err := m.parseFilter(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 0)
	recs, more, err := m.st.query(f, page*pageSize, pageSize)
	if err != nil {
		m.log.Error("cannot read the alert store", "err", err)
		http.Error(w, "cannot read the alert store", http.StatusInternalServerError)
		return
	}
	// The chart covers the filter's range, or the last 7 days.
	cf := f
	if cf.To.IsZero() {
		cf.To = m.now().Truncate(time.Hour).Add(time.Hour)
	}
	if cf.From.IsZero() || !cf.From.Before(cf.To) {
		cf.From = cf.To.Add(-7 * 24 * time.Hour)
	}
	const nbins = 28
	bins, _ := m.st.histogram(cf, nbins)
	d := pageData{Title: "Alerts", CSRF: s.csrf, LoggedIn: true, Alerts: recs, F: lf, Kinds: Kinds, Page: page,
		Chart: chartSVG(bins, cf.To.Sub(cf.From)/nbins)}
	for _, b := range m.Boxes() {
		d.BoxIDs = append(d.BoxIDs, b.BoxID)
	}
	link := func(p int) string {
		v := url.Values{}
		for k, val := range map[string]string{"stars": lf.Stars, "box": lf.Box, "kind": lf.Kind, "from": lf.From, "to": lf.To} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if p > 0 {
			v.Set("page", strconv.Itoa(p))
		}
		return "/alerts?" + v.Encode()
	}
	if page > 0 {
		d.PrevURL = link(page - 1)
	}
	if more {
		d.NextURL = link(page + 1)
	}
	m.render(w, "alerts", d)
}

func (m *Monitor) handleAlertDetail(w http.ResponseWriter, r *http.Request, s session) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		http.Error(w, "alert number must be a positive integer", http.StatusBadRequest)
		return
	}
	rec, ok := m.st.get(seq)
	if !ok {
		http.Error(w, "no such alert (it may have passed the retention period)", http.StatusNotFound)
		return
	}
	d := pageData{Title: fmt.Sprintf("Alert %d", seq), CSRF: s.csrf, LoggedIn: true, Rec: rec, Fields: eventFields(rec.Event)}
	if rec.Resolved != nil {
		d.ResolvedByLink = "/alerts/" + strconv.FormatUint(rec.Resolved.Seq, 10)
	}
	m.render(w, "alert", d)
}

// eventFields lists every field of ev as dotted JSON names and values,
// sorted: the evidence, exactly as stored.
func eventFields(ev *alert.Event) []field {
	b, _ := json.Marshal(ev)
	var doc map[string]any
	json.Unmarshal(b, &doc)
	var out []field
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), vv)
			}
		case []any:
			var parts []string
			for _, e := range x {
				parts = append(parts, fmt.Sprint(e))
			}
			out = append(out, field{prefix, strings.Join(parts, ", ")})
		case float64:
			out = append(out, field{prefix, strconv.FormatFloat(x, 'f', -1, 64)})
		default:
			out = append(out, field{prefix, fmt.Sprint(x)})
		}
	}
	walk("", doc)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// chartSVG draws bins as stacked bars (★ grey, ★★ amber, ★★★ red), each
// bar a <rect class="bar sN"> with a <title> giving its time and count.
// No script, no external resource.
func chartSVG(bins []Bin, width time.Duration) template.HTML {
	const W, H, pad = 720, 160, 24
	maxN := 1
	for _, b := range bins {
		maxN = max(maxN, b.Total())
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="alerts over time">`, W, H+pad, W, H+pad)
	sb.WriteString(`<desc>Alerts over time by stars</desc>`)
	fmt.Fprintf(&sb, `<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, H, W, H)
	if len(bins) == 0 {
		sb.WriteString(`</svg>`)
		return template.HTML(sb.String())
	}
	bw := float64(W) / float64(len(bins))
	colors := [4]string{"", "#98a2b3", "#f79009", "#d92d20"}
	layout := "01-02 15:04"
	if width >= 24*time.Hour {
		layout = "2006-01-02"
	}
	for i, b := range bins {
		y := float64(H)
		for s := 1; s <= 3; s++ {
			if b.Stars[s] == 0 {
				continue
			}
			h := float64(b.Stars[s]) / float64(maxN) * (H - 10)
			y -= h
			fmt.Fprintf(&sb, `<rect class="bar s%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d %s</title></rect>`,
				s, float64(i)*bw+1, y, bw-2, h, colors[s], b.Start.UTC().Format(layout), b.Stars[s], strings.Repeat("★", s))
		}
	}
	fmt.Fprintf(&sb, `<text x="0" y="%d" font-size="11">%s</text>`, H+16, bins[0].Start.UTC().Format(layout))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s UTC</text>`, W, H+16, bins[len(bins)-1].Start.Add(width).UTC().Format(layout))
	fmt.Fprintf(&sb, `<text x="%d" y="12" font-size="11" text-anchor="end">max %d</text>`, W, maxN)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"stars": func(s alert.Stars) string { return s.String() },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"ts":   func(t alert.Timestamp) string { return t.Time().UTC().Format("2006-01-02 15:04:05") },
	"utc":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"kind": func(ev *alert.Event) string { return KindOf(ev) },
	"counters": func(c map[string]uint64) string {
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+strconv.FormatUint(c[k], 10))
		}
		return strings.Join(parts, " ")
	},
	"sel":      func(a, b string) bool { return a == b },
	"starOpts": func() []string { return []string{"1", "2", "3"} },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>{{.Title}} · UTM monitor</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#1d2939;color:#fff;padding:.6em 2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none}header form{margin-left:auto}
main{margin:1.5em 2em}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;font-size:.92em;vertical-align:top}
th{background:#f4f4f4}
.online{color:#18794e;font-weight:600}.offline{color:#b42318;font-weight:600}
.s3{background:#fde8e8}.s3 .stars{color:#b42318;font-weight:700}.s2 .stars{color:#b54708}.s1 .stars{color:#667085}
.blocked{font-weight:600}.error{color:#b42318;font-weight:600}
form.filters{display:flex;gap:.8em;flex-wrap:wrap;align-items:end;margin-bottom:1em}
form.filters label{display:flex;flex-direction:column;font-size:.85em}
dl.fields{display:grid;grid-template-columns:max-content auto;gap:.25em 1.2em}dl.fields dt{font-weight:600;font-family:monospace}dl.fields dd{margin:0;font-family:monospace;word-break:break-all}
.box{max-width:26em;margin:4em auto;padding:2em;border:1px solid #ddd;border-radius:6px}.box label{display:block;margin:.8em 0}.box input{width:100%;padding:.4em}
</style></head><body>
<header><strong>UTM monitor</strong>{{if .LoggedIn}}<a href="/">Boxes</a><a href="/alerts">Alerts</a><a href="/alerts?stars=3" id="nav-3">★★★</a>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button id="logout" type="submit">Log out</button></form>{{end}}</header>
<main>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "login"}}{{template "head" .}}
<div class="box"><h1>Log in</h1>
{{if .NeedSetup}}<p class="error" id="need-setup">No admin password is set yet. Open the one-time setup URL the monitor printed on its stderr.</p>{{end}}
{{with .Error}}<p class="error" id="login-error">{{.}}</p>{{end}}
<form method="post" action="/login"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<label>User <input name="user" id="user" value="admin" autocomplete="username"></label>
<label>Password <input type="password" name="password" id="password" autocomplete="current-password"></label>
<button type="submit" id="login">Log in</button></form></div>
{{template "foot" .}}{{end}}

{{define "setup"}}{{template "head" .}}
<div class="box"><h1>Set the admin password</h1><p>The user is <b>admin</b>. Choose a password of at least 10 characters.</p>
{{with .Error}}<p class="error" id="setup-error">{{.}}</p>{{end}}
<form method="post" action="/setup"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="token" value="{{.Token}}">
<label>Password <input type="password" name="password" id="password" autocomplete="new-password"></label>
<label>Again <input type="password" name="confirm" id="confirm" autocomplete="new-password"></label>
<button type="submit" id="setup">Set password</button></form></div>
{{template "foot" .}}{{end}}

{{define "alertrows"}}<table id="alerts"><tr><th>Time (UTC)</th><th>Stars</th><th>Box</th><th>Kind</th><th>Signature</th><th>Action</th><th>Source</th><th>Destination</th><th>Detail</th></tr>
{{range .}}{{$seq := .Seq}}{{$res := .Resolved}}{{with .Event}}<tr class="s{{printf "%d" .Stars}}"><td><a class="detail" href="/alerts/{{$seq}}">{{ts .Timestamp}}</a></td><td class="stars">{{stars .Stars}}{{if gt .Count 1}} <b class="count" title="{{.Count}} alerts merged by the box">×{{.Count}}</b>{{end}}</td><td>{{.BoxID}}</td><td>{{kind .}}</td>
{{with .Alert}}<td>{{.Signature}} <small>(sid {{.SignatureID}})</small></td><td class="{{.Action}}">{{.Action}}</td>{{else}}<td>{{.EventType}}</td><td></td>{{end}}
<td>{{.SrcIP}}{{if .SrcPort}}:{{.SrcPort}}{{end}}</td><td>{{.DestIP}}{{if .DestPort}}:{{.DestPort}}{{end}}</td>
<td>{{with .HTTP}}{{.Hostname}}{{.URL}} {{end}}{{with .DNS}}{{.RRName}} {{end}}{{with .FileInfo}}{{.Filename}} {{.Threat}} {{end}}{{with .Intel}}indicator {{.Indicator}} {{end}}{{with .Engine}}{{.Reason}} {{.Duration}} {{end}}{{if $res}}<b>resolved</b> {{end}}{{with .Summary}}<br><small>{{.}}</small>{{end}}</td></tr>{{end}}
{{else}}<tr><td colspan="9">No alerts.</td></tr>{{end}}
</table>{{end}}

{{define "index"}}{{template "head" .}}
<h1>Boxes</h1>
<table id="boxes"><tr><th>Box</th><th>State</th><th>Last heartbeat</th><th>Version</th><th>Signatures</th><th>Up</th><th>Waiting in spool</th><th>Counters</th><th>Report</th></tr>
{{$now := .Now}}{{range .Boxes}}<tr><td><a href="/alerts?box={{.BoxID}}">{{.BoxID}}</a></td><td class="{{if .Online}}online{{else}}offline{{end}}">{{if .Online}}online{{else}}offline{{end}}{{if .OfflineSeq}} <a href="/alerts/{{.OfflineSeq}}">since {{utc .OfflineSince}}</a>{{end}}</td>
<td>{{ago $now .LastHeartbeat}}</td><td>{{with .Heartbeat}}{{.Version}}{{end}}</td><td>{{with .Heartbeat}}{{.Signatures}}{{end}}</td>
<td>{{with .Heartbeat}}{{.UptimeS}} s{{end}}</td><td>{{with .Heartbeat}}{{.Spooled}}{{end}}</td><td><small>{{with .Heartbeat}}{{counters .Counters}}{{end}}</small></td>
<td><a href="/boxes/{{.BoxID}}/report">this month</a></td></tr>
{{else}}<tr><td colspan="9">No box has reported yet.</td></tr>{{end}}
</table>
<h2>Alerts, last 7 days</h2>
{{.Chart}}
<h2>Latest alerts</h2>
{{template "alertrows" .Alerts}}
<p><small>Page generated {{utc .Now}}; refreshes every {{.Refresh}} s.</small></p>
{{template "foot" .}}{{end}}

{{define "alerts"}}{{template "head" .}}
<h1>Alerts</h1>
<form class="filters" method="get" action="/alerts">
<label>Stars<select name="stars" id="f-stars"><option value="">any</option>{{range $s := starOpts}}<option value="{{$s}}"{{if sel $s $.F.Stars}} selected{{end}}>{{$s}}</option>{{end}}</select></label>
<label>Box<select name="box" id="f-box"><option value="">any</option>{{range .BoxIDs}}<option{{if sel . $.F.Box}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>Kind<select name="kind" id="f-kind"><option value="">any</option>{{range .Kinds}}<option{{if sel . $.F.Kind}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>From<input type="date" name="from" id="f-from" value="{{.F.From}}"></label>
<label>To<input type="date" name="to" id="f-to" value="{{.F.To}}"></label>
<button type="submit" id="filter">Filter</button></form>
{{.Chart}}
{{template "alertrows" .Alerts}}
<p>{{with .PrevURL}}<a href="{{.}}" id="prev">← newer</a> {{end}}page {{.Page}}{{with .NextURL}} <a href="{{.}}" id="next">older →</a>{{end}}</p>
{{template "foot" .}}{{end}}

{{define "alert"}}{{template "head" .}}
{{with .Rec}}<h1>Alert {{.Seq}}: {{stars .Event.Stars}} {{with .Event.Alert}}{{.Signature}}{{else}}{{.Event.EventType}}{{end}}</h1>
<p>Received {{utc .Received}}. Kind: {{kind .Event}}.{{with .Resolved}} <b id="resolved">Resolved {{utc .At}}</b> by <a href="{{$.ResolvedByLink}}">event {{.Seq}}</a>.{{end}}</p>{{end}}
<h2>Evidence (every stored field)</h2>
<dl class="fields" id="fields">{{range .Fields}}<dt>{{.Key}}</dt><dd>{{.Value}}</dd>{{end}}</dl>
{{template "foot" .}}{{end}}
`))
