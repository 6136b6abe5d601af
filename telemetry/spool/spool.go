// Package spool keeps the box's alerts in a bbolt file until the monitor
// has acknowledged them, so no alert is lost when the monitor is
// unreachable, NATS restarts, the box reboots or utmd is killed.
//
// Append commits (and fsyncs) the alert before it returns: a detection is
// acknowledged only once it is on disk. Each alert gets an ID unique to
// this box — box id, a nonce stored with the file, a sequence number — that
// the uplink sends as Nats-Msg-Id, so a retry is never stored twice.
//
// The spool is bounded (Options.MaxEntries). When it is full the oldest
// alert with the fewest stars is evicted first, ★★★ last, and the first
// eviction of a streak appends a ★★ alert saying so.
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

// ErrClosed is returned by operations on a closed spool.
var ErrClosed = errors.New("spool: closed")

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
		return nil, fmt.Errorf("spool: %w (check the data directory and free disk space)", err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w (another utmd holding it? a full disk? move the file aside to start a new spool)", path, err)
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
		return nil, fmt.Errorf("spool: initialise %s: %w", path, err)
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

// Append stores ev durably, setting ev.ID if it is empty.
func (s *Spool) Append(ev *alert.Event) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	evictedNow := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		evictedNow = 0
		a := tx.Bucket(bucketAlerts)
		st := tx.Bucket(bucketStars)
		for s.count-evictedNow >= s.opts.MaxEntries {
			if !s.evictOne(a, st) {
				break
			}
			evictedNow++
		}
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
		return st.Put(starKey(int(ev.Stars), seq), nil)
	})
	if err != nil {
		return fmt.Errorf("spool: append alert: %w (free disk space in the data directory; the alert is in eve.json only)", err)
	}
	s.count += 1 - evictedNow
	if evictedNow > 0 {
		s.evicted.Add(uint64(evictedNow))
		if !s.evictOn {
			s.evictOn = true
			s.log.Warn("spool full: evicting the oldest lowest-star alerts; check the connection to the monitor", "max", s.opts.MaxEntries)
			defer s.appendEvictionAlert()
		}
	} else if s.evictOn && s.count < s.opts.MaxEntries*9/10 {
		s.evictOn = false
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// appendEvictionAlert runs after Append released the lock.
func (s *Spool) appendEvictionAlert() {
	go func() {
		ev := &alert.Event{
			Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Schema: alert.SchemaVersion,
			Alert: &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: 2230002, Rev: 1,
				Signature: "UTM spool full: oldest low-star alerts evicted", Category: "Box health", Severity: 2},
			Engine:  &alert.Engine{Reason: "spool-full", Count: s.evicted.Load()},
			Stars:   2,
			Summary: "The box could not reach the monitor for long enough to fill its alert spool; the oldest ★ and ★★ alerts were dropped first",
		}
		if err := s.Append(ev); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("cannot record the spool-full alert", "err", err)
		}
	}()
}

// evictOne deletes the oldest alert with the fewest stars.
func (s *Spool) evictOne(a, st *bolt.Bucket) bool {
	k, _ := st.Cursor().First()
	if k == nil {
		return false
	}
	seq := binary.BigEndian.Uint64(k[1:])
	if err := st.Delete(k); err != nil {
		return false
	}
	return a.Delete(seqKey(seq)) == nil
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

// Notify is signalled after each Append.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Pending returns up to max alerts in the order they were appended.
func (s *Spool) Pending(max int) ([]Entry, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var hdr struct {
				ID    string `json:"id"`
				Stars int    `json:"stars"`
			}
			if err := json.Unmarshal(v, &hdr); err != nil {
				continue
			}
			out = append(out, Entry{Seq: binary.BigEndian.Uint64(k), ID: hdr.ID, Stars: hdr.Stars, Data: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, err
}

// Delete removes acknowledged alerts.
func (s *Spool) Delete(entries ...Entry) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
			if err := st.Delete(starKey(e.Stars, e.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.count -= removed
	}
	return err
}

// Len returns the number of pending alerts.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Evicted returns how many alerts were evicted since Open.
func (s *Spool) Evicted() uint64 { return s.evicted.Load() }

// Close closes the file.
func (s *Spool) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}
