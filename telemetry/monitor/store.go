package monitor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/notify"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketAlerts = []byte("alerts") // seq -> Record JSON
	bucketIDs    = []byte("ids")    // idKey(box, id) -> seq: exactly-once
	bucketBoxes  = []byte("boxes")  // box -> Box JSON
	bucketMeta   = []byte("meta")   // portal credentials and settings
	bucketOutbox = []byte("outbox") // seq -> {}: stored alerts still to be mailed (mail.go)
)

// Record is a stored alert.
type Record struct {
	Seq      uint64       `json:"seq"`
	Received time.Time    `json:"received"`
	Event    *alert.Event `json:"event"`
	// Resolved is set on a box offline alert once the box heartbeats
	// again: when, and the seq of the "box back online" event.
	Resolved *Resolution `json:"resolved,omitempty"`
}

// Resolution marks an alert resolved.
type Resolution struct {
	At  time.Time `json:"at"`
	Seq uint64    `json:"seq"`
}

// Box is what the monitor knows of one box.
type Box struct {
	BoxID         string           `json:"box_id"`
	LastHeartbeat time.Time        `json:"last_heartbeat"`
	Online        bool             `json:"online"`
	Heartbeat     *alert.Heartbeat `json:"heartbeat,omitempty"`
	// OfflineSeq is the seq of the box's open "box offline" alert (0:
	// none) and OfflineSince the last heartbeat before it.
	OfflineSeq   uint64    `json:"offline_seq,omitempty"`
	OfflineSince time.Time `json:"offline_since,omitzero"`
}

// maxAlerts caps one answer of /api/alerts and Monitor.Alerts.
const maxAlerts = 10000

// store keeps alerts and boxes in bbolt.
type store struct {
	db        *bolt.DB
	persistMu sync.Mutex // one persist at a time, so a newer snapshot is never overwritten by an older one
	mu        sync.Mutex
	boxes     map[string]*Box // heartbeats land here and are persisted in batches
	dirty     map[string]bool // boxes changed since the last persist
	// mail: an alert notify.Wanted enters the outbox in the transaction
	// that stores it (set before the first add, never changed after).
	mail bool
}

// openStore opens the store; with mail, alerts to be mailed enter the
// outbox as they are stored.
func openStore(path string, mail bool) (*store, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v (is another monitor running on this --data directory? is the disk full?)", ErrStore, path, err)
	}
	s := &store{db: db, boxes: make(map[string]*Box), dirty: make(map[string]bool), mail: mail}
	err = db.Update(func(tx *bolt.Tx) error {
		fresh := tx.Bucket(bucketIndex) == nil
		for _, b := range [][]byte{bucketAlerts, bucketIDs, bucketBoxes, bucketIndex, bucketMeta, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if fresh {
			if err := buildIndex(tx); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketBoxes).ForEach(func(k, v []byte) error {
			var b Box
			if json.Unmarshal(v, &b) == nil {
				s.boxes[string(k)] = &b
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: initialise %s: %v (free disk space, or move the file aside to start an empty store)", ErrStore, path, err)
	}
	return s, nil
}

// add stores ev once per (box, id). It reports whether it was new.
func (s *store) add(ev *alert.Event, received time.Time) (Record, bool, error) {
	return s.addResolving(ev, received, 0)
}

// addResolving stores ev like add and, in the same transaction, marks
// alert resolves (if not 0) resolved by it.
func (s *store) addResolving(ev *alert.Event, received time.Time, resolves uint64) (Record, bool, error) {
	var rec Record
	added := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		rec, added, err = addTx(tx, ev, received, resolves, s.mail)
		return err
	})
	return rec, added, err
}

// addBatch stores evs in one transaction (one fsync), each once per (box,
// id), in order. added[i] reports whether evs[i] was new.
func (s *store) addBatch(evs []*alert.Event, received time.Time) (recs []Record, added []bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		recs, added = recs[:0], added[:0]
		for _, ev := range evs {
			rec, ok, err := addTx(tx, ev, received, 0, s.mail)
			if err != nil {
				return err
			}
			recs, added = append(recs, rec), append(added, ok)
		}
		return nil
	})
	return recs, added, err
}

func addTx(tx *bolt.Tx, ev *alert.Event, received time.Time, resolves uint64, mail bool) (Record, bool, error) {
	ids := tx.Bucket(bucketIDs)
	key := idKey(ev.BoxID, ev.ID)
	if ids.Get(key) != nil {
		return Record{}, false, nil
	}
	a := tx.Bucket(bucketAlerts)
	seq, err := a.NextSequence()
	if err != nil {
		return Record{}, false, err
	}
	rec := Record{Seq: seq, Received: received.UTC(), Event: ev}
	b, err := json.Marshal(rec)
	if err != nil {
		return Record{}, false, err
	}
	k := seqKey(seq)
	if err := a.Put(k[:], b); err != nil {
		return Record{}, false, err
	}
	if err := ids.Put(key, k[:]); err != nil {
		return Record{}, false, err
	}
	if err := putIndex(tx, &rec); err != nil {
		return Record{}, false, err
	}
	if mail && notify.Wanted(ev) {
		if err := tx.Bucket(bucketOutbox).Put(k[:], []byte{}); err != nil {
			return Record{}, false, err
		}
	}
	if resolves != 0 {
		if err := resolveTx(tx, resolves, seq, received); err != nil {
			return Record{}, false, err
		}
	}
	return rec, true, nil
}

// idKey is the dedupe key: the box id's length, the box id, the alert id,
// so no (box, id) pair can collide with another.
func idKey(box, id string) []byte {
	k := binary.AppendUvarint(nil, uint64(len(box)))
	return append(append(k, box...), id...)
}

// alerts returns stored alerts with seq > since, oldest first, at most max.
func (s *store) alerts(since uint64, max int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], since+1)
		for key, v := c.Seek(k[:]); key != nil && len(out) < max; key, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err == nil {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// heartbeat records hb, received at at. It reports whether the box is new
// or was not heard from before (its first heartbeat is saved at once), and
// returns the box as it was before.
func (s *store) heartbeat(hb *alert.Heartbeat, at time.Time) (bool, Box) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[hb.BoxID]
	first := b == nil || b.LastHeartbeat.IsZero()
	if b == nil {
		b = &Box{BoxID: hb.BoxID}
		s.boxes[hb.BoxID] = b
	}
	prev := *b
	b.LastHeartbeat, b.Heartbeat = at.UTC(), hb
	s.dirty[hb.BoxID] = true
	return first, prev
}

// silent returns the boxes that heartbeat once, have no open offline
// alert, and whose last heartbeat, or start if later, is at least after
// before now.
func (s *store) silent(now, start time.Time, after time.Duration) []Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Box
	for _, b := range s.boxes {
		if b.LastHeartbeat.IsZero() || b.OfflineSeq != 0 {
			continue
		}
		if now.Sub(b.LastHeartbeat) >= after && now.Sub(start) >= after {
			out = append(out, *b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BoxID < out[j].BoxID })
	return out
}

func (s *store) markOffline(box string, seq uint64, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.boxes[box]; b != nil {
		b.OfflineSeq, b.OfflineSince = seq, since
		s.dirty[box] = true
	}
}

func (s *store) markOnline(box string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.boxes[box]; b != nil {
		b.OfflineSeq, b.OfflineSince = 0, time.Time{}
		s.dirty[box] = true
	}
}

// resolveTx marks alert seq resolved by event by at at. An alert no
// longer in the store (retention) is no error.
func resolveTx(tx *bolt.Tx, seq, by uint64, at time.Time) error {
	a := tx.Bucket(bucketAlerts)
	k := seqKey(seq)
	v := a.Get(k[:])
	if v == nil {
		return nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return fmt.Errorf("alert %d: %w", seq, err)
	}
	r.Resolved = &Resolution{At: at.UTC(), Seq: by}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return a.Put(k[:], b)
}

func seqKey(seq uint64) [8]byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k
}

// seen records a box that sent an alert, so it is listed even before its
// first heartbeat. It reports whether the box is new.
func (s *store) seen(box string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.boxes[box]; ok {
		return false
	}
	s.boxes[box] = &Box{BoxID: box}
	s.dirty[box] = true
	return true
}

func (s *store) boxList(now time.Time, offlineAfter time.Duration) []Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Box, 0, len(s.boxes))
	for _, b := range s.boxes {
		c := *b
		c.Online = !c.LastHeartbeat.IsZero() && c.OfflineSeq == 0 && now.Sub(c.LastHeartbeat) < offlineAfter
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BoxID < out[j].BoxID })
	return out
}

// ready reports whether the store can be read.
func (s *store) ready() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAlerts) == nil {
			return errors.New("store not initialised")
		}
		return nil
	})
}

// persist writes the boxes that changed: heartbeats arrive every few
// seconds from every box, so they are batched into one transaction.
func (s *store) persist() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	snap := make(map[string][]byte, len(s.dirty))
	for k := range s.dirty {
		v, _ := json.Marshal(s.boxes[k])
		snap[k] = v
	}
	clear(s.dirty)
	s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBoxes)
		for k, v := range snap {
			if err := bb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		for k := range snap {
			s.dirty[k] = true // try again next time
		}
		s.mu.Unlock()
	}
	return err
}

func (s *store) close() error {
	err := s.persist()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}
