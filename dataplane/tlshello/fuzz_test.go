package tlshello

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz/FuzzParse")

// FuzzParse feeds arbitrary client and server bytes, whole and split at
// cut: the parser must not panic, and splitting must not change what it
// finds (records and messages may be split anywhere).
func FuzzParse(f *testing.F) {
	f.Add(rec(22, publishedHello("bad.example")), rec(22, serverHello12()), uint16(7))
	f.Fuzz(func(t *testing.T, client, server []byte, cut uint16) {
		var whole, split Parser
		whole.Max, split.Max = 4096, 4096
		whole.Feed(0, client)
		whole.Feed(1, server)
		for d, b := range [2][]byte{client, server} {
			i := int(cut) % (len(b) + 1)
			split.Feed(d, b[:i])
			split.Feed(d, b[i:])
		}
		if w, s := snapshot(whole.Info()), snapshot(split.Info()); w != s {
			t.Fatalf("split at %d changed the results:\nwhole %s\nsplit %s", cut, w, s)
		}
		for d := 0; d < 2; d++ {
			if whole.Status(d) != split.Status(d) {
				t.Fatalf("direction %d: status %v whole, %v split", d, whole.Status(d), split.Status(d))
			}
		}
	})
}

// TestFuzzSeeds writes the recorded handshakes into the seed corpus with
// -update, and otherwise checks the corpus holds them.
func TestFuzzSeeds(t *testing.T) {
	r12, r13 := recordings(t)
	seeds := map[string][3]any{
		"tls12": {r12.Client, r12.Server, uint16(300)},
		"tls13": {r13.Client, r13.Server, uint16(517)},
		"ja3":   {rec(22, publishedHello("bad.example")), rec(22, serverHello12()), uint16(3)},
		"ja4":   {rec(22, specHello(specSigs)), rec(22, serverHello12()), uint16(200)},
	}
	for name, s := range seeds {
		path := filepath.Join("testdata", "fuzz", "FuzzParse", name)
		if *update {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint16(%d)\n", s[0], s[1], s[2])
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("seed %s missing (go test ./dataplane/tlshello -run TestFuzzSeeds -update): %v", name, err)
		}
	}
}
