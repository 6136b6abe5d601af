// Package dga spots domain-generation-algorithm (DGA) malware from DNS:
// names that look machine-generated (Score) and a host collecting many
// such names answered NXDOMAIN within a short window (Detector), which is
// what a DGA does while it searches for the one domain its operator has
// registered today.
//
// # Contract
//
// Score rates one name from the character statistics of its registered
// label (the label left of the public suffix; a list of common two-label
// suffixes such as co.uk and com.au is embedded): Shannon entropy, length,
// longest consonant run, digit share and vowel share, with maltrail's
// thresholds as a starting point; the rules and weights are listed in
// score.go above wEntropy. Character statistics cannot see dictionary DGAs (Suppobox,
// Matsnu: concatenated English words) nor random labels under a fixed
// domain (dynamic DNS, "random.duckdns.org"); both are documented misses.
//
// Detector.Answer is fed every DNS answer the engine sees (only NXDOMAIN
// answers cost anything). It returns a Burst once per host per window when
// the host saw at least NXThreshold distinct NXDOMAIN names in the window
// and more than half of them score at least ScoreThreshold. Typos and a
// few dead links never reach that; a browser prefetching many dead names
// would need them to look random too.
//
// # Cost
//
// Score does not allocate and is O(len(name)) with one map lookup: 262 ns
// on a 25-byte name (BenchmarkScore, x86-64 EPYC); Answer on NXDOMAIN 606 ns.
// Answer is O(1) for answers that are not NXDOMAIN; for NXDOMAIN it takes
// a mutex, scores the name and checks up to 2·NXThreshold name hashes of
// the host (linear, 40 by default); it does not allocate in steady state
// (hosts are reused on eviction) except for the three example strings of
// a Burst it returns. Memory: MaxHosts × (~200 bytes + 16·NXThreshold).
// A Detector is safe for concurrent use.
package dga

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/openutm/utm/dataplane/internal/lru"
)

// Defaults for the zero fields of Config.
const (
	DefaultWindow         = time.Minute
	DefaultNXThreshold    = 20
	DefaultScoreThreshold = 0.7
	DefaultMaxHosts       = 4096
	exampleLen            = 64 // bytes kept per example name
)

// Config tunes a Detector. Zero fields take the defaults.
type Config struct {
	Window         time.Duration // counting window per host, from its first NXDOMAIN (1 min)
	NXThreshold    int           // distinct NXDOMAIN names per host per window for a Burst (20)
	ScoreThreshold float64       // Score at or above this is DGA-like (0.6)
	MaxHosts       int           // hosts tracked, least recently seen evicted (4096)
}

// Burst reports a host resolving many DGA-looking names that do not exist.
type Burst struct {
	Host        netip.Addr
	Count       int       // distinct NXDOMAIN names in the window so far
	DGALike     int       // of which scored at least ScoreThreshold
	Examples    [3]string // the first DGA-like names (up to 64 bytes each)
	MeanScore   float64   // mean Score of the DGA-like names
	First, Last time.Time // first NXDOMAIN of the window, the one that triggered
}

// Stats are counters since New.
type Stats struct {
	Hosts    int    // hosts tracked now
	NXDomain uint64 // NXDOMAIN answers seen
	DGALike  uint64 // of which scored at least ScoreThreshold
	Bursts   uint64 // Bursts returned
	Evicted  uint64 // hosts evicted to stay within MaxHosts
}

type hostState struct {
	start    int64 // window start, unix ns
	seen     []uint64
	count    int
	dga      int
	sum      float64
	fired    bool
	nex      int
	examples [3][exampleLen]byte
	exLen    [3]uint8
}

// Detector counts NXDOMAIN names per host. See the package doc.
type Detector struct {
	cfg   Config
	seed  maphash.Seed
	mu    sync.Mutex
	hosts *lru.Cache[netip.Addr, hostState]
	st    Stats
}

// New returns a Detector; zero Config fields take the defaults.
func New(cfg Config) *Detector {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.NXThreshold <= 0 {
		cfg.NXThreshold = DefaultNXThreshold
	}
	if cfg.ScoreThreshold <= 0 {
		cfg.ScoreThreshold = DefaultScoreThreshold
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = DefaultMaxHosts
	}
	return &Detector{cfg: cfg, seed: maphash.MakeSeed(), hosts: lru.New[netip.Addr, hostState](cfg.MaxHosts)}
}

// Config returns the configuration in use, defaults filled in.
func (d *Detector) Config() Config { return d.cfg }

// Answer records a DNS answer to host for name (text form, any case) and
// returns a Burst when the host's NXDOMAIN names in the window cross the
// thresholds, once per host per window. name is not retained.
func (d *Detector) Answer(now time.Time, host netip.Addr, name []byte, nxdomain bool) (Burst, bool) {
	if !nxdomain {
		return Burst{}, false
	}
	score, _ := Score(name)
	h := d.hash(name)
	t := now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.NXDomain++
	dgaLike := score >= d.cfg.ScoreThreshold
	if dgaLike {
		d.st.DGALike++
	}
	s, fresh := d.hosts.Put(host)
	if fresh || t-s.start >= int64(d.cfg.Window) || t < s.start-int64(d.cfg.Window) {
		s.reset(t, 2*d.cfg.NXThreshold)
	}
	if s.fired {
		return Burst{}, false
	}
	for _, x := range s.seen {
		if x == h {
			return Burst{}, false // repeated name
		}
	}
	if len(s.seen) < cap(s.seen) {
		s.seen = append(s.seen, h)
	} // else: counted without dedup; the window is long past the threshold anyway
	s.count++
	if dgaLike {
		s.dga++
		s.sum += score
		if s.nex < len(s.examples) {
			s.exLen[s.nex] = uint8(copy(s.examples[s.nex][:], trimDot(name)))
			s.nex++
		}
	}
	if s.count < d.cfg.NXThreshold || 2*s.dga <= s.count {
		return Burst{}, false
	}
	s.fired = true
	d.st.Bursts++
	b := Burst{Host: host, Count: s.count, DGALike: s.dga, MeanScore: s.sum / float64(s.dga),
		First: time.Unix(0, s.start).UTC(), Last: now}
	for i := 0; i < s.nex; i++ {
		b.Examples[i] = string(s.examples[i][:s.exLen[i]])
	}
	return b, true
}

// Stats returns the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.st
	s.Hosts = d.hosts.Len()
	s.Evicted = d.hosts.Evicted()
	return s
}

func (s *hostState) reset(t int64, seen int) {
	if cap(s.seen) < seen {
		s.seen = make([]uint64, 0, seen)
	}
	s.start, s.seen, s.count, s.dga, s.sum, s.fired, s.nex = t, s.seen[:0], 0, 0, 0, false, 0
}

// hash of the name, case and trailing dot ignored.
func (d *Detector) hash(name []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	for _, c := range trimDot(name) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.WriteByte(c)
	}
	return h.Sum64()
}

func trimDot(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return b
}
