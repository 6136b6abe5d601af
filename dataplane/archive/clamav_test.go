package archive

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clamTestProgram is the MD5 of clam.exe, the 544-byte test program in
// Debian's clamav-testfiles.
const clamTestProgram = "aa15bcf478d165efd2065190eb473bcb"

const clamDir = "/usr/share/clamav-testfiles"

// TestClamavTestfiles walks every file of Debian's clamav-testfiles whose
// container format Detect recognises and checks that the test program is
// reached, or that it is not for the reason the table gives. The table is
// the one the README publishes.
func TestClamavTestfiles(t *testing.T) {
	if _, err := os.Stat(clamDir); err != nil {
		t.Skipf("Debian's clamav-testfiles are not installed (apt-get install clamav-testfiles): %v", err)
	}
	type want struct {
		reached bool
		why     string // when not reached: the reason (checked against the walk)
		lim     Limits // zero: the defaults
		err     error  // the error the walk must end with
		skipped string // a member reported as not unpacked, with this reason
	}
	table := map[string]want{
		"clam.zip":                             {reached: true},
		"clam.bz2.zip":                         {reached: true},
		"clam.exe.bz2":                         {reached: true},
		"clam.tar.gz":                          {reached: true},
		"clam.d64.zip":                         {why: "zip method 9 (deflate64) not implemented", skipped: "deflate64"},
		"clam.impl.zip":                        {why: "zip method 6 (implode) not implemented", skipped: "implode"},
		"clam_cache_emax.tgz":                  {why: "nested 18 containers deep (9 .tgz in one another): over the default MaxDepth 5", err: ErrBomb},
		"clam_cache_emax.tgz with MaxDepth 18": {reached: true, lim: Limits{MaxDepth: 18}},
		"clam.7z":                              {reached: true},
		"clam.tnef":                            {reached: true},
		"clam.cab":                             {reached: true},
		"clam.ole.doc":                         {reached: true},
		"clam.ppt":                             {why: "the object is inside the PowerPoint Document stream, compressed"},
	}
	files, err := os.ReadDir(clamDir)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(clamDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if Detect(data) == None {
			continue
		}
		for _, key := range []string{f.Name(), f.Name() + " with MaxDepth 18"} {
			w, ok := table[key]
			if !ok {
				if key == f.Name() {
					t.Errorf("%s (%s): not in the table; add what Walk does with it", f.Name(), Detect(data))
				}
				continue
			}
			seen[key] = true
			reached, skipped := false, ""
			st, err := Walk(data, w.lim, func(e Entry, m []byte) error {
				sum := md5.Sum(m)
				if m != nil && hex.EncodeToString(sum[:]) == clamTestProgram {
					reached = true
				}
				if e.Skipped != "" {
					skipped += e.Skipped + ";"
				}
				return nil
			})
			if reached != w.reached {
				t.Errorf("%s: test program reached=%v, want %v (stats %+v, err %v)", key, reached, w.reached, st, err)
			}
			if (w.err == nil) != (err == nil) || (w.err != nil && !errors.Is(err, w.err)) {
				t.Errorf("%s: error %v, want %v", key, err, w.err)
			}
			if !strings.Contains(skipped, w.skipped) {
				t.Errorf("%s: skipped %q, want it to mention %q", key, skipped, w.skipped)
			}
			result := "reached"
			if !reached {
				result = "not reached: " + w.why
			}
			if err != nil {
				result += fmt.Sprintf(" (%v)", err)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | depth %d |", key, Detect(data), result, st.MaxDepth))
		}
	}
	for k := range table {
		if !seen[k] {
			t.Errorf("%s: in the table but not in %s", k, clamDir)
		}
	}
	t.Logf("clamav-testfiles:\n| file | format | test program |  |\n|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}
