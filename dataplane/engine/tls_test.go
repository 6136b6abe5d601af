package engine

import (
	"crypto/tls"
	"fmt"
	"sort"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/dataplane/tlshello"
)

// beforeRecord returns the length of the records of b before the first one
// of type typ (the whole of b if there is none).
func beforeRecord(b []byte, typ byte) int {
	off := 0
	for off+5 <= len(b) {
		if b[off] == typ {
			return off
		}
		off += 5 + (int(b[off+3])<<8 | int(b[off+4]))
	}
	return len(b)
}

// tlsTrace puts a recorded handshake on the wire in its real order: the
// ClientHello, the server's first flight, the client's second flight and
// data, the server's ChangeCipherSpec and Finished; segments of mss bytes.
func tlsTrace(h tlstest.Handshake, client string, mss int) []testpcap.Packet {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP(client, "198.18.2.2:443").Handshake()
	ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
	sf := beforeRecord(h.Server, 20)
	c.Client(h.Client[:ch], mss)
	c.Server(h.Server[:sf], mss)
	c.Client(h.Client[ch:], mss)
	if sf < len(h.Server) {
		c.Server(h.Server[sf:], mss)
	}
	c.Close()
	return tr.Sorted()
}

// TestTLSRules: the TLS buffers are filled from a real TLS 1.2 handshake
// (split in 100-byte segments) and each rule fires once; alerts carry the
// handshake's metadata; the flow is still bypassed once both sides
// encrypt. Rules on other values stay silent.
func TestTLSRules(t *testing.T) {
	h := tlstest.Record(t, tls.VersionTLS12, "bad.example")
	var ref tlshello.Parser // JA3 values of this very handshake
	ref.Feed(0, h.Client)
	ref.Feed(1, h.Server)
	ri := ref.Info()
	text := fmt.Sprintf(`alert tls any any -> any any (msg:"sni"; tls.sni; content:"bad.example"; sid:1;)
alert tls any any -> any any (msg:"ja3"; ja3.hash; content:"%s"; sid:2;)
alert tls any any -> any any (msg:"subject"; tls.cert_subject; content:"CN=bad.example"; sid:3;)
alert tls any any -> any any (msg:"ja3s"; ja3s.hash; content:"%s"; sid:4;)
alert tls any any -> any any (msg:"serial"; tls.cert_serial; content:"%s"; sid:5;)
alert tls any any -> any any (msg:"issuer"; tls_cert_issuer; content:"O=Bad Example Inc"; sid:6;)
alert tls any any -> any any (msg:"ja3 string"; ja3.string; content:"771,"; depth:4; sid:7;)
alert tls any any -> any any (msg:"fingerprint"; tls.cert_fingerprint; content:"%s"; sid:8;)
alert tls any any -> any any (msg:"ja4"; ja4.hash; content:"%s"; sid:9;)
alert tls any any -> any any (msg:"other sni"; tls.sni; content:"good.example"; sid:11;)
alert tls any any -> any any (msg:"other ja3"; ja3.hash; content:"00000000000000000000000000000000"; sid:12;)
alert tls any any -> any any (msg:"subject as payload"; content:"CN=nowhere"; sid:13;)
`, ri.JA3Hash, ri.JA3SHash, tlstest.Serial, ri.Fingerprint, ri.JA4)
	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, text))
	pkts := tlsTrace(h, "198.18.1.2:40000", 100)
	vs := verdicts(e, pkts)
	var sids []int
	for _, ev := range rec.alerts() {
		sids = append(sids, ev.Alert.SignatureID)
		if ev.TLS == nil || ev.TLS.SNI != "bad.example" || ev.AppProto != "tls" {
			t.Fatalf("alert %d without the TLS metadata: %+v", ev.Alert.SignatureID, ev.TLS)
		}
		if ev.TLS.JA3 == nil || ev.TLS.JA3.Hash != string(ri.JA3Hash) || ev.TLS.JA4 != string(ri.JA4) || len(ri.JA4) != 36 {
			t.Errorf("alert %d: JA3 %+v, want hash %s", ev.Alert.SignatureID, ev.TLS.JA3, ri.JA3Hash)
		}
		if ev.Alert.SignatureID == 3 && (ev.TLS.Subject != tlstest.Subject || ev.TLS.IssuerDN != tlstest.Subject || ev.TLS.Version != "TLS 1.2") {
			t.Errorf("certificate alert: %+v", ev.TLS)
		}
	}
	sort.Ints(sids)
	if fmt.Sprint(sids) != "[1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("alerts %v, want each of sids 1-9 once", sids)
	}
	s := e.Stats()
	if s.TLS.ClientHellos.Load() != 1 || s.TLS.ServerHellos.Load() != 1 || s.TLS.Certificates.Load() != 1 {
		t.Errorf("hellos %d/%d certificates %d, want 1/1/1", s.TLS.ClientHellos.Load(), s.TLS.ServerHellos.Load(), s.TLS.Certificates.Load())
	}
	if s.Stream.BypassTLS.Load() != 1 || vs[len(vs)-1] != Bypass {
		t.Errorf("TLS bypasses %d, last verdict %v: the flow must still be bypassed once both sides encrypt", s.Stream.BypassTLS.Load(), vs[len(vs)-1])
	}
}

// TestTLSDropBySNI: a drop rule on the SNI drops the packet that
// completes the ClientHello and the rest of the flow; a TLS 1.3 flow to
// another name passes, and shows no certificate.
func TestTLSDropBySNI(t *testing.T) {
	bad := tlstest.Record(t, tls.VersionTLS12, "bad.example")
	good := tlstest.Record(t, tls.VersionTLS13, "good.example")
	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, `drop tls any any -> any any (msg:"bad sni"; tls.sni; content:"bad.example"; sid:1;)
alert tls any any -> any any (msg:"any certificate"; tls.cert_subject; content:"CN="; sid:2;)
`))
	vs := verdicts(e, tlsTrace(bad, "198.18.1.2:40000", 0))
	// SYN, SYN-ACK, ACK, then the ClientHello.
	if vs[3] != Drop {
		t.Fatalf("ClientHello packet: %v, want drop (verdicts %v)", vs[3], vs)
	}
	for i, v := range vs[4:] {
		if v != Drop {
			t.Fatalf("packet %d after the blocked hello: %v", i+4, v)
		}
	}
	vs = verdicts(e, tlsTrace(good, "198.18.1.3:40001", 0))
	for i, v := range vs {
		if v == Drop || v == Reject {
			t.Fatalf("TLS 1.3 flow to good.example: packet %d %v", i, v)
		}
	}
	al := rec.alerts()
	if len(al) != 1 || al[0].Alert.SignatureID != 1 || al[0].Alert.Action != "blocked" || al[0].TLS.SNI != "bad.example" {
		t.Fatalf("want one blocked alert for bad.example, got %d: %+v", len(al), al)
	}
	if e.Stats().TLS.Certificates.Load() != 0 {
		t.Fatal("a certificate was reported: the 1.2 flow was dropped at its hello, the 1.3 one encrypts it")
	}
}
