package monitor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	bolt "go.etcd.io/bbolt"
)

// Kinds of stored events, for the portal's filter and the report.
const (
	KindIPS    = "ips"    // a signature matched (drop, reject or alert)
	KindAV     = "av"     // a malicious file
	KindCNC    = "cnc"    // threat intel: C&C domain, IP, URL, beaconing
	KindHealth = "health" // about the box itself: offline, inspection bypassed, engine restarts
	KindFile   = "file"   // fileinfo: a file seen, not an alert
)

// Kinds lists the kinds in the order the portal shows them.
var Kinds = []string{KindIPS, KindAV, KindCNC, KindHealth, KindFile}

// KindOf classifies an event.
func KindOf(ev *alert.Event) string {
	switch {
	case ev.Engine != nil:
		return KindHealth
	case ev.Intel != nil || (ev.Alert != nil && ev.Alert.Category == "Malware Command and Control Activity Detected"):
		return KindCNC
	case ev.FileInfo != nil && (ev.FileInfo.Threat != "" || ev.FileInfo.Verdict == "malicious") && ev.EventType == alert.TypeAlert:
		return KindAV
	case ev.EventType == alert.TypeAlert:
		return KindIPS
	}
	return KindFile
}

// Index layout, bucket "idx". Every entry's value is the entry's stars
// (1 byte), kind (length-prefixed) and box id, so any filter is decided
// from the index alone, without decoding records.
//
//	't' time(8) seq(8)             every record, by event time
//	'b' len(box) box time(8) seq(8) per box
//	's' stars(1) time(8) seq(8)    per star rating
var bucketIndex = []byte("idx")

// indexTime is the time a record is filed and kept under: the event's
// time, unless the box's clock is clearly off (more than 5 minutes ahead
// of the monitor, or 30 days behind), then the time it was received.
func indexTime(r *Record) time.Time {
	t := r.Event.Timestamp.Time()
	if t.After(r.Received.Add(5*time.Minute)) || t.Before(r.Received.Add(-30*24*time.Hour)) {
		return r.Received
	}
	return t
}

func timeSeq(b []byte, t time.Time, seq uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(max(t.UnixNano(), 0)))
	return binary.BigEndian.AppendUint64(b, seq)
}

func boxPrefix(box string) []byte {
	return append(binary.AppendUvarint([]byte{'b'}, uint64(len(box))), box...)
}

func indexValue(ev *alert.Event) []byte {
	k := KindOf(ev)
	v := append([]byte{byte(ev.Stars), byte(len(k))}, k...)
	return append(v, ev.BoxID...)
}

type indexEntry struct {
	stars int
	kind  string
	box   string
}

func parseIndexValue(v []byte) (e indexEntry, ok bool) {
	if len(v) < 2 || len(v) < 2+int(v[1]) {
		return e, false
	}
	return indexEntry{stars: int(v[0]), kind: string(v[2 : 2+v[1]]), box: string(v[2+v[1]:])}, true
}

func indexKeys(r *Record) [][]byte {
	t := indexTime(r)
	return [][]byte{
		timeSeq([]byte{'t'}, t, r.Seq),
		timeSeq(boxPrefix(r.Event.BoxID), t, r.Seq),
		timeSeq([]byte{'s', byte(r.Event.Stars)}, t, r.Seq),
	}
}

func putIndex(tx *bolt.Tx, r *Record) error {
	ix := tx.Bucket(bucketIndex)
	v := indexValue(r.Event)
	for _, k := range indexKeys(r) {
		if err := ix.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// buildIndex indexes every record; for a store written before the index
// existed.
func buildIndex(tx *bolt.Tx) error {
	return tx.Bucket(bucketAlerts).ForEach(func(k, v []byte) error {
		var r Record
		if json.Unmarshal(v, &r) != nil || r.Event == nil {
			return nil
		}
		return putIndex(tx, &r)
	})
}

// Filter selects stored records. Zero fields match everything.
type Filter struct {
	Stars    int    // exactly this many stars
	MinStars int    // at least this many
	Box      string // this box
	Kind     string // KindOf
	From, To time.Time
}

func (f *Filter) match(e indexEntry) bool {
	return (f.Stars == 0 || e.stars == f.Stars) && e.stars >= f.MinStars &&
		(f.Box == "" || e.box == f.Box) && (f.Kind == "" || e.kind == f.Kind)
}

// scan calls fn with the seq, time and entry of every record f selects,
// newest first, until fn returns false. It walks the narrowest index: a
// box's, a star rating's, or the time index, within [From, To).
func (f *Filter) scan(tx *bolt.Tx, fn func(seq uint64, t time.Time, e indexEntry) bool) {
	var prefix []byte
	switch {
	case f.Box != "":
		prefix = boxPrefix(f.Box)
	case f.Stars != 0:
		prefix = []byte{'s', byte(f.Stars)}
	default:
		prefix = []byte{'t'}
	}
	to := uint64(1<<63 - 1)
	if !f.To.IsZero() {
		to = uint64(max(f.To.UnixNano(), 0))
	}
	var from uint64
	if !f.From.IsZero() {
		from = uint64(max(f.From.UnixNano(), 0))
	}
	c := tx.Bucket(bucketIndex).Cursor()
	seek := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), to)
	k, v := c.Seek(seek)
	if k == nil {
		k, v = c.Last()
	}
	for ; k != nil; k, v = c.Prev() {
		if !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+16 {
			if bytes.Compare(k, prefix) < 0 {
				return
			}
			continue // past the end of the prefix's range (the Seek overshoot)
		}
		ts := binary.BigEndian.Uint64(k[len(prefix):])
		if ts >= to {
			continue
		}
		if ts < from {
			return
		}
		e, ok := parseIndexValue(v)
		if !ok || !f.match(e) {
			continue
		}
		if !fn(binary.BigEndian.Uint64(k[len(prefix)+8:]), time.Unix(0, int64(ts)), e) {
			return
		}
	}
}

// query returns the records f selects, newest first, skipping offset and
// at most limit, and whether there are more.
func (s *store) query(f Filter, offset, limit int) ([]Record, bool, error) {
	var out []Record
	more := false
	err := s.db.View(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAlerts)
		n := 0
		f.scan(tx, func(seq uint64, _ time.Time, _ indexEntry) bool {
			n++
			if n <= offset {
				return true
			}
			if len(out) == limit {
				more = true
				return false
			}
			k := seqKey(seq)
			var r Record
			if v := a.Get(k[:]); v != nil && json.Unmarshal(v, &r) == nil {
				out = append(out, r)
			}
			return true
		})
		return nil
	})
	return out, more, err
}

// get returns the record seq.
func (s *store) get(seq uint64) (Record, bool) {
	var r Record
	ok := false
	s.db.View(func(tx *bolt.Tx) error {
		k := seqKey(seq)
		if v := tx.Bucket(bucketAlerts).Get(k[:]); v != nil {
			ok = json.Unmarshal(v, &r) == nil
		}
		return nil
	})
	return r, ok
}

// Bin is one bar of the alerts-over-time chart.
type Bin struct {
	Start time.Time
	Stars [4]int // by stars; [0] unused
}

// Total is the bin's count.
func (b Bin) Total() int { return b.Stars[1] + b.Stars[2] + b.Stars[3] }

// histogram counts the records f selects in n equal bins over [From, To),
// from the index alone.
func (s *store) histogram(f Filter, n int) ([]Bin, error) {
	if n <= 0 || !f.To.After(f.From) {
		return nil, nil
	}
	width := f.To.Sub(f.From) / time.Duration(n)
	bins := make([]Bin, n)
	for i := range bins {
		bins[i].Start = f.From.Add(time.Duration(i) * width)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		f.scan(tx, func(_ uint64, t time.Time, e indexEntry) bool {
			i := int(t.Sub(f.From) / width)
			if i >= 0 && i < n && e.stars >= 1 && e.stars <= 3 {
				bins[i].Stars[e.stars]++
			}
			return true
		})
		return nil
	})
	return bins, err
}

// sweep deletes every record filed before cutoff, with its index entries
// and its exactly-once id, in transactions of at most 5,000 records. It
// returns how many it deleted.
func (s *store) sweep(cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			a, ids, ix := tx.Bucket(bucketAlerts), tx.Bucket(bucketIDs), tx.Bucket(bucketIndex)
			end := uint64(max(cutoff.UnixNano(), 0))
			var old [][]byte
			c := ix.Cursor()
			for k, _ := c.Seek([]byte{'t'}); k != nil && k[0] == 't' && len(old) < 5000; k, _ = c.Next() {
				if len(k) != 17 || binary.BigEndian.Uint64(k[1:]) >= end {
					break
				}
				old = append(old, append([]byte(nil), k...))
			}
			for _, k := range old {
				seq := binary.BigEndian.Uint64(k[9:])
				sk := seqKey(seq)
				var r Record
				if v := a.Get(sk[:]); v != nil && json.Unmarshal(v, &r) == nil && r.Event != nil {
					for _, ik := range indexKeys(&r) {
						if err := ix.Delete(ik); err != nil {
							return err
						}
					}
					if err := ids.Delete(idKey(r.Event.BoxID, r.Event.ID)); err != nil {
						return err
					}
				}
				if err := ix.Delete(k); err != nil {
					return err
				}
				if err := a.Delete(sk[:]); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil || n < 5000 {
			return total, err
		}
	}
}
