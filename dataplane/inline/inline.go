//go:build linux

// Package inline runs inline inspection over several NFQUEUE queues, the way
// Suricata's NFQ mode does with -q A:B: one worker per queue, each with its
// own engine.Engine reading its own queue on its own goroutine. The kernel
// pins a flow to one queue (iptables NFQUEUE --queue-balance hashes both
// directions of a connection alike), so a flow is always inspected by the
// same worker and the packet path takes no shared lock. What the workers
// share is read-only or safe for concurrent use: the signature bundle
// (SetBundle swaps it on every engine) and the Sink (it must accept Emit
// from several goroutines at once).
//
// Worker.Process is the per-packet call, used by the NFQUEUE handler and by
// replay alike, so a capture runs exactly the inline code path. Around
// engine.Process it publishes an atomic "busy since" stamp; the watchdog
// (Watch) reports a worker busy longer than Config.HangAfter as hung. A
// hung or stopped worker is a Failure: Run returns it and the daemon exits
// so its supervisor restarts it, while the kernel lets the traffic through
// uninspected (--queue-bypass).
//
// Verdicts map to the kernel's: Accept and Bypass accept (Bypass also asks
// the kernel to stop queueing the flow, see dataplane/nfq), Drop and
// Reject drop (the engine injects Reject's resets itself).
//
// Counters merges the workers' engine and queue counters for heartbeats;
// WriteMetrics renders them in the Prometheus text format.
//
// Cost on the packet path, beyond the engine's and nfq's own: two atomic
// stores per packet (the busy stamp reuses the handler's clock reading;
// replay adds one monotonic clock read), no allocation (AllocsPerRun in
// the tests).
package inline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/nfq"
	"github.com/openutm/utm/signatures/bundle"
)

// Errors. A Failure unwraps to one of the first two.
var (
	// ErrHung: a worker was busy with one packet longer than
	// Config.HangAfter; its queue is no longer read.
	ErrHung = errors.New("inline: engine worker hung")
	// ErrDead: a worker's queue reader stopped with an error.
	ErrDead = errors.New("inline: engine worker stopped")
	// ErrConfig is returned by New for an empty or repeated queue list.
	ErrConfig = errors.New("inline: bad configuration")
)

// DefaultHangAfter is how long a worker may spend on one packet before the
// watchdog declares it hung.
const DefaultHangAfter = 2 * time.Second

// Config configures a Pool.
type Config struct {
	// Queues are the NFQUEUE numbers, one worker each.
	Queues []uint16
	// Engine is the template of every worker's engine configuration.
	// Its Sink is shared by all workers and must be safe for concurrent
	// Emit.
	Engine engine.Config
	Bundle *bundle.Bundle
	// NFQ is the template of every worker's queue; Queue is set per
	// worker and Logger defaults to Logger.
	NFQ nfq.Config
	// HangAfter is how long one packet may take before the worker counts
	// as hung; default DefaultHangAfter.
	HangAfter time.Duration
	// HangOn is a test hook, never set in production: a worker blocks
	// (until Close) on a packet containing these bytes, so tests can prove
	// the watchdog (utmd sets it from UTMD_TEST_HANG_ON).
	HangOn []byte
	Logger *slog.Logger
}

// Failure says which worker failed and how. It unwraps to ErrHung or
// ErrDead (and to the reader's error for a dead worker).
type Failure struct {
	Queue  uint16
	Reason string        // "hung" or "dead"
	Busy   time.Duration // how long the hung worker has been on its packet
	Err    error         // the reader's error, for a dead worker
}

func (f *Failure) Error() string {
	if f.Reason == "hung" {
		return fmt.Sprintf("%v: queue %d busy with one packet for %v", ErrHung, f.Queue, f.Busy.Round(time.Millisecond))
	}
	return fmt.Sprintf("%v: queue %d: %v", ErrDead, f.Queue, f.Err)
}

// Unwrap returns ErrHung or ErrDead, and the reader's error.
func (f *Failure) Unwrap() []error {
	if f.Reason == "hung" {
		return []error{ErrHung}
	}
	return []error{ErrDead, f.Err}
}

// epoch is the origin of the busy stamps (monotonic clock).
var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) + 1 } // never 0: 0 is idle

// Worker is one queue's engine.
type Worker struct {
	Queue   uint16
	eng     *engine.Engine
	q       *nfq.Queue
	busy    atomic.Int64 // nanotime when the current packet started, 0 idle
	hangOn  []byte
	release <-chan struct{}
}

// Process inspects one packet seen at ts: engine.Process between the busy
// stamps the watchdog reads. It is the only per-packet call of inline and
// replay alike. Not safe for concurrent use (one goroutine per worker).
func (w *Worker) Process(ts time.Time, pkt []byte) engine.Verdict {
	return w.process(nanotime(), ts, pkt)
}

// process is Process with the busy stamp given (the NFQUEUE handler
// derives it from the clock reading it takes anyway).
func (w *Worker) process(stamp int64, ts time.Time, pkt []byte) engine.Verdict {
	w.busy.Store(stamp)
	if w.hangOn != nil && bytes.Contains(pkt, w.hangOn) {
		<-w.release // test hook: hang until Close
	}
	v := w.eng.Process(ts, pkt)
	w.busy.Store(0)
	return v
}

// idle is the queue's Idle hook: the engine sends what waits on time
// (engine.Idle) while no packet comes. It runs between packets, on the
// reader's goroutine, under the busy stamp like a packet.
func (w *Worker) idle() time.Duration {
	now := time.Now()
	w.busy.Store(int64(now.Sub(epoch)) + 1)
	d := w.eng.Idle(now)
	w.busy.Store(0)
	return d
}

// Close ends the worker's flows (open files are reported truncated). Call
// it only after the worker's reader stopped, or at the end of a replay.
func (w *Worker) Close() { w.eng.Close() }

// Engine returns the worker's engine (counters, stats).
func (w *Worker) Engine() *engine.Engine { return w.eng }

// BusyFor returns how long the worker has been on its current packet, 0
// when idle. Safe from any goroutine.
func (w *Worker) BusyFor() time.Duration {
	b := w.busy.Load()
	if b == 0 {
		return 0
	}
	if d := time.Duration(nanotime() - b); d > 0 {
		return d
	}
	return 0
}

// handle is the NFQUEUE handler.
func (w *Worker) handle(pkt []byte) nfq.Verdict {
	now := time.Now()
	return NFQVerdict(w.process(int64(now.Sub(epoch))+1, now, pkt))
}

// NFQVerdict maps an engine verdict to the kernel's.
func NFQVerdict(v engine.Verdict) nfq.Verdict {
	switch v {
	case engine.Accept:
		return nfq.Accept
	case engine.Bypass:
		return nfq.Bypass
	}
	return nfq.Drop
}

// Pool is the set of workers.
type Pool struct {
	cfg       Config
	log       *slog.Logger
	workers   []*Worker
	release   chan struct{}
	closeOnce sync.Once
	engOnce   sync.Once
	mu        sync.Mutex
	opened    bool
	failed    atomic.Bool // a worker failed: never wait for the readers
}

// New makes one worker (and engine) per queue. It opens no queue: a Pool
// that is never opened serves replay and tests.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Queues) == 0 {
		return nil, fmt.Errorf("%w: no queue (give -q N or -q A:B)", ErrConfig)
	}
	seen := map[uint16]bool{}
	for _, q := range cfg.Queues {
		if seen[q] {
			return nil, fmt.Errorf("%w: queue %d given twice", ErrConfig, q)
		}
		seen[q] = true
	}
	if cfg.HangAfter <= 0 {
		cfg.HangAfter = DefaultHangAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Engine.Logger == nil {
		cfg.Engine.Logger = cfg.Logger
	}
	if cfg.Engine.Learned == nil {
		// A DNS answer and the connection it leads to may hash to
		// different queues: the workers share what DNS taught them.
		cfg.Engine.Learned = engine.NewLearned()
	}
	if cfg.Engine.Heuristics == nil {
		// Beacons and incidents span flows on every queue.
		cfg.Engine.Heuristics = engine.NewHeuristics()
	}
	if cfg.Engine.FileMemory == nil {
		// MaxScanTotal caps the box, not each worker.
		cfg.Engine.FileMemory = engine.NewFileMemory()
	}
	if cfg.Engine.Blocked == nil {
		// A resume of a neutralised download is a new flow, maybe on
		// another queue.
		cfg.Engine.Blocked = engine.NewBlocked()
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, release: make(chan struct{})}
	for _, q := range cfg.Queues {
		w := &Worker{Queue: q, hangOn: cfg.HangOn, release: p.release}
		ec := cfg.Engine
		if ec.Reset != nil {
			ec.Reset = &releasing{w: w, r: ec.Reset}
		}
		w.eng = engine.New(ec, cfg.Bundle)
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// releasing is a worker's Resetter: before it forges packets it has the
// worker's queue send the verdicts it holds back (batch accepts), so a
// reset never overtakes the segments before it (see nfq.Queue.Release).
// It passes the unreachable and UDP reply interfaces through.
type releasing struct {
	w *Worker
	r engine.Resetter
}

func (x *releasing) release() {
	if q := x.w.q; q != nil {
		q.Release()
	}
}

func (x *releasing) ResetBoth(client, server netip.AddrPort, clientNext, serverNext uint32) error {
	x.release()
	return x.r.ResetBoth(client, server, clientNext, serverNext)
}

func (x *releasing) Unreachable(pkt []byte) error {
	u, ok := x.r.(engine.Unreacher)
	if !ok {
		return nil
	}
	x.release()
	return u.Unreachable(pkt)
}

func (x *releasing) ReplyUDP(pkt, payload []byte) error {
	u, ok := x.r.(engine.UDPReplier)
	if !ok {
		return nil
	}
	return u.ReplyUDP(pkt, payload)
}

// Bound returns a channel closed once every worker's queue is bound (from
// then on the kernel queues packets instead of bypassing them). Call it
// after Open.
func (p *Pool) Bound() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		for _, w := range p.workers {
			if w.q == nil {
				return // never opened: never bound
			}
			<-w.q.Bound()
		}
		close(c)
	}()
	return c
}

// Workers returns the workers, in the order of Config.Queues.
func (p *Pool) Workers() []*Worker { return p.workers }

// Open binds every worker's queue. On error the queues opened so far are
// closed.
func (p *Pool) Open() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.workers {
		c := p.cfg.NFQ
		c.Queue = w.Queue
		c.Idle = w.idle
		if c.Logger == nil {
			c.Logger = p.log
		}
		q, err := nfq.Open(c, w.handle)
		if err != nil {
			for _, o := range p.workers {
				if o.q != nil {
					o.q.Close()
					o.q = nil
				}
			}
			return err
		}
		w.q = q
	}
	p.opened = true
	return nil
}

// Run reads every queue, each on its own goroutine, and watches the
// workers, until ctx is done (then it closes the queues, waits for the
// readers and returns nil) or a worker fails: then it closes the queues
// and returns the *Failure at once, without waiting for a hung worker.
// Call Open first, and Run once.
func (p *Pool) Run(ctx context.Context) error {
	p.mu.Lock()
	opened := p.opened
	p.mu.Unlock()
	if !opened {
		return fmt.Errorf("%w: Run before Open", ErrConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := make(chan *Failure, len(p.workers)+1)
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.q.Run(ctx)
			if err == nil && ctx.Err() == nil {
				err = errors.New("the queue reader returned without being stopped")
			}
			if err != nil && ctx.Err() == nil {
				fail <- &Failure{Queue: w.Queue, Reason: "dead", Err: err}
			}
		}()
	}
	go func() {
		if f := p.Watch(ctx); f != nil {
			fail <- f
		}
	}()
	select {
	case <-ctx.Done():
		p.closeQueues()
		wg.Wait()
		return nil
	case f := <-fail:
		// A hung worker is inside the queue library's reader, and
		// closing a queue waits for its reader: close without waiting.
		p.failed.Store(true)
		cancel()
		p.closeQueues()
		return f
	}
}

// Watch checks the workers' busy stamps until ctx is done (nil) or one
// has been on a packet longer than HangAfter (its Failure). It checks four
// times per HangAfter, so a hang is seen within 1.25 × HangAfter.
func (p *Pool) Watch(ctx context.Context) *Failure {
	t := time.NewTicker(p.cfg.HangAfter / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if f := p.Check(); f != nil {
			return f
		}
	}
}

// Check returns the Failure of the first worker busy longer than
// HangAfter, or nil.
func (p *Pool) Check() *Failure {
	for _, w := range p.workers {
		if d := w.BusyFor(); d > p.cfg.HangAfter {
			return &Failure{Queue: w.Queue, Reason: "hung", Busy: d}
		}
	}
	return nil
}

// HangAfter returns the watchdog's limit.
func (p *Pool) HangAfter() time.Duration { return p.cfg.HangAfter }

func (p *Pool) closeQueues() {
	for _, w := range p.workers {
		if w.q == nil {
			continue
		}
		if p.failed.Load() {
			go w.q.Close()
		} else {
			w.q.Close()
		}
	}
}

// Close closes the queues, releases a worker held by the test hook and,
// unless a worker failed, closes the engines of the opened queues (their
// flows end, open files are reported). After a Failure it does not wait
// for the queue readers (a hung one never returns). Safe to call more
// than once and from any goroutine.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { close(p.release) })
	p.closeQueues()
	if !p.failed.Load() {
		// The readers are gone (closeQueues waited for them): end the
		// engines' flows and their hashing goroutines. After a Failure a
		// hung worker may still be inside its engine; the process exits.
		// A worker never opened is driven by its caller (replay), who
		// closes it.
		p.engOnce.Do(func() {
			for _, w := range p.workers {
				if w.q != nil {
					w.eng.Close()
				}
			}
		})
	}
}

// SetBundle swaps the signatures of every worker; packets in flight finish
// with the old ones.
func (p *Pool) SetBundle(b *bundle.Bundle) {
	for _, w := range p.workers {
		w.eng.SetBundle(b)
	}
}

// Counters returns every worker's engine counters as q<N>_<name> and its
// queue's as q<N>_nfq_<name>, plus their sums under <name> and
// nfq_<name>, and "queues", the number of workers.
func (p *Pool) Counters() map[string]uint64 {
	m := map[string]uint64{"queues": uint64(len(p.workers))}
	for _, w := range p.workers {
		pre := "q" + strconv.Itoa(int(w.Queue)) + "_"
		for k, v := range w.eng.Counters() {
			m[pre+k] = v
			if boxWide[k] {
				m[k] = v // the workers share it: not a sum
				continue
			}
			m[k] += v
		}
		if w.q != nil {
			for k, v := range w.q.Counters() {
				m[pre+"nfq_"+k] = v
				m["nfq_"+k] += v
			}
		}
	}
	return m
}

// boxWide are engine counters the workers share (one value for the box).
var boxWide = map[string]bool{"file_memory_bytes": true, "prefilter_errors": true, "pcre_limit_hits": true, "pcre_errors": true}

// Queues returns the queue numbers, sorted.
func (p *Pool) Queues() []uint16 {
	q := make([]uint16, 0, len(p.workers))
	for _, w := range p.workers {
		q = append(q, w.Queue)
	}
	sort.Slice(q, func(i, j int) bool { return q[i] < q[j] })
	return q
}
