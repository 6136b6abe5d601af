// Package testfiles hands the tests of several packages the same test
// inputs, kept once in the repository. Test-only: never imported by a
// binary.
package testfiles

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// dir is the dataplane directory, found from this file's path so every
// package's tests read the same files wherever they run.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ISO returns dataplane/archive/testdata/lab.iso.gz unpacked: an ISO 9660
// image made by genisoimage (Joliet and Rock Ridge) holding eicar.com,
// docs/readme.txt and docs/deep/bundle.zip (x.txt).
func ISO(t testing.TB) []byte {
	t.Helper()
	return gunzip(t, filepath.Join(dir(), "archive", "testdata", "lab.iso.gz"))
}

// PlainISO is the same tree without Joliet or Rock Ridge (ISO 9660 level
// 1 names).
func PlainISO(t testing.TB) []byte {
	t.Helper()
	return gunzip(t, filepath.Join(dir(), "archive", "testdata", "plain.iso.gz"))
}

func gunzip(t testing.TB, path string) []byte {
	t.Helper()
	gz, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// RARMember is one member of a hand-made RAR 5 archive: stored (Comp 0)
// unless Comp sets the compression flags, a directory, or encrypted (an
// encryption record; the data is then stored as is).
type RARMember struct {
	Name      string
	Data      []byte
	Comp      uint64
	Dir       bool
	Encrypted bool
}

func rarVint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// rarBlock is one RAR 5 header block: CRC32, size, type, flags, the
// extra area and data sizes when present, fields, extra area, then data.
func rarBlock(typ uint64, fields, extra, data []byte) []byte {
	var flags uint64
	if len(extra) > 0 {
		flags |= 1
	}
	if data != nil {
		flags |= 2
	}
	h := rarVint(rarVint(nil, typ), flags)
	if len(extra) > 0 {
		h = rarVint(h, uint64(len(extra)))
	}
	if data != nil {
		h = rarVint(h, uint64(len(data)))
	}
	h = append(append(h, fields...), extra...)
	sized := append(rarVint(nil, uint64(len(h))), h...)
	out := binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(sized))
	return append(append(out, sized...), data...)
}

// RAR5 writes a RAR 5 archive as the format's technical note lays it
// out (rarlab.com/technote.htm): signature, main header, a file header
// and data area per member, end header. Only stored data decodes: the
// compressed kinds are for the headers' claims.
func RAR5(members ...RARMember) []byte {
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = append(out, rarBlock(1, rarVint(nil, 0), nil, nil)...)
	for _, m := range members {
		ff := uint64(4) // data CRC32 present
		if m.Dir {
			ff = 1
		}
		f := rarVint(rarVint(rarVint(nil, ff), uint64(len(m.Data))), 0x20)
		if !m.Dir {
			f = binary.LittleEndian.AppendUint32(f, crc32.ChecksumIEEE(m.Data))
		}
		f = rarVint(rarVint(rarVint(f, m.Comp), 0), uint64(len(m.Name)))
		f = append(f, m.Name...)
		var extra []byte
		if m.Encrypted { // record type 1: version 0, flags 0, KDF count, salt, IV
			rec := append(rarVint(rarVint(rarVint(nil, 1), 0), 0), 15)
			rec = append(rec, make([]byte, 32)...)
			extra = append(rarVint(nil, uint64(len(rec))), rec...)
		}
		data := m.Data
		if data == nil {
			data = []byte{}
		}
		out = append(out, rarBlock(2, f, extra, data)...)
	}
	return append(out, rarBlock(5, rarVint(nil, 0), nil, nil)...)
}
