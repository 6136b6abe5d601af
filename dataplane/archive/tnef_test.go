package archive

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// mkTNEF writes a TNEF stream as Outlook does: a message attribute, then
// per attachment attAttachRenddata, attAttachData and attAttachTitle (a
// file with no name gets no title), each with its checksum.
func mkTNEF(files ...file) []byte {
	attr := func(b []byte, level byte, id uint32, v []byte) []byte {
		b = append(b, level)
		b = binary.LittleEndian.AppendUint32(b, id)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
		var sum uint16
		for _, c := range v {
			sum += uint16(c)
		}
		return binary.LittleEndian.AppendUint16(b, sum)
	}
	b := binary.LittleEndian.AppendUint32(nil, tnefSignature)
	b = binary.LittleEndian.AppendUint16(b, 0x01af)
	b = attr(b, 1, 0x00089006, []byte{0, 0, 1, 0}) // attTnefVersion
	for _, f := range files {
		b = attr(b, 2, tnefRendData, make([]byte, 14))
		b = attr(b, 2, tnefAttachData, f.data)
		if f.name != "" {
			b = attr(b, 2, tnefAttachName, append([]byte(f.name), 0))
		}
	}
	return b
}

// TestTNEF: a winmail.dat's attachments come out under their names (or a
// number), a zip among them is walked, and a stream cut inside the second
// attachment ends with ErrCorrupt after the first.
func TestTNEF(t *testing.T) {
	inner := mkZip(t, file{"payload.exe", []byte("MZ zipped payload")})
	w := mkTNEF(file{"invoice.pdf", []byte("%PDF-1.4 invoice")}, file{"", []byte("MZ nameless")}, file{"docs.zip", inner})
	got, _, err := walkAll(t, w, Limits{})
	want := []string{
		`invoice.pdf d=1 none size=16 "%PDF-1.4 invoice"`,
		`attachment-2 d=1 none size=11 "MZ nameless"`,
		`docs.zip d=1 zip size=` + strconv.Itoa(len(inner)),
		`docs.zip/payload.exe d=2 none size=17 "MZ zipped payloa…"`,
	}
	if Detect(w) != TNEF || err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("walk: %v\n%s\nwant\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cut := mkTNEF(file{"a.txt", []byte("first")}, file{"b.exe", []byte("MZ second, cut short")})
	got, _, err = walkAll(t, cut[:len(cut)-20], Limits{})
	if !errors.Is(err, ErrCorrupt) || len(got) != 1 || !strings.HasPrefix(got[0], "a.txt") {
		t.Fatalf("cut: %v %q; want ErrCorrupt after a.txt", err, got)
	}
}
