package mail

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz from the transcript tables")

// A fuzz input is a transcript: steps separated by NUL, each step's first
// byte giving the direction (even: to the server, odd: to the client).
func encode(tr []step) []byte {
	var b bytes.Buffer
	for i, st := range tr {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteByte('0' + byte(st.d))
		b.WriteString(strings.ReplaceAll(st.s, mark, ""))
	}
	return b.Bytes()
}

func decode(in []byte) []step {
	var tr []step
	for _, seg := range bytes.Split(in, []byte{0}) {
		if len(seg) == 0 {
			continue
		}
		tr = append(tr, step{Dir(seg[0] & 1), string(seg[1:])})
	}
	return tr
}

func fuzzProto(f *testing.F, proto Proto) {
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := decode(in)
		a := run(proto, tr, whole)
		b := run(proto, tr, bytewise)
		ga, gb := strings.Join(a.ev, "\n"), strings.Join(b.ev, "\n")
		if ga != gb {
			t.Fatalf("split changes events:\nwhole:\n%s\nbytewise:\n%s", ga, gb)
		}
		if strings.Contains(ga, "BUG") {
			t.Fatalf("handler contract broken:\n%s", ga)
		}
		// An IMAP section gains a header (at most hdrBase64, or 4 bytes
		// closing a captured MIME header) per message.
		starts := strings.Count(ga, "start ")
		if a.total > len(in)+starts*len(hdrBase64) {
			t.Fatalf("%d message bytes delivered from %d bytes of input in %d messages", a.total, len(in), starts)
		}
	})
}

func FuzzSMTP(f *testing.F) { fuzzProto(f, SMTP) }
func FuzzPOP3(f *testing.F) { fuzzProto(f, POP3) }
func FuzzIMAP(f *testing.F) { fuzzProto(f, IMAP) }

// TestFuzzSeeds keeps testdata/fuzz in step with the transcript tables:
// every table transcript is a seed (go test -run FuzzSeeds -update).
func TestFuzzSeeds(t *testing.T) {
	for name, cases := range map[string][]tcase{"FuzzSMTP": smtpCases(), "FuzzPOP3": pop3Cases(), "FuzzIMAP": imapCases()} {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, tc := range cases {
			file := filepath.Join(dir, fmt.Sprintf("table-%02d", i))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", encode(tc.tr))
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(file)
			if err != nil || string(got) != want {
				t.Errorf("%s: seed out of date with case %q (run: go test ./dataplane/mail -run FuzzSeeds -update)", file, tc.name)
			}
		}
	}
}
