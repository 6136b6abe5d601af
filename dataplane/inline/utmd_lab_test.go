//go:build linux

package inline

// These tests run the utmd binary in -q mode in the router namespace of a
// throwaway nslab, with their own NFQUEUE --queue-balance 0:1
// --queue-bypass rules, and check what an office would: downloads pass,
// the EICAR file is blocked (or passes with --inspect=none), both queues
// get flows, a killed or hung utmd does not cut a transfer, and the
// supervisor restarts a killed child.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
)

var (
	buildOnce sync.Once
	utmdBin   string
	buildErr  error
)

// buildUTMD builds firmware/cmd/utmd once per test binary.
func buildUTMD(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "inline-utmd")
		if err != nil {
			buildErr = err
			return
		}
		utmdBin = filepath.Join(dir, "utmd")
		if out, err := exec.Command("go", "build", "-o", utmdBin, "../../firmware/cmd/utmd").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building utmd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return utmdBin
}

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

type lab struct {
	*nslab.Lab
	dir    string
	bigSum [32]byte
	big    []byte
}

const bigSize = 2 << 20

// clientAddrs is how many extra client addresses the lab has
// (198.18.100.10 and up); requests rotate over them.
const clientAddrs = 8

var nextClient atomicCounter

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) next() int { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }

// newLab builds the namespaces, steers everything the router forwards to
// queues 0 and 1 (both directions of a connection hash alike) with
// --queue-bypass, and serves /big (2 MiB), /slow (the same, paced over
// about 3 s) and /eicar from the server namespace.
func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{Lab: nslab.New(t), dir: t.TempDir()}
	// --queue-balance hashes the addresses only: clients on several
	// addresses spread over the queues.
	for i := 10; i < 10+clientAddrs; i++ {
		nslab.Run(t, "ip", "-n", l.ClientName(), "addr", "add", fmt.Sprintf("198.18.100.%d/24", i), "dev", "c0")
	}
	nslab.Exec(t, l.RouterName(), "iptables", "-w", "5", "-A", "FORWARD", "-j", "NFQUEUE",
		"--queue-balance", "0:1", "--queue-bypass")
	l.big = bytes.Repeat([]byte("0123456789abcdef"), bigSize/16)
	l.bigSum = sha256.Sum256(l.big)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(l.big) })
	mux.HandleFunc("/eicar", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, eicar) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(l.big)))
		for off := 0; off < len(l.big); off += 64 << 10 {
			if _, err := w.Write(l.big[off : off+64<<10]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(nslab.ServerAddr.String(), "80"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l
}

// client is an HTTP client whose connections are made in the client
// namespace, one new connection (so a new flow) per request.
func (l *lab) client() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = nslab.Do(l.Client, func() error {
					src := net.ParseIP(fmt.Sprintf("198.18.100.%d", 10+nextClient.next()%clientAddrs))
					d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
					c, err = d.DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

func (l *lab) get(path string) ([]byte, error) {
	resp, err := l.client().Get("http://" + nslab.ServerAddr.String() + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// proc is a running utmd with its log.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuf
	done chan struct{}
	err  error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startUTMD runs utmd ARGS in the router namespace and waits until it
// logs n "inspecting" lines (n=1: it is reading its queues).
func (l *lab) startUTMD(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	bin := buildUTMD(t)
	p := &proc{log: &syncBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", l.RouterName(), bin}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the group: a supervisor's child too
		<-p.done
		if t.Failed() {
			t.Logf("utmd log:\n%s", p.log.String())
		}
	})
	p.waitLog(t, "msg=inspecting", 1)
	return p
}

// waitLog polls the log until substr appears n times.
func (p *proc) waitLog(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.log.String(), substr) < n {
		select {
		case <-p.done:
			if strings.Count(p.log.String(), substr) >= n {
				return
			}
			t.Fatalf("utmd exited (%v) before logging %q %d times:\n%s", p.err, substr, n, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("utmd did not log %q %d times within 30 s:\n%s", substr, n, p.log.String())
		}
	}
}

// metrics scrapes utmd's /metrics inside the router namespace.
func (l *lab) metrics(t *testing.T, p *proc) string {
	t.Helper()
	m := regexp.MustCompile(`url=http://([0-9.:]+)/metrics`).FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("utmd did not log its metrics address:\n%s", p.log.String())
	}
	var body []byte
	err := nslab.Do(l.Router, func() error {
		c, err := net.Dial("tcp4", m[1])
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
		body, err = io.ReadAll(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in:\n%s", series, body)
	return 0
}

type eveEvent struct {
	EventType string `json:"event_type"`
	Alert     struct {
		SignatureID int    `json:"signature_id"`
		Signature   string `json:"signature"`
	} `json:"alert"`
	Engine *struct {
		Reason   string `json:"reason"`
		Queue    *int   `json:"queue"`
		Duration string `json:"duration"`
		Count    uint64 `json:"count"`
		Steered  uint64 `json:"steered"`
	} `json:"engine"`
	Stars int `json:"stars"`
}

func (l *lab) events(t *testing.T) []eveEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "eve.json"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []eveEvent
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e eveEvent
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("eve.json line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// Full inspection on two queues: downloads pass intact, the EICAR file is
// blocked, both queues inspect flows, and a clean stop exits 0.
func TestUTMDTwoQueues(t *testing.T) {
	l := newLab(t)
	p := l.startUTMD(t, nil, "-q", "0:1", "-l", l.dir, "--metrics", "127.0.0.1:0")
	for i := 0; i < 16; i++ {
		b, err := l.get("/big")
		if err != nil || sha256.Sum256(b) != l.bigSum {
			t.Fatalf("download %d through the router: %d bytes, err %v; want %d intact bytes", i, len(b), err, bigSize)
		}
	}
	if b, err := l.get("/eicar"); err == nil && bytes.Contains(b, []byte("EICAR-STANDARD")) {
		t.Fatal("the EICAR file passed a fully inspecting utmd")
	}
	body := l.metrics(t, p)
	q0 := metricValue(t, body, `utm_packets_total{queue="0"}`)
	q1 := metricValue(t, body, `utm_packets_total{queue="1"}`)
	t.Logf("packets per queue: q0 %v, q1 %v", q0, q1)
	if q0 < 100 || q1 < 100 {
		t.Fatalf("packets per queue q0 %v q1 %v: want both queues to inspect flows (16 connections from 8 addresses, --queue-balance 0:1)", q0, q1)
	}
	var blocked bool
	for _, e := range l.events(t) {
		blocked = blocked || (e.EventType == "alert" && e.Alert.SignatureID == 2210001)
	}
	if !blocked {
		t.Fatal("eve.json has no EICAR alert (sid 2210001)")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if p.err != nil {
		t.Fatalf("utmd after SIGTERM: %v, want exit 0", p.err)
	}
}

// --inspect=none accepts everything, the EICAR file included, and still
// counts the packets.
func TestUTMDInspectNone(t *testing.T) {
	l := newLab(t)
	p := l.startUTMD(t, nil, "-q", "0:1", "-l", l.dir, "--inspect=none", "--metrics", "127.0.0.1:0")
	if b, err := l.get("/eicar"); err != nil || string(b) != eicar {
		t.Fatalf("EICAR through --inspect=none: %q, %v; want it to pass", b, err)
	}
	if b, err := l.get("/big"); err != nil || sha256.Sum256(b) != l.bigSum {
		t.Fatalf("download: %d bytes, %v", len(b), err)
	}
	body := l.metrics(t, p)
	n := metricValue(t, body, `utm_packets_total{queue="0"}`) + metricValue(t, body, `utm_packets_total{queue="1"}`)
	if n < 20 {
		t.Fatalf("utmd --inspect=none saw %v packets; want every packet of the transfers", n)
	}
	for _, e := range l.events(t) {
		if e.EventType == "alert" {
			t.Fatalf("--inspect=none raised an alert: %+v", e)
		}
	}
}

// Killing utmd in the middle of a transfer does not cut it: the kernel
// accepts while nobody listens (--queue-bypass).
func TestUTMDKilledMidTransfer(t *testing.T) {
	l := newLab(t)
	p := l.startUTMD(t, nil, "-q", "0:1", "-l", l.dir)
	resp, err := l.client().Get("http://" + nslab.ServerAddr.String() + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 256<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("first 256 KiB: %v", err)
	}
	p.cmd.Process.Kill()
	<-p.done
	rest, err := io.ReadAll(resp.Body)
	got := append(head, rest...)
	if err != nil || sha256.Sum256(got) != l.bigSum {
		t.Fatalf("after utmd was killed the transfer got %d of %d bytes (err %v); want it to complete intact", len(got), bigSize, err)
	}
}

// A worker stuck on a packet (test hook) is found by the watchdog: utmd
// alerts (sid 2230004 with the queue), exits with status 3, and traffic
// goes on uninspected.
func TestUTMDWatchdogExits(t *testing.T) {
	l := newLab(t)
	p := l.startUTMD(t, []string{"UTMD_TEST_HANG_ON=UTMD-HANG-PROBE"}, "-q", "0:1", "-l", l.dir, "--hang-after", "300ms")
	// One datagram carrying the marker, sent from the client.
	if err := nslab.Do(l.Client, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(nslab.ServerAddr.String(), "9999"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("UTMD-HANG-PROBE"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("utmd did not exit within 20 s of a worker hanging")
	}
	t.Logf("utmd exited %v after the hanging packet (limit 300ms)", time.Since(sent).Round(time.Millisecond))
	var ee *exec.ExitError
	if !errorsAs(p.err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("utmd exit: %v, want status 3 (worker failed)", p.err)
	}
	if log := p.log.String(); !strings.Contains(log, "engine worker failed") || !strings.Contains(log, "supervisor restarts") {
		t.Fatalf("the log does not say what happened and what follows:\n%s", log)
	}
	var alerted bool
	for _, e := range l.events(t) {
		if e.Alert.SignatureID == 2230004 && e.Stars == 2 && e.Engine != nil && e.Engine.Queue != nil &&
			e.Engine.Reason == "worker-hung" && e.Engine.Duration != "" {
			alerted = true
		}
	}
	if !alerted {
		t.Fatalf("eve.json has no ★★ sid 2230004 alert with the queue and duration: %+v", l.events(t))
	}
	if b, err := l.get("/big"); err != nil || sha256.Sum256(b) != l.bigSum {
		t.Fatalf("download with utmd gone: %d bytes, %v; want it to pass (--queue-bypass)", len(b), err)
	}
}

// utmd --supervise restarts a child killed with SIGKILL at once.
func TestUTMDSupervisorRestarts(t *testing.T) {
	l := newLab(t)
	p := l.startUTMD(t, nil, "--supervise", "-q", "0:1", "-l", l.dir)
	pidRE := regexp.MustCompile(`supervisor: utmd started" pid=(\d+)`)
	m := pidRE.FindAllStringSubmatch(p.log.String(), -1)
	if len(m) != 1 {
		t.Fatalf("want one child start in the log:\n%s", p.log.String())
	}
	pid, _ := strconv.Atoi(m[0][1])
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "msg=inspecting", 2)
	t.Logf("child killed and inspecting again after %v", time.Since(killed).Round(time.Millisecond))
	m = pidRE.FindAllStringSubmatch(p.log.String(), -1)
	if len(m) != 2 || m[1][1] == m[0][1] {
		t.Fatalf("want a second child with a new pid:\n%s", p.log.String())
	}
	if !strings.Contains(p.log.String(), "utmd died; restarting it") {
		t.Fatalf("the restart is not logged:\n%s", p.log.String())
	}
	if b, err := l.get("/big"); err != nil || sha256.Sum256(b) != l.bigSum {
		t.Fatalf("download through the restarted utmd: %d bytes, %v", len(b), err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if p.err != nil {
		t.Fatalf("supervisor after SIGTERM: %v, want exit 0", p.err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// A worker stuck long enough for its queue to fill: the kernel fails the
// overflow open, and utmd reports it once as a ★★ sid 2230003 alert with
// the counts, and in its metrics.
func TestUTMDFailOpenReported(t *testing.T) {
	l := newLab(t)
	cfg := filepath.Join(l.dir, "utmd.json")
	os.WriteFile(cfg, []byte(`{"heartbeat": "500ms"}`), 0o644)
	p := l.startUTMD(t, []string{"UTMD_TEST_HANG_ON=UTMD-HANG-PROBE"}, "-q", "0:1", "-l", l.dir, "-c", cfg,
		"--hang-after", "1m", "--metrics", "127.0.0.1:0")
	// The probe hangs the worker of this address pair's queue; the
	// datagrams after it fill the queue (4096) and overflow.
	const n = 6000
	// The office's view: the overflow still reaches the server.
	var srv *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(nslab.ServerAddr, 9999)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetReadBuffer(4 << 20)
	var received atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := srv.Read(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	if err := nslab.Do(l.Client, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(nslab.ServerAddr.String(), "9999"))
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("UTMD-HANG-PROBE")); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			c.Write([]byte("filler"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var alert *eveEvent
	for alert == nil && time.Now().Before(deadline) {
		for _, e := range l.events(t) {
			if e.Alert.SignatureID == 2230003 {
				alert = &e
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if alert == nil {
		t.Fatalf("no sid 2230003 alert within 20 s of %d packets overflowing a stuck queue", n)
	}
	t.Logf("alert: %s (engine %+v)", alert.Alert.Signature, *alert.Engine)
	if alert.Stars != 2 || alert.Engine == nil || alert.Engine.Reason != "fail-open" ||
		!strings.Contains(alert.Alert.Signature, "packets passed uninspected") {
		t.Fatalf("alert %+v: want ★★ with reason fail-open and the count in the signature", alert)
	}
	// The 4096 packets the kernel still holds for the stuck worker are in
	// flight, not bypassed.
	if c := alert.Engine.Count; c < n-4096-64 || c > n-4096+64 || alert.Engine.Steered < c {
		t.Fatalf("alert counts %d uninspected of %d steered; want about %d of %d", c, alert.Engine.Steered, n-4096, n+1)
	}
	body := l.metrics(t, p)
	if un := metricValue(t, body, `utm_bypassed_packets_total{queue="all",reason="uninspected"}`); un < n-4096-64 {
		t.Fatalf("metrics count %v packets uninspected; want about %d (%d sent, queue holds 4096)", un, n-4096, n)
	}
	if a := metricValue(t, body, `utm_fail_open_alerts_total`); a != 1 {
		t.Fatalf("utm_fail_open_alerts_total %v, want 1 (one alert a minute at most)", a)
	}
	// Fail-open kept the office online: what overflowed was delivered
	// (the server's socket may lose a few of a burst this fast).
	if got := received.Load(); got < (n-4096)*9/10 {
		t.Fatalf("the server received %d datagrams while the engine was stuck; want most of the %d that overflowed the queue", got, n-4096)
	}
	t.Logf("server received %d of the %d datagrams that overflowed the stuck queue", received.Load(), n-4096)
}

// The appliance mode (--board lab) runs on the same workers: it installs
// its steering rules, inspects, counts steered packets, and removes the
// rules on a clean stop.
func TestUTMDApplianceMode(t *testing.T) {
	l := newLab(t)
	// The lab board's interface names, and no rules of our own: the
	// board steers.
	nslab.Exec(t, l.RouterName(), "iptables", "-w", "5", "-F", "FORWARD")
	for from, to := range map[string]string{"r0": "lan0", "r1": "wan0"} {
		nslab.Run(t, "ip", "-n", l.RouterName(), "link", "set", from, "down")
		nslab.Run(t, "ip", "-n", l.RouterName(), "link", "set", from, "name", to)
		nslab.Run(t, "ip", "-n", l.RouterName(), "link", "set", to, "up")
	}
	p := l.startUTMD(t, nil, "--board", "lab", "--box-id", "test-box", "--nats", "nats://127.0.0.1:1",
		"--data", filepath.Join(l.dir, "data"), "-l", l.dir, "--metrics", "127.0.0.1:0")
	if b, err := l.get("/big"); err != nil || sha256.Sum256(b) != l.bigSum {
		t.Fatalf("download through the appliance: %d bytes, %v", len(b), err)
	}
	if b, err := l.get("/eicar"); err == nil && bytes.Contains(b, []byte("EICAR-STANDARD")) {
		t.Fatal("the EICAR file passed the appliance")
	}
	body := l.metrics(t, p)
	// The lab board has two queues (--queue-balance 0:1); one address
	// pair hashes to one of them.
	q0, q1 := metricValue(t, body, `utm_packets_total{queue="0"}`), metricValue(t, body, `utm_packets_total{queue="1"}`)
	if q0+q1 < 20 {
		t.Fatalf("appliance queues 0 and 1 saw %v and %v packets", q0, q1)
	}
	if un := metricValue(t, body, `utm_bypassed_packets_total{queue="all",reason="uninspected"}`); un != 0 {
		t.Fatalf("%v packets passed the appliance uninspected; want 0", un)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if p.err != nil {
		t.Fatalf("utmd after SIGTERM: %v, want exit 0", p.err)
	}
	out, _ := exec.Command("ip", "netns", "exec", l.RouterName(), "iptables", "-w", "5", "-S").CombinedOutput()
	if strings.Contains(string(out), "UTM") {
		t.Fatalf("steering rules left after a clean stop:\n%s", out)
	}
}
