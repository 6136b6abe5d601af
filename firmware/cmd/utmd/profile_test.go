package main

import (
	"strings"
	"testing"

	"github.com/openutm/utm/signatures/rules"
)

func TestPrintRuleProfile(t *testing.T) {
	s, errs := rules.Parse(strings.NewReader(`alert tcp any any -> any any (msg:"needle"; content:"needle"; sid:7;)
alert tcp any any -> any any (msg:"never"; content:"absent"; sid:8;)
`), "t.rules", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s.EnableProfiling()
	in := &rules.Input{Proto: 6, ToServer: true, Established: true}
	in.Buf[rules.BufPayload] = []byte("a needle here")
	s.Match(in, nil)
	s.Match(in, nil)
	var b strings.Builder
	printRuleProfile(&b, s, 20)
	out := b.String()
	if !strings.Contains(out, "1 rules checked") || !strings.Contains(out, "needle") || strings.Contains(out, "never") {
		t.Fatalf("profile output:\n%s", out)
	}
	if f := strings.Fields(strings.Split(out, "\n")[2]); len(f) < 4 || f[0] != "7" || f[1] != "2" || f[2] != "2" {
		t.Fatalf("want sid 7 checked 2, matched 2:\n%s", out)
	}
}
