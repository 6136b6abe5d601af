package engine

import (
	"sync/atomic"

	"github.com/openutm/utm/dataplane/tlshello"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// TLS handshake inspection: the in-order stream bytes of each direction of
// a TLS flow go to the flow's tlshello.Parser (besides the record
// follower that decides the bypass, evasion.go). Each handshake message
// is inspected once per flow, as Suricata inspects TLS per transaction:
//
//	ClientHello → rules with tls.sni, ja3.hash, ja3.string   (to server)
//	ServerHello → rules with ja3s.hash                       (to client)
//	Certificate → rules with tls.cert_subject, tls.cert_issuer,
//	              tls.cert_serial, tls.cert_fingerprint      (to client; TLS ≤ 1.2)
//
// Alerts on the flow carry the SNI, certificate names and JA3 hashes
// known so far as EVE "tls" metadata. Cost: the parser does not allocate
// (it is pooled with the flow state); one rules.Match per message.

// TLSStats counts what the handshake parser saw.
type TLSStats struct {
	ClientHellos, ServerHellos, Certificates atomic.Uint64
	NotTLS                                   atomic.Uint64 // directions that stopped framing as a TLS handshake
	Overflow                                 atomic.Uint64 // handshake messages over the 64 KiB cap: direction not followed further
}

// tlsHandshake follows direction d's handshake and runs the rules on each
// message it completes.
func (st *flowState) tlsHandshake(d int, b []byte) {
	if st.hello == nil {
		st.hello = poolGet[tlshello.Parser](&st.e.helloPool)
	}
	h := st.hello
	if h.Done(d) {
		return
	}
	ev := h.Feed(d, b)
	e := st.e
	if h.Done(d) {
		switch h.Status(d) {
		case tlshello.NotTLS:
			e.stats.TLS.NotTLS.Add(1)
		case tlshello.Overflow:
			e.stats.TLS.Overflow.Add(1)
		}
	}
	st.tlsEvents(ev)
}

// tlsEvents inspects the handshake messages the flow's parser completed:
// over TCP (tlsHandshake) or QUIC (quic.go).
func (st *flowState) tlsEvents(ev tlshello.Event) {
	if ev == 0 {
		return
	}
	e := st.e
	bnd := e.pb
	info := st.hello.Info()
	if ev&tlshello.ClientHello != 0 {
		e.stats.TLS.ClientHellos.Add(1)
		if bnd.Intel != nil {
			if ind, ok := bnd.Intel.LookupDomain(info.SNI); ok && len(info.SNI) > 0 {
				e.alertIntel(st, sidCNCTLSSNI, string(info.SNI), ind, Reject, nil)
			} else if ind, ok := bnd.Intel.LookupJA3(info.JA3Hash); ok && len(info.JA3Hash) > 0 {
				e.alertIntel(st, sidCNCJA3, string(info.JA3Hash), ind, Accept, nil)
			} else if ind, ok := bnd.Intel.LookupJA4(info.JA4); ok && len(info.JA4) > 0 {
				e.alertIntel(st, sidCNCJA3, string(info.JA4), ind, Accept, nil)
			}
		}
		in := e.input(st, 0)
		in.TLSState = rules.TLSClientHello
		in.Buf[rules.BufTLSSNI] = info.SNI
		in.Buf[rules.BufJA3Hash] = info.JA3Hash
		in.Buf[rules.BufJA3String] = info.JA3
		in.Buf[rules.BufJA4Hash] = info.JA4
		e.matchRules(bnd, st, in, nil)
	}
	if ev&tlshello.ServerHello != 0 && e.cur.verdict == Accept {
		e.stats.TLS.ServerHellos.Add(1)
		in := e.input(st, 1)
		in.TLSState = rules.TLSServerHello
		in.Buf[rules.BufJA3SHash] = info.JA3SHash
		e.matchRules(bnd, st, in, nil)
	}
	if ev&tlshello.Certificate != 0 && e.cur.verdict == Accept {
		e.stats.TLS.Certificates.Add(1)
		if bnd.Intel != nil && len(info.Fingerprint) > 0 {
			st.e.hexBuf = unhexColons(st.e.hexBuf[:0], info.Fingerprint)
			if ind, ok := bnd.Intel.LookupCert(st.e.hexBuf); ok {
				e.alertIntel(st, sidCNCCert, string(info.Fingerprint), ind, Reject, nil)
			}
		}
		in := e.input(st, 1)
		in.Buf[rules.BufTLSCertSubject] = info.Subject
		in.Buf[rules.BufTLSCertIssuer] = info.Issuer
		in.Buf[rules.BufTLSCertSerial] = info.Serial
		in.Buf[rules.BufTLSCertFingerprint] = info.Fingerprint
		e.matchRules(bnd, st, in, nil)
	}
}

// tlsMeta is the EVE "tls" object of the flow's handshake so far, or nil.
func (st *flowState) tlsMeta() *alert.TLS {
	if st.hello == nil {
		return nil
	}
	in := st.hello.Info()
	if in.JA3 == nil && in.JA3S == nil {
		return nil
	}
	t := &alert.TLS{
		SNI:         string(in.SNI),
		Subject:     string(in.Subject),
		IssuerDN:    string(in.Issuer),
		Serial:      string(in.Serial),
		Fingerprint: string(in.Fingerprint),
		Version:     tlsVersion(in.ServerVersion),
		JA4:         string(in.JA4),
	}
	if in.JA3 != nil {
		t.JA3 = &alert.JA3{Hash: string(in.JA3Hash), String: string(in.JA3)}
	}
	if in.JA3S != nil {
		t.JA3S = &alert.JA3{Hash: string(in.JA3SHash), String: string(in.JA3S)}
	}
	return t
}

// tlsWireVersion is the flow's TLS version for ssl_version: the one the
// server chose, else the one the client offered; 0 before any hello.
func (st *flowState) tlsWireVersion() uint16 {
	if st.app != appTLS || st.hello == nil {
		return 0
	}
	info := st.hello.Info()
	if info.ServerVersion != 0 {
		return info.ServerVersion
	}
	return info.Version
}

// tlsVersion names a negotiated version as Suricata's EVE does.
func tlsVersion(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0300:
		return "SSLv3"
	case tlshello.VersionTLS10:
		return "TLS 1.0"
	case tlshello.VersionTLS11:
		return "TLS 1.1"
	case tlshello.VersionTLS12:
		return "TLS 1.2"
	case tlshello.VersionTLS13:
		return "TLS 1.3"
	}
	return "UNDETERMINED"
}

// unhexColons appends the hex digits of a "4a:a3:..." fingerprint to dst.
func unhexColons(dst, fp []byte) []byte {
	for _, c := range fp {
		if c != ':' {
			dst = append(dst, c)
		}
	}
	return dst
}
