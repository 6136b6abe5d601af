package engine

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/capture"
	"github.com/openutm/utm/dataplane/internal/quictest"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/dataplane/quic"
)

// FuzzProcess feeds the whole pipeline (decode, flows, reassembly, HTTP,
// DNS, files, signatures) a sequence of packets: each is a 2-byte length
// and that many bytes. The seeds are the replay captures, so mutations
// start from real conversations (EICAR download, C&C lookup, Log4Shell,
// malformed packets, TLS through a proxy's tunnel, DNS over TCP, QUIC). The engine must never panic, must count every
// packet, and must return a known verdict.
func FuzzProcess(f *testing.F) {
	paths, _ := filepath.Glob("../replay/testdata/*.pcap")
	for _, p := range paths {
		r, err := capture.Open(p)
		if err != nil {
			f.Fatal(err)
		}
		var seed []byte
		for {
			_, pkt, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Fatalf("%s: %v", p, err)
			}
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(pkt)))
			seed = append(seed, pkt...)
		}
		r.Close()
		f.Add(seed)
	}
	addTrace := func(pkts []testpcap.Packet) {
		var seed []byte
		for _, p := range pkts {
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(p.Data)))
			seed = append(seed, p.Data...)
		}
		f.Add(seed)
	}
	// A TLS handshake through a proxy's CONNECT tunnel.
	h := tlstest.Record(f, tls.VersionTLS12, "c2.tls.example")
	ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
	addTrace(connectTrace("198.18.2.9:443", h.Client[:ch], h.Server, h.Client[ch:]))
	// DNS over TCP, a lookup of a listed name split across segments.
	tr := testpcap.NewTrace(t0)
	k := tr.NewTCP("198.18.1.2:40010", "198.18.2.53:53").Handshake()
	q := tcpDNS(dnsQuery(f, 1, "www.lab.test", layers.DNSTypeA), dnsQuery(f, 2, "cnc.utm-lab.test", layers.DNSTypeA))
	k.Client(q[:30], 0)
	k.Client(q[30:], 0)
	addTrace(tr.Sorted())
	// An HTTP/3 client's first flight.
	fl := quictest.Flight(f, quic.Version1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "c2.quic.example")
	tr = testpcap.NewTrace(t0)
	tr.UDP("198.18.1.2:50000", "198.18.2.44:443", fl[0])
	tr.UDP("198.18.1.2:50000", "198.18.2.44:443", fl[1])
	addTrace(tr.Sorted())
	b := defaultBundle(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &recorder{}
		e := New(Config{Sink: rec, Reset: &resets{}, MaxFlows: 64, StreamBuffer: 16 << 10}, b)
		ts := t0
		n := uint64(0)
		for len(data) >= 2 {
			l := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			l = min(l, len(data))
			pkt := data[:l]
			data = data[l:]
			ts = ts.Add(time.Millisecond)
			if v := e.Process(ts, pkt); v > Bypass {
				t.Fatalf("verdict %d", v)
			}
			n++
		}
		e.Close()
		if got := e.Stats().Packets.Load(); got != n {
			t.Fatalf("engine counted %d packets, fed %d", got, n)
		}
	})
}
