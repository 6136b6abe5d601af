package archive

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzWalk: any input walks without panicking, ends with nil, ErrBomb or
// ErrCorrupt, and the stats match what the function was given. Seeds in
// testdata/fuzz/FuzzWalk are small real archives of every format, and
// Debian's clamav-testfiles of the formats made by tools this project
// does not have (a Word document with a packaged object, a cabinet, a
// winmail.dat), read where they are installed.
func FuzzWalk(f *testing.F) {
	for _, n := range []string{"clam.ole.doc", "clam.cab", "clam.tnef"} {
		if b, err := os.ReadFile(filepath.Join(clamDir, n)); err == nil {
			f.Add(b)
		}
	}
	lim := Limits{MaxEntrySize: 1 << 20, MaxTotal: 4 << 20, MaxEntries: 1000}
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries int
		var bytes int64
		st, err := Walk(data, lim, func(e Entry, m []byte) error {
			entries++
			bytes += int64(len(m))
			if m == nil && !e.Encrypted && e.Skipped == "" {
				t.Errorf("%s: nil data with no reason", e.Path)
			}
			if e.Depth < 1 || e.Depth > lim.MaxDepth && lim.MaxDepth > 0 {
				t.Errorf("%s: depth %d", e.Path, e.Depth)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrBomb) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error neither ErrBomb nor ErrCorrupt: %v", err)
		}
		if st.Entries != entries || st.Bytes != bytes {
			t.Fatalf("stats %+v, function saw %d entries, %d bytes", st, entries, bytes)
		}
		if st.Bytes > lim.MaxTotal {
			t.Fatalf("%d bytes passed, over MaxTotal", st.Bytes)
		}
	})
}
