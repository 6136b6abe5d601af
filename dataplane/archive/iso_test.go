package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testfiles"
)

func TestISO(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"lab.iso", []string{
			"docs/deep/bundle.zip d=1 zip size=119", "docs/deep/bundle.zip/x.txt d=2 none size=11 \"zipped text\"",
			"docs/readme.txt d=1 none size=19 \"hello from the i…\"",
			"eicar.com d=1 none size=68 \"X5O!P%@AP[4\\\\PZX5…\""}},
		{"plain.iso", []string{ // ISO 9660 level 1 names, as Windows shows them without Joliet
			"DOCS/DEEP/BUNDLE.ZIP d=1 zip size=119", "DOCS/DEEP/BUNDLE.ZIP/x.txt d=2 none size=11 \"zipped text\"",
			"DOCS/README.TXT d=1 none size=19 \"hello from the i…\"",
			"EICAR.COM d=1 none size=68 \"X5O!P%@AP[4\\\\PZX5…\""}},
	} {
		img := testfiles.ISO(t)
		if c.file == "plain.iso" {
			img = testfiles.PlainISO(t)
		}
		if f := Detect(img); f != ISO {
			t.Fatalf("%s: Detect %v, want iso9660", c.file, f)
		}
		got, st, err := walkAll(t, img, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: members\n got %q\nwant %q", c.file, got, c.want)
		}
		if st.Entries != 4 || st.MaxDepth != 2 {
			t.Errorf("%s: stats %+v", c.file, st)
		}
	}
}

// TestISOHostile: a directory that points at itself, a file past the
// end, an image cut short and a file bigger than MaxEntrySize give clear
// errors, after the members that could be read.
func TestISOHostile(t *testing.T) {
	img := testfiles.ISO(t)
	// The Joliet root directory record (supplementary descriptor at 17).
	var root []byte
	for s := 16; ; s++ {
		vd := img[s*isoSector:]
		if vd[0] == isoVDSupplem {
			root = vd[156:]
			break
		}
	}
	rootLBA := binary.LittleEndian.Uint32(root[2:])
	dir := img[int(rootLBA)*isoSector:]
	// Records of the root: ".", "..", then the entries; file is
	// eicar.com's, the first that is not a directory.
	first := int(dir[0]) + int(dir[dir[0]])
	file := first
	for dir[file+25]&isoFlagDir != 0 {
		file += int(dir[file])
	}

	loop := bytes.Clone(img)
	e := loop[int(rootLBA)*isoSector+first:]
	e[25] |= isoFlagDir // the first entry becomes a directory at the root's own extent
	binary.LittleEndian.PutUint32(e[2:], rootLBA)
	binary.LittleEndian.PutUint32(e[10:], binary.LittleEndian.Uint32(root[10:]))
	if _, _, err := walkAll(t, loop, Limits{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "loops back") {
		t.Errorf("directory loop: %v", err)
	}

	past := bytes.Clone(img)
	binary.LittleEndian.PutUint32(past[int(rootLBA)*isoSector+file+2:], 1<<30)
	if _, _, err := walkAll(t, past, Limits{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "past the image") {
		t.Errorf("file past the end: %v", err)
	}

	big := bytes.Clone(img)
	binary.LittleEndian.PutUint32(big[int(rootLBA)*isoSector+file+10:], 5<<20)
	if _, _, err := walkAll(t, big, Limits{MaxEntrySize: 1 << 20}); !errors.Is(err, ErrBomb) {
		t.Errorf("member over MaxEntrySize: %v", err)
	}

	// Cut inside eicar.com's data: what was read is delivered, then ErrCorrupt.
	at := bytes.Index(img, []byte("X5O!P"))
	got, _, err := walkAll(t, img[:at+10], Limits{})
	if !errors.Is(err, ErrCorrupt) || !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "eicar.com d=1 none size=10 ") }) {
		t.Errorf("image cut inside eicar.com: %v, members %q", err, got)
	}
}

func FuzzISO(f *testing.F) {
	img := testfiles.ISO(f)
	// The descriptors and directories live in the first 24 blocks: fuzz
	// those, keep the rest.
	f.Add(img[16*isoSector : 24*isoSector])
	f.Fuzz(func(t *testing.T, head []byte) {
		b := bytes.Clone(img)
		copy(b[16*isoSector:24*isoSector], head)
		Walk(b, Limits{MaxTotal: 8 << 20}, func(Entry, []byte) error { return nil })
	})
}
