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
// Cost: one bbolt write transaction (one fsync) per Append; alerts are
// rare next to packets, and the engine never appends per packet.
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
}

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
	s := &Spool{db: db, opts: opts, notify: make(chan struct{}, 1), log: opts.Logger}
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
func (s *Spool) Append(ev *alert.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	hadID := ev.ID != ""
	evicted, added := 0, 0
	streak := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		evicted, added, streak = 0, 0, false
		a := tx.Bucket(bucketAlerts)
		st := tx.Bucket(bucketStars)
		room := func(n int) {
			for s.count-evicted+n > s.opts.MaxEntries && s.evictOne(a, st) {
				evicted++
			}
		}
		room(1)
		if evicted > 0 && !s.evictOn {
			streak = true
			room(2) // and one more for the notice
		}
		if err := s.put(a, st, ev); err != nil {
			return err
		}
		added++
		if streak {
			if err := s.put(a, st, s.evictionNotice(s.evicted.Load()+uint64(evicted))); err != nil {
				return err
			}
			added++
		}
		return nil
	})
	if err != nil {
		if !hadID {
			ev.ID = "" // its sequence number was rolled back and will be reused
		}
		return fmt.Errorf("%w: %w (free disk space in the data directory; the alert is in eve.json only)", ErrWrite, err)
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

// put stores ev under the next sequence number, setting ID and BoxID.
func (s *Spool) put(a, st *bolt.Bucket, ev *alert.Event) error {
	seq, err := a.NextSequence()
	if err != nil {
		return err
	}
	if ev.ID == "" {
		ev.ID = fmt.Sprintf("%s-%s-%d", s.opts.BoxID, s.nonce, seq)
	}
	if ev.BoxID == "" {
		ev.BoxID = s.opts.BoxID
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := a.Put(seqKey(seq), b); err != nil {
		return err
	}
	return st.Put(starKey(rank(int(ev.Stars), sid(ev)), seq), nil)
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
// oldest first). Entries stay in the spool until Delete.
func (s *Spool) Pending(max int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var out []Entry
	var corrupt [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
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

// Close closes the file; pending alerts stay in it for the next Open. It
// is safe to call more than once.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}
