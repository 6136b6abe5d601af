package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// mkCAB writes a one-folder cabinet (MS-CAB) of files, its data in blocks
// of up to 32 KiB, stored (method 0), MSZIP (1: each block "CK" and a
// deflate stream seeded with the previous 32 KiB) or another method's
// number with the data stored as is.
func mkCAB(t *testing.T, method uint16, files ...file) []byte {
	t.Helper()
	le := binary.LittleEndian
	var folder []byte
	var table []byte
	for _, f := range files {
		table = le.AppendUint32(table, uint32(len(f.data)))
		table = le.AppendUint32(table, uint32(len(folder)))
		table = append(table, 0, 0, 0x21, 0x5a, 0, 0, 0x20, 0) // folder 0, date, time, attributes
		table = append(append(table, f.name...), 0)
		folder = append(folder, f.data...)
	}
	var blocks [][]byte
	var sizes []int
	for off := 0; off < len(folder); off += 32768 {
		raw := folder[off:min(off+32768, len(folder))]
		b := raw
		if method == cabMSZIP {
			var out bytes.Buffer
			out.WriteString("CK")
			fw, err := flate.NewWriterDict(&out, flate.BestCompression, folder[max(off-32768, 0):off])
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(raw)
			fw.Close()
			b = out.Bytes()
		}
		blocks, sizes = append(blocks, b), append(sizes, len(raw))
	}
	filesAt := cabHeader + 8
	dataAt := filesAt + len(table)
	h := []byte("MSCF")
	h = le.AppendUint32(h, 0)
	h = le.AppendUint32(h, 0) // cabinet size, not checked
	h = le.AppendUint32(h, 0)
	h = le.AppendUint32(h, uint32(filesAt))
	h = le.AppendUint32(h, 0)
	h = append(h, 3, 1)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint16(h, uint16(len(files)))
	h = le.AppendUint16(h, 0) // flags
	h = le.AppendUint16(h, 0)
	h = le.AppendUint16(h, 0)
	h = le.AppendUint32(h, uint32(dataAt))
	h = le.AppendUint16(h, uint16(len(blocks)))
	h = le.AppendUint16(h, method)
	h = append(h, table...)
	for i, b := range blocks {
		h = le.AppendUint32(h, 0) // no checksum
		h = le.AppendUint16(h, uint16(len(b)))
		h = le.AppendUint16(h, uint16(sizes[i]))
		h = append(h, b...)
	}
	return h
}

// TestCAB: a cabinet's files come out of stored and MSZIP folders (70 KiB
// of text across three MSZIP blocks, each seeded with the one before), a
// zip among them is walked; an LZX folder's files are passed as skipped;
// blocks claiming more than the walk may produce are refused before any is
// decoded; a cut cabinet ends with ErrCorrupt.
func TestCAB(t *testing.T) {
	text := []byte(strings.Repeat("the quarterly report, again and again; ", 1800))
	inner := mkZip(t, file{"payload.exe", []byte("MZ zipped payload")})
	for _, m := range []uint16{cabNone, cabMSZIP} {
		c := mkCAB(t, m, file{"report.txt", text}, file{"tools\\x.zip", inner})
		var got []string
		var body []byte
		_, err := Walk(c, Limits{}, func(e Entry, d []byte) error {
			got = append(got, e.Path)
			if e.Path == "report.txt" {
				body = append([]byte(nil), d...)
			}
			return nil
		})
		if Detect(c) != CAB || err != nil || strings.Join(got, ",") != `report.txt,tools\x.zip,tools\x.zip/payload.exe` || !bytes.Equal(body, text) {
			t.Fatalf("method %d: %v, members %q, report intact %v", m, err, got, bytes.Equal(body, text))
		}
	}
	lzx := mkCAB(t, 3, file{"a.exe", []byte("MZ lzx")})
	got, st, err := walkAll(t, lzx, Limits{})
	if err != nil || len(got) != 1 || !strings.Contains(got[0], "skipped=cab LZX compression not supported") || st.Skipped != 1 {
		t.Fatalf("LZX: %v %q", err, got)
	}

	// 2,000 stored blocks of 0 bytes, each claiming 32 KiB: 62 MiB from a
	// 26 KB file.
	claim := mkCAB(t, cabNone, file{"a.bin", []byte("x")})
	head := claim[:len(claim)-9] // up to the one block
	binary.LittleEndian.PutUint16(head[cabHeader+4:], 2000)
	for range 2000 {
		head = append(head, 0, 0, 0, 0, 0, 0, 0, 0x80)
	}
	if _, _, err := walkAll(t, head, Limits{}); !errors.Is(err, ErrBomb) {
		t.Fatalf("blocks claiming 62 MiB from %d bytes: %v, want ErrBomb", len(head), err)
	}
	cab := mkCAB(t, cabMSZIP, file{"report.txt", text})
	if _, _, err := walkAll(t, cab[:len(cab)-100], Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut: %v, want ErrCorrupt", err)
	}
}
