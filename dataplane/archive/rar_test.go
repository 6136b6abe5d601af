package archive

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testfiles"
)

// TestRAR: a RAR 5 archive's members come out with their paths and bytes,
// a directory is not a member, a zip inside is walked, an encrypted
// member is passed as such, and a truncated archive ends with ErrCorrupt
// after the members before the cut and the part of the one it cut.
func TestRAR(t *testing.T) {
	inner := mkZip(t, file{"payload.exe", []byte("MZ inner payload")})
	rar := testfiles.RAR5(
		testfiles.RARMember{Name: "docs", Dir: true},
		testfiles.RARMember{Name: "docs/invoice.txt", Data: []byte("please pay the attached invoice")},
		testfiles.RARMember{Name: "inner.zip", Data: inner},
		testfiles.RARMember{Name: "secret.exe", Data: []byte("MZ sealed"), Encrypted: true},
	)
	if f := Detect(rar); f != Rar {
		t.Fatalf("Detect: %v, want rar", f)
	}
	got, st, err := walkAll(t, rar, Limits{})
	want := []string{
		`docs/invoice.txt d=1 none size=31 "please pay the a…"`,
		`inner.zip d=1 zip size=` + strconv.Itoa(len(inner)),
		`inner.zip/payload.exe d=2 none size=16 "MZ inner payload"`,
		`secret.exe d=1 none size=9 encrypted`,
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") || st.Encrypted != 1 {
		t.Fatalf("walk: %v\n%s\nwant\n%s\nstats %+v", err, strings.Join(got, "\n"), strings.Join(want, "\n"), st)
	}

	cut := rar[:len(rar)-len(inner)/2-60] // into inner.zip's data
	var part int
	_, err = Walk(cut, Limits{}, func(e Entry, m []byte) error {
		if e.Path == "inner.zip" {
			part = len(m)
		}
		return nil
	})
	if !errors.Is(err, ErrCorrupt) || part == 0 || part >= len(inner) {
		t.Fatalf("truncated: %v, %d of inner.zip's %d bytes; want ErrCorrupt after the part of inner.zip that came", err, part, len(inner))
	}
}

// TestRARDictionary: a member that asks for a 4 GiB (RAR 5) or 64 GiB
// (RAR 7) dictionary is refused before the decoder allocates it; one that
// asks for 32 MiB is let through to the decoder.
func TestRARDictionary(t *testing.T) {
	const lz = 3 << 7 // method 3, "normal"
	for _, c := range []struct {
		comp uint64
		want int64
	}{
		{lz | 15<<10, 4 << 30},              // RAR 5: 128 KiB << 15
		{lz | 1 | 19<<10, 64 << 30},         // RAR 7: 128 KiB << 19
		{lz | 8<<10, 32 << 20},              // a common one
		{0, 0},                              // stored: no dictionary
		{lz | 1 | 8<<10 | 16<<15, 48 << 20}, // RAR 7: 32 MiB + 16/32
	} {
		rar := testfiles.RAR5(testfiles.RARMember{Name: "a.exe", Data: []byte("not really compressed"), Comp: c.comp})
		if got, end := rarDictionaries(rar); got != c.want || end != len(rar) {
			t.Errorf("flags %#x: dictionary %d, end %d; want %d, %d", c.comp, got, end, c.want, len(rar))
		}
	}
	huge := testfiles.RAR5(testfiles.RARMember{Name: "bomb.exe", Data: []byte("x"), Comp: lz | 15<<10})
	var ms [2]runtime.MemStats
	runtime.ReadMemStats(&ms[0])
	_, _, err := walkAll(t, huge, Limits{})
	runtime.ReadMemStats(&ms[1])
	if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), "4096 MiB dictionary") {
		t.Fatalf("a 4 GiB dictionary: %v, want ErrBomb naming it", err)
	}
	if grew := ms[1].TotalAlloc - ms[0].TotalAlloc; grew > 16<<20 {
		t.Fatalf("refusing the archive allocated %d MiB", grew>>20)
	}
}

// mkRar4 writes a RAR 2.9-4 archive (rarlab's technote.txt of RAR 2.9):
// marker, archive header, one file block per member with method 0x30
// (store) or the method given, end block; each header's CRC is the low
// 16 bits of the CRC32 of its bytes after the CRC field.
func mkRar4(method byte, members ...file) []byte {
	block := func(typ byte, flags uint16, fields []byte) []byte {
		h := []byte{typ, byte(flags), byte(flags >> 8), 0, 0}
		binary.LittleEndian.PutUint16(h[3:], uint16(2+len(h)+len(fields)))
		h = append(h, fields...)
		return append(binary.LittleEndian.AppendUint16(nil, uint16(crc32.ChecksumIEEE(h))), h...)
	}
	out := []byte("Rar!\x1a\x07\x00")
	out = append(out, block(0x73, 0, make([]byte, 6))...)
	for _, m := range members {
		f := binary.LittleEndian.AppendUint32(nil, uint32(len(m.data)))     // packed size
		f = binary.LittleEndian.AppendUint32(f, uint32(len(m.data)))        // unpacked size
		f = append(f, 2)                                                    // host OS: Windows
		f = binary.LittleEndian.AppendUint32(f, crc32.ChecksumIEEE(m.data)) // file CRC
		f = binary.LittleEndian.AppendUint32(f, 0x5a21_0000)                // DOS time
		f = append(f, 29, method)                                           // unpack version 2.9, method
		f = binary.LittleEndian.AppendUint16(f, uint16(len(m.name)))        // name size
		f = binary.LittleEndian.AppendUint32(f, 0x20)                       // attributes
		f = append(f, m.name...)
		out = append(append(out, block(0x74, 0x8000, f)...), m.data...)
	}
	return append(out, block(0x7b, 0x4000, nil)...)
}

// TestRAR4: an old-format archive's stored members are unpacked; one with
// a compressed member is not handed to the RAR 2.9-4 decoder at all (its
// allocations come from inside the stream) but passed as one Skipped
// entry, so the file is reported partially scanned.
func TestRAR4(t *testing.T) {
	stored := mkRar4(0x30, file{"a.txt", []byte("stored in rar4")}, file{"b/c.bin", []byte("MZ second")})
	got, st, err := walkAll(t, stored, Limits{})
	want := `a.txt d=1 none size=14 "stored in rar4"` + "\n" + `b/c.bin d=1 none size=9 "MZ second"`
	if Detect(stored) != Rar || err != nil || strings.Join(got, "\n") != want || st.Skipped != 0 {
		t.Fatalf("stored RAR 4: %v\n%s\nwant\n%s", err, strings.Join(got, "\n"), want)
	}
	packed := mkRar4(0x33, file{"a.exe", []byte("\x00\x01 not really compressed")})
	got, st, err = walkAll(t, packed, Limits{})
	if err != nil || len(got) != 1 || !strings.Contains(got[0], "skipped=RAR 2.9-4 compression not unpacked") || st.Skipped != 1 {
		t.Fatalf("compressed RAR 4: %v %q %+v; want one skipped entry", err, got, st)
	}
}

// TestRARScanEnd: the decoder is given the archive up to the first header
// the dictionary scan could not read, so no member it did not vet reaches
// the decoder; a cut in a member's data keeps the whole archive (its
// header was read).
func TestRARScanEnd(t *testing.T) {
	one := testfiles.RAR5(testfiles.RARMember{Name: "a.txt", Data: []byte("first member")})
	two := testfiles.RAR5(testfiles.RARMember{Name: "a.txt", Data: []byte("first member")},
		testfiles.RARMember{Name: "b.exe", Data: []byte("second"), Comp: 3<<7 | 15<<10})
	second := len(one) - 8 // where one's end header starts: two's second file header
	if _, end := rarDictionaries(two[:second+5]); end != second {
		t.Errorf("cut inside the second header: end %d, want %d (its start)", end, second)
	}
	if d, end := rarDictionaries(two[:len(two)-10]); end != len(two)-10 || d != 4<<30 {
		t.Errorf("cut in the second member's data: dictionary %d, end %d; want 4 GiB, %d", d, end, len(two)-10)
	}
	four := mkRar4(0x30, file{"a.txt", []byte("stored")}, file{"b.txt", []byte("stored too")})
	hdr2 := 7 + 13 + 32 + 5 + 6 // marker, archive header, first file header and data
	if _, end := rar4Compressed(four[:hdr2+20]); end != hdr2 {
		t.Errorf("RAR 4 cut inside the second file header: end %d, want %d", end, hdr2)
	}
}
