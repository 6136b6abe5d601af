package engine

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/dataplane/tlshello"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/intel"
)

func intelBundle(t *testing.T, list string) *bundle.Bundle {
	t.Helper()
	set, st := intel.Parse(strings.NewReader(list), "test-intel.txt")
	if st.Bad != 0 {
		t.Fatalf("test list has %d bad lines: %+v", st.Bad, st.Problems)
	}
	b := *defaultBundle(t)
	b.Intel = set
	return &b
}

// TestIntelMatchingPoints: each point the issue names raises its alert with
// the indicator, kind and source: TLS SNI, the server certificate, JA3
// (alert only), an HTTP URL, a destination address with its port (the
// control: the same address on another port passes), and a low-confidence
// indicator alerts ★★ without blocking.
func TestIntelMatchingPoints(t *testing.T) {
	h := tlstest.Record(t, tls.VersionTLS12, "c2.tls.example")
	var ref tlshello.Parser
	ref.Feed(0, h.Client)
	ref.Feed(1, h.Server)
	ri := ref.Info()
	fp := strings.ReplaceAll(string(ri.Fingerprint), ":", "")

	run := func(list string, pkts []testpcap.Packet) ([]Verdict, *recorder) {
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}}, intelBundle(t, list))
		return verdicts(e, pkts), &rec
	}
	check := func(name string, rec *recorder, sid int, stars int, kind string) {
		t.Helper()
		al := rec.alerts()
		if len(al) != 1 || al[0].Alert.SignatureID != sid || int(al[0].Stars) != stars || al[0].Intel == nil ||
			al[0].Intel.Kind != kind || al[0].Intel.Source != "test-intel.txt" {
			t.Fatalf("%s: want one sid %d ★%d alert naming a %s indicator, got %+v", name, sid, stars, kind, al)
		}
	}

	vs, rec := run("c2.tls.example\n", tlsTrace(h, "198.18.1.2:40443", 200))
	check("SNI", rec, sidCNCTLSSNI, 3, intel.KindDomain)
	if vs[len(vs)-1] == Accept {
		t.Fatal("SNI: the TLS connection was not blocked")
	}
	vs, rec = run(fp+"\n", tlsTrace(h, "198.18.1.2:40444", 200))
	check("certificate", rec, sidCNCCert, 3, intel.KindCertSHA1)
	if vs[len(vs)-1] == Accept {
		t.Fatal("certificate: the TLS connection was not blocked")
	}
	vs, rec = run(string(ri.JA3Hash)+"\n", tlsTrace(h, "198.18.1.2:40445", 200))
	check("JA3", rec, sidCNCJA3, 2, intel.KindJA3)
	if vs[len(vs)-1] == Drop || vs[len(vs)-1] == Reject {
		t.Fatal("JA3: the connection was blocked; a JA3 hit only alerts")
	}

	httpTrace := func(host, uri, server string) []testpcap.Packet {
		tr := testpcap.NewTrace(t0)
		c := tr.NewTCP("198.18.1.2:40080", server).Handshake()
		c.Client([]byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", uri, host)), 0)
		c.Server([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0)
		return tr.Sorted()
	}
	vs, rec = run("http://www.lab.test/gate.php?id=1\n", httpTrace("www.lab.test", "/gate.php?id=1", "198.18.2.2:80"))
	check("URL", rec, sidCNCURL, 3, intel.KindURL)
	if vs[len(vs)-1] == Accept {
		t.Fatal("URL: not blocked")
	}
	vs, rec = run("198.18.2.77:8080\n", httpTrace("x.lab.test", "/", "198.18.2.77:8080"))
	check("IP:port", rec, sidCNCAddr, 3, intel.KindIPPort)
	if vs[0] == Accept {
		t.Fatal("IP:port: the first packet (SYN) passed")
	}
	vs, rec = run("198.18.2.77:8080\n", httpTrace("x.lab.test", "/", "198.18.2.77:80"))
	if len(rec.alerts()) != 0 || vs[len(vs)-1] != Accept {
		t.Fatalf("IP:port control (other port): alerts %+v", rec.alerts())
	}
	vs, rec = run("www.lab.test confidence=40\n", httpTrace("www.lab.test", "/", "198.18.2.2:80"))
	check("low confidence", rec, sidCNCHTTPHost, 2, intel.KindDomain)
	if vs[len(vs)-1] != Accept {
		t.Fatal("low confidence: blocked")
	}
}
