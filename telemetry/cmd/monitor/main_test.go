package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
)

// TestMain lets the test binary act as the monitor binary.
func TestMain(m *testing.M) {
	if os.Getenv("UTM_MONITOR_MAIN") == "1" {
		os.Args = append([]string{"monitor"}, strings.Fields(os.Getenv("UTM_MONITOR_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd    *exec.Cmd
	portal string
	nats   string
	lines  chan string
}

var ready = regexp.MustCompile(`msg="monitor ready" nats=(\S+) portal=(\S+)`)

func run(t *testing.T, args string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "UTM_MONITOR_MAIN=1", "UTM_MONITOR_ARGS="+args)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatal("monitor exited before it was ready")
			}
			if m := ready.FindStringSubmatch(l); m != nil {
				p.nats, p.portal = m[1], m[2]
				return p
			}
		case <-timeout:
			t.Fatal("monitor did not log \"monitor ready\" in 20s")
		}
	}
}

// stop sends SIGTERM and returns the rest of the log; the exit must be clean.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	var rest []string
	for l := range p.lines {
		rest = append(rest, l)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("monitor did not exit cleanly on SIGTERM: %v\n%s", err, strings.Join(rest, "\n"))
	}
	return strings.Join(rest, "\n")
}

var (
	setupRE = regexp.MustCompile(`setup_url="?([^"\s]+)`)
	csrfRE  = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	client  = http.DefaultClient
)

const password = "binary test password"

// login sets the password through the setup URL on stderr (first run) or
// logs in, and makes get use the session.
func (p *proc) login(t *testing.T, first bool) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client = &http.Client{Jar: jar}
	t.Cleanup(func() { client = http.DefaultClient })
	page, v := p.portal+"login", url.Values{"user": {"admin"}, "password": {password}}
	if first {
		timeout := time.After(20 * time.Second)
		for page == p.portal+"login" {
			select {
			case l := <-p.lines:
				if m := setupRE.FindStringSubmatch(l); m != nil {
					u, _ := url.Parse(m[1])
					page = p.portal + "setup"
					v = url.Values{"token": {u.Query().Get("token")}, "password": {password}, "confirm": {password}}
				}
			case <-timeout:
				t.Fatal("no setup URL on stderr")
			}
		}
	}
	form := get(t, page+"?token="+v.Get("token"))
	v.Set("csrf", csrfRE.FindStringSubmatch(form)[1])
	resp, err := client.PostForm(page, v)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("POST %s: %s", page, resp.Status)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// TestBinary runs the monitor as a user does: it serves, logs one line per
// alert, stops cleanly on SIGTERM and keeps everything across a restart.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	args := "--data " + dir + " --nats-listen 127.0.0.1:-1 --http 127.0.0.1:0 --offline-after 1m"
	p := run(t, args)
	p.login(t, true)
	if get(t, p.portal+"healthz") != "ok" {
		t.Fatal("not healthy")
	}
	nc, err := nats.Connect(p.nats)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := json.Marshal(alert.Heartbeat{BoxID: "bin-1", Version: "v"})
	nc.Publish(alert.HeartbeatSubject("bin-1"), hb)
	ev, _ := json.Marshal(alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: 3, ID: "bin-1-a-1",
		Alert: &alert.Alert{SignatureID: 7, Signature: "binary test"}})
	js, _ := nc.JetStream()
	if _, err := js.Publish(alert.AlertSubject("bin-1"), ev, nats.MsgId("bin-1-a-1")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	timeout := time.After(20 * time.Second)
	for logged := false; !logged; {
		select {
		case l := <-p.lines:
			logged = strings.Contains(l, `msg="alert received" box=bin-1 stars=3 sid=7 signature="binary test"`)
		case <-timeout:
			t.Fatal("no \"alert received\" log line")
		}
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(get(t, p.portal+"api/boxes"), `"bin-1"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("box not registered")
		}
	}
	if rest := p.stop(t); !strings.Contains(rest, "monitor stopped") {
		t.Fatalf("no \"monitor stopped\" line:\n%s", rest)
	}

	p = run(t, "--data "+dir+" --nats-listen 127.0.0.1:-1 --http 127.0.0.1:0 --offline-after 1m")
	p.login(t, false)
	if a := get(t, p.portal+"api/alerts"); !strings.Contains(a, "bin-1-a-1") {
		t.Fatalf("alert lost across a restart: %s", a)
	}
	if b := get(t, p.portal+"api/boxes"); !strings.Contains(b, `"bin-1"`) {
		t.Fatalf("box lost across a restart: %s", b)
	}
	p.stop(t)
}

func TestBadFlags(t *testing.T) {
	for _, args := range []string{"--offline-after 0s", "extra", "--nope", "--smtp 127.0.0.1:25", "--smtp 127.0.0.1:25 --boxes /nonexistent", "--read-token-file /nonexistent", "--tls-cert x"} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "UTM_MONITOR_MAIN=1", "UTM_MONITOR_ARGS="+args)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("monitor %s: %v, want exit 2\n%s", args, err, out)
		}
	}
}
