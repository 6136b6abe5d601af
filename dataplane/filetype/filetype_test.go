package filetype

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testfiles"
)

// mkPE builds the head of a PE file: DOS header, PE signature, COFF
// header and the optional header's magic and subsystem.
func mkPE(plus bool, machine, chars, subsystem uint16) []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], machine)
	binary.LittleEndian.PutUint16(b[0x96:], chars)
	magic := uint16(0x10b)
	if plus {
		magic = 0x20b
	}
	binary.LittleEndian.PutUint16(b[0x98:], magic)
	binary.LittleEndian.PutUint16(b[0x98+68:], subsystem)
	return b
}

func mkELF(class, endian byte, typ, machine uint16) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = class, endian, 1
	var o binary.ByteOrder = binary.LittleEndian
	if endian == 2 {
		o = binary.BigEndian
	}
	o.PutUint16(b[16:], typ)
	o.PutUint16(b[18:], machine)
	return b
}

func mkZip(names ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range names {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if n == "mimetype" {
			w.Write([]byte("application/vnd.oasis.opendocument.text"))
		} else {
			w.Write([]byte("<x/>"))
		}
	}
	zw.Close()
	return b.Bytes()
}

func mkImage(enc func(*bytes.Buffer, image.Image)) []byte {
	var b bytes.Buffer
	enc(&b, image.NewRGBA(image.Rect(0, 0, 4, 4)))
	return b.Bytes()
}

func mkTar(format tar.Format) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "a", Size: 1, Mode: 0o644, Format: format})
	tw.Write([]byte("a"))
	tw.Close()
	return b.Bytes()
}

type tcase struct {
	name string
	head []byte
	want Type
}

func cases(t testing.TB) []tcase {
	v7 := mkTar(tar.FormatUSTAR)
	copy(v7[257:265], make([]byte, 8))
	sum := 0
	for i, c := range v7[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int(c)
	}
	copy(v7[148:], []byte(strings.Repeat("0", 6-len(itoa8(sum)))+itoa8(sum)+"\x00 "))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("x"))
	zw.Close()
	utf8Cut := append(bytes.Repeat([]byte("a"), HeadSize-1), "é"...) // é cut in half by the head
	return []tcase{
		{"PE32 GUI i386", mkPE(false, 0x14c, 0x0102, 2), Type{"PE32 executable (GUI) Intel 80386", "application/vnd.microsoft.portable-executable", "exe"}},
		{"PE32 console i386", mkPE(false, 0x14c, 0x0102, 3), Type{"PE32 executable (console) Intel 80386", "application/vnd.microsoft.portable-executable", "exe"}},
		{"PE32 DLL", mkPE(false, 0x14c, 0x2102, 2), Type{"PE32 executable (DLL) (GUI) Intel 80386", "application/vnd.microsoft.portable-executable", "dll"}},
		{"PE32+ console x86-64", mkPE(true, 0x8664, 0x22, 3), Type{"PE32+ executable (console) x86-64", "application/vnd.microsoft.portable-executable", "exe"}},
		{"PE32+ DLL arm64", mkPE(true, 0xaa64, 0x2022, 3), Type{"PE32+ executable (DLL) (console) Aarch64", "application/vnd.microsoft.portable-executable", "dll"}},
		{"PE32+ EFI", mkPE(true, 0x8664, 0x22, 10), Type{"PE32+ executable (EFI application) x86-64", "application/vnd.microsoft.portable-executable", "efi"}},
		{"MS-DOS", append([]byte("MZ"), make([]byte, 100)...), DOS},
		{"ELF 64 exec x86-64", mkELF(2, 1, 2, 0x3e), Type{"ELF 64-bit LSB executable, x86-64", "application/x-executable", ""}},
		{"ELF 64 so arm64", mkELF(2, 1, 3, 0xb7), Type{"ELF 64-bit LSB shared object, ARM aarch64", "application/x-sharedlib", "so"}},
		{"ELF 32 MSB MIPS", mkELF(1, 2, 2, 8), Type{"ELF 32-bit MSB executable, MIPS", "application/x-executable", ""}},
		{"ELF 32 rel i386", mkELF(1, 1, 1, 3), Type{"ELF 32-bit LSB relocatable, Intel 80386", "application/x-object", "o"}},
		{"Mach-O 64 exec", []byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01\x03\x00\x00\x00\x02\x00\x00\x00"), Type{"Mach-O 64-bit executable", "application/x-mach-binary", ""}},
		{"Mach-O dylib BE", []byte("\xfe\xed\xfa\xce\x00\x00\x00\x12\x00\x00\x00\x00\x00\x00\x00\x06"), Type{"Mach-O dynamically linked shared library", "application/x-mach-binary", "dylib"}},
		{"Mach-O fat", []byte("\xca\xfe\xba\xbe\x00\x00\x00\x02"), MachOFat},
		{"Java class", []byte("\xca\xfe\xba\xbe\x00\x00\x00\x34"), Class},
		{"PDF", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), PDF},
		{"PDF after junk", append(bytes.Repeat([]byte{0}, 200), "%PDF-1.4"...), PDF},
		{"OLE generic", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00"), OLE},
		{"OLE Word", append([]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), oleWord...), DOC},
		{"OLE Excel", append([]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), oleExcel...), XLS},
		{"OLE MSI", append([]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), oleMSI...), MSI},
		{"DOCX", mkZip("[Content_Types].xml", "_rels/.rels", "word/document.xml"), DOCX},
		{"XLSX", mkZip("[Content_Types].xml", "xl/workbook.xml"), XLSX},
		{"PPTX", mkZip("[Content_Types].xml", "ppt/presentation.xml"), PPTX},
		{"ODT", mkZip("mimetype", "content.xml"), ODT},
		{"JAR", mkZip("META-INF/MANIFEST.MF", "a.class"), JAR},
		{"zip", mkZip("a.txt"), Zip},
		{"empty zip", []byte("PK\x05\x06" + strings.Repeat("\x00", 18)), Zip},
		{"RTF", []byte(`{\rtf1\ansi\deff0 {\fonttbl}}`), RTF},
		{"gzip", gz.Bytes(), Gzip},
		{"bzip2", []byte("BZh91AY&SY"), Bzip2},
		{"xz", []byte("\xfd7zXZ\x00\x00\x04"), Xz},
		{"7z", []byte("7z\xbc\xaf\x27\x1c\x00\x04"), SevenZ},
		{"rar4", []byte("Rar!\x1a\x07\x00\xcf\x90"), RAR},
		{"rar5", []byte("Rar!\x1a\x07\x01\x00"), RAR5},
		{"cab", []byte("MSCF\x00\x00\x00\x00\x6d\x02"), CAB},
		{"tar POSIX", mkTar(tar.FormatPAX), TarPOSIX},
		{"tar GNU", mkTar(tar.FormatGNU), TarGNU},
		{"tar v7", v7, TarV7},
		{"JPEG", mkImage(func(b *bytes.Buffer, i image.Image) { jpeg.Encode(b, i, nil) }), JPEG},
		{"PNG", mkImage(func(b *bytes.Buffer, i image.Image) { png.Encode(b, i) }), PNG},
		{"GIF", mkImage(func(b *bytes.Buffer, i image.Image) { gif.Encode(b, i, nil) }), GIF},
		{"LNK", []byte("L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F\x9b\x00"), LNK},
		{"HTML doctype", []byte("\n  <!DOCTYPE html>\n<html><body>hi</body></html>"), HTML},
		{"HTML script", []byte("<script>document.write('x')</script>"), HTML},
		{"HTML comment first", []byte("<!-- generated -->\n<HTML>"), HTML},
		{"XHTML", []byte(`<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">`), HTML},
		{"HTML link", []byte(`<a href="data:application/octet-stream;base64,TVpQ">`), HTML},
		{"XML", []byte(`<?xml version="1.0"?><feed/>`), XML},
		{"sh", []byte("#!/bin/sh\necho hi\n"), scripts[0].t},
		{"bash via env", []byte("#!/usr/bin/env bash\n"), scripts[1].t},
		{"python3.11", []byte("#! /usr/bin/python3.11 -u\nprint(1)"), scripts[8].t},
		{"env -S python3", []byte("#!/usr/bin/env -S python3 -u\n"), scripts[8].t},
		{"perl", []byte("#!/usr/bin/perl -w\n"), scripts[9].t},
		{"unknown interpreter", []byte("#!/opt/x/bin/frob\n"), Script},
		{"ASCII", []byte("hello world\r\n\tindented\n"), ASCII},
		{"UTF-8", []byte("grüße\n"), UTF8},
		{"UTF-8 BOM", []byte("\xef\xbb\xbfhello"), UTF8BOM},
		{"UTF-8 cut by the head", utf8Cut, UTF8},
		{"Latin-1 is data", []byte("gr\xfc\xdfe"), Data},
		{"binary", []byte{0, 1, 2, 3, 0xff, 0xfe}, Data},
		{"empty", nil, Empty},
	}
}

func itoa8(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

func TestDetect(t *testing.T) {
	for _, c := range cases(t) {
		if got := Detect(c.head); got != c.want {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

// TestDetectNoAlloc: Detect allocates nothing, on every kind of input.
func TestDetectNoAlloc(t *testing.T) {
	cs := cases(t)
	allocs := testing.AllocsPerRun(20, func() {
		for _, c := range cs {
			Detect(c.head)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of %d Detects", allocs, len(cs))
	}
}

// TestClamavTestfiles: the real files of Debian's clamav-testfiles.
func TestClamavTestfiles(t *testing.T) {
	dir := "/usr/share/clamav-testfiles/"
	want := map[string]string{
		"clam.exe":         "PE32 executable (GUI) Intel 80386",
		"clam-upx.exe":     "PE32 executable (GUI) Intel 80386",
		"clam.pdf":         "PDF document",
		"clam.ole.doc":     "Composite Document File V2 Document", // the directory is past 4 KiB
		"clam.ppt":         "Composite Document File V2 Document, Microsoft PowerPoint",
		"clam.exe.rtf":     "Rich Text Format data",
		"clam.zip":         "Zip archive data",
		"clam.tar.gz":      "gzip compressed data",
		"clam.exe.bz2":     "bzip2 compressed data",
		"clam.7z":          "7-zip archive data",
		"clam.cab":         "Microsoft Cabinet archive data",
		"clam.exe.html":    "HTML document",
		"clam.exe.mbox.uu": "ASCII text",
	}
	for name, w := range want {
		b, err := os.ReadFile(dir + name)
		if os.IsNotExist(err) {
			t.Skip("Debian's clamav-testfiles are not installed (apt-get install clamav-testfiles)")
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := Detect(b); got.Name != w {
			t.Errorf("%s: %q, want %q", name, got.Name, w)
		}
	}
}

func BenchmarkDetect(b *testing.B) {
	cs := cases(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range cs {
			Detect(c.head)
		}
	}
}

// FuzzDetect: any head gives a Type with a name, without panicking.
func FuzzDetect(f *testing.F) {
	for _, c := range cases(f) {
		f.Add(c.head)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if Detect(b).Name == "" {
			t.Errorf("no name for % x", b[:min(len(b), 32)])
		}
	})
}

// TestDetectFileISO: an ISO 9660 image is told by its volume descriptor at
// 32 KiB, which Detect never sees; a file that merely starts like data is
// not one.
func TestDetectFileISO(t *testing.T) {
	img := testfiles.ISO(t)
	if got := DetectFile(img); got != ISO9660 {
		t.Errorf("DetectFile(lab.iso) = %q, want %q", got.Name, ISO9660.Name)
	}
	if got := Detect(img); got == ISO9660 {
		t.Errorf("Detect (head only) claims ISO 9660")
	}
	if got := DetectFile(img[:isoMagicAt+2]); got == ISO9660 {
		t.Errorf("an image cut before its magic is named ISO 9660")
	}
}
