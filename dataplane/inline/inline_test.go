//go:build linux

package inline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/nfq"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/pcre"
	"github.com/openutm/utm/telemetry/alert"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func defaultBundle(t testing.TB) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Default()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countSink counts events; safe for concurrent Emit.
type countSink struct {
	mu  sync.Mutex
	evs []*alert.Event
}

func (s *countSink) Emit(ev *alert.Event) { s.mu.Lock(); s.evs = append(s.evs, ev); s.mu.Unlock() }

func TestNewRejectsBadQueues(t *testing.T) {
	for _, qs := range [][]uint16{nil, {1, 1}} {
		if _, err := New(Config{Queues: qs, Bundle: defaultBundle(t)}); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%v) = %v, want ErrConfig", qs, err)
		}
	}
}

func TestNFQVerdict(t *testing.T) {
	for v, want := range map[engine.Verdict]nfq.Verdict{
		engine.Accept: nfq.Accept, engine.Bypass: nfq.Bypass, engine.Drop: nfq.Drop, engine.Reject: nfq.Drop,
	} {
		if got := NFQVerdict(v); got != want {
			t.Errorf("NFQVerdict(%v) = %v, want %v", v, got, want)
		}
	}
}

// The watchdog finds a worker stuck on a packet, names its queue and how
// long, and leaves idle and busy-but-quick workers alone.
func TestWatchdogFindsHungWorker(t *testing.T) {
	p, err := New(Config{Queues: []uint16{3, 4}, Bundle: defaultBundle(t), HangAfter: 100 * time.Millisecond,
		HangOn: []byte("HANG-HERE"), Engine: engine.Config{Sink: &countSink{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tr := testpcap.NewTrace(t0)
	tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", []byte("fine"))
	tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", []byte("xx HANG-HERE xx"))
	pkts := tr.Sorted()
	// A normal packet on queue 3 leaves it idle.
	if v := p.Workers()[0].Process(pkts[0].TS, pkts[0].Data); v != engine.Accept {
		t.Fatalf("verdict %v, want accept", v)
	}
	if f := p.Check(); f != nil {
		t.Fatalf("Check after a normal packet: %v", f)
	}
	done := make(chan engine.Verdict)
	go func() { done <- p.Workers()[1].Process(pkts[1].TS, pkts[1].Data) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	f := p.Watch(ctx)
	if f == nil {
		t.Fatal("Watch returned nil: the hung worker was not found within 10 s")
	}
	if f.Queue != 4 || f.Reason != "hung" || f.Busy < 100*time.Millisecond || !errors.Is(f, ErrHung) {
		t.Fatalf("failure %+v (%v), want queue 4 hung for more than 100ms", f, f)
	}
	if !strings.Contains(f.Error(), "queue 4") {
		t.Fatalf("message %q does not name the queue", f.Error())
	}
	t.Logf("hang seen after %v (limit 100ms): %v", time.Since(start), f)
	p.Close() // releases the test hook
	if v := <-done; v != engine.Accept {
		t.Fatalf("released packet verdict %v, want accept", v)
	}
	if f := p.Check(); f != nil {
		t.Fatalf("Check after release: %v", f)
	}
}

func TestRunBeforeOpen(t *testing.T) {
	p, err := New(Config{Queues: []uint16{0}, Bundle: defaultBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, ErrConfig) {
		t.Fatalf("Run before Open: %v, want ErrConfig", err)
	}
}

func TestDeadFailureUnwraps(t *testing.T) {
	cause := errors.New("bind refused")
	f := &Failure{Queue: 2, Reason: "dead", Err: cause}
	if !errors.Is(f, ErrDead) || !errors.Is(f, cause) || errors.Is(f, ErrHung) {
		t.Fatalf("%v does not unwrap to ErrDead and its cause only", f)
	}
}

// Worker.Process adds no allocation to the engine's accept path.
func TestProcessAllocs(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:443").Handshake()
	c.Client(bytes.Repeat([]byte{0x17, 3, 3, 0, 10}, 4000), 1000)
	pkts := tr.Sorted()
	p, err := New(Config{Queues: []uint16{0}, Bundle: defaultBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := p.Workers()[0]
	for _, pk := range pkts[:5] {
		w.Process(pk.TS, pk.Data)
	}
	i := 5
	n := testing.AllocsPerRun(len(pkts)-10, func() {
		w.Process(pkts[i].TS, pkts[i].Data)
		i++
	})
	if n != 0 {
		t.Fatalf("Worker.Process allocates %v times per packet; want 0", n)
	}
}

// Counters carries each queue's counters under q<N>_ and their sums.
func TestCountersPerQueueAndTotals(t *testing.T) {
	p, err := New(Config{Queues: []uint16{0, 1}, Bundle: defaultBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	tr := testpcap.NewTrace(t0)
	for i := 0; i < 3; i++ {
		tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", []byte("datagram"))
	}
	pkts := tr.Sorted()
	p.Workers()[0].Process(pkts[0].TS, pkts[0].Data)
	p.Workers()[1].Process(pkts[1].TS, pkts[1].Data)
	p.Workers()[1].Process(pkts[2].TS, pkts[2].Data)
	c := p.Counters()
	if c["q0_packets"] != 1 || c["q1_packets"] != 2 || c["packets"] != 3 || c["queues"] != 2 {
		t.Fatalf("q0_packets %d q1_packets %d packets %d queues %d; want 1, 2, 3, 2",
			c["q0_packets"], c["q1_packets"], c["packets"], c["queues"])
	}
	if c["bytes"] != c["q0_bytes"]+c["q1_bytes"] || c["bytes"] == 0 {
		t.Fatalf("bytes %d != q0 %d + q1 %d", c["bytes"], c["q0_bytes"], c["q1_bytes"])
	}
}

// The /metrics body is valid Prometheus text: HELP and TYPE before each
// family's samples, label sets as the doc says, one sample a line.
func TestWriteMetricsFormat(t *testing.T) {
	p, err := New(Config{Queues: []uint16{0, 5}, Bundle: defaultBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	tr := testpcap.NewTrace(t0)
	tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", []byte("datagram"))
	tr.Raw([]byte{0x45, 0, 0}) // truncated: dropped as malformed
	pkts := tr.Sorted()
	for _, pk := range pkts {
		p.Workers()[1].Process(pk.TS, pk.Data)
	}
	// A pcre that gives up at its match limit (catastrophic backtracking).
	re, err := pcre.Compile(`^(a+)+$`, pcre.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := re.Find([]byte(strings.Repeat("a", 40)+"!"), 0); ms != -1 || pcre.LimitHits() == 0 {
		t.Fatal("the pathological pcre did not hit its limit")
	}
	var buf bytes.Buffer
	if err := p.WriteMetrics(&buf, map[string]uint64{BoxUninspected: 7, BoxFailOpenAlerts: 1}); err != nil {
		t.Fatal(err)
	}
	body := buf.String()
	for _, want := range []string{
		fmt.Sprintf(`utm_matcher_errors_total{reason="pcre_limit"} %d`, pcre.LimitHits()),
		`utm_matcher_errors_total{reason="prefilter"} 0`,
		`utm_packets_total{queue="0"} 0`,
		`utm_packets_total{queue="5"} 2`,
		`utm_dropped_packets_total{queue="5",reason="malformed"} 1`,
		`utm_dropped_packets_total{queue="5",reason="verdict"} 0`,
		`utm_bypassed_packets_total{queue="5",reason="socket_full"} 0`,
		`utm_bypassed_packets_total{queue="all",reason="uninspected"} 7`,
		`utm_fail_open_alerts_total 1`,
		`utm_worker_failures_total 0`,
		"# TYPE utm_worker_busy_seconds gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack the line %q", want)
		}
	}
	// Every line is a comment or `name{labels} value`; a family's HELP
	// and TYPE come before its samples, once.
	sampleRE := regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$`)
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if typed[name] || (typ != "counter" && typ != "gauge") {
				t.Errorf("bad or repeated TYPE line %q", line)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %q is not a Prometheus sample", line)
			continue
		}
		if !typed[m[1]] {
			t.Errorf("sample %q before its TYPE line", line)
		}
		if strings.HasSuffix(m[1], "_total") && !strings.Contains(body, "# TYPE "+m[1]+" counter") {
			t.Errorf("%s ends in _total but is not a counter", m[1])
		}
	}
}

// Reports come at most once per interval, carry everything since the last
// one, ignore in-flight noise and start from a baseline.
func TestFailOpenRateLimit(t *testing.T) {
	f := FailOpen{MinInterval: time.Minute, Threshold: 10}
	now := t0
	step := func(d time.Duration, cum uint64) (uint64, bool) { now = now.Add(d); return f.Observe(now, cum) }
	if _, due := step(0, 500); due {
		t.Fatal("first observation reported: it is the baseline")
	}
	if _, due := step(10*time.Second, 505); due {
		t.Fatal("5 packets (below the threshold) reported")
	}
	if n, due := step(10*time.Second, 600); !due || n != 100 {
		t.Fatalf("got %d %v, want a report of 100", n, due)
	}
	if _, due := step(10*time.Second, 700); due {
		t.Fatal("second report within a minute")
	}
	if _, due := step(10*time.Second, 900); due {
		t.Fatal("second report within a minute")
	}
	if n, due := step(45*time.Second, 950); !due || n != 350 {
		t.Fatalf("got %d %v, want one report of the 350 accumulated", n, due)
	}
	if pk, al := f.Reported(); pk != 450 || al != 2 {
		t.Fatalf("Reported() = %d packets, %d alerts; want 450, 2", pk, al)
	}
	// Counters reset (rules reinstalled): new baseline, no bogus report.
	if _, due := step(2*time.Minute, 3); due {
		t.Fatal("a counter reset was reported")
	}
}

func TestParseNFQueueRules(t *testing.T) {
	out := []byte(`Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
     120    90000 NFQUEUE    all  --  r0     r1      0.0.0.0/0            0.0.0.0/0            NFQUEUE balance 0:1 bypass
      30     2000 NFQUEUE    all  --  r1     r0      0.0.0.0/0            0.0.0.0/0            NFQUEUE num 1 bypass
       7      700 NFQUEUE    all  --  *      *       0.0.0.0/0            0.0.0.0/0            NFQUEUE num 9
       5      500 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0
`)
	n, ok := parseNFQueueRules(out, map[uint16]bool{0: true, 1: true})
	if !ok || n != 150 {
		t.Fatalf("steered %d (found %v), want 150 from the two rules for queues 0 and 1", n, ok)
	}
	if _, ok := parseNFQueueRules(out, map[uint16]bool{4: true}); ok {
		t.Fatal("found a rule for queue 4")
	}
}

func TestParseQueued(t *testing.T) {
	b := []byte("    0  12345     7 2 65535     0     0       90  1\n    1  12346  4096 2 65535     0     0     5000  1\n    3      0    50 2 65535     0     0       50  1\n")
	if n := parseQueued(b, []uint16{0, 1}); n != 4103 {
		t.Fatalf("queued %d, want 4103 (queues 0 and 1, not 3)", n)
	}
}

func opaqueTrace() []testpcap.Packet {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:443").Handshake()
	c.Client(bytes.Repeat([]byte{0x17, 3, 3, 0, 10}, 40000), 1400)
	return tr.Sorted()
}

// BenchmarkWorkerProcess is the inline per-packet call; compare with
// BenchmarkEngineProcess (the engine alone) for the watchdog stamps' cost.
func BenchmarkWorkerProcess(b *testing.B) {
	pkts := opaqueTrace()
	p, err := New(Config{Queues: []uint16{0}, Bundle: defaultBundle(b), Engine: engine.Config{StreamDepth: -1}})
	if err != nil {
		b.Fatal(err)
	}
	w := p.Workers()[0]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pk := pkts[i%len(pkts)]
		w.Process(pk.TS, pk.Data)
	}
}

// BenchmarkWorkerHandle is the NFQUEUE handler: clock, stamps, engine,
// verdict mapping.
func BenchmarkWorkerHandle(b *testing.B) {
	pkts := opaqueTrace()
	p, err := New(Config{Queues: []uint16{0}, Bundle: defaultBundle(b), Engine: engine.Config{StreamDepth: -1}})
	if err != nil {
		b.Fatal(err)
	}
	w := p.Workers()[0]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.handle(pkts[i%len(pkts)].Data)
	}
}

// BenchmarkEngineHandle is the same without the worker: the baseline.
func BenchmarkEngineHandle(b *testing.B) {
	pkts := opaqueTrace()
	e := engine.New(engine.Config{StreamDepth: -1}, defaultBundle(b))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		NFQVerdict(e.Process(time.Now(), pkts[i%len(pkts)].Data))
	}
}

func BenchmarkEngineProcess(b *testing.B) {
	pkts := opaqueTrace()
	e := engine.New(engine.Config{StreamDepth: -1}, defaultBundle(b))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pk := pkts[i%len(pkts)]
		e.Process(pk.TS, pk.Data)
	}
}

// TestCloseStopsEngines: Close ends the engines of the opened queues,
// whose files are hashed on a goroutine of their own: nothing of a closed
// pool keeps running.
func TestCloseStopsEngines(t *testing.T) {
	hashers := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "engine.hashLoop(")
	}
	if os.Geteuid() != 0 {
		t.Skip("opens NFQUEUE queues: needs root")
	}
	before := hashers()
	p, err := New(Config{Queues: []uint16{4101, 4102}, Bundle: defaultBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	tr := testpcap.NewTrace(time.Unix(1700000000, 0))
	body := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /f.bin HTTP/1.1\r\nHost: lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), 0)
	c.Server(body, 1448) // the file is hashed on the engine's helper goroutine
	for _, pk := range tr.Sorted() {
		p.Workers()[0].Process(pk.TS, pk.Data)
	}
	if hashers() <= before {
		t.Fatal("the download started no hashing goroutine: the test checks nothing")
	}
	p.Close()
	p.Close()
	deadline := time.Now().Add(5 * time.Second)
	for hashers() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d hashing goroutines after Close, %d before New", hashers(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
