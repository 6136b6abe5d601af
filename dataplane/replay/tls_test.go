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
	"github.com/openutm/utm/dataplane/tlshello"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

// TestTLSGolden replays a real TLS 1.2 handshake to "bad.example" (made
// with crypto/tls on -update, with the rules naming its JA3 hash) and
// checks a tls.sni, a ja3.hash and a tls.cert_subject rule each fire once,
// alerts carry the tls metadata and no application bytes, and the flow is
// bypassed once both sides encrypt.
func TestTLSGolden(t *testing.T) {
	pcap := filepath.Join("testdata", "tls-sni.pcap")
	rulesFile := filepath.Join("testdata", "tls-sni.rules")
	golden := filepath.Join("testdata", "tls-sni.golden.json")
	var build func(*testpcap.Trace)
	if *update {
		h := tlstest.Record(t, tls.VersionTLS12, "bad.example")
		var p tlshello.Parser
		p.Feed(0, h.Client)
		text := fmt.Sprintf(`alert tls any any -> any any (msg:"TLS SNI bad.example"; tls.sni; content:"bad.example"; sid:1; rev:1;)
alert tls any any -> any any (msg:"TLS JA3 of the recorded client"; ja3.hash; content:"%s"; sid:2; rev:1;)
alert tls any any -> any any (msg:"TLS certificate subject"; tls.cert_subject; content:"CN=bad.example"; sid:3; rev:1;)
alert tls any any -> any any (msg:"TLS SNI good.example"; tls.sni; content:"good.example"; sid:4; rev:1;)
`, p.Info().JA3Hash)
		if err := os.WriteFile(rulesFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		build = func(tr *testpcap.Trace) {
			c := tr.NewTCP("198.18.1.2:41443", "198.18.2.2:443").Handshake()
			ch := 5 + (int(h.Client[3])<<8 | int(h.Client[4]))
			sf := serverFlight(h.Server)
			c.Client(h.Client[:ch], 0)
			c.Server(h.Server[:sf], 500)
			c.Client(h.Client[ch:], 0)
			c.Server(h.Server[sf:], 0)
			// Application data after the bypass, with the canary: never inspected, never in eve.json.
			c.Client(append([]byte{23, 3, 3, 0, byte(len(canary))}, canary...), 0)
			c.Close()
		}
	}
	text, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatalf("%v (run go test ./dataplane/replay -run TestTLSGolden -update)", err)
	}
	set, errs := rules.Parse(strings.NewReader(string(text)), rulesFile, rules.DefaultVars())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	got, res, eng := replayTrace(t, &bundle.Bundle{Rules: set}, pcap, testpcap.Ethernet, build)
	s := eng.Stats()
	if s.TLS.ClientHellos.Load() != 1 || s.TLS.Certificates.Load() != 1 || s.Stream.BypassTLS.Load() != 1 || res.Dropped != 0 {
		t.Errorf("hellos %d, certificates %d, TLS bypasses %d, dropped %d (want 1, 1, 1, 0)", s.TLS.ClientHellos.Load(), s.TLS.Certificates.Load(), s.Stream.BypassTLS.Load(), res.Dropped)
	}
	for sid := 1; sid <= 4; sid++ {
		n := strings.Count(string(got), fmt.Sprintf(`"signature_id":%d,`, sid))
		if want := map[bool]int{true: 1, false: 0}[sid <= 3]; n != want {
			t.Errorf("sid %d alerted %d times, want %d", sid, n, want)
		}
	}
	if strings.Count(string(got), `"sni":"bad.example"`) != 3 {
		t.Errorf("every alert should carry tls.sni bad.example:\n%s", got)
	}
	compareGolden(t, golden, got)
}

// serverFlight is the length of the server's records before its first
// ChangeCipherSpec.
func serverFlight(b []byte) int {
	off := 0
	for off+5 <= len(b) && b[off] != 20 {
		off += 5 + (int(b[off+3])<<8 | int(b[off+4]))
	}
	return min(off, len(b))
}
