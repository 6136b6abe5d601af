package replay

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/dataplane/internal/tlstest"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

// ipsRules are the IPS goldens' rules (testdata/ips.rules), Suricata syntax
// as a user writes them: one per feature the goldens pin.
const ipsRules = `# IPS golden rules (dataplane/replay/ips_test.go)
drop http any any -> any any (msg:"IPS lab: path traversal to /etc/passwd in the URI"; flow:established,to_server; http.uri; content:"/etc/passwd"; classtype:web-application-attack; sid:3100001; rev:1;)
alert dns any any -> any any (msg:"IPS lab: DNS query for a lab C2 domain"; dns.query; content:"c2.ips-lab.test"; endswith; classtype:trojan-activity; sid:3100002; rev:1;)
alert tls any any -> any any (msg:"IPS lab: TLS to a lab C2 name"; tls.sni; content:"c2.ips-lab.test"; classtype:trojan-activity; sid:3100003; rev:1;)
alert http any any -> any any (msg:"IPS lab: beacon request (flowbit set)"; flow:established,to_server; http.uri; content:"/gate.php"; flowbits:set,ipslab.gate; flowbits:noalert; sid:3100004; rev:1;)
alert http any any -> any any (msg:"IPS lab: beacon answered with tasking"; flow:established,to_client; flowbits:isset,ipslab.gate; file.data; content:"TASK:"; startswith; classtype:trojan-activity; sid:3100005; rev:1;)
alert http any any -> any any (msg:"IPS lab: tasking on a flow without the beacon request (isnotset)"; flow:established,to_client; flowbits:isnotset,ipslab.gate; file.data; content:"TASK:"; startswith; sid:3100006; rev:1;)
alert http any any -> any any (msg:"IPS lab: repeated token in the URI (pcre backreference)"; flow:established,to_server; http.uri; content:"id="; pcre:"/id=([a-z]{4})-\1(?:&|$)/U"; sid:3100007; rev:1;)
alert tcp any any -> any 9000 (msg:"IPS lab: oversized length in a binary header (byte_test)"; flow:established,to_server; content:"|CA FE|"; depth:2; byte_test:2,>,4096,2; sid:3100008; rev:1;)
`

// ipsCases are the IPS goldens: a pcap each (testdata/ips-*.pcap, written
// with -update), with the alerts by sid the user expects and whether the
// flow is dropped.
var ipsCases = []struct {
	name    string
	build   func(t *testing.T, tr *testpcap.Trace)
	want    map[int]int // sid -> alerts
	dropped bool
}{
	{"ips-http-exploit-drop", func(t *testing.T, tr *testpcap.Trace) {
		c := tr.NewTCP("198.18.1.2:42001", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /cgi-bin/view?file=../../../../etc/passwd HTTP/1.1\r\nHost: www.lab.test\r\nX-Note: "+canary+"\r\n\r\n"), 0)
		c.Server(httpResponse([]byte("root:x:0:0:"), ""), 0)
	}, map[int]int{3100001: 1}, true},
	{"ips-dns-query", func(t *testing.T, tr *testpcap.Trace) {
		tr.UDP("198.18.1.2:53002", "198.18.2.53:53", dnsMsg(0x4242, "www.c2.ips-lab.test", ""))
		tr.UDP("198.18.2.53:53", "198.18.1.2:53002", dnsMsg(0x4242, "www.c2.ips-lab.test", "198.18.2.66"))
		tr.UDP("198.18.1.2:53003", "198.18.2.53:53", dnsMsg(0x4243, "c2.ips-lab.test.example", "")) // not at the end: no alert
	}, map[int]int{3100002: 1}, false},
	{"ips-tls-sni", func(t *testing.T, tr *testpcap.Trace) {
		h := tlstest.Record(t, tls.VersionTLS12, "c2.ips-lab.test")
		c := tr.NewTCP("198.18.1.2:42003", "198.18.2.66:443").Handshake()
		ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
		sf := serverFlight(h.Server)
		c.Client(h.Client[:ch], 0)
		c.Server(h.Server[:sf], 500)
		c.Client(h.Client[ch:], 0)
		c.Server(h.Server[sf:], 0)
		c.Close()
	}, map[int]int{3100003: 1}, false},
	{"ips-flowbits", func(t *testing.T, tr *testpcap.Trace) {
		c := tr.NewTCP("198.18.1.2:42004", "198.18.2.66:80").Handshake()
		c.Client([]byte("GET /gate.php?b=1 HTTP/1.1\r\nHost: c2.ips-lab.test\r\n\r\n"), 0)
		c.Server(httpResponse([]byte("TASK: "+canary), ""), 0)
		c.Close()
		// The same answer on a flow without the request: the bit is per flow.
		d := tr.NewTCP("198.18.1.2:42005", "198.18.2.66:80").Handshake()
		d.Client([]byte("GET /index.html HTTP/1.1\r\nHost: c2.ips-lab.test\r\n\r\n"), 0)
		d.Server(httpResponse([]byte("TASK: "+canary), ""), 0)
		d.Close()
	}, map[int]int{3100005: 1, 3100006: 1}, false},
	{"ips-pcre-backref", func(t *testing.T, tr *testpcap.Trace) {
		c := tr.NewTCP("198.18.1.2:42006", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /track?id=abcd-abcd HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		c.Server(httpResponse([]byte("ok"), ""), 0)
		c.Client([]byte("GET /track?id=abcd-abce HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0) // differs: no alert
		c.Server(httpResponse([]byte("ok"), ""), 0)
		c.Close()
	}, map[int]int{3100007: 1}, false},
	{"ips-byte-test", func(t *testing.T, tr *testpcap.Trace) {
		c := tr.NewTCP("198.18.1.2:42007", "198.18.2.2:9000").Handshake()
		c.Client([]byte("\xca\xfe\x00\x10"+canary), 0) // length 16: no alert
		c.Server([]byte("ack"), 0)
		c.Client([]byte("\xca\xfe\x20\x00"+canary), 0) // length 8192: alert
		c.Close()
	}, map[int]int{3100008: 1}, false},
}

// TestIPSGolden replays each IPS pcap through the engine with
// testdata/ips.rules and checks the alerts a user expects (sid and count,
// blocked for the drop rule, nothing from the near misses) and the whole
// eve.json against its golden.
func TestIPSGolden(t *testing.T) {
	rulesFile := filepath.Join("testdata", "ips.rules")
	if *update {
		if err := os.WriteFile(rulesFile, []byte(ipsRules), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, errs, err := rules.ParseFile(rulesFile, rules.DefaultVars())
	if err != nil || len(errs) != 0 {
		t.Fatalf("%v %v (run go test ./dataplane/replay -run TestIPSGolden -update)", err, errs)
	}
	for _, c := range ipsCases {
		t.Run(c.name, func(t *testing.T) {
			pcap := filepath.Join("testdata", c.name+".pcap")
			golden := filepath.Join("testdata", c.name+".golden.json")
			got, res, _ := replayTrace(t, &bundle.Bundle{Rules: set}, pcap, testpcap.Ethernet,
				func(tr *testpcap.Trace) { c.build(t, tr) })
			total := 0
			for sid := 3100001; sid <= 3100008; sid++ {
				n := strings.Count(string(got), fmt.Sprintf(`"signature_id":%d,`, sid))
				total += n
				if n != c.want[sid] {
					t.Errorf("sid %d alerted %d times, want %d", sid, n, c.want[sid])
				}
			}
			if n := strings.Count(string(got), `"event_type":"alert"`); n != total {
				t.Errorf("%d alerts, %d of them from the IPS rules:\n%s", n, total, got)
			}
			if blocked := strings.Contains(string(got), `"action":"blocked"`); blocked != c.dropped || (res.Dropped > 0) != c.dropped {
				t.Errorf("blocked alert %v, dropped packets %d; want dropped=%v", blocked, res.Dropped, c.dropped)
			}
			compareGolden(t, golden, got)
		})
	}
}
