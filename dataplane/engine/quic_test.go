package engine

import (
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/quictest"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/quic"
)

// TestQUIC: an HTTP/3 connection's ClientHello, scattered over two Initial
// packets as Chrome sends it, is read: a listed name in its SNI is blocked
// with a ★★★ alert carrying the hello's metadata (its JA4 marked QUIC),
// a harmless one lets the flow be bypassed once the hello is through, and
// UDP to port 443 that is not QUIC stays an ordinary flow.
func TestQUIC(t *testing.T) {
	dcid := []byte{0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}
	run := func(name string, ver uint32) ([]Verdict, *recorder, *Engine) {
		fl := quictest.Flight(t, ver, dcid, name)
		tr := testpcap.NewTrace(t0)
		tr.UDP("198.18.1.2:50000", "198.18.2.44:443", fl[0])
		tr.UDP("198.18.1.2:50000", "198.18.2.44:443", fl[1])
		tr.UDP("198.18.2.44:443", "198.18.1.2:50000", make([]byte, 1200))    // the server's answer
		tr.UDP("198.18.1.2:50000", "198.18.2.44:443", []byte{0x40, 1, 2, 3}) // a short-header packet
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}}, intelBundle(t, "c2.quic.example\n"))
		return verdicts(e, tr.Sorted()), &rec, e
	}
	for _, ver := range []uint32{quic.Version1, quic.Version2} {
		vs, rec, e := run("c2.quic.example", ver)
		if vs[0] != Accept || vs[1] == Accept || vs[1] == Bypass || vs[3] == Accept {
			t.Fatalf("version %#x, listed name: verdicts %v; want the first datagram through, the one completing the hello and what follows blocked", ver, vs)
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].Alert.SignatureID != sidCNCTLSSNI || al[0].Stars != 3 || al[0].AppProto != "quic" ||
			!strings.Contains(al[0].Alert.Signature, "QUIC") || al[0].TLS == nil || al[0].TLS.SNI != "c2.quic.example" ||
			!strings.HasPrefix(al[0].TLS.JA4, "q13d") {
			t.Fatalf("version %#x: want one ★★★ QUIC SNI alert with the hello's metadata, got %+v", ver, al)
		}
		if e.Stats().QUIC.Hellos.Load() != 1 {
			t.Errorf("quic_hellos %d, want 1", e.Stats().QUIC.Hellos.Load())
		}
	}

	vs, rec, e := run("www.lab.test", quic.Version1)
	if vs[0] != Accept || vs[1] != Bypass || vs[2] != Bypass || vs[3] != Bypass {
		t.Fatalf("harmless name: verdicts %v; want accept, then bypass from the hello on", vs)
	}
	if len(rec.alerts()) != 0 || e.Stats().Stream.BypassQUIC.Load() != 1 {
		t.Fatalf("harmless name: %d alerts, %d QUIC bypasses; want 0, 1", len(rec.alerts()), e.Stats().Stream.BypassQUIC.Load())
	}

	tr := testpcap.NewTrace(t0)
	junk := make([]byte, 1300)
	junk[0] = 0xc0 // a long header of no known version
	tr.UDP("198.18.1.2:50001", "198.18.2.44:443", junk)
	tr.UDP("198.18.1.2:50001", "198.18.2.44:443", junk)
	e = New(Config{}, defaultBundle(t))
	if vs := verdicts(e, tr.Sorted()); vs[0] != Accept || vs[1] != Accept || e.Stats().QUIC.Unreadable.Load() != 0 {
		t.Fatalf("UDP to 443 that is not QUIC: verdicts %v, unreadable %d; want accept, accept, 0", vs, e.Stats().QUIC.Unreadable.Load())
	}
}
