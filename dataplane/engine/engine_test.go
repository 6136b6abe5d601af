package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/telemetry/alert"
)

var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

type recorder struct {
	mu sync.Mutex
	ev []*alert.Event
}

func (r *recorder) Emit(ev *alert.Event) { r.mu.Lock(); r.ev = append(r.ev, ev); r.mu.Unlock() }

func (r *recorder) alerts() []*alert.Event {
	var out []*alert.Event
	for _, e := range r.ev {
		if e.EventType == alert.TypeAlert {
			out = append(out, e)
		}
	}
	return out
}

type resetCall struct {
	client, server         netip.AddrPort
	clientNext, serverNext uint32
}

// resets records the resets the engine asks for; the lab tests check real
// ones reach real sockets.
type resets struct{ calls []resetCall }

func (r *resets) ResetBoth(c, s netip.AddrPort, cn, sn uint32) error {
	r.calls = append(r.calls, resetCall{c, s, cn, sn})
	return nil
}

func defaultBundle(t testing.TB) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Default()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// TestMalwareNeverArrivesWhole: every packet of a malicious download is let
// through except the one that completes it, which is rejected with resets.
func TestMalwareNeverArrivesWhole(t *testing.T) {
	file := append(append([]byte(nil), eicar...), bytes.Repeat([]byte{'A'}, 20000)...)
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /files/x.com HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(file))), 0)
	c.Server(file, 1400)
	var rec recorder
	var rs resets
	e := New(Config{Sink: &rec, Reset: &rs}, defaultBundle(t))
	pkts := tr.Sorted()
	var verdicts []Verdict
	lastData := -1
	for i, p := range pkts {
		verdicts = append(verdicts, e.Process(p.TS, p.Data))
		if len(p.Data) > 60 && p.Data[12] == 198 && p.Data[14] == 2 { // from the server, with data
			lastData = i
		}
	}
	for i, v := range verdicts {
		want := Accept
		if i == lastData {
			want = Reject
		} else if i > lastData {
			want = Drop
		}
		if v != want {
			t.Fatalf("packet %d verdict %v, want %v", i, v, want)
		}
	}
	al := rec.alerts()
	if len(al) != 1 || al[0].Stars != 3 || al[0].Alert.SignatureID != sidAVHTTP || al[0].FileInfo == nil || al[0].FileInfo.Threat == "" {
		t.Fatalf("want one ★★★ AV alert with the threat name, got %+v", al)
	}
	if al[0].HTTP == nil || al[0].HTTP.URL != "/files/x.com" || al[0].FileInfo.Filename != "x.com" {
		t.Fatalf("alert lacks the URL or file name: %+v %+v", al[0].HTTP, al[0].FileInfo)
	}
	if len(rs.calls) != 1 || rs.calls[0].server.String() != "198.18.2.2:80" {
		t.Fatalf("want one reset of the connection, got %+v", rs.calls)
	}
}

func TestMalformedIsCountedAndHandledByPolicy(t *testing.T) {
	junk := [][]byte{{0x45, 0, 0}, {0x75, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, {}}
	for _, accept := range []bool{false, true} {
		e := New(Config{MalformedAccept: accept}, defaultBundle(t))
		for _, j := range junk {
			v := e.Process(t0, j)
			if want := map[bool]Verdict{false: Drop, true: Accept}[accept]; v != want {
				t.Fatalf("MalformedAccept=%v: verdict %v, want %v", accept, v, want)
			}
		}
		s := e.Stats()
		if n := s.Malformed.Load() + s.Truncated.Load() + s.Unsupported.Load(); n != uint64(len(junk)) {
			t.Fatalf("counted %d bad packets, want %d", n, len(junk))
		}
	}
}

// TestAcceptPathAllocs: packets of known flows do not allocate.
func TestAcceptPathAllocs(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:443").Handshake()
	c.Client(bytes.Repeat([]byte{0x17, 3, 3, 0, 10}, 4000), 1000) // opaque (TLS-like) stream
	for i := 0; i < 400; i++ {
		tr.UDP("198.18.1.2:5000", "198.18.2.9:4000", []byte("opaque datagram"))
	}
	pkts := tr.Sorted()
	e := New(Config{}, defaultBundle(t))
	for _, p := range pkts[:10] {
		e.Process(p.TS, p.Data)
	}
	i := 10
	n := testing.AllocsPerRun(len(pkts)-20, func() {
		e.Process(pkts[i].TS, pkts[i].Data)
		i++
	})
	if n != 0 {
		t.Fatalf("Process allocates %v times per packet on the accept path; want 0", n)
	}
}

func BenchmarkProcessOpaqueTCP(b *testing.B) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:443").Handshake()
	c.Client(bytes.Repeat([]byte{0x17}, 1460*1000), 1460)
	pkts := tr.Sorted()
	e := New(Config{}, defaultBundle(b))
	b.ReportAllocs()
	b.ResetTimer()
	var bytesN int64
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		bytesN += int64(len(p.Data))
		e.Process(p.TS, p.Data)
	}
	b.SetBytes(bytesN / int64(max(b.N, 1)))
}
