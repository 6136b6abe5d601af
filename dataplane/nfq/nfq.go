//go:build linux

// Package nfq reads packets from a netfilter queue (NFQUEUE) and returns
// the engine's verdict for each, through github.com/florianl/go-nfqueue.
//
// The queue is opened with the fail-open flag: when it is full the kernel
// accepts packets instead of dropping them, so an overloaded engine slows
// inspection, never the office. Together with the steering rule's
// --queue-bypass (the kernel accepts while no process listens) this is the
// box's fail-open. Both events are counted.
//
// The handler runs on the library's reader goroutine, one packet at a
// time; the packet slice is valid only during the call. A verdict is sent
// when the handler returns, so a packet is held exactly as long as the
// engine inspects it.
//
// Cost: the library decodes each netlink message into an Attribute, which
// allocates per packet; this package adds no allocation of its own. The
// verdict is one sendmsg.
package nfq

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// Verdict is what the kernel does with a queued packet.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota
	Drop
	// Bypass accepts the packet and has the kernel stop queueing its
	// connection: the steering rules accept connections carrying the
	// bypass conntrack mark before NFQUEUE (see board/steer).
	Bypass
)

// Config configures a queue.
type Config struct {
	Queue       uint16
	MaxQueueLen uint32 // packets the kernel holds for us; default 4096
	FailOpen    bool   // accept when the queue is full (always true in the box); NFQA_CFG_F_FAIL_OPEN
	// ReadBuffer is the netlink socket's receive buffer in bytes; default
	// 8 MiB. The kernel copies each queued packet into it; when it is full
	// the packet is accepted uninspected (fail-open) or dropped, so it must
	// hold a burst of MaxQueueLen packets.
	ReadBuffer int
	// BypassMark is the packet mark a Bypass verdict sets (with NF_REPEAT,
	// so the packet runs the hook again and the steering rules save the
	// mark on its connection); default 0x40000000. It must match the
	// steering rules' (board/profile BypassMark).
	BypassMark uint32
	// KernelBypass says the steering rules accept marked packets (board/steer
	// installs them). Without it a Bypass verdict is a plain accept: NF_REPEAT
	// with rules that do not know the mark would queue the packet again.
	KernelBypass bool
	// Batch is the most accepts that share one batch verdict; 0 or 1 sends
	// one verdict per packet. An accept is held back only while another
	// packet already waits in the socket (a non-blocking peek), so a batch
	// never delays a packet behind traffic that has not arrived; a drop or
	// bypass verdict, or an empty socket, sends the held accepts first.
	Batch int
	// NetNS, when nonzero, is a network namespace file descriptor to open
	// the queue in (queues are per namespace); 0 is the caller's.
	NetNS  int
	Logger *slog.Logger
}

// Queue is an open NFQUEUE.
type Queue struct {
	cfg Config
	nf  *nfqueue.Nfqueue
	h   func([]byte) Verdict
	log *slog.Logger

	bound   chan struct{}
	mu      sync.Mutex
	cancel  context.CancelFunc // stops the reader; set by Run
	closed  bool
	closing atomic.Bool

	packets, accepted, dropped, errs, verdictErrs atomic.Uint64
	bypassed, idGaps, batches                     atomic.Uint64
	lastID                                        uint32 // only the reader goroutine touches it
	lastErrLog                                    atomic.Int64

	// Batch verdicts; only the reader goroutine touches these.
	rc       syscall.RawConn
	peek     func(fd uintptr) // set once: no closure allocation per packet
	peekMore bool
	peekBuf  [1]byte
	pendID   uint32 // highest accepted packet id not yet verdicted
	pendN    int    // accepts held back
}

// DefaultBypassMark is the packet and conntrack mark bit of bypassed
// connections: one high bit, clear of marks routing setups commonly use.
const DefaultBypassMark = 0x40000000

// ErrClosed is returned by Run on a closed Queue.
var ErrClosed = errors.New("nfq: queue closed")

// Open binds queue cfg.Queue. It fails if another process holds the queue
// or the process lacks CAP_NET_ADMIN.
func Open(cfg Config, h func(pkt []byte) Verdict) (*Queue, error) {
	if cfg.MaxQueueLen == 0 {
		cfg.MaxQueueLen = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// GSO: take offloaded super-packets whole instead of having the kernel
	// segment them for us: one verdict per skb, and the NFQUEUE rule
	// counters count what we see.
	flags := uint32(nfqueue.NfQaCfgFlagGSO)
	if cfg.FailOpen {
		flags |= nfqueue.NfQaCfgFlagFailOpen
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      cfg.Queue,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  cfg.MaxQueueLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        flags,
		NetNS:        cfg.NetNS,
		WriteTimeout: time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("nfq: open queue %d: %w (run as root or with CAP_NET_ADMIN; is another utmd running?)", cfg.Queue, err)
	}
	if cfg.BypassMark == 0 {
		cfg.BypassMark = DefaultBypassMark
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 8 << 20
	}
	if err := setReadBuffer(nf.Con, cfg.ReadBuffer); err != nil {
		cfg.Logger.Warn("nfq: cannot size the socket receive buffer; bursts may pass uninspected", "want_bytes", cfg.ReadBuffer, "err", err)
	}
	// Without this a burst that overflows the socket buffer ends the
	// reader with ENOBUFS; with it the kernel drops (fail-open accepts).
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		cfg.Logger.Warn("nfq: cannot set NETLINK_NO_ENOBUFS; a burst may interrupt reading", "err", err)
	}
	q := &Queue{cfg: cfg, nf: nf, h: h, log: cfg.Logger, bound: make(chan struct{})}
	if cfg.Batch > 1 {
		rc, err := nf.Con.SyscallConn()
		if err != nil {
			cfg.Logger.Warn("nfq: no raw socket access; verdicts are sent one by one", "err", err)
			q.cfg.Batch = 0
		} else {
			q.rc = rc
			q.peek = q.peekFD
		}
	}
	return q, nil
}

// peekFD sets peekMore when another message waits in the socket. Raw
// syscall: unix.Recvfrom would allocate the sender's address.
func (q *Queue) peekFD(fd uintptr) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&q.peekBuf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	q.peekMore = e == 0 && n > 0
}

// morePending reports whether another packet already waits to be read.
func (q *Queue) morePending() bool {
	q.peekMore = false
	if err := q.rc.Control(q.peek); err != nil {
		return false
	}
	return q.peekMore
}

// flush sends the accepts held back, as one batch verdict: the kernel
// accepts every queued packet numbered up to pendID (they are all ours and
// all decided: the kernel hands packets over in order and the engine keeps
// none past its handler).
func (q *Queue) flush() error {
	if q.pendN == 0 {
		return nil
	}
	id := q.pendID
	q.pendN = 0
	q.batches.Add(1)
	return q.nf.SetVerdictBatch(id, nfqueue.NfAccept)
}

// Run binds the queue and hands every queued packet to the handler until
// ctx is done or Close is called; then it returns nil. It returns an error
// when the kernel refuses the binding (another process holds the queue).
// Call it once.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	ctx, q.cancel = context.WithCancel(ctx)
	q.mu.Unlock()
	err := q.nf.RegisterWithErrorFunc(ctx, q.hook, func(err error) int { return q.onError(ctx, err) })
	if err != nil {
		return fmt.Errorf("nfq: bind queue %d: %w (is another utmd running on this queue?)", q.cfg.Queue, err)
	}
	close(q.bound)
	<-ctx.Done()
	return nil
}

func (q *Queue) hook(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		q.verdictErr(q.flush())
		return 0
	}
	q.packets.Add(1)
	v := Accept
	if a.Payload != nil {
		v = q.h(*a.Payload)
	}
	id := *a.PacketID
	// The kernel numbers queued packets 1, 2, 3...; it takes the number
	// before it finds our socket buffer full and fails the packet open, so
	// a hole in the sequence is a packet that passed uninspected.
	if last := q.lastID; last != 0 && id > last+1 {
		q.idGaps.Add(uint64(id - last - 1))
	}
	q.lastID = id
	var err error
	if v != Accept {
		// Held accepts first: a verdict must not overtake them.
		q.verdictErr(q.flush())
	}
	switch v {
	case Drop:
		q.dropped.Add(1)
		err = q.nf.SetVerdict(id, nfqueue.NfDrop)
	case Bypass:
		if !q.cfg.KernelBypass || (a.Mark != nil && *a.Mark&q.cfg.BypassMark != 0) {
			// No rules to honour the mark, or the packet came back
			// marked (rules missing): never loop, accept.
			q.accepted.Add(1)
			err = q.nf.SetVerdict(id, nfqueue.NfAccept)
			break
		}
		// NF_REPEAT with the mark: the packet runs FORWARD again, the
		// steering rules copy the mark to its connection and accept it;
		// later packets of the connection are accepted before NFQUEUE.
		q.accepted.Add(1)
		q.bypassed.Add(1)
		err = q.nf.SetVerdictWithMark(id, nfqueue.NfRepeat, int(q.cfg.BypassMark))
	default:
		q.accepted.Add(1)
		if q.cfg.Batch <= 1 {
			err = q.nf.SetVerdict(id, nfqueue.NfAccept)
			break
		}
		q.pendID = id
		q.pendN++
		if q.pendN < q.cfg.Batch && q.morePending() {
			return 0 // the next packet's handler sends it
		}
		err = q.flush()
	}
	return q.verdictErr(err)
}

// verdictErr counts and logs a failed verdict; it returns the hook's
// result: 1 stops the reader (the queue is closing).
func (q *Queue) verdictErr(err error) int {
	if err == nil {
		return 0
	}
	q.verdictErrs.Add(1)
	if q.closing.Load() {
		return 1 // Close raced the verdict; the kernel drops what is queued
	}
	q.logErr("nfq: cannot send a verdict; the kernel keeps the packet until the queue times out", err)
	return 0
}

func (q *Queue) onError(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		return 1 // stopping: the library interrupts its read with a deadline
	}
	// The peek saw this message coming and held accepts for it: send them.
	q.verdictErr(q.flush())
	q.errs.Add(1)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return 1
	}
	var ne *netlink.OpError
	if errors.As(err, &ne) && ne.Timeout() {
		return 0
	}
	q.logErr("nfq: read error; reading continues", err)
	return 0
}

// logErr logs at most one error a second.
func (q *Queue) logErr(msg string, err error) {
	now := time.Now().Unix()
	if q.lastErrLog.Swap(now) != now {
		q.log.Warn(msg, "queue", q.cfg.Queue, "err", err)
	}
}

// Counters returns the queue's counters by name.
func (q *Queue) Counters() map[string]uint64 {
	return map[string]uint64{
		"packets":         q.packets.Load(),
		"accepted":        q.accepted.Load(),
		"dropped":         q.dropped.Load(),
		"read_errors":     q.errs.Load(),
		"verdict_errors":  q.verdictErrs.Load(),
		"bypassed":        q.bypassed.Load(),
		"id_gaps":         q.idGaps.Load(),
		"verdict_batches": q.batches.Load(),
	}
}

// Bound is closed once Run has bound the queue: from then on the kernel
// queues packets to the handler instead of bypassing.
func (q *Queue) Bound() <-chan struct{} { return q.bound }

// Stats are the queue's counters.
type Stats struct {
	Packets, Accepted, Dropped, ReadErrors, VerdictErrors uint64
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	return Stats{q.packets.Load(), q.accepted.Load(), q.dropped.Load(), q.errs.Load(), q.verdictErrs.Load()}
}

// Close stops Run and unbinds the queue. Packets still queued are dropped
// by the kernel and retransmitted by their senders; new ones bypass
// (--queue-bypass). Close may be called from any goroutine, more than once.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.closing.Store(true)
	if q.cancel != nil {
		q.cancel()
	}
	q.mu.Unlock()
	return q.nf.Close()
}

// setReadBuffer sizes the socket's receive buffer, beyond net.core.rmem_max
// when the process has CAP_NET_ADMIN (SO_RCVBUFFORCE).
func setReadBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
	if err == nil && serr == nil {
		return nil
	}
	return c.SetReadBuffer(n)
}
