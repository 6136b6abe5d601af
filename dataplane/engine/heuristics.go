package engine

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/openutm/utm/dataplane/beacon"
	"github.com/openutm/utm/dataplane/dga"
	"github.com/openutm/utm/dataplane/incident"
	"github.com/openutm/utm/telemetry/alert"
)

// Heuristics are the box-wide C&C detectors the workers share: beaconing
// (dataplane/beacon), DGA NXDOMAIN bursts (dataplane/dga) and the
// per-host correlation of AV and C&C signals into incidents
// (dataplane/incident). Each is safe for concurrent use.
type Heuristics struct {
	Beacon    *beacon.Detector
	DGA       *dga.Detector
	Incidents *incident.Correlator
}

// NewHeuristics returns the detectors with their default settings.
func NewHeuristics() *Heuristics {
	return &Heuristics{
		Beacon:    beacon.New(beacon.Config{}),
		DGA:       dga.New(dga.Config{}),
		Incidents: incident.New(incident.Config{}),
	}
}

// Signature ids of the heuristic detections.
const (
	sidBeacon   = 2220010 // periodic connections from one host to one destination
	sidDGA      = 2220011 // a burst of NXDOMAIN answers for random-looking names
	sidIncident = 2220020 // AV and C&C signals on one host: one incident
)

// DefaultBeaconIgnore are the destinations a box does not report as
// beaconing unless its config says otherwise: mail clients polling POP3
// and IMAP (110, 995, 143, 993) open a connection to the same server every
// few minutes, the most regular traffic an office makes.
var DefaultBeaconIgnore = []beacon.Ignore{{Port: 110}, {Port: 995}, {Port: 143}, {Port: 993}}

// beaconIgnored reports whether connections to server are never beacons.
func (e *Engine) beaconIgnored(server netip.AddrPort) bool {
	for _, ig := range e.cfg.BeaconIgnore {
		if ig.Matches(server) {
			return true
		}
	}
	return false
}

// observeFlow feeds a new TCP connection to the beacon detector: the
// destination is the server's address and port (one string per new flow,
// not per packet).
func (e *Engine) observeFlow(st *flowState) {
	h := e.heur
	if h == nil || h.Beacon == nil || e.p.Proto != 6 || e.beaconIgnored(st.f.Server) {
		return
	}
	client := st.f.Client.Addr()
	b, ok := h.Beacon.Observe(e.now, client, st.f.Server.String(), 0)
	if !ok {
		return
	}
	e.stats.Beacons.Add(1)
	ev := e.event(st, 0, alert.TypeAlert, nil)
	ev.Alert = &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: sidBeacon, Rev: 1,
		Signature: "UTM C&C beaconing: periodic connections to one destination", Category: categoryCNC, Severity: 2}
	ev.Stars = 2
	ev.Summary = "Host " + client.String() + " connects to " + b.Dst + " every " + roundPeriod(b.Interval).String() +
		" (jitter " + roundPeriod(b.Jitter).String() + ", " + strconv.Itoa(b.Count) + " connections since " +
		b.First.UTC().Format("15:04") + ", score " + strconv.FormatFloat(b.Score, 'f', 2, 64) + "): it may be malware calling home"
	e.emit(ev)
}

// dnsAnswer feeds a DNS answer to the DGA detector; client is the host
// that asked.
func (e *Engine) dnsAnswer(st *flowState, client netip.Addr, name []byte, nx bool) {
	h := e.heur
	if h == nil || h.DGA == nil {
		return
	}
	burst, ok := h.DGA.Answer(e.now, client, name, nx)
	if !ok {
		return
	}
	e.stats.DGABursts.Add(1)
	ev := e.event(st, 1, alert.TypeAlert, nil)
	if ev.DestIP == client.String() {
		// The alert is about the asker: put it first, as for every
		// other alert about an office host.
		ev.SrcIP, ev.DestIP, ev.SrcPort, ev.DestPort = ev.DestIP, ev.SrcIP, ev.DestPort, ev.SrcPort
	}
	ev.Alert = &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: sidDGA, Rev: 1,
		Signature: "UTM C&C DGA: burst of failed lookups of random-looking domains", Category: categoryCNC, Severity: 2}
	ev.Stars = 2
	var ex []string
	for _, x := range burst.Examples {
		if x != "" {
			ex = append(ex, x)
		}
	}
	e.cur.host = client // the office host is the asker, whoever the flow's first packet came from
	ev.Summary = "Host " + client.String() + " looked up " + strconv.Itoa(burst.Count) + " names that do not exist within a minute, " +
		strconv.Itoa(burst.DGALike) + " of them random-looking (e.g. " + strings.Join(ex, ", ") + "): a domain generation algorithm searching for its C&C"
	e.emit(ev)
}

// correlate hands an alert to the incident correlator (the flow's client is
// the office host). When an AV hit and a C&C signal first meet on one host
// it tags ev with the incident id and returns the incident's ★★★ alert,
// to be emitted after ev; later evidence is only tagged.
func (e *Engine) correlate(ev *alert.Event) *alert.Event {
	h := e.heur
	st := e.cur.st
	if h == nil || h.Incidents == nil || ev.Alert == nil || st == nil || st.f == nil {
		return nil
	}
	var kind incident.Kind
	switch sid := ev.Alert.SignatureID; {
	case sid == sidAVHTTP || sid == sidAVMail:
		kind = incident.AV
	case sid == sidBeacon:
		kind = incident.Beacon
	case sid == sidDGA:
		kind = incident.DGA
	case sid >= 2220001 && sid <= 2220008:
		kind = incident.IntelHit
	case sid == sidIncident:
		return nil
	default:
		if ev.Stars < 2 {
			return nil
		}
		kind = incident.IPS
	}
	host := st.f.Client.Addr()
	if e.cur.host.IsValid() {
		host = e.cur.host
	}
	inc, ok := h.Incidents.Add(incident.Signal{Host: host, Kind: kind, Stars: int(ev.Stars), At: e.now,
		AlertID: ev.ID, What: ev.Alert.Signature})
	if !ok {
		return nil
	}
	ev.Incident = inc.ID
	if inc.Updated {
		// Later evidence joins the incident: the alert carries its id, the
		// owner was told once.
		return nil
	}
	e.stats.Incidents.Add(1)
	iv := e.event(st, 0, alert.TypeAlert, nil)
	iv.Incident = inc.ID
	iv.Alert = &alert.Alert{Action: alert.ActionAllowed, GID: 1, SignatureID: sidIncident, Rev: 1,
		Signature: "UTM incident: malware and C&C signals on one host", Category: categoryCNC, Severity: 1}
	iv.Stars = 3
	var what []string
	for _, s := range inc.Signals {
		what = append(what, s.Kind.String()+" "+s.At.UTC().Format("15:04:05")+" "+s.What)
	}
	iv.Summary = "Incident " + inc.ID + " on host " + host.String() + " (" + inc.Reason + "): " + strings.Join(what, "; ") +
		". The host is likely infected: isolate it and check it"
	return iv
}

// roundPeriod rounds a beacon period for people: to 10 ms below 10 s, to
// the second above.
func roundPeriod(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}
