package engine

import (
	"net/netip"
	"strconv"

	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/intel"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// Signature ids of the detections the engine raises itself (gid 1).
const (
	sidAVHTTP       = 2210001
	sidAVMail       = 2210002 // file.go
	sidAVRetry      = 2210003 // a request for a file blocked earlier (blocked.go)
	sidAVUnscan     = 2210004 // a file that could not be scanned (bomb, encrypted, limits)
	sidCNCDNS       = 2220001
	sidCNCAddr      = 2220002
	sidCNCLearned   = 2220003
	sidCNCHTTPHost  = 2220004
	sidCNCTLSSNI    = 2220005 // a TLS ClientHello naming a listed domain
	sidCNCJA3       = 2220006 // a TLS client fingerprint (JA3) on the list
	sidCNCCert      = 2220007 // a server certificate (SHA-1) on the list
	sidCNCURL       = 2220008 // an HTTP request for a listed URL
	categoryCNC     = "Malware Command and Control Activity Detected"
	learnedMinTTL   = 60
	learnedMaxTTL   = 3600
	learnedMaxCount = 1 << 16
)

// alertIntel is the part of an indicator an alert names.
type alertIntel = alert.Intel

func intelOf(ind *intel.Indicator) alertIntel {
	return alertIntel{Indicator: ind.Value, Kind: ind.Kind, Source: ind.Source, Family: ind.Family, Confidence: ind.Confidence}
}

// DefaultIntelBlockConfidence is the indicator confidence (0-100) from
// which a threat-intel hit blocks and rates ★★★; below it (maltrail's
// "suspicious" trails, mass scanners) the hit is a ★★ alert and the
// traffic passes. An indicator without a confidence counts as 80.
const DefaultIntelBlockConfidence = 70

// intelConfident reports whether ind is confident enough to block.
func (e *Engine) intelConfident(ind *intel.Indicator) bool {
	c := ind.Confidence
	if c == 0 {
		c = 80
	}
	return c >= e.cfg.IntelBlockConfidence
}

// input fills the reused rules.Input with the current packet's flow facts
// and clears its buffers. While a flow is released (its last bytes and
// files inspected at a timeout, an eviction or Close) the packet in hand
// is another flow's: the addresses, ports and protocol are then the
// flow's, direction dir, and the packet fields zero.
func (e *Engine) input(st *flowState, dir int) *rules.Input {
	in := &e.in
	if p := &e.p; e.cur.pkt {
		in.Proto = p.Proto
		in.Src, in.Dst = p.Src, p.Dst
		in.SrcPort, in.DstPort = p.SrcPort, p.DstPort
		in.PayloadLen, in.TTL, in.TCPFlags = len(p.Payload), p.TTL, p.TCPFlags
		in.ICMPType, in.ICMPCode = p.ICMPType, p.ICMPCode
		in.IPID, in.ICMPID, in.ICMPSeq = p.IPID, p.ICMPID, p.ICMPSeq
	} else {
		f := st.f
		src, dst := f.Client, f.Server
		if dir == 1 {
			src, dst = dst, src
		}
		in.Proto = f.Proto
		in.Src, in.Dst = src.Addr(), dst.Addr()
		in.SrcPort, in.DstPort = src.Port(), dst.Port()
		in.PayloadLen, in.TTL, in.TCPFlags = 0, 0, 0
		in.ICMPType, in.ICMPCode = 0, 0
		in.IPID, in.ICMPID, in.ICMPSeq = 0, 0, 0
	}
	in.App = st.app.String()
	in.ToServer = dir == 0
	in.Established = st.established || in.Proto != 6
	in.StreamBytesToServer, in.StreamBytesToClient = uint64(st.depth[0]), uint64(st.depth[1])
	in.TLSVersion, in.TLSState, in.File = st.tlsWireVersion(), 0, nil
	in.Buf = [rules.NumBuffers][]byte{}
	in.Flowbits, in.Tracker, in.Now = &st.bits, e.tracker, e.now
	return in
}

// matchPayload runs the rules that look at raw packet payload.
func (e *Engine) matchPayload(b *bundle.Bundle, st *flowState, dir int) {
	in := e.input(st, dir)
	in.Buf[rules.BufPayload] = e.p.Payload
	var meta *reqMeta
	if st.app == appHTTP {
		meta = st.payloadMeta(dir)
	}
	e.matchRules(b, st, in, meta)
}

// matchRules matches in against the rule set and acts on the result:
// a pass rule wins; otherwise every match alerts once per flow and the
// strongest action becomes the packet's verdict.
func (e *Engine) matchRules(b *bundle.Bundle, st *flowState, in *rules.Input, meta *reqMeta) {
	if b.Rules == nil {
		return
	}
	e.matches = b.Rules.Match(in, e.matches[:0])
	// flowbits, detection_filter, noalert, threshold: what remains acts.
	e.matches = b.Rules.PostMatch(in, e.matches)
	if len(e.matches) == 0 {
		return
	}
	for _, r := range e.matches {
		if r.Action == rules.Pass {
			// Suricata's pass: no alert, and the flow needs no more
			// inspection.
			e.bypassFlow(st, &e.stats.Stream.BypassPass)
			return
		}
	}
	for _, r := range e.matches {
		v := Accept
		switch r.Action {
		case rules.Drop:
			v = Drop
		case rules.Reject:
			v = Reject
		}
		e.verdict(v)
		if st.alertedOnce(r.SID) {
			continue
		}
		dir := 1
		if in.ToServer {
			dir = 0
		}
		ev := e.event(st, dir, alert.TypeAlert, meta)
		action := e.action(v)
		ev.Alert = &alert.Alert{
			Action: action, GID: max(r.GID, 1), SignatureID: r.SID, Rev: r.Rev,
			Signature: r.Msg, Category: r.Category, Severity: r.Priority,
		}
		ev.Stars = alert.Stars(r.Stars())
		ev.Summary = summary(r.Msg, action)
		e.emit(ev)
	}
}

// action is the EVE alert.action of verdict v: blocked when v stops the
// flow's traffic and a packet of the flow is in hand to stop. A flow
// inspected as it is released (pktCtx.pkt false) has none left: every
// packet it had has passed.
func (e *Engine) action(v Verdict) string {
	if v != Accept && e.cur.pkt {
		return alert.ActionBlocked
	}
	return alert.ActionAllowed
}

func summary(what, action string) string {
	if action == alert.ActionBlocked {
		return what + " (blocked)"
	}
	return what + " (allowed)"
}

// checkDestination looks up the destination of a new flow: a listed
// address, or an address a listed domain resolved to for this client.
// The first packet is blocked before any data flows.
func (e *Engine) checkDestination(b *bundle.Bundle, st *flowState) {
	p := &e.p
	if b.Intel != nil {
		if ind, ok := b.Intel.LookupIPPort(p.Dst, p.DstPort); ok {
			e.alertIntel(st, sidCNCAddr, "", ind, Reject, nil)
			return
		}
	}
	l, ok := e.learned.lookup(learnKey{p.Src, p.Dst}, e.now)
	if !ok {
		return
	}
	ind := intel.Indicator{Value: l.ind.Indicator, Kind: l.ind.Kind, Source: l.ind.Source, Family: l.ind.Family, Confidence: l.ind.Confidence}
	e.alertIntel(st, sidCNCLearned, l.domain, &ind, Reject, nil)
}

// learn remembers that client resolved a listed domain to addr.
func (e *Engine) learn(client, addr netip.Addr, domain string, ind *intel.Indicator, ttl uint32) {
	ttl = min(max(ttl, learnedMinTTL), learnedMaxTTL)
	if !e.learned.add(learnKey{client, addr}, learned{domain: domain, ind: intelOf(ind), expires: e.now.Add(secs(ttl))}) {
		e.stats.LearnedFull.Add(1)
	}
}

// alertIntel raises a C&C alert for a threat-intel hit and applies v.
func (e *Engine) alertIntel(st *flowState, sid int, name string, ind *intel.Indicator, v Verdict, meta *reqMeta) {
	if ev := e.intelEvent(st, sid, name, ind, v, meta); ev != nil {
		e.emit(ev)
	}
}

// intelEvent applies v and builds the C&C alert for a threat-intel hit, or
// returns nil when this flow already raised it.
func (e *Engine) intelEvent(st *flowState, sid int, name string, ind *intel.Indicator, v Verdict, meta *reqMeta) *alert.Event {
	confident := e.intelConfident(ind)
	if !confident {
		v = Accept
	}
	e.verdict(v)
	if st.alertedOnce(sid) {
		return nil
	}
	dir := 0 // the client's side, when st is released
	if e.cur.pkt {
		dir = e.cur.dir
	}
	ev := e.event(st, dir, alert.TypeAlert, meta)
	action := e.action(v)
	in := intelOf(ind)
	ev.Intel = &in
	var sig string
	stars := alert.Stars(3)
	switch sid {
	case sidCNCDNS:
		sig = "UTM C&C DNS lookup of a listed domain"
		stars = 2
	case sidCNCAddr:
		sig = "UTM C&C connection to a listed address"
	case sidCNCLearned:
		sig = "UTM C&C connection to an address of a listed domain"
	case sidCNCHTTPHost:
		sig = "UTM C&C HTTP request to a listed host"
	case sidCNCURL:
		sig = "UTM C&C HTTP request for a listed URL"
	case sidCNCTLSSNI:
		sig = "UTM C&C TLS connection to a listed domain (SNI)"
		if st.app == appQUIC {
			sig = "UTM C&C QUIC connection to a listed domain (SNI)"
		}
	case sidCNCJA3:
		sig = "UTM C&C TLS client fingerprint (JA3) of listed malware"
		stars = 2 // JA3s are shared by malware and ordinary clients
	case sidCNCCert:
		sig = "UTM C&C TLS server certificate on the blocklist"
	}
	if !confident && stars > 2 {
		stars = 2
	}
	if ind.Family != "" {
		sig += " (" + ind.Family + ")"
	}
	ev.Alert = &alert.Alert{Action: action, GID: 1, SignatureID: sid, Rev: 1, Signature: sig, Category: categoryCNC, Severity: 1}
	ev.Stars = stars
	target := ind.Value
	if name != "" && name != target {
		target = name + " (listed as " + ind.Value + ")"
	}
	ev.Summary = summary(sig+": "+target, action)
	return ev
}

// event builds an event for the current packet's flow. dir 0 makes the
// client the source.
func (e *Engine) event(st *flowState, dir int, typ string, meta *reqMeta) *alert.Event {
	f := st.f
	src, dst := f.Client, f.Server
	if dir == 1 {
		src, dst = dst, src
	}
	ev := &alert.Event{
		Timestamp: alert.Timestamp(e.now),
		FlowID:    f.ID,
		EventType: typ,
		SrcIP:     src.Addr().String(),
		SrcPort:   src.Port(),
		DestIP:    dst.Addr().String(),
		DestPort:  dst.Port(),
		Proto:     protoName(f.Proto),
		AppProto:  st.app.String(),
		Schema:    alert.SchemaVersion,
	}
	if meta != nil && (len(meta.host) > 0 || len(meta.uri) > 0) {
		ev.HTTP = &alert.HTTP{Hostname: string(hostOnly(meta.host)), URL: string(meta.uri), Method: string(meta.method)}
		if meta.status > 0 {
			ev.HTTP.Status = meta.status
		}
	}
	ev.TLS = st.tlsMeta() // tls.go
	if st.app == appSMTP || st.app == appPOP3 || st.app == appIMAP {
		if st.mailOn {
			ev.Email = st.msg.hdr.email()
		}
	}
	return ev
}

func (e *Engine) emit(ev *alert.Event) {
	if ev.EventType == alert.TypeAlert && ev.Alert != nil {
		if s, ok := e.cfg.Stars[ev.Alert.SignatureID]; ok {
			ev.Stars = alert.Stars(s) // the operator's override (config "stars")
		}
	}
	var inc *alert.Event
	if ev.EventType == alert.TypeAlert {
		e.stats.Alerts.Add(1)
		e.stats.alertStars(int(ev.Stars))
		inc = e.correlate(ev) // heuristics.go
	}
	if e.cfg.Sink != nil {
		e.cfg.Sink.Emit(ev)
	}
	if inc != nil {
		e.emit(inc)
	}
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 1:
		return "ICMP"
	case 58:
		return "IPv6-ICMP"
	}
	return strconv.Itoa(int(p))
}
