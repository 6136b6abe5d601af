//go:build linux

// Package nfq reads packets from a netfilter queue (NFQUEUE) and returns
// the engine's verdict for each.
//
// The queue is opened with the fail-open flag: when it is full the kernel
// accepts packets instead of dropping them, so an overloaded engine slows
// inspection, never the office. Together with the steering rule's
// --queue-bypass (the kernel accepts while no process listens) this is the
// box's fail-open. Both events are counted.
//
// The handler runs on one reader goroutine, one packet at a time; the
// packet slice is valid only during the call (it aliases the receive
// buffer). A verdict is sent when the handler returns, so a packet is held
// exactly as long as the engine inspects it; with Config.Batch, accepts
// wait for one batch verdict only while more packets already wait in the
// socket.
//
// Design: github.com/florianl/go-nfqueue opens the netlink socket, binds
// the queue and sets its configuration (copy mode, 0xffff bytes, GSO,
// fail-open, queue length). Its receive path is replaced: the lab profile
// of utmd --inspect=none under 8 iperf3 streams (hack/bench/lab) spent
// 28-31% in GC marking, 14-17% allocating and 49-55% in go-nfqueue's
// receive and parse, because mdlayher/netlink allocates a fresh buffer per
// message, peeks and doubles it until the message fits (a 64 KiB GSO
// packet: up to 6 recvmsg calls and ~256 KiB of zeroed memory) and
// go-nfqueue copies every attribute into an Attribute of pointers. Run
// lets go-nfqueue bind, then sets a read deadline in the past: the
// library's reader fails its next read and its error callback runs our
// loop in its place, on its goroutine (packets it read before are handled
// through hook). The loop reads each datagram with one non-blocking
// recvfrom (MSG_TRUNC) into one 128 KiB buffer through the socket's
// RawConn (the runtime poller waits, so Close and the context's deadline
// unblock it), walks the netlink messages in place (wire.go: NFQA_PACKET_HDR,
// NFQA_MARK, NFQA_PAYLOAD, NFQA_CAP_LEN, NFQA_SKB_INFO), calls the handler
// with the payload and appends the verdicts (NFQNL_MSG_VERDICT or
// _BATCH, NFQA_MARK for Bypass) to a reused buffer sent with one sendto.
// A message larger than the buffer cannot occur with the queue's settings;
// if one does it is accepted uninspected (counted: truncated). The kernel
// answers a verdict only when it refuses it (NLMSG_ERROR, counted as a
// verdict error).
//
// Both syscalls are raw (unix.RawSyscall6): neither can block (recvfrom
// has MSG_DONTWAIT; a verdict is handled in the sendto, the reinjected
// packet's forwarding included), and the runtime's syscall bookkeeping
// would hand the goroutine's P to another thread when the forwarding runs
// long.
//
// Waiting: when the socket is empty the reader first polls it for up to
// Config.Spin (recvfrom again and again), then sleeps in the runtime
// poller. On the lab's 2-vCPU VM a sleeping reader costs a thread wake-up,
// a vCPU leaving its idle state and the Go scheduler's own wake-ups
// (sysmon polls every 20 us for a millisecond after every idle period)
// before the next packet is read; the spin takes the packet at once.
// It is adaptive: the reader measures every wait, and spins only while
// most recent waits were shorter than Spin (spinCredit), so an idle or
// lightly loaded box sleeps at once and burns no CPU, and not while the
// kernel's CPU pressure says tasks already wait for CPUs (cpuPressure:
// then the spin takes the CPU from the work that feeds the queue, or from
// the engine's helpers). Before it sleeps the reader calls Config.Idle,
// which may ask to be woken after a while (a read deadline) for work that
// waits on time, not on packets.
//
// Cost: no allocation per packet (TestNoAllocs); per datagram one
// recvfrom, and one sendto per verdict message or, with Batch, per batch
// (a drop or bypass and the accepts held before it share one sendto).
// Without syscalls the walk, parse and verdict cost ~50 ns a packet
// (BenchmarkDatagram).
package nfq

import (
	"context"
	"encoding/binary"
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
	NetNS int
	// Spin is how long the reader polls an empty socket before it sleeps,
	// while recent waits were mostly shorter than that (see the package
	// doc); 0 means DefaultSpin, a negative value never spins.
	Spin time.Duration
	// Idle, when set, is called on the reader's goroutine (where the
	// handler runs) before it sleeps; it returns how long the reader may
	// sleep before Idle is called again if no packet comes (0: until one
	// comes).
	Idle   func() time.Duration
	Logger *slog.Logger
}

// DefaultSpin is the default Config.Spin: on the lab VM it covers the gap
// between the packets of a download (an ACK's round trip through the
// client), not the gaps of an idle link. hack/bench/lab, 1 MB downloads
// with full inspection: 0.57 of the C floor without spinning, 0.59 with
// 50 us, 0.62 with 100 us, 0.58 with 200 us (same run). The price is paid
// where the CPU is short: the lab's short-flows row, whose client and
// server share the VM's two vCPUs with the box, loses 10-15% (a spinning
// CPU never goes idle, so the scheduler does not move their work to it);
// the CPU-pressure gate (cpuPressure) wins back about half of that. A box
// does not run its office's clients; a board that must save power sets 0
// (utmd --queue-spin 0).
const DefaultSpin = 100 * time.Microsecond

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
	// tookOver says the receive loop replaced go-nfqueue's reader.
	tookOver atomic.Bool

	packets, accepted, dropped, errs, verdictErrs atomic.Uint64
	bypassed, idGaps, batches, spins, cpuShort    atomic.Uint64
	truncated, malformed, gso, capped             atomic.Uint64
	lastErrLog                                    atomic.Int64

	// The receive loop's state; only the reader goroutine touches it.
	rc     syscall.RawConn
	readFn func(fd uintptr) bool // q.readFD, set once: no closure allocation per read
	sendFn func(fd uintptr)      // q.sendFD
	buf    []byte                // receive buffer, reused
	n      int                   // the last datagram's length (MSG_TRUNC: may exceed len(buf))
	rerr   syscall.Errno         // the last read's error
	out    []byte                // verdicts to send, reused
	serr   syscall.Errno         // the last send's error
	msg    packetMsg
	spin   int64 // Config.Spin in ns; 0: no spinning
	// spinCredit rises (to spinCreditMax) with each wait shorter than
	// spin and falls with each longer one; the reader spins while it is
	// positive. slept is when the reader went to sleep (0: it did not).
	spinCredit int
	cpu        cpuPressure // no spinning while the CPU is short
	slept      int64
	deadline   bool // a read deadline for Idle is set
	lastID     uint32
	pendID     uint32                // highest accepted packet id not yet verdicted
	pendN      int                   // accepts held back
	tap        func(datagram []byte) // tests: sees every datagram read
}

// recvBufLen is the receive buffer: a whole packet message with the
// largest payload the queue copies (MaxPacketLen 0xffff: a GSO
// super-packet) and its attributes fits with room to spare.
const recvBufLen = 128 << 10

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
	rc, err := nf.Con.SyscallConn()
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfq: open queue %d: no raw access to the netlink socket: %w", cfg.Queue, err)
	}
	q := newQueue(cfg, h, rc)
	q.nf = nf
	return q, nil
}

// newQueue returns a Queue reading and sending on rc (the tests give it a
// socket pair).
func newQueue(cfg Config, h func([]byte) Verdict, rc syscall.RawConn) *Queue {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BypassMark == 0 {
		cfg.BypassMark = DefaultBypassMark
	}
	if cfg.Spin == 0 {
		cfg.Spin = DefaultSpin
	}
	q := &Queue{cfg: cfg, h: h, log: cfg.Logger, bound: make(chan struct{}), rc: rc,
		buf: make([]byte, recvBufLen), out: make([]byte, 0, 4*markedVerdictLen)}
	q.spin = max(int64(cfg.Spin), 0)
	q.cpu.path = "/proc/pressure/cpu"
	q.readFn = q.readFD
	q.sendFn = q.sendFD
	return q
}

// readFD reads one datagram without blocking. When the socket is empty
// it sends the accepts held back for a batch (accepts are held only while
// more packets wait), spins for the next datagram if waits have been
// short, and otherwise returns false: the poller sleeps until the socket
// is readable (after calling Config.Idle).
func (q *Queue) readFD(fd uintptr) bool {
	if q.slept != 0 {
		// Woken by a datagram (or a deadline): was the wait short?
		q.scoreWait(monotime() - q.slept)
		q.slept = 0
	}
	var spinFrom int64
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&q.buf[0])), uintptr(len(q.buf)),
			unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if q.pendN > 0 {
				q.appendFlush()
				q.sendOut()
			}
			if q.spinCredit > 0 {
				now := monotime()
				switch {
				case spinFrom == 0 && !q.cpu.isShort(now):
					spinFrom = now
					continue
				case spinFrom == 0:
					q.cpuShort.Add(1) // sleep: tasks wait for CPUs already
				case now-spinFrom < q.spin:
					continue
				default:
					q.scoreWait(now - spinFrom) // the spin was in vain
				}
			}
			if q.cfg.Idle != nil {
				q.idle()
			}
			q.slept = monotime()
			return false
		}
		if spinFrom != 0 {
			q.spins.Add(1)
			q.scoreWait(0)
		}
		q.n, q.rerr = int(n), e
		return true
	}
}

// spinCreditMax bounds spinCredit: after a burst, at most this many spins
// in a row are in vain before the reader stops spinning.
const spinCreditMax = 4

// scoreWait counts a wait of d ns toward spinning or not.
func (q *Queue) scoreWait(d int64) {
	if q.spin == 0 {
		return
	}
	if d < q.spin {
		q.spinCredit = min(q.spinCredit+1, spinCreditMax)
	} else if q.spinCredit > 0 {
		q.spinCredit--
	}
}

// idle calls Config.Idle before the reader sleeps and arms or clears the
// read deadline it asks for.
func (q *Queue) idle() {
	d := q.cfg.Idle()
	if q.nf == nil {
		return // tests without go-nfqueue
	}
	switch {
	case d > 0:
		q.nf.Con.SetReadDeadline(time.Now().Add(d))
		q.deadline = true
	case q.deadline:
		q.nf.Con.SetReadDeadline(time.Time{})
		q.deadline = false
	}
}

// monotime is a monotonic clock in ns.
func monotime() int64 { return int64(time.Since(monoEpoch)) }

var monoEpoch = time.Now()

// sendFD sends q.out in one sendto: the kernel takes the messages in order.
func (q *Queue) sendFD(fd uintptr) {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&q.out[0])), uintptr(len(q.out)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		q.serr = e
		return
	}
}

// sendOut sends the verdicts collected in q.out, counting a failure.
func (q *Queue) sendOut() {
	if len(q.out) == 0 {
		return
	}
	q.serr = 0
	err := q.rc.Control(q.sendFn)
	q.out = q.out[:0]
	if err == nil && q.serr != 0 {
		err = q.serr
	}
	q.verdictErr(err)
}

// Release sends every verdict decided so far, the held accepts included.
// The handler calls it, on the queue's goroutine, before it acts on the
// network itself: a TCP reset the engine forges must reach the kernel
// after the accepts of the segments before it, or the reset's sequence
// number is ahead of what the receiver has and Linux ignores it (the
// client of a cut download then hangs instead of seeing the reset).
func (q *Queue) Release() {
	q.appendFlush()
	q.sendOut()
}

// appendFlush appends the batch verdict for the accepts held back: the
// kernel accepts every queued packet numbered up to pendID (they are all
// ours and all decided: the kernel hands packets over in order and the
// engine keeps none past its handler).
func (q *Queue) appendFlush() {
	if q.pendN == 0 {
		return
	}
	q.pendN = 0
	q.batches.Add(1)
	q.out = appendVerdict(q.out, msgVerdictBatch, q.cfg.Queue, q.pendID, nfAccept, 0, false)
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
	// go-nfqueue bound the queue and started its reader. A read deadline
	// in the past makes that reader's next Receive fail at once; onError,
	// on the library's goroutine, then runs our receive loop in its place.
	// Packets the library reads first go through hook.
	if err := q.nf.Con.SetReadDeadline(time.Unix(1, 0)); err != nil {
		q.log.Warn("nfq: cannot hand the queue over to the allocation-free reader; packets are read by go-nfqueue", "queue", q.cfg.Queue, "err", err)
	}
	close(q.bound)
	<-ctx.Done()
	return nil
}

// loop is the receive path: one recvfrom per datagram into q.buf, the
// messages parsed in place, verdicts sent from q.out. It returns when ctx
// is done or the socket is closed.
func (q *Queue) loop(ctx context.Context) {
	for {
		if ctx.Err() != nil {
			return
		}
		err := q.rc.Read(q.readFn)
		if err != nil {
			q.appendFlush()
			q.sendOut()
			if ctx.Err() != nil || q.closing.Load() {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// go-nfqueue's reader handed over (Run), or Idle's
				// deadline came: Idle runs again before the next sleep.
				q.nf.Con.SetReadDeadline(time.Time{})
				q.deadline = false
				continue
			}
			q.errs.Add(1)
			q.log.Error("nfq: the queue socket failed; packets bypass the engine until utmd restarts", "queue", q.cfg.Queue, "err", err)
			return
		}
		if q.rerr != 0 {
			q.errs.Add(1)
			if q.rerr == unix.ENOBUFS {
				q.logErr("nfq: the socket receive buffer overflowed and packets passed uninspected; raise the read buffer (profile RcvBuf)", q.rerr)
			} else {
				q.logErr("nfq: read error; reading continues", q.rerr)
			}
			continue
		}
		q.datagram(q.buf[:min(q.n, len(q.buf))], q.n > len(q.buf))
	}
}

// datagram handles the netlink messages of one datagram in place; cut
// says the datagram was larger than the buffer (its last message is
// incomplete).
func (q *Queue) datagram(b []byte, cut bool) {
	if q.tap != nil {
		q.tap(b)
	}
	for len(b) > 0 {
		typ, body, rest, whole, ok := nextMessage(b)
		if !ok {
			q.malformed.Add(1)
			return
		}
		switch {
		case typ == msgPacket && whole:
			if !parsePacket(body, &q.msg) {
				q.malformed.Add(1)
				break
			}
			q.packet(&q.msg, q.cfg.Batch > 1)
		case typ == msgPacket && cut:
			// Larger than the buffer: the payload is missing, the id
			// is at the front. Accept it uninspected rather than leave
			// it queued (counted: truncated).
			if !parsePacket(body, &q.msg) {
				q.malformed.Add(1)
				break
			}
			q.truncated.Add(1)
			q.accepted.Add(1)
			q.noteID(q.msg.id)
			q.appendFlush()
			q.out = appendVerdict(q.out, msgVerdict, q.cfg.Queue, q.msg.id, nfAccept, 0, false)
		case !whole:
			q.malformed.Add(1)
		case typ == nlmsgError:
			// Verdicts are sent without NLM_F_ACK: an error message is
			// the kernel refusing one (unknown id, bad message).
			if e, ok := errorCode(body); ok && e != 0 {
				q.verdictErrs.Add(1)
				q.logErr("nfq: the kernel refused a verdict; the packet waits until the queue is unbound", syscall.Errno(e))
			}
		}
		q.sendOut()
		b = rest
	}
}

// hook handles the packets go-nfqueue's reader reads before the receive
// loop takes over (see Run).
func (q *Queue) hook(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	m := packetMsg{id: *a.PacketID, hasHdr: true}
	if a.Payload != nil {
		m.payload = *a.Payload
	}
	if a.Mark != nil {
		m.mark, m.hasMark = *a.Mark, true
	}
	if a.SkbInfo != nil && len(*a.SkbInfo) >= 4 {
		m.skbInfo = binary.BigEndian.Uint32(*a.SkbInfo)
	}
	if a.CapLen != nil {
		m.capLen = *a.CapLen
	}
	q.packet(&m, false)
	q.sendOut()
	return 0
}

// noteID counts the holes in the kernel's packet numbering.
func (q *Queue) noteID(id uint32) {
	// The kernel numbers queued packets 1, 2, 3...; it takes the number
	// before it finds our socket buffer full and fails the packet open, so
	// a hole in the sequence is a packet that passed uninspected.
	if last := q.lastID; last != 0 && id > last+1 {
		q.idGaps.Add(uint64(id - last - 1))
	}
	q.lastID = id
}

// packet hands one packet to the handler and appends its verdict to q.out;
// with hold an accept may wait for a batch verdict instead.
func (q *Queue) packet(m *packetMsg, hold bool) {
	q.packets.Add(1)
	if m.skbInfo&skbGSO != 0 {
		q.gso.Add(1)
	}
	if m.capLen != 0 {
		q.capped.Add(1)
	}
	v := Accept
	if m.payload != nil {
		v = q.h(m.payload)
	}
	id := m.id
	q.noteID(id)
	if v == Bypass && (!q.cfg.KernelBypass || (m.hasMark && m.mark&q.cfg.BypassMark != 0)) {
		// No rules to honour the mark, or the packet came back marked
		// (rules missing): never loop; a plain accept, batched like any
		// (each packet of a bypassed flow would otherwise cost a sendto).
		v = Accept
	}
	if v != Accept {
		// Held accepts first: a verdict must not overtake them.
		q.appendFlush()
	}
	switch v {
	case Drop:
		q.dropped.Add(1)
		q.out = appendVerdict(q.out, msgVerdict, q.cfg.Queue, id, nfDrop, 0, false)
	case Bypass:
		q.accepted.Add(1)
		// NF_REPEAT with the mark: the packet runs FORWARD again, the
		// steering rules copy the mark to its connection and accept it;
		// later packets of the connection are accepted before NFQUEUE.
		q.bypassed.Add(1)
		q.out = appendVerdict(q.out, msgVerdict, q.cfg.Queue, id, nfRepeat, q.cfg.BypassMark, true)
	default:
		q.accepted.Add(1)
		if !hold || q.cfg.Batch <= 1 {
			q.out = appendVerdict(q.out, msgVerdict, q.cfg.Queue, id, nfAccept, 0, false)
			break
		}
		q.pendID = id
		q.pendN++
		if q.pendN >= q.cfg.Batch {
			q.appendFlush()
		}
		// Otherwise the accept waits: the next read sends it when
		// nothing more waits in the socket (readFD).
	}
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
	var ne *netlink.OpError
	if !q.tookOver.Load() && (errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		// Run's deadline: take the reading over from go-nfqueue.
		q.tookOver.Store(true)
		if err := q.nf.Con.SetReadDeadline(time.Time{}); err != nil && !q.closing.Load() {
			q.log.Error("nfq: cannot clear the socket's read deadline; packets bypass the engine until utmd restarts", "queue", q.cfg.Queue, "err", err)
			return 1
		}
		q.loop(ctx)
		return 1
	}
	q.errs.Add(1)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return 1
	}
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

// Counters returns the queue's counters by name: packets handed to the
// handler, their verdicts (accepted includes bypassed and truncated),
// read_errors and verdict_errors (a failed send or a verdict the kernel
// refused), id_gaps (packets the kernel failed open because our socket
// buffer was full), verdict_batches, truncated (a message larger than the
// receive buffer, accepted uninspected), malformed (a message that could
// not be parsed, skipped), gso (offload super-packets) and capped (packets
// longer than the 0xffff bytes copied: the handler saw the head).
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
		"spin_hits":       q.spins.Load(),    // datagrams taken while polling an empty socket instead of sleeping
		"spin_cpu_short":  q.cpuShort.Load(), // sleeps without a spin because tasks waited for CPUs (PSI)
		"truncated":       q.truncated.Load(),
		"malformed":       q.malformed.Load(),
		"gso":             q.gso.Load(),
		"capped":          q.capped.Load(),
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
