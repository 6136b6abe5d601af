//go:build linux

package nfq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/dataplane/packet"
)

const queueNum = 7

var serverTCP = netip.AddrPortFrom(nslab.ServerAddr, 8080)

// steer queues everything the router forwards, with --queue-bypass.
func steer(t *testing.T, l *nslab.Lab) {
	t.Helper()
	nslab.Exec(t, l.RouterName(), "iptables", "-w", "5", "-A", "FORWARD", "-j", "NFQUEUE",
		"--queue-num", fmt.Sprint(queueNum), "--queue-bypass")
}

// echoServer accepts TCP connections in the server namespace and echoes
// one line back on each.
func echoServer(t *testing.T, l *nslab.Lab) {
	t.Helper()
	var ln net.Listener
	err := nslab.Do(l.Server, func() (err error) {
		ln, err = net.Listen("tcp4", serverTCP.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()
}

// exchange dials the server from the client namespace and returns the
// echoed reply, or the error that stopped it.
func exchange(l *nslab.Lab, timeout time.Duration) (string, error) {
	var c net.Conn
	err := nslab.Do(l.Client, func() (err error) {
		c, err = net.DialTimeout("tcp4", serverTCP.String(), timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 4)
	return string(buf[:n]), err
}

// openQueue opens the queue inside the router namespace and runs it.
func openQueue(t *testing.T, l *nslab.Lab, cfg Config, h func([]byte) Verdict) *Queue {
	t.Helper()
	cfg.Queue, cfg.NetNS = queueNum, int(l.Router)
	q, err := Open(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	select {
	case <-q.Bound():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the queue was not bound within 5 s")
	}
	t.Cleanup(func() {
		cancel()
		q.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return q
}

func TestVerdicts(t *testing.T) {
	l := nslab.New(t)
	echoServer(t, l)
	steer(t, l)

	// Nobody listens: --queue-bypass lets traffic through (fail-open).
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("with no queue reader, the connection failed (%q, %v); --queue-bypass should accept", got, err)
	}

	var mu sync.Mutex
	var drop bool
	var seen, synToServer atomic.Int64
	q := openQueue(t, l, Config{FailOpen: true}, func(pkt []byte) Verdict {
		var p packet.Parsed
		seen.Add(1)
		if p.Decode(pkt) == packet.OK && p.Proto == packet.ProtoTCP && p.TCPFlags&packet.FlagSYN != 0 &&
			p.TCPFlags&packet.FlagACK == 0 && netip.AddrPortFrom(p.Dst, p.DstPort) == serverTCP && p.Src == nslab.ClientAddr {
			synToServer.Add(1)
		}
		mu.Lock()
		defer mu.Unlock()
		if drop {
			return Drop
		}
		return Accept
	})

	// Accept: the connection works and its packets went through the handler.
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("with verdict Accept, the connection failed (%q, %v)", got, err)
	}
	if synToServer.Load() == 0 {
		t.Fatalf("the handler never saw the client's SYN (saw %d packets): traffic did not go through the queue", seen.Load())
	}
	if !q.tookOver.Load() {
		t.Fatal("go-nfqueue's reader still reads the queue: the receive loop never took over")
	}
	// A last packet (the client's FIN) may still be in the handler:
	// counted as a packet, its verdict not yet.
	st := q.Stats()
	for deadline := time.Now().Add(time.Second); st.Accepted != st.Packets && time.Now().Before(deadline); st = q.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.Packets == 0 || st.Accepted != st.Packets || st.Dropped != 0 {
		t.Fatalf("after Accept: %+v", st)
	}

	// Drop: the SYN never arrives.
	mu.Lock()
	drop = true
	mu.Unlock()
	_, err := exchange(l, time.Second)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("with verdict Drop, dial returned %v; want a timeout", err)
	}
	if q.Stats().Dropped == 0 {
		t.Fatalf("no drop counted: %+v", q.Stats())
	}

	// Close: the queue is unbound and the bypass takes over again.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("after Close, the connection failed (%q, %v); --queue-bypass should accept", got, err)
	}
}

// TestFailOpenWhenFull holds the first packet in the handler while more
// arrive: with a queue of length 1 and FailOpen the kernel accepts the
// overflow instead of dropping it. Without FailOpen (the control) nothing
// gets through.
func TestFailOpenWhenFull(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("FailOpen=%v", failOpen), func(t *testing.T) {
			got, held := overflow(t, failOpen)
			if held == 0 {
				t.Fatal("the handler never held a packet: traffic did not go through the queue")
			}
			if failOpen && got == 0 {
				t.Fatal("while the engine held a packet and the queue was full, nothing got through: fail-open did not work")
			}
			if !failOpen && got != 0 {
				t.Fatalf("%d datagrams got past a full queue without FailOpen; the test cannot tell fail-open from bypass", got)
			}
		})
	}
}

// overflow sends datagrams while the handler holds the first one and
// returns how many reached the server.
func overflow(t *testing.T, failOpen bool) (got int, held int64) {
	l := nslab.New(t)
	steer(t, l)
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(nslab.ServerAddr, 5353))
	var srv *net.UDPConn
	err := nslab.Do(l.Server, func() (err error) {
		srv, err = net.ListenUDP("udp4", dst)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	release := make(chan struct{})
	var once sync.Once
	var holding atomic.Int64
	openQueue(t, l, Config{FailOpen: failOpen, MaxQueueLen: 1}, func([]byte) Verdict {
		holding.Add(1)
		<-release // hold the packet until the test lets go
		return Drop
	})
	defer once.Do(func() { close(release) })

	var cli *net.UDPConn
	err = nslab.Do(l.Client, func() (err error) {
		cli, err = net.DialUDP("udp4", nil, dst)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	buf := make([]byte, 16)
	for i := 0; i < 10 && got == 0; i++ {
		cli.Write([]byte("x"))
		srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := srv.Read(buf); err == nil {
			got++
		}
	}
	held = holding.Load()
	once.Do(func() { close(release) })
	return got, held
}

// TestBatchVerdicts queues a burst behind a held packet, so accepts are
// batched: every accepted datagram arrives, every dropped one does not
// (a drop in the middle of a batch is not swallowed by the batch verdict
// of the accepts around it), far fewer verdict messages than packets are
// sent, and a lone exchange afterwards is not delayed waiting for a batch.
func TestBatchVerdicts(t *testing.T) {
	l := nslab.New(t)
	echoServer(t, l)
	steer(t, l)
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(nslab.ServerAddr, 5353))
	var srv *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) {
		srv, err = net.ListenUDP("udp4", dst)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The burst is released at once when the held packet's verdict
	// comes: room for all of it, or the server drops its tail.
	srv.SetReadBuffer(4 << 20)
	got := make(map[string]bool)
	var gotMu sync.Mutex
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				return
			}
			gotMu.Lock()
			got[string(buf[:n])] = true
			gotMu.Unlock()
		}
	}()

	release := make(chan struct{})
	var first atomic.Bool
	q := openQueue(t, l, Config{FailOpen: true, Batch: 64}, func(pkt []byte) Verdict {
		var p packet.Parsed
		if p.Decode(pkt) != packet.OK || p.Proto != packet.ProtoUDP {
			return Accept
		}
		if first.CompareAndSwap(false, true) {
			<-release // hold the first datagram until the burst is queued
		}
		if len(p.Payload) > 0 && p.Payload[0] == 'd' {
			return Drop
		}
		return Accept
	})
	var cli *net.UDPConn
	if err := nslab.Do(l.Client, func() (err error) {
		cli, err = net.DialUDP("udp4", nil, dst)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const n = 300
	for i := 0; i < n; i++ {
		kind := "a"
		if i%10 == 5 {
			kind = "d"
		}
		cli.Write(fmt.Appendf(nil, "%s%d", kind, i))
	}
	time.Sleep(200 * time.Millisecond) // the burst reaches the queue
	close(release)

	deadline := time.Now().Add(5 * time.Second)
	for {
		gotMu.Lock()
		k := len(got)
		gotMu.Unlock()
		if k >= n-n/10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	gotMu.Lock()
	for i := 0; i < n; i++ {
		a, d := got[fmt.Sprintf("a%d", i)], got[fmt.Sprintf("d%d", i)]
		if i%10 == 5 && d {
			t.Errorf("datagram %d had verdict Drop but arrived: a batch verdict overtook it", i)
		}
		if i%10 != 5 && !a {
			t.Errorf("accepted datagram %d never arrived", i)
		}
	}
	gotMu.Unlock()
	c := q.Counters()
	t.Logf("counters: %v", c)
	if c["verdict_batches"] == 0 || c["verdict_batches"] > c["accepted"]/4 {
		t.Errorf("%d batch verdicts for %d accepts: want batching (at most one per 4 accepts in a queued burst)", c["verdict_batches"], c["accepted"])
	}
	if c["dropped"] != n/10 {
		t.Errorf("dropped %d, want %d", c["dropped"], n/10)
	}
	// A lone exchange on a quiet queue: its packets are verdicted at once.
	start := time.Now()
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("TCP exchange after the burst: %q, %v", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a lone exchange took %v: accepts were held waiting for a batch", d)
	}
}

// TestIdle: before the reader sleeps it calls Config.Idle; a duration
// returned wakes it after that long without a packet (a read deadline), so
// work waiting on time gets done on an idle link; 0 lets it sleep until a
// packet comes. Packets still flow after such wake-ups.
func TestIdle(t *testing.T) {
	l := nslab.New(t)
	echoServer(t, l)
	steer(t, l)
	var calls atomic.Int64
	var wake atomic.Int64 // what Idle returns, in ns
	wake.Store(int64(20 * time.Millisecond))
	var handled atomic.Int64
	q := openQueue(t, l, Config{FailOpen: true, Idle: func() time.Duration {
		calls.Add(1)
		return time.Duration(wake.Load())
	}}, func([]byte) Verdict { handled.Add(1); return Accept })
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("exchange: %q, %v", got, err)
	}
	// No traffic now: only the deadline wakes the reader.
	c0 := calls.Load()
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load() - c0; n < 5 {
		t.Fatalf("Idle called %d times in 300 ms of silence while asking to be called every 20 ms; want >= 5", n)
	}
	if got, err := exchange(l, 3*time.Second); err != nil || got != "ping" {
		t.Fatalf("exchange after idle wake-ups: %q, %v", got, err)
	}
	wake.Store(0)
	time.Sleep(50 * time.Millisecond) // the pending deadline fires once more, then no more
	c1 := calls.Load()
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load() - c1; n != 0 {
		t.Errorf("Idle called %d times in 200 ms of silence after returning 0; want 0", n)
	}
	if handled.Load() == 0 || q.Stats().Accepted == 0 {
		t.Errorf("no packet went through the handler (%d, %+v)", handled.Load(), q.Stats())
	}
}

// TestSpinCredit: the reader spins only while most recent waits were
// shorter than Spin; a run of long waits (an idle or lightly loaded
// link) stops it within spinCreditMax waits, and it never spins with Spin
// negative.
func TestSpinCredit(t *testing.T) {
	q := newQueue(Config{Spin: 50 * time.Microsecond}, nil, nil)
	if q.spinCredit != 0 {
		t.Fatalf("credit %d at start, want 0 (sleep until waits prove short)", q.spinCredit)
	}
	for range 10 {
		q.scoreWait(int64(10 * time.Microsecond))
	}
	if q.spinCredit != spinCreditMax {
		t.Fatalf("credit %d after 10 short waits, want %d", q.spinCredit, spinCreditMax)
	}
	for i := range spinCreditMax {
		if q.spinCredit == 0 {
			t.Fatalf("credit ran out after %d long waits, want %d", i, spinCreditMax)
		}
		q.scoreWait(int64(time.Millisecond))
	}
	if q.spinCredit != 0 {
		t.Fatalf("credit %d after %d long waits, want 0", q.spinCredit, spinCreditMax)
	}
	q.scoreWait(int64(time.Millisecond))
	if q.spinCredit != 0 {
		t.Fatalf("credit %d, want it to stay at 0", q.spinCredit)
	}
	off := newQueue(Config{Spin: -1}, nil, nil)
	for range 10 {
		off.scoreWait(0)
	}
	if off.spinCredit != 0 {
		t.Fatalf("Spin < 0: credit %d, want 0 (never spin)", off.spinCredit)
	}
	if def := newQueue(Config{}, nil, nil); def.spin != int64(DefaultSpin) {
		t.Fatalf("Spin 0: %v, want DefaultSpin %v", time.Duration(def.spin), DefaultSpin)
	}
}
