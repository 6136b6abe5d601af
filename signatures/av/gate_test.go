package av

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gateScanner compiles one rule source (the built-in EICAR rule comes
// along, gated on its own literal).
func gateScanner(t testing.TB, src string) *Scanner {
	t.Helper()
	s, err := New(Options{YaraSources: map[string][]byte{"t.yar": []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LoadErrors) > 0 {
		t.Fatalf("rule does not compile: %v\n%s", s.LoadErrors, src)
	}
	t.Cleanup(s.Close)
	return s
}

// TestGateOn: conditions that need a string match put the gate in front
// of libyara; a file holding a string is still detected, one without any
// literal is clean without libyara (Stats.Gated).
func TestGateOn(t *testing.T) {
	cases := []struct {
		name, strs, cond string
		hit              string // matches the rule
		lits             int    // literals of the rule (EICAR's adds 1)
	}{
		{"string", `$a = "evil-marker"`, `$a`, "xx evil-marker xx", 1},
		{"at", `$a = "evil-marker"`, `$a at 2`, "xxevil-marker", 1},
		{"in", `$a = "evil-marker"`, `$a in (0..10)`, "evil-marker", 1},
		{"and a non-string", `$a = "evil-marker"`, `uint16(0) == 0x5A4D and $a and filesize < 1MB`, "MZ evil-marker", 1},
		{"any of them", `$a = "first-one" $b = "second-one"`, `any of them`, "second-one", 2},
		{"all of them", `$a = "first-one" $b = "second-one"`, `all of them`, "first-one second-one", 2},
		{"N of set", `$x1 = "first-one" $x2 = "second-one" $y = "third-one"`, `2 of ($x*) and not $y`, "first-one second-one", 2},
		{"percent", `$a = "first-one" $b = "second-one"`, `50% of them`, "first-one", 2},
		{"or of strings", `$a = "first-one" $b = "second-one" $c = "third-one"`, `($a and filesize > 0) or 1 of ($b, $c)`, "third-one", 3},
		{"count", `$a = "evil-marker"`, `#a > 1`, "evil-marker evil-marker", 1},
		{"count at least", `$a = "evil-marker"`, `#a >= 1`, "evil-marker", 1},
		{"not on the other side", `$a = "evil-marker" $b = "benign-one"`, `$a and not $b`, "evil-marker", 1},
		{"rule reference and string", `$a = "evil-marker"`, `other and $a`, "evil-marker", 1},
		{"regex and string", `$re = /ev[i1]l/ $a = "marker"`, `$re and $a`, "evil marker", 1},
		{"nocase", `$a = "Evil-Marker" nocase`, `$a`, "EVIL-MARKER", 1},
		{"wide", `$a = "evil" wide`, `$a`, "e\x00v\x00i\x00l\x00", 1},
		{"ascii wide", `$a = "evil" ascii wide`, `$a`, "evil", 2},
		{"escapes", `$a = "a\"b\\c\x41\n"`, `$a`, "a\"b\\cA\n", 1},
		{"hex", `$a = { 4D 5A ?? 00 [2-4] DE AD BE EF (01 | 02) }`, `$a`, "MZ\x90\x00..\xde\xad\xbe\xef\x02", 1},
		{"hex nibbles and comments", `$a = { 4? 5A /* the magic */ 90 00 03 // a comment
			00 }`, `$a`, "MZ\x90\x00\x03\x00", 1},
		{"private string", `$a = "evil-marker" private`, `$a`, "evil-marker", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := fmt.Sprintf("private rule other { condition: filesize > 0 }\nrule r { meta: threat = \"T\"\n strings: %s\n condition: %s }", c.strs, c.cond)
			s := gateScanner(t, src)
			if want := fmt.Sprintf("on: %d literals of 2 rules", c.lits+1); s.Gate != want {
				t.Fatalf("Gate = %q, want %q", s.Gate, want)
			}
			if r, err := s.Scan([]byte(c.hit)); err != nil || !r.Malicious {
				t.Errorf("Scan(%q) = %+v, %v: the rule's match was gated out", c.hit, r, err)
			}
			before := s.Stats().Gated
			if r, err := s.Scan([]byte("a file with none of the strings")); err != nil || r.Malicious || r.Verdict != VerdictClean {
				t.Errorf("clean file: %+v, %v", r, err)
			}
			if got := s.Stats().Gated - before; got != 1 {
				t.Errorf("the clean file went to libyara (gated %d)", got)
			}
		})
	}
}

// TestGateOff: a rule that can be true without any string match (or with
// a string the gate has no literal for) turns the gate off, and libyara
// still finds what the gate would have missed: each case's file matches
// while holding none of the rule's text.
func TestGateOff(t *testing.T) {
	cases := []struct {
		name, strs, cond, why string
		hit                   string // matches without any literal of the rule
	}{
		{"no string", ``, `filesize > 3`, "without a string", "abcd"},
		{"or without a string", `$a = "evil-marker"`, `$a or filesize < 5`, "without a string", "abc"},
		{"not", `$a = "evil-marker"`, `not $a`, "without a string", "abc"},
		{"zero count", `$a = "evil-marker"`, `#a == 0`, "without a string", "abc"},
		{"zero of them", `$a = "evil-marker"`, `0 of them`, "without a string", "abc"},
		{"for loop", `$a = "evil-marker"`, `for any i in (0..2) : (uint8(i) == 0x62) or $a`, "without a string", "abc"},
		{"rule reference", `$a = "evil-marker"`, `other or $a`, "without a string", "abc"},
		{"regex", `$a = /ab+c/`, `$a`, "regular expression", "xabbbbc"},
		{"xor", `$a = "evil-marker" xor`, `$a`, "xor", string(xorBytes([]byte("evil-marker"), 0x21))},
		{"base64", `$a = "evil-marker" base64`, `$a`, "base64", "ZXZpbC1tYXJrZX"},
		{"short hex run", `$a = { 4D ?? 5A ?? 90 }`, `$a`, "no literal", "M.Z.\x90"},
		{"short text", `$a = "ab"`, `$a`, "no literal", "xaby"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			strs := ""
			if c.strs != "" {
				strs = "strings: " + c.strs
			}
			src := fmt.Sprintf("private rule other { condition: filesize > 0 }\nrule r { meta: threat = \"T\"\n %s\n condition: %s }", strs, c.cond)
			s := gateScanner(t, src)
			if !strings.HasPrefix(s.Gate, "off: t.yar: rule r ") || !strings.Contains(s.Gate, c.why) {
				t.Fatalf("Gate = %q, want off for rule r: ...%s...", s.Gate, c.why)
			}
			if r, err := s.Scan([]byte(c.hit)); err != nil || !r.Malicious {
				t.Errorf("Scan(%q) = %+v, %v; want a match", c.hit, r, err)
			}
		})
	}
}

func xorBytes(b []byte, k byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ k
	}
	return out
}

// TestGateAgreesWithLibyara compares random rules over random files with
// and without the gate: whenever the gate is on, the verdicts must be the
// same. Strings and files share a three-letter alphabet so strings occur,
// overlap and repeat; conditions combine string, count, set and non-string
// terms with and, or and not.
func TestGateAgreesWithLibyara(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc"[rng.Intn(3)]
		}
		return string(b)
	}
	var term func(depth int, ids []string) string
	term = func(depth int, ids []string) string {
		id := ids[rng.Intn(len(ids))]
		switch k := rng.Intn(12); {
		case depth < 2 && k < 3:
			op := []string{" and ", " or ", " and not "}[rng.Intn(3)]
			return "(" + term(depth+1, ids) + op + term(depth+1, ids) + ")"
		case k == 3:
			return id
		case k == 4:
			return fmt.Sprintf("%s at %d", id, rng.Intn(4))
		case k == 5:
			return fmt.Sprintf("#%s %s %d", id[1:], []string{">", ">=", "==", "<"}[rng.Intn(4)], rng.Intn(3))
		case k == 6:
			return fmt.Sprintf("%d of them", rng.Intn(3))
		case k == 7:
			return "any of ($s*)"
		case k == 8:
			return fmt.Sprintf("filesize %s %d", []string{"<", ">"}[rng.Intn(2)], rng.Intn(20))
		case k == 9:
			return "not " + id
		case k == 10:
			return fmt.Sprintf("%s in (0..%d)", id, rng.Intn(10))
		default:
			return "all of them"
		}
	}
	var gated, checks, hits int
	for n := 0; n < 150; n++ {
		var strs []string
		var ids []string
		for i := range 1 + rng.Intn(3) {
			id := fmt.Sprintf("$s%d", i)
			ids = append(ids, id)
			def := fmt.Sprintf("%q", word(3+rng.Intn(2)))
			if rng.Intn(4) == 0 {
				w := word(4)
				def = fmt.Sprintf("{ %X ?? %X %X }", w[0], w[2], w[3])
			}
			strs = append(strs, id+" = "+def)
		}
		// "#s >= 0" references every string (libyara refuses unused
		// ones) and is always true.
		var refs []string
		for _, id := range ids {
			refs = append(refs, "#"+id[1:]+" >= 0")
		}
		src := fmt.Sprintf("rule r%d { meta: threat = \"T\"\n strings: %s\n condition: (%s) and %s }", n, strings.Join(strs, " "), term(0, ids), strings.Join(refs, " and "))
		s, err := New(Options{YaraSources: map[string][]byte{"r.yar": []byte(src)}})
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		if len(s.LoadErrors) > 0 {
			t.Fatalf("%v\n%s", s.LoadErrors, src)
		}
		if s.gate == nil {
			s.Close()
			continue
		}
		gated++
		plain, _ := New(Options{YaraSources: map[string][]byte{"r.yar": []byte(src)}})
		plain.gate = nil
		for range 60 {
			file := []byte(word(rng.Intn(14)))
			if rng.Intn(3) == 0 {
				file = append(file, "xyz"...)
			}
			got, err1 := s.Scan(file)
			want, err2 := plain.Scan(file)
			checks++
			if err1 != nil || err2 != nil || got.Malicious != want.Malicious {
				t.Fatalf("gate %v, libyara %v (%v %v) on %q\n%s\ngate: %s", got.Malicious, want.Malicious, err1, err2, file, src, s.Gate)
			}
			if want.Malicious {
				hits++
			}
		}
		s.Close()
		plain.Close()
	}
	t.Logf("%d of 150 random rules gated, %d files compared, %d matches", gated, checks, hits)
	if gated < 30 || hits < 100 {
		t.Errorf("the random rules exercise too little: %d gated, %d matches", gated, hits)
	}
}

// TestGateReversingLabs: the shared ReversingLabs set runs ungated (its
// certificate rules read only the pe module), and says so; without them
// the malware rules are gated, and every rule's own strings still match.
func TestGateReversingLabs(t *testing.T) {
	needRL(t)
	s, err := New(Options{YaraDirs: []string{rlDir}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Gate, "off: ") || !strings.Contains(s.Gate, "certificate") {
		t.Errorf("Gate = %q, want off because of a certificate rule", s.Gate)
	}
	// Every other file on its own: count the ones the gate takes.
	var on, off int
	reasons := map[string]int{}
	filepath.WalkDir(filepath.Join(rlDir, "yara"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "certificate") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p := newGatePlan()
		p.add(path, src)
		if p.off == "" {
			on++
			return nil
		}
		off++
		r := p.off
		if i := strings.Index(r, "which "); i >= 0 {
			r = r[i+6:]
		} else if i := strings.Index(r, " can be true"); i >= 0 {
			r = r[i+1:]
		}
		reasons[r]++
		return nil
	})
	t.Logf("ReversingLabs files outside certificate/: %d gated, %d not: %v", on, off, reasons)
	if off > 0 {
		t.Errorf("%d ReversingLabs files outside certificate/ cannot be gated: %v", off, reasons)
	}
}

// TestGateLiterals checks the literals taken from text and hex strings.
func TestGateLiterals(t *testing.T) {
	for body, want := range map[string]string{
		"4D 5A 90 00":                   "MZ\x90\x00",
		"4D 5A ?? 90 00 03 00":          "\x90\x00\x03\x00",
		"4D5A9000":                      "MZ\x90\x00",
		"4D 5A [2-4] 90 00 03 00 04":    "\x90\x00\x03\x00\x04",
		"4D 5A [10-20] 90 00 03":        "\x90\x00\x03",
		"( 41 42 43 44 | 45 ) 46 47 48": "FGH",
		"~41 42 43 44":                  "BCD",
		"4? 5A 90 00 ?1 41":             "Z\x90\x00",
		"4D 5A [-] 90":                  "MZ",
	} {
		got, err := hexRun(body)
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("hexRun(%q) = %q, %v; want %q", body, got, err, want)
		}
	}
	if _, err := hexRun("4D 5A [2-4 90"); err == nil {
		t.Error("an unclosed jump was accepted")
	}
}

// FuzzGatePlan: the YARA lexer and parser take any source without
// panicking; for a source libyara accepts, a gate that is on must be
// built from literals of at least gateMinLiteral bytes.
func FuzzGatePlan(f *testing.F) {
	f.Add([]byte(eicarRule))
	f.Add([]byte(eicarYara))
	f.Add([]byte(`import "pe" rule a : t1 t2 { meta: x = -1 y = true strings: $ = { 4D 5A [2-4] ( 01 | 02 ) ~03 } $b = /a\/b/is condition: any of them and pe.is_pe }`))
	f.Add([]byte(`global private rule g { strings: $a = "x\x41" wide nocase xor(1-2) condition: #a >= 1 or @a[1] == 0 or !a[1] > 2 }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p := newGatePlan()
		p.add("f.yar", src)
		if p.off != "" {
			return
		}
		for _, l := range p.pats {
			if len(l.Bytes) < gateMinLiteral {
				t.Fatalf("literal %q shorter than %d", l.Bytes, gateMinLiteral)
			}
		}
	})
}

// BenchmarkScan1MBGate: a clean 1 MB file with the default rules, gated
// (the literal scan only) and through libyara as before the gate: read
// gated/libyara.
func BenchmarkScan1MBGate(b *testing.B) {
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	for _, mode := range []string{"gated", "libyara"} {
		b.Run(mode, func(b *testing.B) {
			s, err := New(Options{YaraSources: map[string][]byte{"eicar.yar": []byte(eicarRule)}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if mode == "libyara" {
				s.gate = nil
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.Scan(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
