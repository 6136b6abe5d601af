package rules

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// threshold and detection_filter (Suricata semantics).
//
//	threshold: type limit|threshold|both, track by_src|by_dst|by_rule|by_both, count N, seconds M;
//	detection_filter: track by_src|by_dst|by_rule|by_both, count N, seconds M;
//
// detection_filter gates the match: the rule matches (runs its flowbits
// actions, alerts, drops) only from the (N+1)th match within M seconds of
// the first one counted, by the tracked address. threshold gates the alert
// (and so the rule's drop or reject, which take effect only when it
// alerts):
//
//	limit      the first N matches of each window of M seconds alert
//	threshold  every Nth match within a window alerts (the count restarts)
//	both       the Nth match of a window alerts, once per window
//
// A window starts at the first match counted and lasts M seconds of packet
// time (Input.Now): replay is deterministic. by_src and by_dst track the
// packet's source or destination address, by_both the pair (either order),
// by_rule the rule alone. A rule takes one threshold or one
// detection_filter, not both (as Suricata).
//
// The counts live in a Tracker the caller owns (the engine has one per
// worker, so counts are per worker queue: a source whose flows hash to two
// queues is counted twice, each half as often). A Tracker is a fixed table
// (NewTracker's capacity, rounded up to a power of two, 8-way set
// associative, 64 bytes an entry): when the ways of a key's set are taken
// by live windows the oldest is evicted and counted (TrackerStats.Evicted);
// an evicted window restarts as new. Entries whose window ended are reused
// without counting. The slot hash is fixed (not seeded) so that replays
// evict alike.

type thrType uint8

const (
	thrLimit thrType = iota
	thrThreshold
	thrBoth
	thrDetection // detection_filter
)

type trackBy uint8

const (
	trackSrc trackBy = iota + 1
	trackDst
	trackRule
	trackBoth
)

// threshold is one threshold or detection_filter option.
type threshold struct {
	typ     thrType
	track   trackBy
	count   uint32
	seconds int64 // nanoseconds of the window
}

func parseThreshold(v string, detection bool) (*threshold, error) {
	t := &threshold{count: 0, seconds: -1}
	if detection {
		t.typ = thrDetection
	}
	hasType, hasCount := false, false
	for _, f := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), " ")
		val = strings.TrimSpace(val)
		switch k {
		case "type":
			if detection {
				return nil, fmt.Errorf("detection_filter takes no type")
			}
			switch val {
			case "limit":
				t.typ = thrLimit
			case "threshold":
				t.typ = thrThreshold
			case "both":
				t.typ = thrBoth
			default:
				return nil, fmt.Errorf("type %q is not limit, threshold or both", val)
			}
			hasType = true
		case "track":
			switch val {
			case "by_src":
				t.track = trackSrc
			case "by_dst":
				t.track = trackDst
			case "by_rule":
				t.track = trackRule
			case "by_both":
				t.track = trackBoth
			default:
				return nil, fmt.Errorf("track %q is not by_src, by_dst, by_rule or by_both", val)
			}
		case "count":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 && !detection {
				return nil, fmt.Errorf("count %q is not a positive number", val)
			}
			t.count, hasCount = uint32(n), true
		case "seconds":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("seconds %q is not a positive number", val)
			}
			t.seconds = int64(n) * int64(time.Second)
		default:
			return nil, fmt.Errorf("unknown field %q (want type, track, count, seconds)", f)
		}
	}
	switch {
	case !detection && !hasType:
		return nil, fmt.Errorf("needs a type")
	case t.track == 0:
		return nil, fmt.Errorf("needs a track")
	case !hasCount:
		return nil, fmt.Errorf("needs a count")
	case t.seconds < 0:
		return nil, fmt.Errorf("needs seconds")
	}
	return t, nil
}

func thresholdOpt(p *ruleParser, v string) error {
	if p.r.thr != nil || p.r.df != nil {
		return fmt.Errorf("a rule takes one threshold or detection_filter")
	}
	t, err := parseThreshold(v, false)
	if err != nil {
		return err
	}
	p.r.thr = t
	return nil
}

func detectionFilterOpt(p *ruleParser, v string) error {
	if p.r.thr != nil || p.r.df != nil {
		return fmt.Errorf("a rule takes one threshold or detection_filter")
	}
	t, err := parseThreshold(v, true)
	if err != nil {
		return err
	}
	p.r.df = t
	return nil
}

func init() {
	keywords["threshold"] = thresholdOpt
	keywords["detection_filter"] = detectionFilterOpt
}

// trackerWays is the associativity of a Tracker.
const trackerWays = 8

type trackKey struct {
	a, b  [16]byte // tracked addresses (as 16 bytes; zero when not tracked)
	sid   int32
	gid   uint16
	track trackBy
	typ   thrType
}

type trackEntry struct {
	key   trackKey
	start int64 // window start, unix ns; 0: free
	until int64 // window end
	count uint32
}

// Tracker holds the counts of threshold and detection_filter. It is not
// safe for concurrent use (one per worker); Stats may be read from any
// goroutine.
type Tracker struct {
	e       []trackEntry
	mask    uint64 // sets - 1
	live    atomic.Int64
	evicted atomic.Uint64
}

// TrackerStats is a Tracker's occupancy.
type TrackerStats struct {
	Capacity int    // entries
	Entries  int    // in use (some may hold ended windows)
	Evicted  uint64 // live windows evicted for lack of room
}

// NewTracker returns a tracker of at least capacity entries (minimum 8),
// allocated once.
func NewTracker(capacity int) *Tracker {
	sets := 1
	for sets*trackerWays < capacity {
		sets <<= 1
	}
	return &Tracker{e: make([]trackEntry, sets*trackerWays), mask: uint64(sets - 1)}
}

// Stats returns the tracker's occupancy.
func (t *Tracker) Stats() TrackerStats {
	return TrackerStats{Capacity: len(t.e), Entries: int(t.live.Load()), Evicted: t.evicted.Load()}
}

func (k *trackKey) hash() uint64 {
	h := uint64(uint32(k.sid))<<24 ^ uint64(k.gid)<<8 ^ uint64(k.track)<<4 ^ uint64(k.typ)
	h ^= binary.LittleEndian.Uint64(k.a[:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(k.a[8:])*0xC2B2AE3D27D4EB4F
	h = (h ^ h>>29) * 0xBF58476D1CE4E5B9
	h ^= binary.LittleEndian.Uint64(k.b[:8])*0x94D049BB133111EB ^ binary.LittleEndian.Uint64(k.b[8:])*0x9E3779B97F4A7C15
	h = (h ^ h>>32) * 0xD6E8FEB86659FD93
	return h ^ h>>32
}

// allow counts one match of r under th and reports whether it passes. A
// nil Tracker allows everything.
func (t *Tracker) allow(r *Rule, th *threshold, in *Input) bool {
	if t == nil {
		return true
	}
	k := trackKey{sid: int32(r.SID), gid: uint16(r.GID), track: th.track, typ: th.typ}
	switch th.track {
	case trackSrc:
		k.a = in.Src.As16()
	case trackDst:
		k.a = in.Dst.As16()
	case trackBoth:
		k.a, k.b = in.Src.As16(), in.Dst.As16()
		if bytes.Compare(k.a[:], k.b[:]) > 0 {
			k.a, k.b = k.b, k.a
		}
	}
	now := in.Now.UnixNano()
	set := t.e[(k.hash()&t.mask)*trackerWays:][:trackerWays]
	var free, oldest *trackEntry
	for i := range set {
		en := &set[i]
		if en.start == 0 {
			if free == nil {
				free = en
			}
			continue
		}
		if en.key == k {
			return th.step(en, now)
		}
		if en.until <= now {
			if free == nil {
				free = en // an ended window: reuse without counting
			}
			continue
		}
		if oldest == nil || en.start < oldest.start {
			oldest = en
		}
	}
	en := free
	switch {
	case en == nil:
		en = oldest
		t.evicted.Add(1)
	case en.start == 0:
		t.live.Add(1)
	}
	en.key = k
	return th.first(en, now)
}

// first starts a window with this match.
func (th *threshold) first(en *trackEntry, now int64) bool {
	en.start, en.until, en.count = max(now, 1), max(now, 1)+th.seconds, 1
	switch th.typ {
	case thrLimit:
		return true
	case thrDetection:
		return th.count == 0
	default: // threshold, both
		if th.count == 1 {
			if th.typ == thrThreshold {
				en.count = 0
			}
			return true
		}
		return false
	}
}

// step counts a match in an existing entry.
func (th *threshold) step(en *trackEntry, now int64) bool {
	if now-en.start >= th.seconds {
		return th.first(en, now)
	}
	en.count++
	switch th.typ {
	case thrLimit:
		return en.count <= th.count
	case thrThreshold:
		if en.count >= th.count {
			en.count = 0
			return true
		}
		return false
	case thrBoth:
		return en.count == th.count
	default: // detection_filter
		return en.count > th.count
	}
}
