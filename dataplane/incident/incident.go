// Package incident correlates detections per internal host into ★★★
// incidents: one host with an antivirus hit and a C&C signal (threat-intel
// hit, beacon or DGA burst) within a window, or a beacon coinciding with a
// threat-intel hit, is one incident with the list of its evidence, so the
// monitor mails one "act now" instead of several loose alerts.
//
// # Contract
//
// The engine passes every alert it raises as a Signal to Correlator.Add.
// Add returns an Incident when the host's signals within Config.Window
// first satisfy a rule (Updated false), and again for every later signal of
// the same host arriving within Window of the incident's last signal
// (Updated true, same ID, evidence appended). An incident closes when its
// host is quiet for Window; a later match opens a new one with a new ID.
//
// Rules (Incident.Reason lists those that hold, comma-separated, in this
// order):
//
//	av+intel      AV hit and threat-intel hit
//	av+beacon     AV hit and beacon (the beacon escalates to ★★★)
//	av+dga        AV hit and DGA burst
//	beacon+intel  beacon and threat-intel hit (the beacon escalates to ★★★)
//
// IPS signals never open an incident on their own but are kept as evidence.
// Incident.ID is the first 16 hex digits of SHA-256 over the host and the
// time of the incident's first signal: stable for the same input.
//
// # Cost and bounds
//
// Add runs per alert (not per packet) and allocates: the returned Incident
// has its own copy of the evidence. Per host at most Config.MaxSignals
// signals are kept (older pre-incident signals are dropped first; once an
// incident is open further evidence beyond the bound is counted in
// Incident.Dropped); at most Config.MaxHosts hosts, least recently
// signalled evicted. A Correlator is safe for concurrent use.
package incident

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/openutm/utm/dataplane/internal/lru"
)

// Kind is the detection that produced a Signal.
type Kind uint8

// Kinds of signal.
const (
	AV       Kind = iota + 1 // antivirus: malware in a transfer
	IntelHit                 // threat-intel indicator matched (C&C)
	Beacon                   // periodic call-home (dataplane/beacon)
	DGA                      // NXDOMAIN burst of generated names (dataplane/dga)
	IPS                      // IPS rule
)

var kindNames = [...]string{"", "av", "intel", "beacon", "dga", "ips"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Signal is one alert about an internal host.
type Signal struct {
	Host    netip.Addr
	Kind    Kind
	Stars   int // as raised
	At      time.Time
	AlertID string
	What    string // threat name, indicator, beacon destination ...
}

// Incident is a correlated ★★★ event.
type Incident struct {
	ID          string
	Host        netip.Addr
	Signals     []Signal // evidence in arrival order (a copy)
	Stars       int      // always 3
	Reason      string   // rules that hold, e.g. "av+beacon,beacon+intel"
	First, Last time.Time
	Updated     bool // false when just opened, true when extended
	Dropped     int  // evidence beyond MaxSignals not kept
}

// Defaults for the zero fields of Config.
const (
	DefaultWindow     = time.Hour
	DefaultMaxHosts   = 4096
	DefaultMaxSignals = 64
)

// Config tunes a Correlator. Zero fields take the defaults.
type Config struct {
	Window     time.Duration // signals this close together correlate (1 h)
	MaxHosts   int           // hosts tracked (4096)
	MaxSignals int           // signals kept per host (64)
}

type hostState struct {
	signals     []Signal
	open        bool
	id          string
	first, last time.Time
	dropped     int
}

// Correlator holds recent signals per host. See the package doc.
type Correlator struct {
	cfg   Config
	mu    sync.Mutex
	hosts *lru.Cache[netip.Addr, hostState]
}

// New returns a Correlator; zero Config fields take the defaults.
func New(cfg Config) *Correlator {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = DefaultMaxHosts
	}
	if cfg.MaxSignals < 2 {
		cfg.MaxSignals = DefaultMaxSignals
	}
	return &Correlator{cfg: cfg, hosts: lru.New[netip.Addr, hostState](cfg.MaxHosts)}
}

// Add records s and returns the host's incident when one opens or is
// extended by s. See the package doc.
func (c *Correlator) Add(s Signal) (Incident, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, fresh := c.hosts.Put(s.Host)
	if fresh {
		*h = hostState{signals: h.signals[:0]}
	}
	if h.open {
		if s.At.Sub(h.last) <= c.cfg.Window {
			if len(h.signals) < c.cfg.MaxSignals {
				h.signals = append(h.signals, s)
			} else {
				h.dropped++
			}
			if s.At.After(h.last) {
				h.last = s.At
			}
			return c.incident(s.Host, h, true), true
		}
		*h = hostState{signals: h.signals[:0]} // quiet for a window: closed
	}
	// forget signals older than the window before s
	keep := h.signals[:0]
	for _, o := range h.signals {
		if s.At.Sub(o.At) <= c.cfg.Window {
			keep = append(keep, o)
		}
	}
	h.signals = keep
	if len(h.signals) == c.cfg.MaxSignals {
		copy(h.signals, h.signals[1:])
		h.signals = h.signals[:len(h.signals)-1]
	}
	h.signals = append(h.signals, s)
	if reason(h.signals) == "" {
		return Incident{}, false
	}
	h.open = true
	h.first, h.last = h.signals[0].At, s.At
	for _, o := range h.signals {
		if o.At.Before(h.first) {
			h.first = o.At
		}
		if o.At.After(h.last) {
			h.last = o.At
		}
	}
	h.id = incidentID(s.Host, h.first)
	return c.incident(s.Host, h, false), true
}

func (c *Correlator) incident(host netip.Addr, h *hostState, updated bool) Incident {
	return Incident{
		ID: h.id, Host: host, Signals: append([]Signal(nil), h.signals...), Stars: 3,
		Reason: reason(h.signals), First: h.first, Last: h.last, Updated: updated, Dropped: h.dropped,
	}
}

// reason lists the rules that hold for signals, "" when none.
func reason(signals []Signal) string {
	var has [len(kindNames)]bool
	for _, s := range signals {
		if int(s.Kind) < len(has) {
			has[s.Kind] = true
		}
	}
	var r []string
	if has[AV] && has[IntelHit] {
		r = append(r, "av+intel")
	}
	if has[AV] && has[Beacon] {
		r = append(r, "av+beacon")
	}
	if has[AV] && has[DGA] {
		r = append(r, "av+dga")
	}
	if has[Beacon] && has[IntelHit] {
		r = append(r, "beacon+intel")
	}
	return strings.Join(r, ",")
}

func incidentID(host netip.Addr, first time.Time) string {
	b, _ := host.MarshalBinary()
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(first.UnixNano()))
	sum := sha256.Sum256(append(b, t[:]...))
	return hex.EncodeToString(sum[:8])
}
