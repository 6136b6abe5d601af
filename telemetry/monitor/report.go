package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

// ErrReport: the PDF of a report cannot be made (no chromium, or it
// failed); the HTML report still works.
var ErrReport = errors.New("monitor: report PDF not available")

// Report is one box's monthly report: what the portal shows at
// /boxes/{box}/report?month=YYYY-MM and prints to PDF at report.pdf.
type Report struct {
	Box       string
	Month     time.Time // first instant of the month, UTC
	End       time.Time // first instant of the next month
	Generated time.Time
	Total     int
	ByStars   [4]int
	ByKind    []Count // every kind, in Kinds order
	Threats   []Count // top 10 threat names (file threat, intel family or indicator)
	Sigs      []Count // top 10 signatures
	Offline   []Period
	Chart     template.HTML // alerts per day
	Health    *Box          // the box's registry entry, if known
}

// Count is a name and how often it occurred.
type Count struct {
	Name string
	N    int
}

// Period is a time the box was offline.
type Period struct {
	From, To time.Time // To zero: still offline at the end of the report
	Seq      uint64    // the box offline alert
}

// Duration is the period's length, up to end when it is still open.
func (p Period) Duration(end time.Time) time.Duration {
	to := p.To
	if to.IsZero() || to.After(end) {
		to = end
	}
	return to.Sub(p.From).Round(time.Second)
}

// parseMonth reads YYYY-MM (empty: the current month).
func parseMonth(s string, now time.Time) (time.Time, error) {
	if s == "" {
		n := now.UTC()
		return time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, time.UTC), nil
	}
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("month %q: use YYYY-MM, e.g. 2026-11", s)
	}
	return t, nil
}

func top(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// threatName is what the report counts an alert under as a threat, or "".
func threatName(ev *alert.Event) string {
	switch {
	case ev.FileInfo != nil && ev.FileInfo.Threat != "":
		return ev.FileInfo.Threat
	case ev.Intel != nil && ev.Intel.Family != "":
		return ev.Intel.Family
	case ev.Intel != nil:
		return ev.Intel.Indicator
	}
	return ""
}

// Report builds box's report for the month starting at month (UTC).
func (m *Monitor) Report(box string, month time.Time) (*Report, error) {
	month = time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	r := &Report{Box: box, Month: month, End: month.AddDate(0, 1, 0), Generated: m.now().UTC()}
	kinds, threats, sigs := map[string]int{}, map[string]int{}, map[string]int{}
	for off := 0; ; off += 1000 {
		recs, more, err := m.st.query(Filter{Box: box, From: r.Month, To: r.End}, off, 1000)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			ev := rec.Event
			n := max(ev.Count, 1) // a record the box merged stands for Count alerts
			r.Total += n
			if ev.Stars >= 1 && ev.Stars <= 3 {
				r.ByStars[ev.Stars] += n
			}
			kinds[KindOf(ev)] += n
			if t := threatName(ev); t != "" {
				threats[t] += n
			}
			if ev.Alert != nil {
				sigs[ev.Alert.Signature] += n
			}
			if ev.Engine != nil && ev.Engine.Reason == ReasonBoxOffline {
				p := Period{From: ev.Timestamp.Time().UTC(), Seq: rec.Seq}
				if d, err := time.ParseDuration(ev.Engine.Duration); err == nil {
					p.From = p.From.Add(-d) // the last heartbeat
				}
				if rec.Resolved != nil {
					p.To = rec.Resolved.At.UTC()
				}
				r.Offline = append(r.Offline, p)
			}
		}
		if !more {
			break
		}
	}
	for _, k := range Kinds {
		r.ByKind = append(r.ByKind, Count{k, kinds[k]})
	}
	r.Threats, r.Sigs = top(threats, 10), top(sigs, 10)
	sort.Slice(r.Offline, func(i, j int) bool { return r.Offline[i].From.Before(r.Offline[j].From) })
	days := int(r.End.Sub(r.Month) / (24 * time.Hour))
	bins, err := m.st.histogram(Filter{Box: box, From: r.Month, To: r.End}, days)
	if err != nil {
		return nil, err
	}
	r.Chart = chartSVG(bins, 24*time.Hour)
	for _, b := range m.Boxes() {
		if b.BoxID == box {
			b := b
			r.Health = &b
		}
	}
	return r, nil
}

func (m *Monitor) reportFor(w http.ResponseWriter, r *http.Request) (*Report, bool) {
	month, err := parseMonth(r.URL.Query().Get("month"), m.now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	rep, err := m.Report(r.PathValue("box"), month)
	if err != nil {
		m.log.Error("cannot build a report", "box", r.PathValue("box"), "err", err)
		http.Error(w, "cannot read the alert store", http.StatusInternalServerError)
		return nil, false
	}
	return rep, true
}

func (m *Monitor) handleReport(w http.ResponseWriter, r *http.Request, s session) {
	if rep, ok := m.reportFor(w, r); ok {
		m.render(w, "report", pageData{Title: "Report " + rep.Box + " " + rep.Month.Format("2006-01"), CSRF: s.csrf, LoggedIn: true, Report: rep})
	}
}

func (m *Monitor) handleReportPDF(w http.ResponseWriter, r *http.Request, s session) {
	rep, ok := m.reportFor(w, r)
	if !ok {
		return
	}
	pdf, err := m.ReportPDF(r.Context(), rep)
	if err != nil {
		m.log.Error("cannot print the report to PDF", "box", rep.Box, "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="utm-report-%s-%s.pdf"`, safeFile(rep.Box), rep.Month.Format("2006-01")))
	w.Write(pdf)
}

func safeFile(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ReportHTML renders rep as a standalone HTML document (no navigation).
func (m *Monitor) ReportHTML(rep *Report) ([]byte, error) {
	var buf bytes.Buffer
	err := pages.ExecuteTemplate(&buf, "report", pageData{Title: "Report " + rep.Box + " " + rep.Month.Format("2006-01"), Report: rep, Now: m.now()})
	return buf.Bytes(), err
}

// ReportPDF prints rep to PDF with headless Chromium (Debian package
// chromium), from a file in a private temporary directory: no network.
func (m *Monitor) ReportPDF(ctx context.Context, rep *Report) ([]byte, error) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("%w: chromium is not installed (apt-get install chromium)", ErrReport)
	}
	html, err := m.ReportHTML(rep)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "utm-report-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReport, err)
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "report.html"), filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(in, html, 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReport, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-pdf-header-footer", "--no-proxy-server", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--print-to-pdf="+out, "file://"+in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: chromium: %v: %s", ErrReport, err, lastLine(msg))
	}
	pdf, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return nil, fmt.Errorf("%w: chromium wrote no PDF (%v)", ErrReport, err)
	}
	return pdf, nil
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

func init() {
	template.Must(pages.Funcs(template.FuncMap{
		"dur": func(p Period, end time.Time) string { return p.Duration(end).String() },
	}).Parse(`
{{define "report"}}{{template "head" .}}{{with .Report}}
<h1>Monthly report: box {{.Box}}, {{.Month.Format "January 2006"}}</h1>
{{if $.LoggedIn}}<p><a id="pdf" href="report.pdf?month={{.Month.Format "2006-01"}}">PDF</a> · <a href="report?month={{(.Month.AddDate 0 -1 0).Format "2006-01"}}">previous month</a></p>{{end}}
<p>Period {{utc .Month}} to {{utc .End}}. Generated {{utc .Generated}}.{{with .Health}} Box version {{with .Heartbeat}}{{.Version}}{{end}}, last heartbeat {{utc .LastHeartbeat}}.{{end}}</p>
<h2>Alerts</h2>
<table id="report-stars"><tr><th>Total</th><th>★★★</th><th>★★</th><th>★</th></tr>
<tr><td id="total">{{.Total}}</td><td id="stars3">{{index .ByStars 3}}</td><td id="stars2">{{index .ByStars 2}}</td><td id="stars1">{{index .ByStars 1}}</td></tr></table>
<table id="report-kinds"><tr><th>Kind</th><th>Count</th></tr>{{range .ByKind}}<tr><td>{{.Name}}</td><td class="kind-{{.Name}}">{{.N}}</td></tr>{{end}}</table>
<h2>Alerts per day</h2>
{{.Chart}}
<h2>Top threats</h2>
<table id="report-threats"><tr><th>Threat</th><th>Alerts</th></tr>{{range .Threats}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>{{else}}<tr><td colspan="2">None.</td></tr>{{end}}</table>
<h2>Top signatures</h2>
<table id="report-sigs"><tr><th>Signature</th><th>Alerts</th></tr>{{range .Sigs}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>{{else}}<tr><td colspan="2">None.</td></tr>{{end}}</table>
<h2>Offline periods</h2>
{{$end := .End}}<table id="report-offline"><tr><th>From (last heartbeat)</th><th>To (back online)</th><th>Duration</th></tr>{{range .Offline}}<tr><td>{{utc .From}}</td><td>{{if .To.IsZero}}still offline{{else}}{{utc .To}}{{end}}</td><td>{{dur . $end}}</td></tr>{{else}}<tr><td colspan="3">None: the box reported all month.</td></tr>{{end}}</table>
{{end}}{{template "foot" .}}{{end}}
`))
}
