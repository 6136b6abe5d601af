package archive

import (
	"errors"
	"testing"
)

// FuzzWalk: any input walks without panicking, ends with nil, ErrBomb or
// ErrCorrupt, and the stats match what the function was given. Seeds in
// testdata/fuzz/FuzzWalk are small real archives of every format.
func FuzzWalk(f *testing.F) {
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
