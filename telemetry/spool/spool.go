// Package spool keeps the box's alerts in a bbolt file until the monitor
// has acknowledged them, so no alert is lost when the monitor is
// unreachable, NATS restarts, the box reboots or utmd is killed.
//
// Append commits (and fsyncs) the alert before it returns: a detection is
// acknowledged only once it is on disk. Each alert gets an ID unique to
// this box — box id, a nonce stored with the file, a sequence number — that
// the uplink sends as Nats-Msg-Id, so a retry is never stored twice.
//
// The spool is bounded (Options.MaxEntries, default 100000). When it is
// full the oldest alert with the fewest stars is evicted first, ★★★ last;
// evictions are counted (Evicted, and the uplink's heartbeat), and the
// first eviction of a streak spools a ★★ alert (sid 2230002) saying so,
// which is itself evicted only as late as a ★★★.
//
// Keys are a monotonic sequence number (bbolt NextSequence), so Pending
// returns alerts in the order they were appended, across restarts.
//
// # Group commit: durability against throughput
//
// By default every Append is its own write transaction: one fsync per
// alert. With Options.GroupCommit the Appends that arrive while a commit
// is running wait for a committer goroutine, which writes all of them in
// the next transaction (one fsync, up to 1024 alerts). Durability is the
// same in both modes — an Append returns nil only after its alert is
// fsynced, and after kill -9 every acknowledged alert is in the file
// (TestKill9GroupCommit) — what group commit trades is fate sharing: a
// failed commit (a full disk) fails every Append of the group, and one
// appender's alert waits for the group's commit. GroupWindow makes the
// committer wait for more appenders; that adds its length to every
// Append's latency and on a disk whose fsync is faster than the window
// it loses throughput, so it is off by default. BenchmarkAppend on the
// 2-core dev VM (virtio disk shared with other work, fsync 0.3-1 ms; the
// two numbers are two runs, -benchtime 2s -count 2), alerts/s:
//
//	appenders            1            8              64
//	each          1,000-2,500  2,100-2,800    2,200-2,300
//	group         1,900-2,000  2,400-5,000    9,200-15,300  (4 and 32 per commit)
//	group + 2 ms    240-  260  1,300-1,450   15,900-17,000  (8 and 64 per commit)
//
// With one appender there is nothing to share (group commit costs a
// goroutine handoff); with the engine's workers appending concurrently (a
// burst of alerts from a scan) group commit is worth 1.1-1.8x at 8 and
// 4-7x at 64 appenders, in the same run.
//
// # Aggregation of ★ and ★★
//
// With Options.AggregateWindow (utmd: DefaultAggregateWindow, 5 s) a ★ or
// ★★ alert with the signature and flow (flow_id, addresses, ports,
// protocol) of a record spooled less than the window ago is merged into
// that record in the same durable commit: the record's Count goes up and
// the caller's event gets the record's ID. Nothing is lost: every merge is
// on disk when Append returns. Pending holds such a record back until its
// window ends, so it leaves once with its final count; ★★★ alerts are never
// merged nor held back and leave at once. After a restart nothing is held
// (a record open at the crash is sent with the count it had). At most
// 4096 records are open at once; past that alerts are spooled one by one.
//
// Cost: one bbolt write transaction (one fsync) per Append, or per group
// with GroupCommit, plus one JSON encoding per alert (and per merge);
// alerts are rare next to packets, and the engine never appends per
// packet.
package spool

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketAlerts = []byte("alerts") // seq -> event JSON
	bucketStars  = []byte("stars")  // stars byte + seq -> nothing: eviction order
	bucketMeta   = []byte("meta")
	keyNonce     = []byte("nonce")
)

// Errors.
var (
	// ErrClosed is returned by operations on a closed spool.
	ErrClosed = errors.New("spool: closed")
	// ErrOpen is returned by Open when the file cannot be opened or
	// initialised (another process holds it, permissions, a full disk).
	ErrOpen = errors.New("spool: cannot open")
	// ErrWrite is returned by Append and Delete when the commit fails
	// (a full disk, an I/O error); the alert was not spooled.
	ErrWrite = errors.New("spool: write failed")
)

// Options configures a spool.
type Options struct {
	BoxID      string
	MaxEntries int // default 100000
	Logger     *slog.Logger
	// GroupCommit makes concurrent Appends share one write transaction
	// (one fsync): a committer goroutine commits everything waiting while
	// the previous commit ran. Each Append still returns only once its
	// alert is durable. Off: one transaction per Append.
	GroupCommit bool
	// GroupWindow, with GroupCommit, is how long the committer waits after
	// the first waiting Append for more to join (e.g. 2 ms). It adds that
	// much latency to every Append; 0 (the default) waits for nothing:
	// the Appends that arrived during the previous commit form the group.
	GroupWindow time.Duration
	// AggregateWindow, when positive, merges a ★ or ★★ alert into the
	// record of the same signature and flow (flow_id, addresses, ports,
	// protocol) spooled less than this long ago: one record with Count.
	// Such a record is held back by Pending until its window ends.
	// ★★★ alerts are never merged nor held. 0: off. utmd uses
	// DefaultAggregateWindow.
	AggregateWindow time.Duration
	// Now is the clock for aggregation windows (tests); default time.Now.
	Now func() time.Time
}

// DefaultAggregateWindow is the aggregation window utmd uses: a ★ or ★★
// alert reaches the monitor at most this long (plus the uplink's retry
// tick) after it was raised.
const DefaultAggregateWindow = 5 * time.Second

// Entry is one pending alert.
type Entry struct {
	Seq   uint64
	ID    string
	Stars int
	Data  []byte // the event as JSON
	rank  int
}

// Spool is the on-disk queue of alerts awaiting the monitor's ack.
type Spool struct {
	db      *bolt.DB
	opts    Options
	nonce   string
	notify  chan struct{}
	mu      sync.Mutex // serialises eviction decisions with appends
	evicted atomic.Uint64
	count   int // pending alerts, under mu
	evictOn bool
	closed  atomic.Bool
	log     *slog.Logger
	now     func() time.Time

	// Aggregation, under mu: the records open for merging by key, and
	// the sequence numbers Pending holds back until their window ends.
	open map[aggKey]*aggregate
	held map[uint64]time.Time

	// Group commit: Appends waiting for the committer.
	gmu     sync.Mutex
	gcond   *sync.Cond
	waiting []*request
	gclosed bool
	gdone   chan struct{}
	groups  atomic.Uint64
}

// Open opens or creates the spool file.
func Open(path string, opts Options) (*Spool, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w (check the data directory's permissions and free disk space)", ErrOpen, err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (another utmd holding it? a full disk? move the file aside to start a new spool)", ErrOpen, path, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Spool{db: db, opts: opts, notify: make(chan struct{}, 1), log: opts.Logger, now: opts.Now,
		open: map[aggKey]*aggregate{}, held: map[uint64]time.Time{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAlerts, bucketStars, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		s.count = tx.Bucket(bucketAlerts).Stats().KeyN
		m := tx.Bucket(bucketMeta)
		if n := m.Get(keyNonce); n != nil {
			s.nonce = string(n)
			return nil
		}
		var b [4]byte
		rand.Read(b[:])
		s.nonce = hex.EncodeToString(b[:])
		return m.Put(keyNonce, []byte(s.nonce))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: initialise %s: %w (free disk space, or move the file aside to start a new spool)", ErrOpen, path, err)
	}
	if opts.GroupCommit {
		s.gcond = sync.NewCond(&s.gmu)
		s.gdone = make(chan struct{})
		go s.committer()
	}
	return s, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func starKey(stars int, seq uint64) []byte {
	var k [9]byte
	k[0] = byte(stars)
	binary.BigEndian.PutUint64(k[1:], seq)
	return k[:]
}

// Append stores ev durably: when it returns nil the alert is committed and
// fsynced and survives kill -9 or a power cut. It sets ev.ID (if empty) to
// "<box>-<nonce>-<seq>", unique for this box across restarts, and ev.BoxID
// (if empty). When the spool is full it first evicts the oldest alert with
// the fewest stars; the first eviction of a streak also spools a ★★ alert
// saying so. It returns ErrClosed after Close and an error wrapping
// ErrWrite when the commit fails (full disk, I/O error).
//
// With Options.GroupCommit, Append waits for the committer, which commits
// every Append waiting in one transaction; it still returns only once its
// alert is durable (or with the commit's error, shared by the group).
//
// With Options.AggregateWindow, a ★ or ★★ alert of the same signature and
// flow as one spooled less than the window ago is merged into that record
// (its Count goes up, in the same durable commit) and ev.ID is set to the
// record's ID.
func (s *Spool) Append(ev *alert.Event) error {
	if !s.opts.GroupCommit {
		return s.commit([]*alert.Event{ev})
	}
	r := &request{ev: ev, done: make(chan struct{})}
	s.gmu.Lock()
	if s.gclosed {
		s.gmu.Unlock()
		return ErrClosed
	}
	s.waiting = append(s.waiting, r)
	if len(s.waiting) == 1 {
		s.gcond.Signal()
	}
	s.gmu.Unlock()
	<-r.done
	return r.err
}

// request is one Append waiting for the group committer.
type request struct {
	ev   *alert.Event
	err  error
	done chan struct{}
}

// maxGroup caps one group commit's alerts; the rest wait for the next.
const maxGroup = 1024

// committer commits the waiting Appends in groups until Close.
func (s *Spool) committer() {
	defer close(s.gdone)
	var batch []*request
	var evs []*alert.Event
	for {
		s.gmu.Lock()
		for len(s.waiting) == 0 && !s.gclosed {
			s.gcond.Wait()
		}
		if len(s.waiting) == 0 {
			s.gmu.Unlock()
			return
		}
		if w := s.opts.GroupWindow; w > 0 && len(s.waiting) < maxGroup && !s.gclosed {
			// Let the appends of the next moment join this commit.
			s.gmu.Unlock()
			time.Sleep(w)
			s.gmu.Lock()
		}
		n := min(len(s.waiting), maxGroup)
		batch = append(batch[:0], s.waiting[:n]...)
		s.waiting = append(s.waiting[:0], s.waiting[n:]...)
		s.gmu.Unlock()
		evs = evs[:0]
		for _, r := range batch {
			evs = append(evs, r.ev)
		}
		err := s.commit(evs)
		s.groups.Add(1)
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		clear(batch)
		clear(evs)
	}
}

// commit spools evs in one write transaction (one fsync), evicting and
// aggregating as Append describes; on failure none is spooled.
func (s *Spool) commit(evs []*alert.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	now := s.now()
	hadID := make([]bool, len(evs))
	for i, ev := range evs {
		hadID[i] = ev.ID != ""
	}
	var undo []func()
	var opened []*aggregate
	evicted, added := 0, 0
	streak := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAlerts)
		st := tx.Bucket(bucketStars)
		room := func(n int) {
			for s.count+added-evicted+n > s.opts.MaxEntries && s.evictOne(a, st) {
				evicted++
			}
		}
		for _, ev := range evs {
			key, ok := s.aggKey(ev)
			if ok {
				if g := s.open[key]; g != nil && now.Before(g.until) && a.Get(seqKey(g.seq)) != nil {
					prev := g.ev.Count
					g.ev.Count = max(g.ev.Count, 1) + max(ev.Count, 1)
					undo = append(undo, func() { g.ev.Count = prev })
					b, err := json.Marshal(g.ev)
					if err != nil {
						return err
					}
					if err := a.Put(seqKey(g.seq), b); err != nil {
						return err
					}
					ev.ID = g.ev.ID
					if ev.BoxID == "" {
						ev.BoxID = s.opts.BoxID
					}
					continue
				}
			}
			before := evicted
			room(1)
			startStreak := evicted > before && !s.evictOn && !streak
			if startStreak {
				streak = true
				room(2) // and one more for the notice
			}
			seq, err := s.put(a, st, ev)
			if err != nil {
				return err
			}
			added++
			if ok && len(s.open) < maxOpen {
				cp := *ev
				g := &aggregate{key: key, seq: seq, until: now.Add(s.opts.AggregateWindow), ev: &cp}
				opened = append(opened, g)
				s.open[key] = g // undone below on failure
				undo = append(undo, func() { delete(s.open, key) })
			}
			if startStreak {
				if _, err := s.put(a, st, s.evictionNotice(s.evicted.Load()+uint64(evicted))); err != nil {
					return err
				}
				added++
			}
		}
		return nil
	})
	if err != nil {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		for i, ev := range evs {
			if !hadID[i] {
				ev.ID = "" // its sequence number was rolled back and will be reused
			}
		}
		return fmt.Errorf("%w: %w (free disk space in the data directory; the alert is in eve.json only)", ErrWrite, err)
	}
	for _, g := range opened {
		s.held[g.seq] = g.until
	}
	s.count += added - evicted
	if evicted > 0 {
		s.evicted.Add(uint64(evicted))
		if streak {
			s.evictOn = true
			s.log.Warn("spool full: evicting the oldest lowest-star alerts; check the connection to the monitor",
				"max", s.opts.MaxEntries, "evicted_total", s.evicted.Load())
		}
	} else if s.evictOn && s.count < s.opts.MaxEntries*9/10 {
		s.evictOn = false // the next eviction starts a new streak and a new notice
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// aggregate is a ★ or ★★ record still open for merging.
type aggregate struct {
	key   aggKey
	seq   uint64
	until time.Time
	ev    *alert.Event // the record as stored, with its Count
}

// aggKey identifies the alerts one record may stand for: signature and
// flow.
type aggKey struct {
	sid              int
	stars            alert.Stars
	flow             uint64
	src, dst         string
	srcPort, dstPort uint16
	proto            string
}

// maxOpen caps the records open for aggregation; past it new alerts are
// spooled one record each.
const maxOpen = 4096

func (s *Spool) aggKey(ev *alert.Event) (aggKey, bool) {
	if s.opts.AggregateWindow <= 0 || ev.EventType != alert.TypeAlert || ev.Alert == nil ||
		ev.Stars < 1 || ev.Stars > 2 || ev.Alert.SignatureID == SIDSpoolFull || ev.ID != "" {
		return aggKey{}, false
	}
	return aggKey{sid: ev.Alert.SignatureID, stars: ev.Stars, flow: ev.FlowID, src: ev.SrcIP, dst: ev.DestIP,
		srcPort: ev.SrcPort, dstPort: ev.DestPort, proto: ev.Proto}, true
}

// expire closes the aggregation windows that have ended. Under s.mu.
func (s *Spool) expire(now time.Time) {
	for k, g := range s.open {
		if !now.Before(g.until) {
			delete(s.open, k)
		}
	}
	for seq, until := range s.held {
		if !now.Before(until) {
			delete(s.held, seq)
		}
	}
}

// put stores ev under the next sequence number, setting ID and BoxID.
func (s *Spool) put(a, st *bolt.Bucket, ev *alert.Event) (uint64, error) {
	seq, err := a.NextSequence()
	if err != nil {
		return 0, err
	}
	if ev.ID == "" {
		ev.ID = fmt.Sprintf("%s-%s-%d", s.opts.BoxID, s.nonce, seq)
	}
	if ev.BoxID == "" {
		ev.BoxID = s.opts.BoxID
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	if err := a.Put(seqKey(seq), b); err != nil {
		return 0, err
	}
	return seq, st.Put(starKey(rank(int(ev.Stars), sid(ev)), seq), nil)
}

// rank is an alert's place in the eviction order: its stars, except that
// the spool-full notice ranks with ★★★ so later evictions do not take the
// only record of earlier ones.
func rank(stars, sid int) int {
	if sid == SIDSpoolFull {
		return 3
	}
	return stars
}

// SIDSpoolFull is the signature id of the alert saying the spool evicted.
const SIDSpoolFull = 2230002

func (s *Spool) evictionNotice(total uint64) *alert.Event {
	return &alert.Event{
		Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Schema: alert.SchemaVersion,
		Alert: &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: SIDSpoolFull, Rev: 1,
			Signature: "UTM spool full: oldest low-star alerts evicted", Category: "Box health", Severity: 2},
		Engine:  &alert.Engine{Reason: "spool-full", Count: total},
		Stars:   2,
		Summary: "The box could not reach the monitor for long enough to fill its alert spool; the oldest ★ and ★★ alerts were dropped first",
	}
}

// evictOne deletes the oldest alert with the fewest stars. The stars
// bucket is ordered by (stars, seq), so that is its first key.
func (s *Spool) evictOne(a, st *bolt.Bucket) bool {
	c := st.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		seq := seqKey(binary.BigEndian.Uint64(k[1:]))
		found := a.Get(seq) != nil
		if c.Delete() != nil {
			return false
		}
		if found {
			return a.Delete(seq) == nil
		}
		// A stale index entry (its alert was dropped as damaged): skip.
	}
	return false
}

// Emit appends ev, logging a failure: the engine's sink.
func (s *Spool) Emit(ev *alert.Event) {
	if err := s.Append(ev); err != nil {
		s.log.Error("alert not spooled", "sid", sid(ev), "err", err)
	}
}

func sid(ev *alert.Event) int {
	if ev.Alert == nil {
		return 0
	}
	return ev.Alert.SignatureID
}

// Notify is signalled (without blocking, coalesced) after each Append:
// the uplink waits on it to send new alerts at once.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Pending returns up to max alerts in the order they were appended (the
// oldest first), leaving out records still open for aggregation (see
// Options.AggregateWindow). Entries stay in the spool until Delete.
func (s *Spool) Pending(max int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var out []Entry
	var corrupt [][]byte
	if len(s.held) > 0 {
		s.expire(s.now())
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			if len(s.held) > 0 {
				if _, ok := s.held[binary.BigEndian.Uint64(k)]; ok {
					continue // still aggregating
				}
			}
			var hdr struct {
				ID    string `json:"id"`
				Stars int    `json:"stars"`
				Alert struct {
					SID int `json:"signature_id"`
				} `json:"alert"`
			}
			if err := json.Unmarshal(v, &hdr); err != nil || hdr.ID == "" {
				corrupt = append(corrupt, append([]byte(nil), k...))
				continue
			}
			out = append(out, Entry{Seq: binary.BigEndian.Uint64(k), ID: hdr.ID, Stars: hdr.Stars,
				Data: append([]byte(nil), v...), rank: rank(hdr.Stars, hdr.Alert.SID)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(corrupt) > 0 {
		// Only a damaged file gets here; an entry that cannot be sent
		// must not block the ones behind it.
		s.log.Error("spool entries are damaged and were dropped; check the disk", "count", len(corrupt))
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range corrupt {
				if err := tx.Bucket(bucketAlerts).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.count -= len(corrupt)
		}
	}
	return out, nil
}

// Delete removes acknowledged alerts. Entries already gone (evicted,
// deleted before) are skipped. It returns ErrClosed after Close and an
// error wrapping ErrWrite when the commit fails.
func (s *Spool) Delete(entries ...Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	removed := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		removed = 0
		a, st := tx.Bucket(bucketAlerts), tx.Bucket(bucketStars)
		for _, e := range entries {
			if a.Get(seqKey(e.Seq)) == nil {
				continue // evicted meanwhile
			}
			removed++
			if err := a.Delete(seqKey(e.Seq)); err != nil {
				return err
			}
			if err := st.Delete(starKey(e.rank, e.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w (free disk space in the data directory)", ErrWrite, err)
	}
	s.count -= removed
	return nil
}

// Len returns the number of pending alerts.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Evicted returns how many alerts were evicted since Open.
func (s *Spool) Evicted() uint64 { return s.evicted.Load() }

// Groups returns how many group commits ran (GroupCommit only): Appends
// per group is the batching achieved.
func (s *Spool) Groups() uint64 { return s.groups.Load() }

// Held returns how many records Pending holds back for aggregation now.
func (s *Spool) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(s.now())
	return len(s.held)
}

// Close closes the file; pending alerts stay in it for the next Open. With
// GroupCommit the Appends already waiting are committed first. It is safe
// to call more than once.
func (s *Spool) Close() error {
	if s.opts.GroupCommit {
		s.gmu.Lock()
		s.gclosed = true
		s.gcond.Broadcast()
		s.gmu.Unlock()
		<-s.gdone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}
