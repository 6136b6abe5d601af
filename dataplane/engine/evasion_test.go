package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

func verdicts(e *Engine, pkts []testpcap.Packet) []Verdict {
	var out []Verdict
	for _, p := range pkts {
		out = append(out, e.Process(p.TS, p.Data))
	}
	return out
}

// TestDepthBypass: an opaque flow is inspected up to its stream depth, then
// bypassed; every later packet is accepted uninspected and counted.
func TestDepthBypass(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Server(bytes.Repeat([]byte{0xee}, 10000), 1000)
	e := New(Config{StreamDepth: 4000}, defaultBundle(t))
	vs := verdicts(e, tr.Sorted())
	first := -1
	for i, v := range vs {
		if v == Bypass && first < 0 {
			first = i
		}
		if first >= 0 && v != Bypass {
			t.Fatalf("packet %d after the bypass: %v", i, v)
		}
	}
	// Handshake (3), then data+ack pairs: the 4th data segment reaches 4000.
	if first != 3+2*3 {
		t.Fatalf("first bypass at packet %d, want 9 (verdicts %v)", first, vs)
	}
	s := e.Stats()
	if s.Stream.BypassDepth.Load() != 1 || s.Bypassed.Load() != uint64(len(vs)-first) {
		t.Fatalf("depth bypasses %d, bypassed packets %d", s.Stream.BypassDepth.Load(), s.Bypassed.Load())
	}
	if e.streamMem.Used() != 0 {
		t.Fatalf("a bypassed flow still holds %d bytes of reassembly memory", e.streamMem.Used())
	}
}

// TestHTTPFollowedPastDepth: an HTTP connection is never bypassed by the
// stream depth: after a long clean download, a second file on the same
// keep-alive connection is still extracted, and a malicious one cut (a
// depth bypass would let it through: the evasion this guards against).
func TestHTTPFollowedPastDepth(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 20000)
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /big HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte("HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n"), 0)
	c.Server(body, 1000)
	c.Client([]byte("GET /next HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(eicar))), 0)
	c.Server(eicar, 1000)
	var rec recorder
	e := New(Config{StreamDepth: 4000, Sink: &rec}, defaultBundle(t))
	vs := verdicts(e, tr.Sorted())
	for i, v := range vs {
		if v == Bypass {
			t.Fatalf("packet %d bypassed: an HTTP connection must be followed past the depth", i)
		}
	}
	if vs[len(vs)-1] == Accept {
		t.Fatalf("the malicious second file was let through (verdicts %v)", vs)
	}
	al := rec.alerts()
	if e.Stats().Files.Load() != 2 || len(al) != 1 || al[0].HTTP == nil || al[0].HTTP.URL != "/next" {
		t.Fatalf("files %d, alerts %+v: want 2 files and one alert on /next", e.Stats().Files.Load(), al)
	}
}

// TestHTTPBypassAfterConnectionClose: once the response says
// "Connection: close" no transaction can follow, so a connection past its
// depth is bypassed as soon as its file is scanned; the same transfer on a
// keep-alive connection (the control) is not.
func TestHTTPBypassAfterConnectionClose(t *testing.T) {
	for _, closeHdr := range []bool{true, false} {
		body := bytes.Repeat([]byte("x"), 20000)
		tr := testpcap.NewTrace(t0)
		c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /big HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		hdr := "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n"
		if closeHdr {
			hdr += "Connection: keep-alive, Close\r\n"
		}
		c.Server([]byte(hdr+"\r\n"), 0)
		c.Server(body, 1000)
		c.Client([]byte("more bytes after the body"), 0)
		var rec recorder
		e := New(Config{StreamDepth: 4000, Sink: &rec}, defaultBundle(t))
		vs := verdicts(e, tr.Sorted())
		n := 0
		for _, v := range vs {
			if v == Bypass {
				n++
			}
		}
		files := e.Stats().Files.Load()
		if closeHdr && (n == 0 || files != 1 || len(rec.ev) != 1 || rec.ev[0].FileInfo.State != "CLOSED") {
			t.Fatalf("Connection: close: bypassed %d packets (want some, after the file), files %d, events %d", n, files, len(rec.ev))
		}
		if !closeHdr && n != 0 {
			t.Fatalf("keep-alive: %d packets bypassed; a later transaction could carry a file", n)
		}
	}
}

// TestPassRuleBypass: a pass rule bypasses the flow without an alert.
func TestPassRuleBypass(t *testing.T) {
	set, errs := rules.Parse(strings.NewReader(`pass tcp any any -> any any (msg:"trusted updater"; content:"trusted-update"; sid:9000001; rev:1;)
drop tcp any any -> any any (msg:"bad"; content:"evil"; sid:9000002; rev:1;)
`), "test.rules", rules.DefaultVars())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	b := &bundle.Bundle{Rules: set}
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client([]byte("hello trusted-update"), 0)
	c.Client([]byte("evil"), 0)
	var rec recorder
	e := New(Config{Sink: &rec}, b)
	vs := verdicts(e, tr.Sorted())
	if vs[3] != Bypass || vs[5] != Bypass || len(rec.alerts()) != 0 || e.Stats().Stream.BypassPass.Load() != 1 {
		t.Fatalf("verdicts %v, alerts %d", vs, len(rec.alerts()))
	}
}

// TestBypassedAllocs: packets of a bypassed flow do not allocate.
func TestBypassedAllocs(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client(bytes.Repeat([]byte{0xab}, 400*1000), 1000)
	pkts := tr.Sorted()
	e := New(Config{StreamDepth: 2000}, defaultBundle(t))
	for _, p := range pkts[:10] {
		e.Process(p.TS, p.Data)
	}
	i := 10
	n := testing.AllocsPerRun(len(pkts)-20, func() {
		if e.Process(pkts[i].TS, pkts[i].Data) != Bypass {
			t.Fatalf("packet %d not bypassed", i)
		}
		i++
	})
	if n != 0 {
		t.Fatalf("Process allocates %v times per packet of a bypassed flow; want 0", n)
	}
}

// TestConflictDropsPacketOnly: a changed copy of delivered bytes is dropped
// with a ★★ alert; the flow goes on.
func TestConflictDropsPacketOnly(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client([]byte("abcdefgh"), 0)
	c.ClientSegment(0xffffffff-7, []byte("abcdXfgh")) // seq of the first byte again
	c.Client([]byte("ijk"), 0)
	var rec recorder
	e := New(Config{Sink: &rec}, defaultBundle(t))
	vs := verdicts(e, tr.Sorted())
	want := []Verdict{Accept, Accept, Accept, Accept, Accept, Drop, Accept, Accept}
	for i := range want {
		if vs[i] != want[i] {
			t.Fatalf("verdicts %v, want %v", vs, want)
		}
	}
	if al := rec.alerts(); len(al) != 1 || al[0].Alert.SignatureID != sidStreamConflict || al[0].Stars != 2 {
		t.Fatalf("alerts %+v", al)
	}
}
