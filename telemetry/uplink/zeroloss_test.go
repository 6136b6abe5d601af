package uplink

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/monitor"
	"github.com/openutm/utm/telemetry/spool"
)

// e2eAlerts is how many alerts TestZeroLossZeroDuplicates raises.
const e2eAlerts = 10000

// producerMain is the child: utmd's alert path (spool with group commit
// and aggregation, uplink) raising alerts from 8 goroutines, numbered from
// UPLINK_E2E_FROM up to e2eAlerts. It prints "try i" before each Append
// and "ok i id" after it returned, and "drained" once the spool is empty.
func producerMain() {
	from, _ := strconv.Atoi(os.Getenv("UPLINK_E2E_FROM"))
	sp, err := spool.Open(os.Getenv("UPLINK_E2E_CHILD"), spool.Options{BoxID: "box-e2e", Logger: quiet,
		GroupCommit: true, AggregateWindow: time.Second})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	up, err := Start(context.Background(), Config{URL: os.Getenv("UPLINK_E2E_URL"), BoxID: "box-e2e", Version: "e2e",
		Heartbeat: 200 * time.Millisecond, Logger: quiet}, sp)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	say := func(f string, a ...any) {
		mu.Lock()
		fmt.Printf(f+"\n", a...)
		mu.Unlock()
	}
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= e2eAlerts {
					return
				}
				ev := e2eAlert(i)
				say("try %d", i)
				if err := sp.Append(ev); err != nil {
					say("error %v", err)
					os.Exit(1)
				}
				say("ok %d %s", i, ev.ID)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // a burst, then a breath: the uplink interleaves
				}
			}
		}()
	}
	wg.Wait()
	for sp.Len() > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	up.Close()
	sp.Close()
	say("drained")
	os.Exit(0)
}

// e2eAlert is alert i: stars 1-3, its own flow (so aggregation holds ★ and
// ★★ back but never merges two of them).
func e2eAlert(i int) *alert.Event {
	return &alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: alert.Stars(1 + i%3),
		FlowID: uint64(i) + 1, SrcIP: "198.18.1.2", SrcPort: uint16(10000 + i%50000), DestIP: "198.18.2.2", DestPort: 80, Proto: "TCP",
		Alert: &alert.Alert{Action: alert.ActionBlocked, GID: 1, SignatureID: 2210001, Rev: 1, Signature: fmt.Sprintf("e2e alert %d", i)}}
}

// producer is a running child and what it reported.
type producer struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	ok   int // "ok" lines from this child
}

// e2eState is what every child reported: the alerts attempted and the
// ones acknowledged (with their ids).
type e2eState struct {
	mu      sync.Mutex
	tried   map[int]bool
	acked   map[int]string
	drained bool
	maxTry  int
}

func (s *e2eState) start(t *testing.T, spoolPath, url string) *producer {
	t.Helper()
	s.mu.Lock()
	from := s.maxTry + 1
	s.mu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^TestZeroLossZeroDuplicates$")
	cmd.Env = append(os.Environ(), "UPLINK_E2E_CHILD="+spoolPath, "UPLINK_E2E_URL="+url, "UPLINK_E2E_FROM="+strconv.Itoa(from))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &producer{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var i int
			var id string
			line := sc.Text()
			s.mu.Lock()
			switch {
			case line == "drained":
				s.drained = true
			case func() bool { _, err := fmt.Sscanf(line, "try %d", &i); return err == nil }():
				s.tried[i] = true
				s.maxTry = max(s.maxTry, i)
			case func() bool { _, err := fmt.Sscanf(line, "ok %d %s", &i, &id); return err == nil }():
				s.acked[i] = id
				p.mu.Lock()
				p.ok++
				p.mu.Unlock()
			default:
				t.Errorf("producer: %s", line)
			}
			s.mu.Unlock()
		}
		cmd.Wait()
	}()
	return p
}

func (p *producer) waitOK(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the producer to append %d alerts", n), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.ok >= n
	})
}

func (p *producer) kill9(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill() // SIGKILL
	<-p.done
}

// TestZeroLossZeroDuplicates raises 10,000 alerts in a child process
// (spool with group commit and aggregation, uplink) while the monitor
// (its embedded NATS with it) is stopped and restarted twice and the
// producer is killed with SIGKILL twice, once while NATS is down and once
// while it is sending, and restarted on its spool. At the end the
// monitor's store holds every acknowledged alert exactly once, under the
// id the producer was given; an alert whose Append had not returned when
// the producer was killed is stored at most once; nothing else is stored.
func TestZeroLossZeroDuplicates(t *testing.T) {
	if os.Getenv("UPLINK_E2E_CHILD") != "" {
		producerMain()
	}
	if testing.Short() {
		t.Skip("long: 10,000 alerts through kill -9 and restarts")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	monDir := filepath.Join(dir, "monitor")
	m := startMonitor(t, monDir, natsAddr)
	defer func() { m.Close() }()
	url := m.NATSURL()
	spoolPath := filepath.Join(dir, "box", "spool.db")
	st := &e2eState{tried: map[int]bool{}, acked: map[int]string{}, maxTry: -1}

	p := st.start(t, spoolPath, url)
	defer func() { p.cmd.Process.Kill(); <-p.done }()
	p.waitOK(t, 1500)
	m.Close() // NATS and the monitor down mid-stream
	p.waitOK(t, 3000)
	p.kill9(t) // killed while NATS is down
	t.Logf("first producer killed after %d appends (%d attempted)", len(st.acked), st.maxTry+1)

	p = st.start(t, spoolPath, url)
	p.waitOK(t, 1000)
	m = startMonitor(t, monDir, natsAddr) // back: the spool drains
	p.waitOK(t, 2000)
	p.kill9(t) // killed while sending
	t.Logf("second producer killed at %d appends (%d attempted)", len(st.acked), st.maxTry+1)

	p = st.start(t, spoolPath, url)
	p.waitOK(t, 1500)
	m.Close() // a monitor restart while alerts stream in
	m = startMonitor(t, monDir, natsAddr)
	waitFor(t, "the last producer to send everything", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.drained
	})
	<-p.done
	// Alerts delivered to the monitor that was closed, and not yet acked,
	// come again after the consumer's AckWait (30 s): wait past it.
	start := time.Now()
	for n, err := m.Backlog(); err != nil || n > 0; n, err = m.Backlog() {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the monitor's backlog is still %d (%v) after 90 s", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("backlog worked off %v after the producer drained", time.Since(start).Round(time.Second))

	var recs []monitor.Record
	for since := uint64(0); ; {
		page, err := m.Alerts(since)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		recs = append(recs, page...)
		since = page[len(page)-1].Seq
	}
	byID := map[string]int{}
	byAlert := map[int]int{}
	health := 0
	for _, r := range recs {
		if r.Event.Alert != nil && (r.Event.Alert.SignatureID == monitor.SIDBoxOffline || r.Event.Alert.SignatureID == monitor.SIDBoxOnline) {
			health++ // the monitor's own: the box was silent while it was killed
			continue
		}
		byID[r.Event.ID]++
		var i int
		if _, err := fmt.Sscanf(r.Event.Alert.Signature, "e2e alert %d", &i); err != nil {
			t.Fatalf("stored a record that is no test alert: %q", r.Event.Alert.Signature)
		}
		byAlert[i]++
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("id %s stored %d times", id, n)
		}
	}
	unacked := 0
	for i := range e2eAlerts {
		id, acked := st.acked[i]
		switch {
		case acked && byAlert[i] != 1:
			t.Errorf("acknowledged alert %d stored %d times", i, byAlert[i])
		case acked && byID[id] != 1:
			t.Errorf("acknowledged alert %d: its id %s is not in the store", i, id)
		case !acked && !st.tried[i]:
			t.Errorf("alert %d was never raised (the producers skipped it)", i)
		case !acked && byAlert[i] > 1:
			t.Errorf("alert %d (in flight at a kill) stored %d times", i, byAlert[i])
		case !acked:
			unacked++
		}
	}
	if len(st.acked)+unacked != e2eAlerts {
		t.Fatalf("%d acknowledged + %d in flight at a kill != %d", len(st.acked), unacked, e2eAlerts)
	}
	t.Logf("%d alerts: %d acknowledged, %d in flight at a kill; %d alert records stored, none twice (and %d box offline/online records)", e2eAlerts, len(st.acked), unacked, len(recs)-health, health)
}
