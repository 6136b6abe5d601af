// Package lab builds the network-namespace lab of `make demo` and the lab
// tests, and drives it. Dev-only: imported by hack/demo, hack/labhost and
// the tests in this directory, never by the product.
//
//	utm-client  eth0 198.18.1.2/24 ── lan0 ┐
//	                                       utm-box (utmd inline, NFQUEUE)   mgmt0 198.18.9.2/30 ── host utm-mgmt 198.18.9.1 (monitor)
//	utm-inet    eth0 198.18.2.2,.53,.66 ── wan0 ┘
//
// Every address is in 198.18.0.0/15 or 2001:2::/48, the benchmarking
// ranges (the client is also 2001:2:0:1::2, the web server 2001:2:0:2::2); nothing
// leaves the machine. Teardown kills every process the lab started and
// deletes its namespaces and links; New first removes leftovers of a lab
// that crashed.
package lab

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names and addresses of the lab.
const (
	NSClient = "utm-client"
	NSBox    = "utm-box"
	NSInet   = "utm-inet"
	HostLink = "utm-mgmt"

	ClientIP = "198.18.1.2"
	WebIP    = "198.18.2.2"
	// IPv6 uses the benchmarking range 2001:2::/48 (RFC 5180).
	ClientIP6  = "2001:2:0:1::2"
	WebIP6     = "2001:2:0:2::2"
	WebDomain6 = "www6.lab.test"
	DNSIP      = "198.18.2.53"
	CNCIP      = "198.18.2.66"
	MonitorIP  = "198.18.9.1"
	NATSURL    = "nats://198.18.9.1:4222"
	PortalURL  = "http://198.18.9.1:8080/"
	BoxID      = "lab-box-1"
	CNCDomain  = "cnc.utm-lab.test"
	WebDomain  = "www.lab.test"
	natsListen = "198.18.9.1:4222"
	httpListen = "198.18.9.1:8080"
)

// Lab is a running lab.
type Lab struct {
	Dir        string // logs and state
	Bin        string // directory with utmd, monitor, labhost
	mu         sync.Mutex
	procs      map[string]*Proc
	inspecting int // "inspecting" lines seen in utmd.log so far
}

// Proc is a process the lab started.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// Exited reports whether the process ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func sh(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func nsExec(ns string, args ...string) error {
	return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// CheckRoot returns an error unless the lab can run here.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, iptables, NFQUEUE)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab needs %s: apt-get install iproute2 iptables", tool)
		}
	}
	return nil
}

// New removes leftovers of an earlier lab and builds the topology. dir
// receives logs and state; bin holds the binaries.
func New(dir, bin string) (*Lab, error) {
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	for _, b := range []string{"utmd", "monitor", "labhost"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s/%s is missing: run make build", bin, b)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir, Bin: bin, procs: map[string]*Proc{}}
	Cleanup()
	if err := l.topology(); err != nil {
		Cleanup()
		return nil, err
	}
	return l, nil
}

func (l *Lab) topology() error {
	steps := [][]string{
		{"ip", "netns", "add", NSClient},
		{"ip", "netns", "add", NSBox},
		{"ip", "netns", "add", NSInet},
		{"ip", "link", "add", "lan0", "netns", NSBox, "type", "veth", "peer", "name", "eth0", "netns", NSClient},
		{"ip", "link", "add", "wan0", "netns", NSBox, "type", "veth", "peer", "name", "eth0", "netns", NSInet},
		{"ip", "link", "add", HostLink, "type", "veth", "peer", "name", "mgmt0", "netns", NSBox},
		{"ip", "addr", "add", MonitorIP + "/30", "dev", HostLink},
		{"ip", "link", "set", HostLink, "up"},
		{"ip", "-n", NSClient, "addr", "add", ClientIP + "/24", "dev", "eth0"},
		{"ip", "-n", NSClient, "link", "set", "lo", "up"},
		{"ip", "-n", NSClient, "link", "set", "eth0", "up"},
		{"ip", "-n", NSClient, "route", "add", "default", "via", "198.18.1.1"},
		{"ip", "-n", NSInet, "addr", "add", WebIP + "/24", "dev", "eth0"},
		{"ip", "-n", NSInet, "addr", "add", DNSIP + "/24", "dev", "eth0"},
		{"ip", "-n", NSInet, "addr", "add", CNCIP + "/24", "dev", "eth0"},
		{"ip", "-n", NSInet, "link", "set", "lo", "up"},
		{"ip", "-n", NSInet, "link", "set", "eth0", "up"},
		{"ip", "-n", NSInet, "route", "add", "default", "via", "198.18.2.1"},
		{"ip", "-n", NSBox, "addr", "add", "198.18.1.1/24", "dev", "lan0"},
		{"ip", "-n", NSBox, "addr", "add", "198.18.2.1/24", "dev", "wan0"},
		{"ip", "-n", NSBox, "addr", "add", "198.18.9.2/30", "dev", "mgmt0"},
		{"ip", "-n", NSBox, "link", "set", "lo", "up"},
		{"ip", "-n", NSBox, "link", "set", "mgmt0", "up"},
		{"ip", "netns", "exec", NSBox, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", NSBox, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "-n", NSClient, "addr", "add", ClientIP6 + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", NSClient, "route", "add", "default", "via", "2001:2:0:1::1"},
		{"ip", "-n", NSInet, "addr", "add", WebIP6 + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", NSInet, "route", "add", "default", "via", "2001:2:0:2::1"},
		{"ip", "-n", NSBox, "addr", "add", "2001:2:0:1::1/64", "dev", "lan0", "nodad"},
		{"ip", "-n", NSBox, "addr", "add", "2001:2:0:2::1/64", "dev", "wan0", "nodad"},
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return fmt.Errorf("lab topology: %w", err)
		}
	}
	return nil
}

// Cleanup removes everything a lab creates, whether or not it exists:
// processes inside the namespaces, the namespaces, the host link.
func Cleanup() {
	for _, ns := range []string{NSClient, NSBox, NSInet} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				fmt.Sscan(f, &pid)
				if pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	// The monitor runs in the host namespace; find it by its listen address.
	if out, err := exec.Command("pgrep", "-f", "monitor .*--nats-listen "+natsListen).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			fmt.Sscan(f, &pid)
			if pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, ns := range []string{NSClient, NSBox, NSInet} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", HostLink).Run()
}

// start runs a process (in ns, or the host namespace when ns is "") with
// its output in Dir/<name>.log.
func (l *Lab) start(name, ns string, args ...string) (*Proc, error) {
	logPath := filepath.Join(l.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	l.mu.Lock()
	l.procs[name] = p
	l.mu.Unlock()
	return p, nil
}

func (l *Lab) inspectingSeen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inspecting
}

// Proc returns the process started under name.
func (l *Lab) Proc(name string) *Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// StartServers starts the internet side's web and DNS servers.
func (l *Lab) StartServers() error {
	_, err := l.start("labhost", NSInet, filepath.Join(l.Bin, "labhost"), "serve",
		"--http", WebIP+":80", "--http", CNCIP+":80", "--http", "["+WebIP6+"]:80", "--dns", DNSIP+":53",
		"--smtp", WebIP+":25")
	if err != nil {
		return err
	}
	return waitFor(10*time.Second, "lab web server", func() bool {
		return nsExec(NSInet, "bash", "-c", "exec 3<>/dev/tcp/"+WebIP+"/80") == nil
	})
}

// StartMonitor starts the central monitor in the host namespace.
func (l *Lab) StartMonitor() error {
	tokenFile := filepath.Join(l.Dir, "portal-read-token")
	if err := os.WriteFile(tokenFile, []byte(readToken), 0o600); err != nil {
		return err
	}
	_, err := l.start("monitor", "", filepath.Join(l.Bin, "monitor"), "--data", filepath.Join(l.Dir, "monitor-data"),
		"--nats-listen", natsListen, "--http", httpListen, "--offline-after", "6s", "--read-token-file", tokenFile)
	if err != nil {
		return err
	}
	return waitFor(15*time.Second, "monitor /healthz", func() bool {
		_, err := Get(PortalURL + "healthz")
		return err == nil
	})
}

// StopMonitor stops the monitor with SIGTERM and waits for it.
func (l *Lab) StopMonitor() error { return l.stop("monitor", syscall.SIGTERM) }

// StartUTMD starts the box daemon and waits until the monitor sees its
// heartbeat, i.e. it is inspecting and reporting.
func (l *Lab) StartUTMD(extra ...string) error {
	args := append([]string{filepath.Join(l.Bin, "utmd"), "--board", "lab", "--box-id", BoxID, "--nats", NATSURL,
		"--data", filepath.Join(l.Dir, "box-data"), "-l", filepath.Join(l.Dir, "box-log")}, extra...)
	p, err := l.start("utmd", NSBox, args...)
	if err != nil {
		return err
	}
	return waitFor(20*time.Second, "utmd inspecting (its log says so)", func() bool {
		if p.Exited() {
			return true
		}
		b, _ := os.ReadFile(p.Log)
		return bytes.Count(b, []byte("msg=inspecting")) > l.inspectingSeen()
	}, func() error {
		if p.Exited() {
			return fmt.Errorf("utmd exited: %v (see %s)", p.err, p.Log)
		}
		l.mu.Lock()
		l.inspecting++
		l.mu.Unlock()
		return nil
	})
}

// KillUTMD kills the box daemon with SIGKILL, as a crash would.
func (l *Lab) KillUTMD() error { return l.stop("utmd", syscall.SIGKILL) }

// StopUTMD stops the box daemon cleanly.
func (l *Lab) StopUTMD() error { return l.stop("utmd", syscall.SIGTERM) }

func (l *Lab) stop(name string, sig syscall.Signal) error {
	p := l.Proc(name)
	if p == nil || p.Exited() {
		return nil
	}
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 10s of %v; killed", name, sig)
	}
}

// Teardown stops every process and removes the lab.
func (l *Lab) Teardown() {
	l.mu.Lock()
	procs := make([]*Proc, 0, len(l.procs))
	for _, p := range l.procs {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			p.Cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.Cmd.Process.Kill()
			<-p.done
		}
	}
	Cleanup()
}

// FetchResult is what the office client saw.
type FetchResult struct {
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Bytes    int64  `json:"bytes"`
	Length   int64  `json:"length"`
	SHA256   string `json:"sha256"`
	Complete bool   `json:"complete"`
	Error    string `json:"error"`
	Millis   int64  `json:"ms"`
}

// Fetch runs an HTTP GET from the office client through the box.
func (l *Lab) Fetch(ctx context.Context, url string, opts ...string) (FetchResult, error) {
	args := append([]string{"netns", "exec", NSClient, filepath.Join(l.Bin, "labhost"), "fetch", "--dns", DNSIP + ":53"}, opts...)
	args = append(args, url)
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	var r FetchResult
	if err != nil {
		return r, fmt.Errorf("fetch %s: %w", url, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return r, fmt.Errorf("fetch %s: bad output %q: %w", url, out, err)
	}
	return r, nil
}

// Record is an alert as the monitor stores it.
type Record struct {
	Seq      uint64          `json:"seq"`
	Received time.Time       `json:"received"`
	Event    json.RawMessage `json:"event"`
	Alert    Alert           `json:"-"`
}

// Alert is the part of an alert the lab checks.
type Alert struct {
	EventType string `json:"event_type"`
	SrcIP     string `json:"src_ip"`
	DestIP    string `json:"dest_ip"`
	Stars     int    `json:"stars"`
	BoxID     string `json:"box_id"`
	ID        string `json:"id"`
	Summary   string `json:"summary"`
	Alert     struct {
		Action      string `json:"action"`
		SignatureID int    `json:"signature_id"`
		Signature   string `json:"signature"`
	} `json:"alert"`
	Email *struct {
		From    string `json:"from"`
		Subject string `json:"subject"`
	} `json:"email"`
}

// Alerts returns the monitor's alerts with seq > since.
func Alerts(since uint64) ([]Record, error) {
	b, err := Get(fmt.Sprintf("%sapi/alerts?since=%d", PortalURL, since))
	if err != nil {
		return nil, err
	}
	var recs []Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, err
	}
	for i := range recs {
		json.Unmarshal(recs[i].Event, &recs[i].Alert)
	}
	return recs, nil
}

// Get fetches url from the host namespace (the monitor's portal).
func Get(url string) ([]byte, error) {
	c := http.Client{Timeout: 3 * time.Second}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	// The portal needs a login; the lab reads it with a read-only token.
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// waitFor polls cond every 50 ms until it holds or d passes; then runs
// after (if given) and returns its error.
func waitFor(d time.Duration, what string, cond func() bool, after ...func() error) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, a := range after {
		if err := a(); err != nil {
			return err
		}
	}
	return nil
}

// WaitFor polls cond every 50 ms until it holds or d passes.
func WaitFor(d time.Duration, what string, cond func() bool) error { return waitFor(d, what, cond) }

// ProbeResult is how the office's traffic fared during a probe.
type ProbeResult struct {
	Sent     int   `json:"sent"`
	OK       int   `json:"ok"`
	MaxGapMS int64 `json:"max_gap_ms"`
}

// Probe requests url from the office client every interval for d and
// reports the longest stretch without an answer. It runs until d passed.
func (l *Lab) Probe(ctx context.Context, url string, every, d time.Duration) (ProbeResult, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", NSClient, filepath.Join(l.Bin, "labhost"), "probe",
		"--every", every.String(), "--for", d.String(), url).Output()
	var r ProbeResult
	if err != nil {
		return r, fmt.Errorf("probe %s: %w", url, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return r, fmt.Errorf("probe %s: bad output %q: %w", url, out, err)
	}
	return r, nil
}

// MailResult is what the office client's mail attempt ended with.
type MailResult struct {
	Accepted bool   `json:"accepted"` // the server answered 250 to the end of DATA
	Error    string `json:"error,omitempty"`
}

// Mail has the office client send MailMessage(eicar) to the lab's mail
// server (WebIP:25) through the box.
func (l *Lab) Mail(ctx context.Context, eicar bool) (MailResult, error) {
	args := []string{"netns", "exec", NSClient, filepath.Join(l.Bin, "labhost"), "mail", "--server", WebIP + ":25"}
	if eicar {
		args = append(args, "--eicar")
	}
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	var r MailResult
	if err != nil {
		return r, fmt.Errorf("mail: %w", err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return r, fmt.Errorf("mail: bad output %q: %w", out, err)
	}
	return r, nil
}

// SMTPAccepted counts the messages the lab mail server accepted so far.
func (l *Lab) SMTPAccepted() int {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "labhost.log"))
	return bytes.Count(b, []byte(SMTPAcceptedLog))
}

// readToken is the lab's read-only portal token (monitor --read-token-file),
// random per process.
var readToken = func() string {
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}()
