package replay

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/telemetry/eve"
)

// cncCases are the C&C goldens: testdata/cnc-NAME.pcap (written with
// -update) replayed with the threat-intel file testdata/cnc-NAME.txt, as
// utmd -r PCAP --intel FILE does (format detected from the content), with
// the engine's heuristics on. want is the alerts by sid the user expects.
var cncCases = []struct {
	name  string
	intel string
	build func(t *testing.T, tr *testpcap.Trace)
	want  map[int]int
}{
	// (a) A listed domain resolved, then a connection to the address it
	// resolved to: the lookup alerts ★★, the SYN is blocked ★★★. A benign
	// lookup and connection, and another host's connection to the C&C
	// address (it never resolved the name), raise nothing.
	{"cnc-dns-learned", "# replay lab C2 domains (plain list)\nc2.replay-lab.test replay-rat\n",
		func(t *testing.T, tr *testpcap.Trace) {
			tr.UDP("198.18.1.2:53010", "198.18.2.53:53", dnsMsg(0x5001, "www.replay-lab.test", ""))
			tr.UDP("198.18.2.53:53", "198.18.1.2:53010", dnsMsg(0x5001, "www.replay-lab.test", "198.18.2.2"))
			c := tr.NewTCP("198.18.1.2:43001", "198.18.2.2:443").Handshake()
			c.Client([]byte(canary), 0)
			c.Close()
			tr.UDP("198.18.1.2:53011", "198.18.2.53:53", dnsMsg(0x5002, "api.c2.replay-lab.test", ""))
			tr.UDP("198.18.2.53:53", "198.18.1.2:53011", dnsMsg(0x5002, "api.c2.replay-lab.test", "198.18.2.77"))
			tr.NewTCP("198.18.1.2:43002", "198.18.2.77:443").Handshake().Client([]byte(canary), 0)
			o := tr.NewTCP("198.18.1.3:43003", "198.18.2.77:443").Handshake()
			o.Client([]byte(canary), 0)
			o.Close()
		}, map[int]int{2220001: 1, 2220003: 1}},
	// (b) A TLS 1.2 handshake (real, crypto/tls) naming a listed domain:
	// blocked at the ClientHello, ★★★ with the SNI in the alert.
	{"cnc-tls-sni", "c2-sni.replay-lab.test replay-rat\n",
		func(t *testing.T, tr *testpcap.Trace) {
			h := tlstest.Record(t, tls.VersionTLS12, "c2-sni.replay-lab.test")
			c := tr.NewTCP("198.18.1.2:43010", "198.18.2.66:443").Handshake()
			ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
			sf := serverFlight(h.Server)
			c.Client(h.Client[:ch], 0)
			c.Server(h.Server[:sf], 500)
			c.Client(h.Client[ch:], 0)
			c.Server(h.Server[sf:], 0)
			c.Close()
		}, map[int]int{2220005: 1}},
	// (c) A URLhaus export (in a .txt: the format is detected from its
	// header) listing one URL: the request for it is blocked ★★★; another
	// URL on the same host, on an earlier connection, passes.
	{"cnc-http-url", `# abuse.ch URLhaus Database Dump (CSV)
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
"3700002","2026-08-14 09:56:04","http://dl.replay-lab.test/files/invoice.exe","online","2026-08-14 09:56:04","malware_download","exe,Formbook","https://urlhaus.abuse.ch/url/3700002/","lab"
`,
		func(t *testing.T, tr *testpcap.Trace) {
			c := tr.NewTCP("198.18.1.2:43020", "198.18.2.2:80").Handshake()
			c.Client([]byte("GET /files/readme.txt HTTP/1.1\r\nHost: dl.replay-lab.test\r\n\r\n"), 0)
			c.Server(httpResponse([]byte("readme "+canary), ""), 0)
			c.Close()
			d := tr.NewTCP("198.18.1.2:43021", "198.18.2.2:80").Handshake()
			d.Client([]byte("GET /files/invoice.exe HTTP/1.1\r\nHost: dl.replay-lab.test\r\nX-Note: "+canary+"\r\n\r\n"), 0)
			d.Server(httpResponse([]byte("MZ "+canary), ""), 0)
		}, map[int]int{2220008: 1}},
	// (d) One host's 30 lookups of random 15-letter names, each answered
	// NXDOMAIN within a minute: one ★★ DGA alert. Another host's 30 failed
	// lookups of readable names: nothing.
	{"cnc-dga", "# no indicator of this trace: the DGA heuristic needs none\nunrelated.replay-lab.test\n",
		func(t *testing.T, tr *testpcap.Trace) {
			rnd := rand.New(rand.NewPCG(2026, 11))
			words := []string{"office", "printer", "intranet", "backup", "mail", "portal"}
			for i := 0; i < 30; i++ {
				human := words[i%6] + "-" + words[(i/6+1)%6] + fmt.Sprint(i/6) + ".net"
				q := fmt.Sprintf("198.18.1.3:%d", 54000+i)
				tr.UDP(q, "198.18.2.53:53", dnsMsg(uint16(0x6000+i), human, ""))
				tr.UDP("198.18.2.53:53", q, nxMsg(uint16(0x6000+i), human))
				b := make([]byte, 15)
				for j := range b {
					b[j] = byte('a' + rnd.IntN(26))
				}
				name := string(b) + ".net"
				q = fmt.Sprintf("198.18.1.2:%d", 55000+i)
				tr.UDP(q, "198.18.2.53:53", dnsMsg(uint16(0x7000+i), name, ""))
				tr.UDP("198.18.2.53:53", q, nxMsg(uint16(0x7000+i), name))
			}
		}, map[int]int{2220011: 1}},
}

// nxMsg is an NXDOMAIN answer to an A query for name.
func nxMsg(id uint16, name string) []byte {
	return serializeDNS(&layers.DNS{ID: id, QR: true, RD: true, RA: true, ResponseCode: layers.DNSResponseCodeNXDomain,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}})
}

// cncFiles returns a case's pcap, intel file and golden paths; with
// -update it writes the intel file.
func cncFiles(t *testing.T, name, intel string) (pcap, intelFile, golden string) {
	t.Helper()
	pcap = filepath.Join("testdata", name+".pcap")
	intelFile = filepath.Join("testdata", name+".txt")
	golden = filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(intelFile, []byte(intel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return
}

// TestCNCGolden replays each C&C pcap with its intel file through an engine
// with the box's heuristics and checks the alerts a user expects (sid and
// count, nothing else), that every intel alert names its indicator and
// source file, and the whole eve.json against its golden.
func TestCNCGolden(t *testing.T) {
	for _, c := range cncCases {
		t.Run(c.name, func(t *testing.T) {
			pcap, intelFile, golden := cncFiles(t, c.name, c.intel)
			b, err := bundle.Load(bundle.Options{IntelFiles: []string{intelFile}})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.IntelFiles) != 1 || b.IntelFiles[0].Stats.Bad != 0 || b.IntelFiles[0].Stats.Indicators() == 0 {
				t.Fatalf("intel file %s: %+v; want its indicators loaded, no bad line", intelFile, b.IntelFiles)
			}
			if *update {
				tr := testpcap.NewTrace(start)
				c.build(t, tr)
				if err := testpcap.WritePcap(pcap, testpcap.Ethernet, tr.Sorted()); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "eve.json")
			w, err := eve.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			eng := engine.New(engine.Config{Sink: w, Heuristics: engine.NewHeuristics()}, b)
			res, err := File(pcap, eng)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(got, []byte(canary)) {
				t.Fatalf("eve.json carries payload bytes:\n%s", got)
			}
			checkEvents(t, got)
			total := 0
			for sid, want := range c.want {
				n := strings.Count(string(got), fmt.Sprintf(`"signature_id":%d,`, sid))
				total += n
				if n != want {
					t.Errorf("sid %d alerted %d times, want %d", sid, n, want)
				}
			}
			if n := strings.Count(string(got), `"event_type":"alert"`); n != total {
				t.Errorf("%d alerts, want %d:\n%s", n, total, got)
			}
			if c.name != "cnc-dga" && strings.Count(string(got), `"source":"`+c.name+`.txt"`)+strings.Count(string(got), `"source":"urlhaus"`) != total {
				t.Errorf("every alert should name the indicator's source (%s.txt or urlhaus):\n%s", c.name, got)
			}
			t.Logf("%s: %+v", c.name, res)
			compareGolden(t, golden, got)
		})
	}
}

var (
	utmdOnce sync.Once
	utmdBin  string
	utmdErr  error
)

// TestCNCGoldenUTMD runs the utmd binary as a user would, utmd -r PCAP -l
// DIR --intel FILE, on each C&C pcap and checks it writes the golden
// eve.json byte for byte: the command line and the replay package agree.
func TestCNCGoldenUTMD(t *testing.T) {
	if testing.Short() {
		t.Skip("builds utmd")
	}
	utmdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replay-utmd")
		if err != nil {
			utmdErr = err
			return
		}
		utmdBin = filepath.Join(dir, "utmd")
		if out, err := exec.Command("go", "build", "-o", utmdBin, "../../firmware/cmd/utmd").CombinedOutput(); err != nil {
			utmdErr = fmt.Errorf("building utmd: %v\n%s", err, out)
		}
	})
	if utmdErr != nil {
		t.Fatal(utmdErr)
	}
	for _, c := range cncCases {
		t.Run(c.name, func(t *testing.T) {
			pcap := filepath.Join("testdata", c.name+".pcap")
			intelFile := filepath.Join("testdata", c.name+".txt")
			golden := filepath.Join("testdata", c.name+".golden.json")
			dir := t.TempDir()
			out, err := exec.Command(utmdBin, "-r", pcap, "-l", dir, "--intel", intelFile).CombinedOutput()
			if err != nil {
				t.Fatalf("utmd -r %s --intel %s: %v\n%s", pcap, intelFile, err, out)
			}
			if !strings.Contains(string(out), "threat intel loaded") {
				t.Fatalf("utmd does not log the intel file it loaded:\n%s", out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "eve.json"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./dataplane/replay -run TestCNCGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("utmd -r eve.json differs from %s\n--- utmd\n%s\n--- golden\n%s", golden, got, want)
			}
		})
	}
}
