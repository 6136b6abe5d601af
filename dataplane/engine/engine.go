package engine

import (
	"hash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openutm/utm/dataplane/archive"
	"github.com/openutm/utm/dataplane/beacon"
	"github.com/openutm/utm/dataplane/contentenc"
	"github.com/openutm/utm/dataplane/defrag"
	"github.com/openutm/utm/dataplane/dnsmsg"
	"github.com/openutm/utm/dataplane/flow"
	"github.com/openutm/utm/dataplane/internal/lru"
	"github.com/openutm/utm/dataplane/packet"
	"github.com/openutm/utm/dataplane/stream"
	"github.com/openutm/utm/signatures/av"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// Verdict is what to do with a packet.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota
	Drop           // drop this packet and the rest of its flow
	Reject         // Drop, and reset both ends of a TCP connection
	// Bypass accepts the packet and says the flow needs no more
	// inspection: the caller may have the kernel stop queueing it
	// (conntrack mark). Packets of a bypassed flow that still arrive are
	// accepted and counted, not inspected.
	Bypass
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Reject:
		return "reject"
	case Bypass:
		return "bypass"
	}
	return "unknown"
}

// Sink receives events. Emit is called on the packet path, once per alert or
// extracted file: it must not block for long (the spool appends, the eve
// writer writes one line).
type Sink interface {
	Emit(ev *alert.Event)
}

// Resetter injects TCP resets toward both ends of a connection. clientNext
// is the next sequence number the server expects from the client, and
// serverNext the one the client expects from the server.
type Resetter interface {
	ResetBoth(client, server netip.AddrPort, clientNext, serverNext uint32) error
}

// Unreacher answers a rejected packet that is not TCP with an ICMP (ICMPv6)
// destination unreachable to its sender (port unreachable for UDP). pkt is
// the whole IP packet. The Config.Reset value may implement it
// (inject.Injector does); if it does not, Reject drops such packets
// silently.
type Unreacher interface {
	Unreachable(pkt []byte) error
}

// UDPReplier sends a datagram in a server's place: payload to the sender of
// pkt (a whole IP/UDP packet), from pkt's destination. The Config.Reset
// value may implement it (inject.Injector does); the engine uses it to
// answer DNS queries for blocked domains.
type UDPReplier interface {
	ReplyUDP(pkt, payload []byte) error
}

// DNSPolicy is what the engine does with a DNS query for a domain on the
// threat-intel list.
type DNSPolicy uint8

// DNS policies.
const (
	// DNSAlert lets the lookup through with a ★★ alert; the connection to
	// the address it returns is blocked at its first packet (★★★).
	DNSAlert DNSPolicy = iota
	// DNSNXDomain drops the query and answers NXDOMAIN (★★★): the client
	// never learns the address.
	DNSNXDomain
	// DNSSinkhole drops the query and answers with Config.Sinkhole4 (A) or
	// Sinkhole6 (AAAA), NOERROR without records for other types (★★★).
	DNSSinkhole
)

// sinkholeTTL is the TTL of sinkhole answers, seconds.
const sinkholeTTL = 300

// FileMemory is a box-wide count of the bytes kept for scanning.
type FileMemory struct{ atomic.Int64 }

// NewFileMemory returns a zero count.
func NewFileMemory() *FileMemory { return new(FileMemory) }

// Config configures an Engine. Zero values take the defaults noted.
type Config struct {
	MaxFlows     int // default 65536
	StreamBuffer int // out-of-order bytes buffered per direction, default 256 KiB
	// StreamDepth is how many bytes of each direction of a TCP flow are
	// inspected before the flow is bypassed (see the package doc for the
	// per-protocol table); default 1 MiB, negative: never bypass by depth.
	StreamDepth int
	// StreamMemory caps the reassembly memory of all flows (out-of-order
	// pages, retransmission history); default 128 MiB.
	StreamMemory int
	MaxScanSize  int // bytes of a file kept for scanning, default 16 MiB
	// BodyInspectLimit is how many bytes of an HTTP body the body rules
	// (http.request_body, http.response_body, file.data) inspect; default
	// 100 KiB, Suricata's request-body-limit/response-body-limit. The
	// antivirus scans the whole file (up to MaxScanSize) regardless.
	BodyInspectLimit int
	MaxScanTotal     int64 // bytes of all files kept for scanning, idle file buffers included (box-wide when FileMemory is shared), default 256 MiB
	// FileMemory counts the bytes of files kept for scanning against
	// MaxScanTotal; the workers of one box share one (NewFileMemory), so the
	// cap is the box's, not each worker's. nil: the engine's own.
	FileMemory *FileMemory
	// Malformed is the verdict for packets that do not decode; default Drop
	// (the kernel already validated what it forwards, so what fails here is
	// crafted). Set MalformedAccept to let them through.
	MalformedAccept bool
	// InspectNone decodes and tracks flows but inspects nothing and
	// accepts every packet: the baseline benchmarks compare with
	// (utmd --inspect=none).
	InspectNone bool
	Defrag      defrag.Config // fragment reassembly caps and timeouts (fragment.go)
	Sink        Sink
	Reset       Resetter // nil: Reject behaves as Drop (replay)
	// Learned is the table of addresses listed domains resolved to; the
	// workers of one box share one (NewLearned). nil: the engine's own.
	Learned *Learned
	// Blocked is the table of neutralised files (blocked.go); the workers
	// of one box share one (NewBlocked). nil: the engine's own.
	Blocked *Blocked
	// Archive bounds the unpacking of containers for scanning (zero fields:
	// the archive package's defaults). Content-Encoding decoding is bounded
	// by ContentEncoding.
	Archive         archive.Limits
	ContentEncoding contentenc.Limits
	// BlockUnscannable rejects files that cannot be scanned (decompression
	// bombs, encrypted archive members); by default they pass with a ★★
	// alert.
	BlockUnscannable bool
	// FileMD5 and FileSHA1 compute every file's MD5 and SHA-1 besides its
	// SHA-256 (always computed), for fileinfo events (config
	// engine.file_hashes). Without them a file gets an MD5 or SHA-1 only
	// when a rule reads it (filemd5, filesha1) or an AV hash list of that
	// kind matches files of any size; fileinfo events carry the digests
	// computed.
	FileMD5, FileSHA1 bool
	// Heuristics are the box-wide beacon, DGA and incident detectors; the
	// workers of one box share one (NewHeuristics). nil: none run.
	Heuristics *Heuristics
	// BeaconIgnore are destinations never reported as beaconing; nil:
	// DefaultBeaconIgnore, empty (non-nil): none.
	BeaconIgnore []beacon.Ignore
	// IntelBlockConfidence is the indicator confidence from which a
	// threat-intel hit blocks (★★★); lower ones alert ★★ and pass. Default
	// DefaultIntelBlockConfidence.
	IntelBlockConfidence int
	// DNSBlock is what a DNS query for a listed domain gets; Sinkhole4 and
	// Sinkhole6 are the addresses DNSSinkhole answers with.
	DNSBlock             DNSPolicy
	Sinkhole4, Sinkhole6 netip.Addr
	// ThresholdEntries sizes the table of threshold and detection_filter
	// counts (rules.Tracker, about 64 bytes an entry); each worker has its
	// own. Default 16384.
	ThresholdEntries int
	// Stars overrides the ★ rating of alerts by signature id (1..3), for
	// rules and the engine's own detections alike (config "stars").
	Stars  map[int]int
	Logger *slog.Logger
}

// Engine inspects packets. See the package documentation.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	bundle atomic.Pointer[bundle.Bundle]
	// pb is the bundle of the packet being processed, loaded once at the
	// start of Process: every stage of one packet sees one rule Set even
	// when SetBundle swaps in another meanwhile.
	pb    *bundle.Bundle
	flows *flow.Table
	stats Stats

	// Per-packet scratch, reused.
	p       packet.Parsed
	raw     []byte // the packet p was decoded from
	in      rules.Input
	matches []*rules.Rule
	uriBuf  []byte
	hs      httpScratch // derived HTTP header buffers (http.go)
	dns     dnsmsg.Msg
	now     time.Time
	cur     pktCtx

	lastExpire      time.Time
	lastIntelExpire time.Time
	defrag          *defrag.Reassembler // made at the first fragment
	inDatagram      bool                // Process runs on a reassembled datagram
	learned         *Learned
	blocked         *Blocked
	heur            *Heuristics
	dnsSeen         *lru.Cache[dnsKey, time.Time] // recent DNS alerts per host and name (dns.go)
	keyBuf          []byte                        // urlKey scratch
	replyBuf        []byte                        // DNS block replies (dns.go)
	hexBuf          []byte                        // certificate fingerprint without colons (tls.go)
	facts           rules.FileFacts               // the file keywords' view of the file ending (file.go)
	tracker         *rules.Tracker                // threshold/detection_filter counts of this worker
	fileMem         *FileMemory                   // bytes of files kept for scanning, box-wide
	bufs            fileBufs                      // idle file buffers (file.go)
	hasher          hasher                        // the SHA-256 helper goroutine (file.go)
	reports         []fileReport                  // fileinfo events waiting for their SHA-256, oldest first (file.go)
	spareSHA        []hash.Hash                   // SHA-256 states of sent reports, for the next files
	digests         struct {                      // which digests the bundle's rules and hash lists read (file.go)
		b          *bundle.Bundle
		rules      *rules.Set
		av         *av.Scanner
		md5, sha1  bool
		sha256     bool // a SHA-256 list for any size: the scan needs the digest first
		ruleSHA256 bool // a filesha256 rule: the file's verdict needs the digest
	}
	streamMem stream.Budget
	pool      sync.Pool // *flowState
	msgPool   sync.Pool // *msgFlow
	httpPool  sync.Pool // *httpFlow
	helloPool sync.Pool // *tlshello.Parser (reset)
	dnsPool   sync.Pool // *[2]dnsStream (reset)
	quicPool  sync.Pool // *quicFlow (reset)
	releaseFn func(*flow.Flow)
}

// pktCtx is what the callbacks of the current packet need to know.
type pktCtx struct {
	st      *flowState
	dir     int  // 0 to server, 1 to client
	pkt     bool // e.p is st's packet; false while st is released (e.p is another flow's, or none)
	verdict Verdict
	discard bool       // drop this packet only (stream normalisation); the flow goes on
	host    netip.Addr // the office host an alert is about, when not the flow's client (heuristics.go)
}

// New returns an Engine inspecting with b.
func New(cfg Config, b *bundle.Bundle) *Engine {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 65536
	}
	if cfg.StreamBuffer <= 0 {
		cfg.StreamBuffer = 256 << 10
	}
	if cfg.StreamMemory <= 0 {
		cfg.StreamMemory = 128 << 20
	}
	if cfg.BeaconIgnore == nil {
		cfg.BeaconIgnore = DefaultBeaconIgnore
	}
	if cfg.StreamDepth == 0 {
		cfg.StreamDepth = 1 << 20
	}
	if cfg.MaxScanSize <= 0 {
		cfg.MaxScanSize = 16 << 20
	}
	if cfg.BodyInspectLimit <= 0 {
		cfg.BodyInspectLimit = 100 << 10
	}
	if cfg.MaxScanTotal <= 0 {
		cfg.MaxScanTotal = 256 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IntelBlockConfidence <= 0 {
		cfg.IntelBlockConfidence = DefaultIntelBlockConfidence
	}
	if cfg.ThresholdEntries <= 0 {
		cfg.ThresholdEntries = 16384
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger,
		flows:   flow.NewTable(flow.Config{Max: cfg.MaxFlows}),
		matches: make([]*rules.Rule, 0, 64),
		uriBuf:  make([]byte, 0, 4096),
		learned: cfg.Learned,
	}
	if e.learned == nil {
		e.learned = NewLearned()
	}
	e.fileMem = cfg.FileMemory
	if e.fileMem == nil {
		e.fileMem = NewFileMemory()
	}
	e.heur = cfg.Heuristics
	e.dnsSeen = lru.New[dnsKey, time.Time](4096)
	e.blocked = cfg.Blocked
	if e.blocked == nil {
		e.blocked = NewBlocked()
	}
	e.releaseFn = e.release
	e.tracker = rules.NewTracker(cfg.ThresholdEntries)
	e.streamMem.Max = cfg.StreamMemory
	e.bundle.Store(b)
	e.pb = b
	return e
}

// SetBundle swaps the signatures used for the next packets. Safe to call
// while Process runs on another goroutine: a packet being processed
// finishes with the bundle it started with (the old one stays valid), the
// next one uses b. Flows keep their state across the swap.
func (e *Engine) SetBundle(b *bundle.Bundle) { e.bundle.Store(b) }

// Bundle returns the signatures in use.
func (e *Engine) Bundle() *bundle.Bundle { return e.bundle.Load() }

// Process inspects one IP packet seen at ts and returns its verdict.
func (e *Engine) Process(ts time.Time, pkt []byte) Verdict {
	e.now = ts
	e.pb = e.bundle.Load()
	e.stats.Packets.Add(1)
	e.stats.Bytes.Add(uint64(len(pkt)))
	if ts.Sub(e.lastExpire) >= time.Second {
		e.expire(ts)
	}
	if len(e.reports) > 0 && !ts.Before(e.reports[0].due) {
		e.sendReports(ts, false, 0)
	}
	e.raw = pkt
	if res := e.p.Decode(pkt); res != packet.OK {
		e.stats.countMalformed(res)
		if e.cfg.MalformedAccept {
			return e.count(Accept)
		}
		return e.count(Drop)
	}
	p := &e.p
	if p.Fragment {
		return e.fragment(ts, pkt) // fragment.go
	}
	// Every protocol gets a flow (ICMP, GRE, ESP, ... between two hosts are
	// one flow each): destination intel and the packet rules (ip, icmp:
	// itype, icode, icmp_id, ...) apply to them too.
	f, created := e.flows.Lookup(p, ts, e.releaseFn)
	if f == nil {
		e.stats.FlowTableFull.Add(1)
		return e.count(Accept)
	}
	var st *flowState
	if created {
		st = e.newFlowState(f)
	} else {
		st, _ = f.Ext.(*flowState)
		if st == nil {
			st = e.newFlowState(f)
		}
	}
	dir := f.Dir(p)
	if e.cfg.InspectNone {
		return e.count(Accept)
	}
	e.cur = pktCtx{st: st, dir: dir, pkt: true}
	if st.blocked {
		return e.count(Drop)
	}
	if st.bypass {
		e.cur = pktCtx{}
		return e.count(Bypass)
	}
	b := e.pb
	if created && dir == 0 {
		e.checkDestination(b, st)
		e.observeFlow(st) // heuristics.go
	}
	if e.cur.verdict == Accept {
		switch p.Proto {
		case 6:
			e.tcp(b, st, dir)
		case 17:
			e.udp(b, st, dir)
		}
	}
	if e.cur.verdict == Accept && !e.cur.discard && (len(p.Payload) > 0 || (p.Proto != 6 && p.Proto != 17)) {
		if e.rawPastDepth(st, dir) {
			e.stats.Stream.PayloadPastDepth.Add(1)
		} else {
			e.matchPayload(b, st, dir)
		}
	}
	v := e.settle(st, dir)
	e.cur = pktCtx{}
	return e.count(v)
}

// rawPastDepth reports whether the current TCP packet's payload lies past
// the first StreamDepth bytes of its direction. Payload rules stop there,
// as they do at Suricata's stream.reassembly.depth; the flows that are
// followed further (HTTP and mail, for their files and next requests)
// still have every transaction parsed, its HTTP buffers matched and its
// files scanned.
func (e *Engine) rawPastDepth(st *flowState, dir int) bool {
	d := e.cfg.StreamDepth
	return e.p.Proto == 6 && d >= 0 && st.depth[dir]-len(e.p.Payload) >= d
}

func (e *Engine) count(v Verdict) Verdict {
	switch v {
	case Accept:
		e.stats.Accepted.Add(1)
	case Drop:
		e.stats.Dropped.Add(1)
	case Reject:
		e.stats.Rejected.Add(1)
	case Bypass:
		e.stats.Accepted.Add(1)
		e.stats.Bypassed.Add(1)
	}
	return v
}

// verdict raises the current packet's verdict to at least v.
func (e *Engine) verdict(v Verdict) {
	if v > e.cur.verdict {
		e.cur.verdict = v
	}
}

// block marks the flow so every later packet is dropped and, for Reject,
// resets both ends.
func (e *Engine) block(st *flowState, dir int, v Verdict) {
	if st.blocked {
		return
	}
	st.blocked = true
	e.stats.FlowsBlocked.Add(1)
	if v != Reject || e.cfg.Reset == nil {
		return
	}
	if e.p.Proto != 6 {
		if u, ok := e.cfg.Reset.(Unreacher); ok {
			if err := u.Unreachable(e.raw); err != nil {
				e.stats.ResetErrors.Add(1)
				e.log.Warn("could not send ICMP unreachable for a rejected flow; its packets are still dropped", "flow_id", st.f.ID, "err", err)
			}
		}
		return
	}
	p := &e.p
	f := st.f
	var clientNext, serverNext uint32
	if dir == 0 {
		clientNext = p.Seq
		if p.TCPFlags&packet.FlagSYN != 0 {
			clientNext = p.Seq + 1
		}
		serverNext = st.next(1, p.Ack)
	} else {
		serverNext = p.Seq
		clientNext = st.next(0, p.Ack)
	}
	if err := e.cfg.Reset.ResetBoth(f.Client, f.Server, clientNext, serverNext); err != nil {
		e.stats.ResetErrors.Add(1)
		e.log.Warn("could not reset a blocked connection; its packets are still dropped", "flow_id", f.ID, "err", err)
	}
}

// expire ends idle flows and learned addresses.
func (e *Engine) expire(now time.Time) {
	e.lastExpire = now
	e.flows.Expire(now, e.releaseFn)
	if e.defrag != nil {
		e.defrag.Expire(now) // datagrams that will never complete free their buffers
	}
	e.learned.expire(now)
	if now.Sub(e.lastIntelExpire) >= time.Minute {
		// Indicators past their expiry stop matching (the set is shared:
		// Expire is safe while other workers look up).
		e.lastIntelExpire = now
		if b := e.bundle.Load(); b != nil && b.Intel != nil {
			b.Intel.Expire(now)
		}
	}
	e.blocked.expire(now)
	e.expireBufs(now)
}

// Idle sends what waits for a time rather than a packet: the fileinfo
// reports of files released before their SHA-256 was in, once due. The
// queue calls it when no packet came for the time it returned last (0:
// nothing waits), on the goroutine that calls Process.
func (e *Engine) Idle(now time.Time) time.Duration {
	if len(e.reports) == 0 {
		return 0
	}
	e.sendReports(now, false, 0)
	if len(e.reports) == 0 {
		return 0
	}
	return max(e.reports[0].due.Sub(now), time.Millisecond)
}

// Close ends every flow (files still open are reported truncated) and
// gives the idle file buffers back to FileMemory. Call it at the end of a
// replay or when the engine stops.
func (e *Engine) Close() {
	e.pb = e.bundle.Load()
	e.flows.Flush(e.releaseFn)
	e.sendReports(time.Time{}, true, 0) // their buffers go idle
	e.dropIdle(len(e.bufs.free))
	e.stopHasher()
}

// Flows returns how many flows are tracked.
func (e *Engine) Flows() int { return e.flows.Len() }
