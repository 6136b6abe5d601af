package archive

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOLE: the file packaged in a Word document (Debian's clam.ole.doc: an
// "Ole10Native" object) comes out whole under its own name; the same
// document with its directory's chain looped onto itself ends with
// ErrCorrupt instead of reading forever.
func TestOLE(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(clamDir, "clam.ole.doc"))
	if err != nil {
		t.Skipf("Debian's clamav-testfiles are not installed: %v", err)
	}
	got, st, err := walkAll(t, doc, Limits{})
	if Detect(doc) != OLE || err != nil || len(got) != 1 || got[0][:len("clam.exe d=1 none size=544")] != "clam.exe d=1 none size=544" || st.Entries != 1 {
		t.Fatalf("clam.ole.doc: %v %q", err, got)
	}
	le := binary.LittleEndian
	looped := append([]byte(nil), doc...)
	fatSec, dirStart := le.Uint32(looped[76:]), le.Uint32(looped[48:])
	le.PutUint32(looped[512+int(fatSec)*512+int(dirStart)*4:], dirStart)
	if _, _, err := walkAll(t, looped, Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a looped directory chain: %v, want ErrCorrupt", err)
	}
}
